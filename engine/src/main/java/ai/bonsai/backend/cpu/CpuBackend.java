package ai.bonsai.backend.cpu;

import ai.bonsai.backend.ConvGeometry;

import ai.bonsai.backend.Backend;
import ai.bonsai.backend.BinaryOp;
import ai.bonsai.backend.BranchConv;
import ai.bonsai.backend.ReduceOp;
import ai.bonsai.backend.StepArena;
import ai.bonsai.backend.UnaryOp;
import ai.bonsai.tensor.Buffer;
import ai.bonsai.tensor.DType;
import ai.bonsai.tensor.Device;
import ai.bonsai.tensor.Generator;

import java.util.Arrays;
import java.util.Collections;
import java.util.Map;
import java.util.WeakHashMap;

/**
 * The pure-Java backend, the embedded default. Heavy kernels (GEMM, convolution) live in their own classes
 * with SIMD and scalar versions; the rest are plain loops that C2 vectorises, split across
 * {@link Parallel}'s threads where the work is large enough to pay for it.
 */
public final class CpuBackend implements Backend {
    private static final CpuBackend INSTANCE = new CpuBackend();
    /** Below this many elements an element-wise op runs on the calling thread. */
    private static final int GRAIN = 1 << 15;
    private static final ElementwiseKernels EW = ElementwiseKernels.get();
    /**
     * Packed weights of the multi-branch plans seen so far. Weak keys with identity semantics (BranchConv does not
     * override equals), so a plan's packed form lives as long as the plan.
     */
    private final Map<BranchConv, BranchConvKernels.Prepared> prepared = Collections.synchronizedMap(new WeakHashMap<>());

    private CpuBackend() {}

    public static CpuBackend get() { return INSTANCE; }

    /**
     * The backend that CPU buffers and {@code Backends.of(cpu)} hand out: this one, or a decorator around it that a
     * profiler installs ({@code benchmarks/.../StepProfile} times every op this way). Volatile so that a profiler can
     * switch it between steps; it is read once per op, which is nothing next to the op.
     */
    private static volatile Backend view = INSTANCE;

    /** What {@link CpuBuffer#backend()} returns. */
    public static Backend view() { return view; }

    /**
     * Routes every CPU op through {@code decorator} (which must pass them on to {@link #get()}), or, with null, back
     * to this backend directly. For profilers and tests; not for concurrent use with running ops.
     */
    public static void observeWith(Backend decorator) { view = decorator == null ? INSTANCE : decorator; }

    @Override public Device device() { return Device.cpu(); }

    private static float[] f(Buffer b) {
        float[] a = ((CpuBuffer) b).f;
        if (a == null) throw c(b).usedAfterRelease();
        return a;
    }

    private static CpuBuffer c(Buffer b) {
        CpuBuffer cb = (CpuBuffer) b;
        if (cb.retired()) throw cb.usedAfterRelease();
        return cb;
    }

    // ---------------------------------------------------------------- memory

    @Override public Buffer allocate(DType dtype, int length) {
        StepArena arena = StepArena.current();
        Buffer b = arena == null ? null : arena.take(Device.cpu(), dtype, length);
        if (b == null) return lent(arena, fresh(dtype, length));   // a new Java array is zero already
        if (dtype == DType.FLOAT32) {
            // Cleared on all threads: a fresh array is zeroed by the JVM on the allocating thread alone.
            float[] a = f(b);
            Parallel.forRange(a.length, GRAIN, (from, to) -> Arrays.fill(a, from, to, 0f));
        } else {
            fill(b, 0f);
        }
        return b;
    }

    /** Reused as it is inside a {@link StepArena} scope: the caller's kernel overwrites every element. */
    @Override public Buffer empty(DType dtype, int length) {
        StepArena arena = StepArena.current();
        Buffer b = arena == null ? null : arena.take(Device.cpu(), dtype, length);
        return b != null ? b : lent(arena, fresh(dtype, length));
    }

    /** A new buffer, recorded in the open scope's arena (if any) so that it is reused after the scope. */
    private static Buffer lent(StepArena arena, CpuBuffer b) { return arena == null ? b : arena.lend(b); }

    private static CpuBuffer fresh(DType dtype, int length) {
        return switch (dtype) {
            case FLOAT32 -> CpuBuffer.floats(new float[length]);
            case INT32 -> CpuBuffer.ints(new int[length]);
            case INT64 -> CpuBuffer.longs(new long[length]);
        };
    }

    @Override public Buffer fromFloats(float[] data) { return CpuBuffer.floats(data.clone()); }

    @Override public Buffer fromInts(int[] data) { return CpuBuffer.ints(data.clone()); }

    @Override public Buffer fromLongs(long[] data) { return CpuBuffer.longs(data.clone()); }

    @Override public float[] toFloats(Buffer b) {
        CpuBuffer cb = c(b);
        if (cb.dtype == DType.FLOAT32) return cb.f.clone();
        float[] out = new float[cb.length()];
        for (int i = 0; i < out.length; i++) out[i] = cb.index(i);
        return out;
    }

    @Override public long[] toLongs(Buffer b) {
        CpuBuffer cb = c(b);
        long[] out = new long[cb.length()];
        if (cb.dtype == DType.FLOAT32) {
            for (int i = 0; i < out.length; i++) out[i] = (long) cb.f[i];
        } else {
            for (int i = 0; i < out.length; i++) out[i] = cb.index(i);
        }
        return out;
    }

    @Override public void fill(Buffer b, float value) {
        CpuBuffer cb = c(b);
        switch (cb.dtype) {
            case FLOAT32 -> Arrays.fill(cb.f, value);
            case INT32 -> Arrays.fill(cb.i32, (int) value);
            case INT64 -> Arrays.fill(cb.i64, (long) value);
        }
    }

    @Override public void copy(Buffer src, int srcOffset, Buffer dst, int dstOffset, int length) {
        CpuBuffer s = c(src), d = c(dst);
        if (s.dtype != d.dtype) throw new IllegalArgumentException("copy: dtype " + s.dtype + " -> " + d.dtype);
        switch (s.dtype) {
            case FLOAT32 -> System.arraycopy(s.f, srcOffset, d.f, dstOffset, length);
            case INT32 -> System.arraycopy(s.i32, srcOffset, d.i32, dstOffset, length);
            case INT64 -> System.arraycopy(s.i64, srcOffset, d.i64, dstOffset, length);
        }
    }

