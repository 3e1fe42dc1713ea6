package ai.bonsai.backend.cpu;

import ai.bonsai.backend.Backend;
import ai.bonsai.tensor.Buffer;
import ai.bonsai.tensor.DType;

/** A CPU buffer: one Java array. Only the CPU backend touches the array. */
final class CpuBuffer implements Buffer {
    final DType dtype;
    final float[] f;
    final int[] i32;
    final long[] i64;

    private CpuBuffer(DType dtype, float[] f, int[] i32, long[] i64) {
        this.dtype = dtype;
        this.f = f;
        this.i32 = i32;
        this.i64 = i64;
    }

    static CpuBuffer floats(float[] a) { return new CpuBuffer(DType.FLOAT32, a, null, null); }

    static CpuBuffer ints(int[] a) { return new CpuBuffer(DType.INT32, null, a, null); }

    static CpuBuffer longs(long[] a) { return new CpuBuffer(DType.INT64, null, null, a); }

    @Override public Backend backend() { return CpuBackend.view(); }

    @Override public DType dtype() { return dtype; }

    @Override public int length() {
        return switch (dtype) {
            case FLOAT32 -> f.length;
            case INT32 -> i32.length;
            case INT64 -> i64.length;
        };
    }

    /** Reads element i of an integer buffer. */
    long index(int i) { return dtype == DType.INT64 ? i64[i] : i32[i]; }

    @Override public String toString() { return "CpuBuffer[" + dtype + " x " + length() + "]"; }
}
