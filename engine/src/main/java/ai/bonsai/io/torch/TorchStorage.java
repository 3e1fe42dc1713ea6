package ai.bonsai.io.torch;

/**
 * One raw storage of an archive ({@code data/N} or {@code constants/N}): a typed, little-endian array whose
 * bytes are read on first use and then kept. Tensors that share a storage share this object.
 */
public final class TorchStorage {
    /** Reads the entry's bytes (checked for size and CRC by the zip reader). */
    @FunctionalInterface
    interface Loader {
        byte[] load() throws TorchFormatException;
    }

    private final TorchDType dtype;
    private final String entry;
    private final long numel;
    private final Loader loader;
    private byte[] bytes;

    TorchStorage(TorchDType dtype, String entry, long numel, Loader loader) {
        this.dtype = dtype;
        this.entry = entry;
        this.numel = numel;
        this.loader = loader;
    }

    public TorchDType dtype() { return dtype; }

    /** The entry path under the archive root, such as {@code data/12}. */
    public String entry() { return entry; }

    /** Number of elements the pickle declared (checked against the entry size when it was resolved). */
    public long numel() { return numel; }

    synchronized byte[] bytes() throws TorchFormatException {
        if (bytes == null) {
            byte[] b = loader.load();
            if (b.length != numel * dtype.bytes()) {
                throw new TorchFormatException(entry + ": " + b.length + " bytes, expected " + numel + " " + dtype + " elements = " + numel * dtype.bytes() + " bytes");
            }
            bytes = b;
        }
        return bytes;
    }

    @Override public String toString() { return "storage " + entry + " (" + numel + " x " + dtype + ")"; }
}