    @Override public void uniform(Buffer out, Generator g, float lo, float hi) {
        float[] o = f(out);
        float span = hi - lo;
        for (int i = 0; i < o.length; i++) o[i] = lo + span * g.nextFloat();
    }

    @Override public void normal(Buffer out, Generator g, float mean, float std) {
        float[] o = f(out);
        for (int i = 0; i < o.length; i++) o[i] = (float) (mean + std * g.nextGaussian());
    }

    // ---------------------------------------------------------------- element-wise

    @Override public void unary(UnaryOp op, Buffer x, Buffer out) {
        float[] a = f(x), o = f(out);
        Parallel.forRange(a.length, GRAIN, (from, to) -> unaryRange(op, a, o, from, to));
    }

    private static void unaryRange(UnaryOp op, float[] a, float[] o, int from, int to) {
        switch (op) {
            case NEG -> { for (int i = from; i < to; i++) o[i] = -a[i]; }
            case EXP -> { for (int i = from; i < to; i++) o[i] = (float) Math.exp(a[i]); }
            case LOG -> { for (int i = from; i < to; i++) o[i] = (float) Math.log(a[i]); }
            case SQRT -> { for (int i = from; i < to; i++) o[i] = (float) Math.sqrt(a[i]); }
            case RSQRT -> { for (int i = from; i < to; i++) o[i] = (float) (1.0 / Math.sqrt(a[i])); }
            case ABS -> { for (int i = from; i < to; i++) o[i] = Math.abs(a[i]); }
            case RELU -> { for (int i = from; i < to; i++) o[i] = Math.max(a[i], 0f); }
            case SIGMOID -> { for (int i = from; i < to; i++) o[i] = (float) (1.0 / (1.0 + Math.exp(-a[i]))); }
            case TANH -> { for (int i = from; i < to; i++) o[i] = (float) Math.tanh(a[i]); }
            case RECIPROCAL -> { for (int i = from; i < to; i++) o[i] = 1f / a[i]; }
            case SQUARE -> { for (int i = from; i < to; i++) o[i] = a[i] * a[i]; }
            case SIGN -> { for (int i = from; i < to; i++) o[i] = Math.signum(a[i]); }
        }
    }

    @Override public void affine(Buffer x, float scale, float shift, Buffer out) {
        float[] a = f(x), o = f(out);
        Parallel.forRange(a.length, GRAIN, (from, to) -> {
            for (int i = from; i < to; i++) o[i] = a[i] * scale + shift;
        });
    }

    @Override public void binary(BinaryOp op, Buffer a, int[] aDims, Buffer b, int[] bDims, Buffer out, int[] outDims) {
        float[] x = f(a), y = f(b), o = f(out);
        int n = o.length;
        if (x.length == n && y.length == n && op == BinaryOp.RELU_BACKWARD) {
            Parallel.forRange(n, GRAIN, (from, to) -> EW.reluBackward(x, y, o, from, to));
            return;
        }
        if (x.length == n && y.length == n) {
            Parallel.forRange(n, GRAIN, (from, to) -> binaryRow(op, x, from, 1, y, from, 1, o, from, to - from));
            return;
        }
        if (y.length == 1) {
            Parallel.forRange(n, GRAIN, (from, to) -> binaryRow(op, x, from, 1, y, 0, 0, o, from, to - from));
            return;
        }
        if (x.length == 1) {
            Parallel.forRange(n, GRAIN, (from, to) -> binaryRow(op, x, 0, 0, y, from, 1, o, from, to - from));
            return;
        }
        // General case: split the output into rows of its last dimension; each row is a 1-D op whose
        // operands either advance (stride 1) or repeat (stride 0) along that dimension.
        int rank = outDims.length;
        int last = outDims[rank - 1];
        int rows = n / last;
        int[] as = broadcastStrides(aDims), bs = broadcastStrides(bDims);
        int aInner = aDims[rank - 1] == 1 ? 0 : 1, bInner = bDims[rank - 1] == 1 ? 0 : 1;
        Parallel.forRange(rows, Math.max(1, GRAIN / last), (from, to) -> {
            for (int row = from; row < to; row++) {
                int rem = row, aOff = 0, bOff = 0;
                for (int d = rank - 2; d >= 0; d--) {
                    int i = rem % outDims[d];
                    rem /= outDims[d];
                    aOff += i * as[d];
                    bOff += i * bs[d];
                }
                binaryRow(op, x, aOff, aInner, y, bOff, bInner, o, row * last, last);
            }
        });
    }

    /** Row-major strides with 0 for broadcast (size-1) dimensions. */
    private static int[] broadcastStrides(int[] dims) {
        int[] s = new int[dims.length];
        int acc = 1;
        for (int i = dims.length - 1; i >= 0; i--) {
            s[i] = dims[i] == 1 ? 0 : acc;
            acc *= dims[i];
        }
        return s;
    }

    /**
     * o[oo + t] = op(x[xo + t*xs], y[yo + t*ys]) for t in [0, len), where each stride is 0 (operand repeats) or
     * 1. The three cases are separate unit-stride loops so that the JIT vectorises them; a loop with a
     * variable stride would not be.
     */
    private static void binaryRow(BinaryOp op, float[] x, int xo, int xs, float[] y, int yo, int ys, float[] o, int oo, int len) {
        if (xs == 1 && ys == 1) binaryVV(op, x, xo, y, yo, o, oo, len);
        else if (xs == 1) binaryVS(op, x, xo, y, yo, o, oo, len);
        else if (ys == 1) binarySV(op, x, xo, y, yo, o, oo, len);
        else {
            float[] one = new float[1];
            binaryVV(op, x, xo, y, yo, one, 0, 1);
            java.util.Arrays.fill(o, oo, oo + len, one[0]);
        }
    }

