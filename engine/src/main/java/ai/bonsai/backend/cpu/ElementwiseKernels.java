package ai.bonsai.backend.cpu;

/**
 * Memory-bound inner loops that the JIT does not vectorise by itself: a select (ReLU's backward pass) and
 * float sums (batch norm's statistics and backward reductions, where strict float ordering stops
 * auto-vectorisation). The SIMD
 * version is {@code simd.VectorElementwise}; {@link #get()} picks it through {@link VectorizationProvider}.
 *
 * <p>Sums are accumulated in a fixed order for a given implementation, so results are deterministic; the
 * scalar and SIMD versions may differ in the last bits.
 */
public interface ElementwiseKernels {

    static ElementwiseKernels get() { return Holder.INSTANCE; }

    /** out[i] = x[i] > 0 ? g[i] : 0 for i in [from, to). */
    void reluBackward(float[] g, float[] x, float[] out, int from, int to);

    /**
     * out[o] = sum of (a[i] - shift) and out[o + 1] = sum of (a[i] - shift)^2 over the {@code rows} rows
     * a[off + r * stride .. + len), r in [0, rows): one channel of an (n, c, hw) tensor is rows = n, len = hw,
     * stride = c * hw. Each row is summed into its own double and the rows are added in order, so results are
     * deterministic and do not depend on how channels are spread over threads.
     */
    void shiftedMoments(float[] a, int off, int rows, int len, int stride, float shift, double[] out, int o);

    /**
     * Batch norm's two backward reductions in one read, over the same rows and in the same order as
     * {@link #shiftedMoments}: out[o] = sum of g[i] and out[o + 1] = sum of g[i] * (x[i] - mean).
     */
    void gradMoments(float[] g, float[] x, int off, int rows, int len, int stride, float mean, double[] out, int o);

    /** y[i] = x[i] * scale + shift over [off, off+len). */
    void affine(float[] x, float[] y, int off, int len, float scale, float shift);

    /** dx[i] = k1 * (dy[i] - meanDy - (x[i] - mean) * k2) over [off, off+len): batch norm's input gradient. */
    void batchNormInputGrad(float[] dy, float[] x, float[] dx, int off, int len, float k1, float meanDy, float mean, float k2);

    // Batch norm fused with its epilogue (residual add, ReLU). The plain kernels above are these with no residual,
    // ReLU or mask, so fused and separate ops do the same arithmetic in the same order: only the passes over memory
    // are fewer.

    /** y[i] = relu?(x[i] * scale + shift + residual[i]) over [off, off+len); residual may be null. */
    void affineAct(float[] x, float[] residual, boolean relu, float[] y, int off, int len, float scale, float shift);

    /**
     * {@link #gradMoments} of the masked gradient gm[i] = mask[i] > 0 ? g[i] : 0 (ReLU's backward with its output
     * as the mask; no mask when null), which is also written to {@code gOut} when that is not null.
     */
    void maskedGradMoments(float[] g, float[] mask, float[] gOut, float[] x, int off, int rows, int len, int stride, float mean,
                           double[] out, int o);

    /** {@link #batchNormInputGrad} of the masked gradient mask[i] > 0 ? dy[i] : 0 (no mask when null). */
    void maskedBatchNormInputGrad(float[] dy, float[] mask, float[] x, float[] dx, int off, int len, float k1, float meanDy,
                                  float mean, float k2);

    final class Holder {
        private Holder() {}

        static final ElementwiseKernels INSTANCE = VectorizationProvider.load(ElementwiseKernels.class,
                "ai.bonsai.backend.cpu.simd.VectorElementwise", new ScalarElementwise());
    }
}
