package ai.bonsai.cuda;

import ai.bonsai.backend.Backend;
import ai.bonsai.tensor.Buffer;
import ai.bonsai.tensor.DType;

import java.lang.ref.Cleaner;

/** Device memory of one {@link CudaBackend}. Its block returns to the backend's cache when the buffer is unreachable. */
public final class CudaBuffer implements Buffer {
    private static final Cleaner CLEANER = Cleaner.create();

    private final CudaBackend backend;
    private final DType dtype;
    private final int length;
    private final long address;

    CudaBuffer(CudaBackend backend, DType dtype, int length, long address, CachingAllocator allocator) {
        this.backend = backend;
        this.dtype = dtype;
        this.length = length;
        this.address = address;
        CLEANER.register(this, () -> allocator.release(address));
    }

    static int elementBytes(DType t) { return t == DType.INT64 ? 8 : 4; }

    int elementBytes() { return elementBytes(dtype); }

    long bytes() { return (long) length * elementBytes(); }

    public long address() { return address; }

    @Override public Backend backend() { return backend; }

    @Override public DType dtype() { return dtype; }

    @Override public int length() { return length; }

    @Override public String toString() { return "CudaBuffer[" + dtype + " x " + length + " @0x" + Long.toHexString(address) + "]"; }
}
