package ai.bonsai.backend.cpu;

import ai.bonsai.backend.Backend;
import ai.bonsai.backend.StepArena;
import ai.bonsai.tensor.DType;

import java.util.Arrays;

/**
 * A CPU buffer: one Java array. Only the CPU backend touches the array, and it reaches it through
 * {@code CpuBackend.c}/{@code f}, which refuse a handle that a {@link StepArena} has retired.
 */
final class CpuBuffer implements StepArena.Recyclable {
    final DType dtype;
    private final int length;
    // Not final: reissue() clears them, so a retired handle cannot reach memory that now belongs to another buffer.
    float[] f;
    int[] i32;
    long[] i64;

    private CpuBuffer(DType dtype, float[] f, int[] i32, long[] i64) {
        this.dtype = dtype;
        this.f = f;
        this.i32 = i32;
        this.i64 = i64;
        this.length = f != null ? f.length : i32 != null ? i32.length : i64.length;
    }

    static CpuBuffer floats(float[] a) { return new CpuBuffer(DType.FLOAT32, a, null, null); }

    static CpuBuffer ints(int[] a) { return new CpuBuffer(DType.INT32, null, a, null); }

    static CpuBuffer longs(long[] a) { return new CpuBuffer(DType.INT64, null, null, a); }

    @Override public Backend backend() { return CpuBackend.view(); }

    @Override public DType dtype() { return dtype; }

    @Override public int length() { return length; }

    boolean retired() { return f == null && i32 == null && i64 == null; }

    IllegalStateException usedAfterRelease() {
        return new IllegalStateException("a " + this + " was used after its step arena closed: a tensor allocated inside a "
                + "StepArena scope was kept past the scope's end (allocate it outside the scope, or copy it before closing)");
    }

    @Override public CpuBuffer reissue() {
        if (retired()) throw usedAfterRelease();
        CpuBuffer fresh = new CpuBuffer(dtype, f, i32, i64);
        f = null;
        i32 = null;
        i64 = null;
        return fresh;
    }

    @Override public void poison() {
        if (f != null) Arrays.fill(f, Float.NaN);
        if (i32 != null) Arrays.fill(i32, -1);
        if (i64 != null) Arrays.fill(i64, -1L);
    }

    /** Reads element i of an integer buffer. */
    long index(int i) { return dtype == DType.INT64 ? i64[i] : i32[i]; }

    @Override public String toString() { return "CpuBuffer[" + dtype + " x " + length() + "]"; }
}