    /** o[oo + t] = op(x[xo + t], y[yo + t]): both operands advance (unit stride, so C2 vectorises). */
    private static void binaryVV(BinaryOp op, float[] x, int xo, float[] y, int yo, float[] o, int oo, int len) {
        switch (op) {
            case ADD -> { for (int t = 0; t < len; t++) o[oo + t] = x[xo + t] + y[yo + t]; }
            case SUB -> { for (int t = 0; t < len; t++) o[oo + t] = x[xo + t] - y[yo + t]; }
            case MUL -> { for (int t = 0; t < len; t++) o[oo + t] = x[xo + t] * y[yo + t]; }
            case DIV -> { for (int t = 0; t < len; t++) o[oo + t] = x[xo + t] / y[yo + t]; }
            case MAX -> { for (int t = 0; t < len; t++) o[oo + t] = Math.max(x[xo + t], y[yo + t]); }
            case MIN -> { for (int t = 0; t < len; t++) o[oo + t] = Math.min(x[xo + t], y[yo + t]); }
            case POW -> { for (int t = 0; t < len; t++) o[oo + t] = (float) Math.pow(x[xo + t], y[yo + t]); }
            case GT -> { for (int t = 0; t < len; t++) o[oo + t] = x[xo + t] > y[yo + t] ? 1f : 0f; }
            case EQ -> { for (int t = 0; t < len; t++) o[oo + t] = x[xo + t] == y[yo + t] ? 1f : 0f; }
            case RELU_BACKWARD -> { for (int t = 0; t < len; t++) o[oo + t] = y[yo + t] > 0f ? x[xo + t] : 0f; }
        }
    }

    /** o[oo + t] = op(x[xo + t], y[yo]): the second operand repeats. */
    private static void binaryVS(BinaryOp op, float[] x, int xo, float[] y, int yo, float[] o, int oo, int len) {
        final float ys = y[yo];
        switch (op) {
            case ADD -> { for (int t = 0; t < len; t++) o[oo + t] = x[xo + t] + ys; }
            case SUB -> { for (int t = 0; t < len; t++) o[oo + t] = x[xo + t] - ys; }
            case MUL -> { for (int t = 0; t < len; t++) o[oo + t] = x[xo + t] * ys; }
            case DIV -> { for (int t = 0; t < len; t++) o[oo + t] = x[xo + t] / ys; }
            case MAX -> { for (int t = 0; t < len; t++) o[oo + t] = Math.max(x[xo + t], ys); }
            case MIN -> { for (int t = 0; t < len; t++) o[oo + t] = Math.min(x[xo + t], ys); }
            case POW -> { for (int t = 0; t < len; t++) o[oo + t] = (float) Math.pow(x[xo + t], ys); }
            case GT -> { for (int t = 0; t < len; t++) o[oo + t] = x[xo + t] > ys ? 1f : 0f; }
            case EQ -> { for (int t = 0; t < len; t++) o[oo + t] = x[xo + t] == ys ? 1f : 0f; }
            case RELU_BACKWARD -> { for (int t = 0; t < len; t++) o[oo + t] = ys > 0f ? x[xo + t] : 0f; }
        }
    }

    /** o[oo + t] = op(x[xo], y[yo + t]): the first operand repeats. */
    private static void binarySV(BinaryOp op, float[] x, int xo, float[] y, int yo, float[] o, int oo, int len) {
        final float xs = x[xo];
        switch (op) {
            case ADD -> { for (int t = 0; t < len; t++) o[oo + t] = xs + y[yo + t]; }
            case SUB -> { for (int t = 0; t < len; t++) o[oo + t] = xs - y[yo + t]; }
            case MUL -> { for (int t = 0; t < len; t++) o[oo + t] = xs * y[yo + t]; }
            case DIV -> { for (int t = 0; t < len; t++) o[oo + t] = xs / y[yo + t]; }
            case MAX -> { for (int t = 0; t < len; t++) o[oo + t] = Math.max(xs, y[yo + t]); }
            case MIN -> { for (int t = 0; t < len; t++) o[oo + t] = Math.min(xs, y[yo + t]); }
            case POW -> { for (int t = 0; t < len; t++) o[oo + t] = (float) Math.pow(xs, y[yo + t]); }
            case GT -> { for (int t = 0; t < len; t++) o[oo + t] = xs > y[yo + t] ? 1f : 0f; }
            case EQ -> { for (int t = 0; t < len; t++) o[oo + t] = xs == y[yo + t] ? 1f : 0f; }
            case RELU_BACKWARD -> { for (int t = 0; t < len; t++) o[oo + t] = y[yo + t] > 0f ? xs : 0f; }
        }
    }

    // ---------------------------------------------------------------- reductions

    @Override public void reduce(ReduceOp op, Buffer x, int[] xDims, boolean[] reduce, Buffer out) {
        float[] a = f(x), o = f(out);
        int rank = xDims.length;
        int count = 1;
        for (int d = 0; d < rank; d++) if (reduce[d]) count *= xDims[d];
        // Collapse to (outer, mid, inner) when the reduced axes form one contiguous block: the common case.
        int first = -1, lastR = -1;
        for (int d = 0; d < rank; d++) if (reduce[d] && xDims[d] != 1) { if (first < 0) first = d; lastR = d; }
        boolean block = true;
        for (int d = first; first >= 0 && d <= lastR; d++) if (!reduce[d] && xDims[d] != 1) block = false;
        if (first < 0) {                                  // nothing to reduce: a copy (or mean over size-1 axes)
            System.arraycopy(a, 0, o, 0, o.length);
            return;
        }
        if (block) {
            int outer = 1, mid = 1, inner = 1;
            for (int d = 0; d < first; d++) outer *= xDims[d];
            for (int d = first; d <= lastR; d++) mid *= xDims[d];
            for (int d = lastR + 1; d < rank; d++) inner *= xDims[d];
            reduceBlock(op, a, o, outer, mid, inner, count);
            return;
        }
        reduceGeneral(op, a, xDims, reduce, o, count);
    }

