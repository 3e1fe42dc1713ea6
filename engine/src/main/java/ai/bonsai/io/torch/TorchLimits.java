package ai.bonsai.io.torch;

/**
 * Bounds on what reading one TorchScript archive may cost. Inputs are untrusted: every length, count and
 * size declared in the file is checked against these before anything is allocated, so a hostile or corrupt
 * file ends in a {@link TorchFormatException} instead of an OutOfMemoryError, a StackOverflowError or a hang.
 *
 * @param maxArchiveBytes     largest file accepted (it is read into memory whole)
 * @param maxEntries          most zip entries
 * @param maxEntryBytes       largest uncompressed entry
 * @param maxCompressionRatio largest uncompressed / compressed size of a deflated entry (zip bombs)
 * @param maxMemo             most memo slots a pickle may fill, and the largest memo index
 * @param maxStack            most values on the pickle stack
 * @param maxMarkDepth        most open MARKs (nesting of tuples, dicts and argument lists)
 * @param maxStringBytes      longest string or global name in a pickle
 * @param maxPickleAllocation total bytes a pickle's values may take (strings, container slots), approximately
 * @param maxModuleDepth      deepest module tree
 * @param maxRank             most tensor dimensions
 */
public record TorchLimits(long maxArchiveBytes, int maxEntries, long maxEntryBytes, int maxCompressionRatio,
                          int maxMemo, int maxStack, int maxMarkDepth, int maxStringBytes, long maxPickleAllocation,
                          int maxModuleDepth, int maxRank) {
    /** Generous for real models (the published DSP models are under 4 MB), tight enough to stop bombs. */
    public static final TorchLimits DEFAULT = new TorchLimits(1L << 30, 100_000, 1L << 30, 200,
            1_000_000, 1_000_000, 1_000, 1 << 20, 256L << 20, 64, 8);

    public TorchLimits {
        // Arrays are indexed by int: an entry or archive beyond 2^31 - 1 bytes cannot be held in memory whole.
        if (maxArchiveBytes < 1 || maxArchiveBytes > Integer.MAX_VALUE - 8) throw new IllegalArgumentException("maxArchiveBytes must be in [1, 2^31 - 9], got " + maxArchiveBytes);
        if (maxEntryBytes < 1 || maxEntryBytes > Integer.MAX_VALUE - 8) throw new IllegalArgumentException("maxEntryBytes must be in [1, 2^31 - 9], got " + maxEntryBytes);
        if (maxEntries < 1 || maxCompressionRatio < 1 || maxMemo < 1 || maxStack < 1 || maxMarkDepth < 1 || maxStringBytes < 1
                || maxPickleAllocation < 1 || maxModuleDepth < 1 || maxRank < 1) {
            throw new IllegalArgumentException("every limit must be positive: " + this);
        }
    }
}
