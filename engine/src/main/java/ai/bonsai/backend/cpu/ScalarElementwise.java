package ai.bonsai.backend.cpu;

/** The plain-Java {@link ElementwiseKernels}: the reference for the SIMD version and the fallback. */
public final class ScalarElementwise implements ElementwiseKernels {

    @Override public void reluBackward(float[] g, float[] x, float[] out, int from, int to) {
        for (int i = from; i < to; i++) out[i] = x[i] > 0f ? g[i] : 0f;
    }

    @Override public double sum(float[] a, int off, int len) {
        double s = 0;
        for (int i = off; i < off + len; i++) s += a[i];
        return s;
    }

    @Override public double sumSquaredDeviation(float[] a, int off, int len, float mean) {
        double s = 0;
        for (int i = off; i < off + len; i++) {
            double d = a[i] - mean;
            s += d * d;
        }
        return s;
    }

    @Override public double sumProductCentered(float[] g, float[] x, int off, int len, float mean) {
        double s = 0;
        for (int i = off; i < off + len; i++) s += (double) g[i] * (x[i] - mean);
        return s;
    }

    @Override public void affine(float[] x, float[] y, int off, int len, float scale, float shift) {
        for (int i = off; i < off + len; i++) y[i] = x[i] * scale + shift;
    }

    @Override public void batchNormInputGrad(float[] dy, float[] x, float[] dx, int off, int len, float k1, float meanDy, float mean, float k2) {
        for (int i = off; i < off + len; i++) dx[i] = k1 * (dy[i] - meanDy - (x[i] - mean) * k2);
    }
}
