package ai.bonsai.backend.cpu;

/**
 * Memory-bound inner loops that the JIT does not vectorise by itself: a select (ReLU's backward pass) and
 * float sums (batch norm's statistics, where strict float ordering stops auto-vectorisation). The SIMD
 * version is {@code simd.VectorElementwise}; {@link #get()} picks it through {@link VectorizationProvider}.
 *
 * <p>Sums are accumulated in a fixed order for a given implementation, so results are deterministic; the
 * scalar and SIMD versions may differ in the last bits.
 */
public interface ElementwiseKernels {

    static ElementwiseKernels get() { return Holder.INSTANCE; }

    /** out[i] = x[i] > 0 ? g[i] : 0 for i in [from, to). */
    void reluBackward(float[] g, float[] x, float[] out, int from, int to);

    /** Sum of a[off .. off+len). */
    double sum(float[] a, int off, int len);

    /** Sum of (a[i] - mean)^2 over a[off .. off+len). */
    double sumSquaredDeviation(float[] a, int off, int len, float mean);

    /** Sum of g[i] * (x[i] - mean) over [off, off+len). */
    double sumProductCentered(float[] g, float[] x, int off, int len, float mean);

    /** y[i] = x[i] * scale + shift over [off, off+len). */
    void affine(float[] x, float[] y, int off, int len, float scale, float shift);

    /** dx[i] = k1 * (dy[i] - meanDy - (x[i] - mean) * k2) over [off, off+len): batch norm's input gradient. */
    void batchNormInputGrad(float[] dy, float[] x, float[] dx, int off, int len, float k1, float meanDy, float mean, float k2);

    final class Holder {
        private Holder() {}

        static final ElementwiseKernels INSTANCE = VectorizationProvider.load(ElementwiseKernels.class,
                "ai.bonsai.backend.cpu.simd.VectorElementwise", new ScalarElementwise());
    }
}