    private static void reduceBlock(ReduceOp op, float[] a, float[] o, int outer, int mid, int inner, int count) {
        boolean max = op == ReduceOp.MAX;
        float scale = op == ReduceOp.MEAN ? 1f / count : 1f;
        if (inner == 1) {
            Parallel.forRange(outer, Math.max(1, GRAIN / mid), (from, to) -> {
                for (int r = from; r < to; r++) {
                    int base = r * mid;
                    if (max) {
                        float m = Float.NEGATIVE_INFINITY;
                        for (int j = 0; j < mid; j++) m = Math.max(m, a[base + j]);
                        o[r] = m;
                    } else {
                        double s = 0;
                        for (int j = 0; j < mid; j++) s += a[base + j];
                        o[r] = (float) s * scale;
                    }
                }
            });
            return;
        }
        // Reduce the middle axis for each (outer, inner) pair; parallel over inner columns keeps writes disjoint.
        int cols = outer * inner;
        Parallel.forRange(cols, Math.max(1, GRAIN / mid), (from, to) -> {
            for (int col = from; col < to; col++) {
                int ob = col / inner, ib = col % inner;
                int base = ob * mid * inner + ib;
                if (max) {
                    float m = Float.NEGATIVE_INFINITY;
                    for (int j = 0; j < mid; j++) m = Math.max(m, a[base + j * inner]);
                    o[col] = m;
                } else {
                    double s = 0;
                    for (int j = 0; j < mid; j++) s += a[base + j * inner];
                    o[col] = (float) s * scale;
                }
            }
        });
    }

    private static void reduceGeneral(ReduceOp op, float[] a, int[] xDims, boolean[] reduce, float[] o, int count) {
        int rank = xDims.length;
        int[] outStrides = new int[rank];
        int acc = 1;
        for (int d = rank - 1; d >= 0; d--) {
            outStrides[d] = reduce[d] ? 0 : acc;
            acc *= reduce[d] ? 1 : xDims[d];
        }
        double[] sums = new double[o.length];
        boolean max = op == ReduceOp.MAX;
        if (max) Arrays.fill(sums, Double.NEGATIVE_INFINITY);
        int[] idx = new int[rank];
        for (int i = 0; i < a.length; i++) {
            int oi = 0;
            for (int d = 0; d < rank; d++) oi += idx[d] * outStrides[d];
            sums[oi] = max ? Math.max(sums[oi], a[i]) : sums[oi] + a[i];
            for (int d = rank - 1; d >= 0; d--) {
                if (++idx[d] < xDims[d]) break;
                idx[d] = 0;
            }
        }
        for (int i = 0; i < o.length; i++) o[i] = (float) (op == ReduceOp.MEAN ? sums[i] / count : sums[i]);
    }

    @Override public void argmax(Buffer x, int[] xDims, int axis, Buffer out) {
        float[] a = f(x);
        long[] o = c(out).i64;
        int outer = 1, inner = 1, len = xDims[axis];
        for (int d = 0; d < axis; d++) outer *= xDims[d];
        for (int d = axis + 1; d < xDims.length; d++) inner *= xDims[d];
        for (int ob = 0; ob < outer; ob++)
            for (int ib = 0; ib < inner; ib++) {
                int base = ob * len * inner + ib;
                int best = 0;
                float bv = a[base];
                for (int j = 1; j < len; j++) {
                    float v = a[base + j * inner];
                    if (v > bv || (Float.isNaN(v) && !Float.isNaN(bv))) { bv = v; best = j; }
                }
                o[ob * inner + ib] = best;
            }
    }

    // ---------------------------------------------------------------- movement

    @Override public void strided(Buffer src, int srcOffset, int[] srcStrides, Buffer dst, int dstOffset, int[] dstStrides,
                                  int[] dims, boolean accumulate) {
        CpuBuffer s = c(src), d = c(dst);
        int rank = dims.length;
        if (rank == 0) {
            stridedRow(s, srcOffset, 0, d, dstOffset, 0, 1, accumulate);
            return;
        }
        int last = dims[rank - 1];
        int rows = 1;
        for (int i = 0; i < rank - 1; i++) rows *= dims[i];
        int sIn = srcStrides[rank - 1], dIn = dstStrides[rank - 1];
        Parallel.forRange(rows, Math.max(1, GRAIN / Math.max(1, last)), (from, to) -> {
            for (int row = from; row < to; row++) {
                int rem = row, so = srcOffset, dO = dstOffset;
                for (int i = rank - 2; i >= 0; i--) {
                    int k = rem % dims[i];
                    rem /= dims[i];
                    so += k * srcStrides[i];
                    dO += k * dstStrides[i];
                }
                stridedRow(s, so, sIn, d, dO, dIn, last, accumulate);
            }
        });
    }

    private static void stridedRow(CpuBuffer s, int so, int ss, CpuBuffer d, int dO, int ds, int len, boolean acc) {
        switch (s.dtype) {
            case FLOAT32 -> {
                float[] a = s.f, b = d.f;
                if (acc) {
                    for (int t = 0; t < len; t++) b[dO + t * ds] += a[so + t * ss];
                } else if (ss == 1 && ds == 1) {
                    System.arraycopy(a, so, b, dO, len);
                } else {
                    for (int t = 0; t < len; t++) b[dO + t * ds] = a[so + t * ss];
                }
            }
            case INT32 -> { for (int t = 0; t < len; t++) d.i32[dO + t * ds] = (acc ? d.i32[dO + t * ds] : 0) + s.i32[so + t * ss]; }
            case INT64 -> { for (int t = 0; t < len; t++) d.i64[dO + t * ds] = (acc ? d.i64[dO + t * ds] : 0) + s.i64[so + t * ss]; }
        }
    }

    // ---------------------------------------------------------------- processing

    @Override public void gemm(boolean transA, boolean transB, int batch, int m, int n, int k, float alpha,
                               Buffer a, int aBatchStride, Buffer b, int bBatchStride, float beta, Buffer c) {
        float[] x = f(a), y = f(b), z = f(c);
        int lda = transA ? m : k, ldb = transB ? k : n;
        if (batch == 1) {
            Gemm.sgemm(transA, transB, m, n, k, alpha, x, 0, lda, y, 0, ldb, beta, z, 0, n);
            return;
        }
        Parallel.forEach(batch, i -> Gemm.sgemm(transA, transB, m, n, k, alpha, x, i * aBatchStride, lda,
                y, i * bBatchStride, ldb, beta, z, i * m * n, n));
    }

    @Override public void conv2d(ConvGeometry g, Buffer x, Buffer w, Buffer bias, Buffer y) {
        Conv2dKernels.forward(g, f(x), f(w), bias == null ? null : f(bias), f(y));
    }

