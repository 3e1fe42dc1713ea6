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
     * Per-row moments of {@code rows} consecutive rows a[off + r * len .. + len), r in [0, rows):
     * out[o + 2r] = sum of (a[i] - shift_r) and out[o + 2r + 1] = sum of (a[i] - shift_r)^2, with shift_r =
     * shifts[r] (0 when shifts is null). One image of an (n, c, hw) tensor is rows = c, len = hw, so batch norm
     * reads memory in order and adds a channel's rows afterwards in image order: the result is deterministic and
     * does not depend on how images are spread over threads. Each row is summed into its own double.
     */
    void rowMoments(float[] a, int off, int rows, int len, float[] shifts, double[] out, int o);

    /**
     * Batch norm's two backward reductions per row in one read, over the same rows as {@link #rowMoments} and with
     * the same summation order: out[o + 2r] = sum of gm[i] and out[o + 2r + 1] = sum of gm[i] * (x[i] - means[r]),
     * where gm[i] = mask[i] > 0 ? g[i] : 0 (ReLU's backward with its output as the mask; gm = g when mask is null).
     * The masked gradient is also written to {@code gOut} when that is not null.
     */
    void rowGradMoments(float[] g, float[] mask, float[] gOut, float[] x, int off, int rows, int len, float[] means,
                        double[] out, int o);

    /** y[i] = x[i] * scale + shift over [off, off+len). */
    void affine(float[] x, float[] y, int off, int len, float scale, float shift);

    /** dx[i] = k1 * (dy[i] - meanDy - (x[i] - mean) * k2) over [off, off+len): batch norm's input gradient. */
    void batchNormInputGrad(float[] dy, float[] x, float[] dx, int off, int len, float k1, float meanDy, float mean, float k2);

    // Batch norm fused with its epilogue (residual add, ReLU). The plain kernels above are these with no residual,
    // ReLU or mask, so fused and separate ops do the same arithmetic in the same order: only the passes over memory
    // are fewer.

    /** y[i] = relu?(x[i] * scale + shift + residual[i]) over [off, off+len); residual may be null. */
    void affineAct(float[] x, float[] residual, boolean relu, float[] y, int off, int len, float scale, float shift);

    /** {@link #batchNormInputGrad} of the masked gradient mask[i] > 0 ? dy[i] : 0 (no mask when null). */
    void maskedBatchNormInputGrad(float[] dy, float[] mask, float[] x, float[] dx, int off, int len, float k1, float meanDy,
                                  float mean, float k2);

    // A batch norm followed by a ReLU and no residual: its output y = relu(x * scale + shift) is positive exactly
    // where x * scale + shift is, computed as affineAct computes it. The backward pass reads x anyway, so these
    // recompute ReLU's mask from x instead of reading y: one array fewer per pass, the same bits as passing y as the
    // mask.

    /**
     * {@link #rowGradMoments} with the mask {@code x[i] * scales[r] + shifts[r] > 0} of row r, the affine rounded as
     * {@link #affineAct} rounds it; no masked gradient is written.
     */
    void rowGradMomentsReluOfAffine(float[] g, float[] x, int off, int rows, int len, float[] scales, float[] shifts,
                                    float[] means, double[] out, int o);

    /** {@link #maskedBatchNormInputGrad} with the mask {@code x[i] * scale + shift > 0}, rounded as in {@link #affineAct}. */
    void reluOfAffineBatchNormInputGrad(float[] dy, float[] x, float[] dx, int off, int len, float scale, float shift,
                                        float k1, float meanDy, float mean, float k2);

    final class Holder {
        private Holder() {}

        static final ElementwiseKernels INSTANCE = VectorizationProvider.load(ElementwiseKernels.class,
                "ai.bonsai.backend.cpu.simd.VectorElementwise", new ScalarElementwise());
    }
}
