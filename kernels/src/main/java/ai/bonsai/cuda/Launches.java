package ai.bonsai.cuda;

/**
 * How the backend shapes each launch: the single place grid and block are computed, used for the GPU and, through
 * {@link EmulatorRuntime}, for the CPU emulation. Kernels are grid-stride, so any grid covers any size.
 */
public final class Launches {
    private Launches() {}

    /** Block sizes the element-wise launcher may use (tests run every one). */
    public static final int[] ELEMENTWISE_BLOCKS = {128, 256, 512, 1024};
    public static final int DEFAULT_ELEMENTWISE_BLOCK = 256;
    /** Block sizes of the block-per-row kernels (reduce, softmax); must match REDUCE_MAX_BLOCK/SOFTMAX_MAX_BLOCK. */
    public static final int[] ROW_BLOCKS = {32, 64, 128, 256};
    /** The block of group_stats (GROUP_BLOCK in group_reg.cu). */
    public static final int GROUP_BLOCK = 128;
    /** Enough blocks to fill an H100/H200 many times over; beyond that threads loop. */
    static final int MAX_ELEMENTWISE_THREADS = 4096 * 1024;

    /** 1-D grid-stride launch over n elements (n >= 1). */
    public static LaunchConfig elementwise(long n, int block) {
        long grid = Math.min((n + block - 1) / block, MAX_ELEMENTWISE_THREADS / block);
        return LaunchConfig.of1d((int) Math.max(1, grid), block);
    }

    /** The smallest row block that covers {@code count} elements with one pass, at most 256. */
    public static int rowBlockFor(long count) {
        for (int b : ROW_BLOCKS) if (b >= count) return b;
        return ROW_BLOCKS[ROW_BLOCKS.length - 1];
    }

    /** One block per row (grid-stride over rows). */
    public static LaunchConfig perRow(long rows, int block) {
        return LaunchConfig.of1d((int) Math.max(1, Math.min(rows, LaunchConfig.MAX_GRID_YZ)), block);
    }
}