    @Override public void conv2dBackwardData(ConvGeometry g, Buffer dy, Buffer w, Buffer dx) {
        Conv2dKernels.backwardData(g, f(dy), f(w), f(dx), false);
    }

    @Override public void conv2dBackwardDataAdd(ConvGeometry g, Buffer dy, Buffer w, Buffer dx) {
        Conv2dKernels.backwardData(g, f(dy), f(w), f(dx), true);
    }

    @Override public void conv2dBackwardWeight(ConvGeometry g, Buffer x, Buffer dy, Buffer dw) {
        Conv2dKernels.backwardWeight(g, f(x), f(dy), f(dw));
    }

    @Override public void batchNormTrain(Buffer xb, int n, int c, int hw, Buffer gammaB, Buffer betaB, Buffer rmB,
                                         Buffer rvB, float momentum, float eps, Buffer yb, Buffer meanB, Buffer invStdB) {
        batchNormActTrain(xb, n, c, hw, gammaB, betaB, rmB, rvB, momentum, eps, null, false, yb, meanB, invStdB);
    }

    @Override public void batchNormActTrain(Buffer xb, int n, int c, int hw, Buffer gammaB, Buffer betaB, Buffer rmB, Buffer rvB,
                                            float momentum, float eps, Buffer residualB, boolean relu, Buffer yb, Buffer meanB,
                                            Buffer invStdB) {
        float[] x = f(xb), gamma = f(gammaB), beta = f(betaB), rm = f(rmB), rv = f(rvB), y = f(yb), sm = f(meanB), si = f(invStdB);
        float[] res = residualB == null ? null : f(residualB);
        long m = (long) n * hw;
        // Three passes, each over the images in memory order, threads taking whole images: the sums, the centred
        // sums of squares (which stay accurate for inputs with a large mean), then the normalised output. Walking
        // one channel at a time instead (its n rows of hw floats, c * hw apart) kept that channel in L2 between
        // passes, but each row was a separate short stream: the prefetchers restarted every hw floats, and
        // the first pass ran at 3-10 GB/s from memory. Each (image, channel) row gets its own double sum and a
        // channel adds its rows in image order, so the result does not depend on the thread count. (A one-read
        // variance shifted by a first-row estimate of the mean changed training results in the last bits, enough
        // to move a pruning test.)
        double[] rows = ScratchBuffers.rowSums(2 * n * c);
        forImages(n, c, hw, (from, to) -> {
            for (int i = from; i < to; i++) EW.rowMoments(x, i * c * hw, c, hw, null, rows, 2 * i * c);
        });
        float[] shifts = new float[c];
        double[] means = new double[c];
        for (int ch = 0; ch < c; ch++) {
            double s1 = 0;
            for (int i = 0; i < n; i++) s1 += rows[2 * (i * c + ch)];
            means[ch] = s1 / m;
            shifts[ch] = (float) means[ch];
        }
        forImages(n, c, hw, (from, to) -> {
            for (int i = from; i < to; i++) EW.rowMoments(x, i * c * hw, c, hw, shifts, rows, 2 * i * c);
        });
        float[] scale = new float[c], shift = new float[c];
        for (int ch = 0; ch < c; ch++) {
            double ss = 0;
            for (int i = 0; i < n; i++) ss += rows[2 * (i * c + ch) + 1];
            double var = ss / m;
            float inv = (float) (1.0 / Math.sqrt(var + eps));
            sm[ch] = shifts[ch];
            si[ch] = inv;
            foldAffine(gamma, beta, sm, si, ch, scale, shift);
            double unbiased = m > 1 ? ss / (m - 1) : var;
            rm[ch] = (1 - momentum) * rm[ch] + momentum * shifts[ch];
            rv[ch] = (1 - momentum) * rv[ch] + momentum * (float) unbiased;
        }
        forImages(n, c, hw, (from, to) -> {
            for (int i = from; i < to; i++) {
                for (int ch = 0; ch < c; ch++) EW.affineAct(x, res, relu, y, (i * c + ch) * hw, hw, scale[ch], shift[ch]);
            }
        });
    }

    /**
     * Runs {@code body} over batch norm's images [0, n) in chunks of whole images: at least {@link #GRAIN} floats a
     * chunk, and up to 4 chunks per thread, so that a thread that starts late finds work left rather than leaving the
     * others to wait for its half.
     */
    private static void forImages(int n, int c, int hw, Parallel.RangeBody body) {
        int grain = Math.max(1, GRAIN / Math.max(1, c * hw));
        int per = Math.max(grain, ceilDiv(n, 4 * Parallel.threads()));
        Parallel.forEach(ceilDiv(n, per), t -> body.run(t * per, Math.min(n, (t + 1) * per)));
    }

    private static int ceilDiv(int a, int b) { return (a + b - 1) / b; }

    @Override public void batchNormEval(Buffer xb, int n, int c, int hw, Buffer gammaB, Buffer betaB, Buffer rmB,
                                        Buffer rvB, float eps, Buffer yb) {
        batchNormActEval(xb, n, c, hw, gammaB, betaB, rmB, rvB, eps, null, false, yb);
    }

    @Override public void batchNormActEval(Buffer xb, int n, int c, int hw, Buffer gammaB, Buffer betaB, Buffer rmB,
                                           Buffer rvB, float eps, Buffer residualB, boolean relu, Buffer yb) {
        float[] x = f(xb), gamma = f(gammaB), beta = f(betaB), rm = f(rmB), rv = f(rvB), y = f(yb);
        float[] res = residualB == null ? null : f(residualB);
        Parallel.forRange(n * c, Math.max(1, GRAIN / hw), (from, to) -> {
            for (int p = from; p < to; p++) {
                int ch = p % c;
                float inv = (float) (1.0 / Math.sqrt(rv[ch] + eps));
                float scale = gamma[ch] * inv, shift = beta[ch] - rm[ch] * scale;
                EW.affineAct(x, res, relu, y, p * hw, hw, scale, shift);
            }
        });
    }

    @Override public void batchNormBackward(Buffer xb, Buffer dyb, int n, int c, int hw, Buffer gammaB, Buffer meanB,
                                            Buffer invStdB, Buffer dxb, Buffer dGammaB, Buffer dBetaB) {
        batchNormActBackward(xb, dyb, null, n, c, hw, gammaB, meanB, invStdB, null, dxb, dGammaB, dBetaB);
    }

    @Override public void batchNormActBackward(Buffer xb, Buffer dyb, Buffer reluOutB, int n, int c, int hw, Buffer gammaB,
                                               Buffer meanB, Buffer invStdB, Buffer dMaskedB, Buffer dxb, Buffer dGammaB, Buffer dBetaB) {
        float[] mask = reluOutB == null ? null : f(reluOutB);
        batchNormBackwardPasses(f(xb), f(dyb), mask, dMaskedB == null || mask == null ? null : f(dMaskedB), null, null, n, c, hw,
                f(gammaB), f(meanB), f(invStdB), dxb == null ? null : f(dxb), f(dGammaB), f(dBetaB));
    }

    /**
     * ReLU's mask recomputed from x: where x * scale + shift > 0, with the forward pass's scale and shift, rounded as
     * batchNormActTrain rounded them. Both passes then read dy and x only: on a [128,16,32,32] tensor with cold caches
     * (2 threads) the backward took 0.95 ms against 1.49 ms reading the ReLU's output as well.
     */
    @Override public void batchNormReluBackward(Buffer xb, Buffer dyb, Buffer reluOutB, int n, int c, int hw, Buffer gammaB,
                                                Buffer betaB, Buffer meanB, Buffer invStdB, Buffer dxb, Buffer dGammaB, Buffer dBetaB) {
        float[] gamma = f(gammaB), beta = f(betaB), sm = f(meanB), si = f(invStdB);
        float[] scale = new float[c], shift = new float[c];
        for (int ch = 0; ch < c; ch++) foldAffine(gamma, beta, sm, si, ch, scale, shift);
        batchNormBackwardPasses(f(xb), f(dyb), null, null, scale, shift, n, c, hw, gamma, sm, si, dxb == null ? null : f(dxb),
                f(dGammaB), f(dBetaB));
    }

    /**
     * Channel ch of training batch norm as one affine, y = x * scale + shift, from the saved mean and inverse std: the
     * forward pass normalises with it and batchNormReluBackward recomputes ReLU's mask with it, so both round alike.
     */
    private static void foldAffine(float[] gamma, float[] beta, float[] mean, float[] invStd, int ch, float[] scale, float[] shift) {
        scale[ch] = gamma[ch] * invStd[ch];
        shift[ch] = beta[ch] - mean[ch] * scale[ch];
    }

    /**
     * Batch norm's backward with an optional ReLU mask: the array {@code mask} (mask[i] > 0), or with {@code scale}
     * and {@code shift} the recomputed x * scale + shift > 0, or neither.
     */
    private static void batchNormBackwardPasses(float[] x, float[] dy, float[] mask, float[] dMasked, float[] scale, float[] shift,
                                                int n, int c, int hw, float[] gamma, float[] sm, float[] si, float[] dx, float[] dg,
                                                float[] db) {
        long m = (long) n * hw;
        // Two passes over the images in memory order, as in batchNormActTrain: both reductions in one read of dy and
        // x per (image, channel) row (with a ReLU, its mask applied on the way, and the masked gradient kept when the
        // residual needs it, so that the second pass reads it instead of dy and the mask), then the input gradient.
        double[] rows = ScratchBuffers.rowSums(2 * n * c);
        forImages(n, c, hw, (from, to) -> {
            for (int i = from; i < to; i++) {
                if (scale != null) {
                    EW.rowGradMomentsReluOfAffine(dy, x, i * c * hw, c, hw, scale, shift, sm, rows, 2 * i * c);
                } else {
                    EW.rowGradMoments(dy, mask, dMasked, x, i * c * hw, c, hw, sm, rows, 2 * i * c);
                }
            }
        });
        float[] k1 = new float[c], meanDy = new float[c], k2 = new float[c];
        for (int ch = 0; ch < c; ch++) {
            double sdy = 0, sdyx = 0;
            for (int i = 0; i < n; i++) {
                sdy += rows[2 * (i * c + ch)];
                sdyx += rows[2 * (i * c + ch) + 1];
            }
            float inv = si[ch];
            db[ch] = (float) sdy;
            dg[ch] = (float) (sdyx * inv);
            // dx = gamma * inv / m * (m * dy - sum(dy) - xhat * sum(dy * xhat))
            k1[ch] = gamma[ch] * inv;
            meanDy[ch] = (float) (sdy / m);
            k2[ch] = (float) (sdyx * inv * inv / m);
        }
        if (dx == null) return;
        float[] g = dMasked != null ? dMasked : dy, gMask = dMasked != null ? null : mask;
        forImages(n, c, hw, (from, to) -> {
            for (int i = from; i < to; i++) {
                for (int ch = 0; ch < c; ch++) {
                    int off = (i * c + ch) * hw;
                    if (scale != null) {
                        EW.reluOfAffineBatchNormInputGrad(dy, x, dx, off, hw, scale[ch], shift[ch], k1[ch], meanDy[ch], sm[ch], k2[ch]);
                    } else {
                        EW.maskedBatchNormInputGrad(g, gMask, x, dx, off, hw, k1[ch], meanDy[ch], sm[ch], k2[ch]);
                    }
                }
            }
        });
    }

    @Override public void maxPool2d(Buffer xb, int planes, int h, int w, int kh, int kw, int sh, int sw, int ph, int pw,
                                    int oh, int ow, Buffer yb, Buffer argmaxB) {
        float[] x = f(xb), y = f(yb);
        int[] am = c(argmaxB).i32;
        Parallel.forRange(planes, 1, (from, to) -> {
            for (int p = from; p < to; p++) {
                int xb0 = p * h * w, yb0 = p * oh * ow;
                for (int i = 0; i < oh; i++)
                    for (int j = 0; j < ow; j++) {
                        float best = Float.NEGATIVE_INFINITY;
                        int bi = -1;
                        for (int r = 0; r < kh; r++) {
                            int hi = i * sh - ph + r;
                            if (hi < 0 || hi >= h) continue;
                            for (int s = 0; s < kw; s++) {
                                int wi = j * sw - pw + s;
                                if (wi < 0 || wi >= w) continue;
                                float v = x[xb0 + hi * w + wi];
                                if (v > best || bi < 0) { best = v; bi = hi * w + wi; }
                            }
                        }
                        y[yb0 + i * ow + j] = best;
                        am[yb0 + i * ow + j] = bi;
                    }
            }
        });
    }

    @Override public void maxPool2dBackward(Buffer dyb, Buffer argmaxB, int planes, int h, int w, int oh, int ow, Buffer dxb) {
        float[] dy = f(dyb), dx = f(dxb);
        int[] am = c(argmaxB).i32;
        Parallel.forRange(planes, 1, (from, to) -> {
            for (int p = from; p < to; p++) {
                int xb0 = p * h * w, yb0 = p * oh * ow;
                Arrays.fill(dx, xb0, xb0 + h * w, 0f);
                for (int t = 0; t < oh * ow; t++) if (am[yb0 + t] >= 0) dx[xb0 + am[yb0 + t]] += dy[yb0 + t];
            }
        });
    }

    @Override public void adaptiveAvgPool2d(Buffer xb, int planes, int h, int w, int oh, int ow, Buffer yb) {
        float[] x = f(xb), y = f(yb);
        Parallel.forRange(planes, 1, (from, to) -> {
            for (int p = from; p < to; p++)
                for (int i = 0; i < oh; i++) {
                    int h0 = (i * h) / oh, h1 = ((i + 1) * h + oh - 1) / oh;
                    for (int j = 0; j < ow; j++) {
                        int w0 = (j * w) / ow, w1 = ((j + 1) * w + ow - 1) / ow;
                        double s = 0;
                        for (int r = h0; r < h1; r++) for (int q = w0; q < w1; q++) s += x[(p * h + r) * w + q];
                        y[(p * oh + i) * ow + j] = (float) (s / ((h1 - h0) * (w1 - w0)));
                    }
                }
        });
    }

    @Override public void adaptiveAvgPool2dBackward(Buffer dyb, int planes, int h, int w, int oh, int ow, Buffer dxb) {
        float[] dy = f(dyb), dx = f(dxb);
        Parallel.forRange(planes, 1, (from, to) -> {
            for (int p = from; p < to; p++) {
                Arrays.fill(dx, p * h * w, (p + 1) * h * w, 0f);
                for (int i = 0; i < oh; i++) {
                    int h0 = (i * h) / oh, h1 = ((i + 1) * h + oh - 1) / oh;
                    for (int j = 0; j < ow; j++) {
                        int w0 = (j * w) / ow, w1 = ((j + 1) * w + ow - 1) / ow;
                        float g = dy[(p * oh + i) * ow + j] / ((h1 - h0) * (w1 - w0));
                        for (int r = h0; r < h1; r++) for (int q = w0; q < w1; q++) dx[(p * h + r) * w + q] += g;
                    }
                }
            }
        });
    }

    @Override public void softmax(Buffer xb, int rows, int cols, boolean log, Buffer yb) {
        float[] x = f(xb), y = f(yb);
        Parallel.forRange(rows, Math.max(1, GRAIN / cols), (from, to) -> {
            for (int r = from; r < to; r++) {
                int base = r * cols;
                float m = Float.NEGATIVE_INFINITY;
                for (int j = 0; j < cols; j++) m = Math.max(m, x[base + j]);
                double s = 0;
                for (int j = 0; j < cols; j++) s += Math.exp(x[base + j] - m);
                if (log) {
                    float lse = (float) (m + Math.log(s));
                    for (int j = 0; j < cols; j++) y[base + j] = x[base + j] - lse;
                } else {
                    for (int j = 0; j < cols; j++) y[base + j] = (float) (Math.exp(x[base + j] - m) / s);
                }
            }
        });
    }

    @Override public void indexSelect(Buffer xb, int outer, int axisLen, int inner, Buffer index, int indexLen, Buffer outB) {
        float[] x = f(xb), o = f(outB);
        CpuBuffer idx = c(index);
        Parallel.forRange(outer * indexLen, Math.max(1, GRAIN / inner), (from, to) -> {
            for (int t = from; t < to; t++) {
                int ob = t / indexLen, j = t % indexLen;
                int src = (int) idx.index(j);
                System.arraycopy(x, (ob * axisLen + src) * inner, o, (ob * indexLen + j) * inner, inner);
            }
        });
    }

    @Override public void indexAdd(Buffer dstB, int outer, int axisLen, int inner, Buffer index, int indexLen, Buffer srcB) {
        float[] d = f(dstB), s = f(srcB);
        CpuBuffer idx = c(index);
        // Parallel over the outer axis only: repeated indices then add in index order within one task.
        Parallel.forRange(outer, 1, (from, to) -> {
            for (int ob = from; ob < to; ob++)
                for (int j = 0; j < indexLen; j++) {
                    int dOff = (ob * axisLen + (int) idx.index(j)) * inner, sOff = (ob * indexLen + j) * inner;
                    for (int i = 0; i < inner; i++) d[dOff + i] += s[sOff + i];
                }
        });
    }

    @Override public void takeAlongAxis(Buffer xb, int outer, int axisLen, int inner, Buffer index, Buffer outB) {
        float[] x = f(xb), o = f(outB);
        CpuBuffer idx = c(index);
        for (int ob = 0; ob < outer; ob++)
            for (int i = 0; i < inner; i++) o[ob * inner + i] = x[(ob * axisLen + (int) idx.index(ob * inner + i)) * inner + i];
    }

    @Override public void takeAlongAxisAdd(Buffer dstB, int outer, int axisLen, int inner, Buffer index, Buffer srcB) {
        float[] d = f(dstB), s = f(srcB);
        CpuBuffer idx = c(index);
        for (int ob = 0; ob < outer; ob++)
            for (int i = 0; i < inner; i++) d[(ob * axisLen + (int) idx.index(ob * inner + i)) * inner + i] += s[ob * inner + i];
    }

    // ---------------------------------------------------------------- DSP group regulariser

    @Override public void branchConv2d(BranchConv plan, Buffer x, int n, int h, int w, Buffer y, boolean accumulate) {
        checkBranchCall("branchConv2d", n, h, w, plan, accumulate);
        float[] xs = f(x), ys = f(y);
        if (xs == ys) throw new IllegalArgumentException("branchConv2d: x and y must be different buffers");
        int oh = plan.outSize(h), ow = plan.outSize(w);
        if (oh < 1 || ow < 1) throw new IllegalArgumentException("branchConv2d: input " + h + "x" + w + " is smaller than the kernel of " + plan);
        checkBranchLengths("branchConv2d", plan::toString, xs, n, plan.inChannels(), h, w, ys, plan.outChannels(), oh, ow);
        ConvMicroKernels kern = Conv2dKernels.kernels();
        BranchConvKernels.run(kern, plan, prepared(plan, kern), xs, n, h, w, ys, accumulate);
    }

    /** The checks both branch-convolution entry points make first: a positive size, and overwriting only disjoint outputs. */
    private static void checkBranchCall(String op, int n, int h, int w, BranchConv writer, boolean accumulate) {
        if (n < 1 || h < 1 || w < 1) throw new IllegalArgumentException(op + ": invalid input size n=" + n + " h=" + h + " w=" + w);
        if (!accumulate && !writer.disjointOutputs()) {
            throw new IllegalArgumentException(op + ": overwriting needs disjoint branch outputs, but two branches of " + writer + " write the same channel");
        }
    }

    /**
     * x must hold (n, cIn, h, w) and y (n, cOut, oh, ow) floats exactly; {@code what} names the plan(s) in the message.
     * It is built only on failure: built on every call, the plans' descriptions were 2 % of packed inference's
     * allocations at batch 1 (JFR), for a message that is almost never shown.
     */
    private static void checkBranchLengths(String op, java.util.function.Supplier<String> what, float[] xs, int n, int cIn, int h,
                                           int w, float[] ys, int cOut, int oh, int ow) {
        long xNeed = (long) n * cIn * h * w, yNeed = (long) n * cOut * oh * ow;
        if (xs.length != xNeed || ys.length != yNeed) {
            throw new IllegalArgumentException(op + ": " + what.get() + " on (" + n + "," + cIn + "," + h + "," + w + ") needs x of "
                    + xNeed + " and y of " + yNeed + " floats, got " + xs.length + " and " + ys.length);
        }
    }

    /** The plan's weights in register-tile order, built on first use and kept while the plan lives. */
    private BranchConvKernels.Prepared prepared(BranchConv plan, ConvMicroKernels kern) {
        BranchConvKernels.Prepared prep = prepared.get(plan);
        if (prep == null) {
            prep = BranchConvKernels.prepare(plan, kern.mr(), this);
            prepared.put(plan, prep);
        }
        return prep;
    }

    @Override public void branchConv2dPair(BranchConv first, BranchConv second, Buffer x, int n, int h, int w, Buffer y,
                                           boolean accumulate) {
        checkBranchCall("branchConv2dPair", n, h, w, second, accumulate);
        BranchConv.requireChainable(first, second);
        float[] xs = f(x), ys = f(y);      // x == y is allowed: each unit reads its images of x before writing them
        int th = first.outSize(h), tw = first.outSize(w);
        int oh = th < 1 || tw < 1 ? 0 : second.outSize(th), ow = th < 1 || tw < 1 ? 0 : second.outSize(tw);
        if (oh < 1 || ow < 1) throw new IllegalArgumentException("branchConv2dPair: input " + h + "x" + w + " is too small for " + first + " then " + second);
        checkBranchLengths("branchConv2dPair", () -> first + " then " + second, xs, n, first.inChannels(), h, w, ys, second.outChannels(), oh, ow);
        ConvMicroKernels kern = Conv2dKernels.kernels();
        BranchConvKernels.runPair(kern, first, prepared(first, kern), second, prepared(second, kern), xs, n, h, w, ys,
                accumulate, ConvMethod.AUTO);
    }

    @Override public void groupRegularizer(Buffer w, Buffer p, int groups, int filters, int channels, int kernelArea,
                                           float scale, Buffer penalty, Buffer dRdp, boolean accumulateDRdp, Buffer pieces) {
        GroupRegularizerKernels.regularize(f(w), f(p), groups, filters, channels, kernelArea, scale, f(penalty),
                dRdp == null ? null : f(dRdp), accumulateDRdp, pieces == null ? null : f(pieces));
    }

    @Override public void groupSecondOrderAdd(Buffer w, Buffer d, Buffer p, Buffer pieces, int groups, int filters,
                                              int channels, int kernelArea, Buffer pgrad) {
        GroupRegularizerKernels.secondOrderAdd(f(w), f(d), f(p), f(pieces), groups, filters, channels, kernelArea, f(pgrad));
    }

    // ---------------------------------------------------------------- optimiser updates

    @Override public void sgdStep(Buffer paramB, Buffer gradB, Buffer bufB, float lr, float momentum, float dampening,
                                  float weightDecay, boolean nesterov, boolean firstStep) {
        float[] p = f(paramB), g = f(gradB), buf = bufB == null ? null : f(bufB);
        Parallel.forRange(p.length, GRAIN, (from, to) -> {
            for (int i = from; i < to; i++) {
                float d = g[i] + weightDecay * p[i];
                if (momentum != 0) {
                    float b = firstStep ? d : momentum * buf[i] + (1 - dampening) * d;
                    buf[i] = b;
                    d = nesterov ? d + momentum * b : b;
                }
                p[i] -= lr * d;
            }
        });
    }

    @Override public void adamStep(Buffer paramB, Buffer gradB, Buffer mB, Buffer vB, float lr, float beta1, float beta2,
                                   float eps, float weightDecay, int t) {
        float[] p = f(paramB), g = f(gradB), m = f(mB), v = f(vB);
        double bc1 = 1 - Math.pow(beta1, t), bc2 = 1 - Math.pow(beta2, t);
        float stepSize = (float) (lr / bc1);
        float bc2Sqrt = (float) Math.sqrt(bc2);
        Parallel.forRange(p.length, GRAIN, (from, to) -> {
            for (int i = from; i < to; i++) {
                float d = g[i] + weightDecay * p[i];
                m[i] = beta1 * m[i] + (1 - beta1) * d;
                v[i] = beta2 * v[i] + (1 - beta2) * d * d;
                float denom = (float) Math.sqrt(v[i]) / bc2Sqrt + eps;
                p[i] -= stepSize * m[i] / denom;
            }
        });
    }
}
