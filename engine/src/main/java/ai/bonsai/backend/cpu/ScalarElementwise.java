package ai.bonsai.backend.cpu;

/** The plain-Java {@link ElementwiseKernels}: the reference for the SIMD version and the fallback. */
public final class ScalarElementwise implements ElementwiseKernels {

    @Override public void reluBackward(float[] g, float[] x, float[] out, int from, int to) {
        for (int i = from; i < to; i++) out[i] = x[i] > 0f ? g[i] : 0f;
    }

    @Override public void shiftedMoments(float[] a, int off, int rows, int len, int stride, float shift, double[] out, int o) {
        double s1 = 0, s2 = 0;
        for (int r = 0; r < rows; r++) {           // per-row subtotals: the summation order of the SIMD version
            int base = off + r * stride;
            double r1 = 0, r2 = 0;
            for (int i = base; i < base + len; i++) {
                double d = a[i] - shift;
                r1 += d;
                r2 += d * d;
            }
            s1 += r1;
            s2 += r2;
        }
        out[o] = s1;
        out[o + 1] = s2;
    }

    @Override public void gradMoments(float[] g, float[] x, int off, int rows, int len, int stride, float mean, double[] out, int o) {
        maskedGradMoments(g, null, null, x, off, rows, len, stride, mean, out, o);
    }

    @Override public void affine(float[] x, float[] y, int off, int len, float scale, float shift) {
        affineAct(x, null, false, y, off, len, scale, shift);
    }

    @Override public void batchNormInputGrad(float[] dy, float[] x, float[] dx, int off, int len, float k1, float meanDy, float mean, float k2) {
        maskedBatchNormInputGrad(dy, null, x, dx, off, len, k1, meanDy, mean, k2);
    }

    @Override public void affineAct(float[] x, float[] residual, boolean relu, float[] y, int off, int len, float scale, float shift) {
        for (int i = off; i < off + len; i++) {
            float v = x[i] * scale + shift;
            if (residual != null) v = residual[i] + v;
            y[i] = relu ? Math.max(v, 0f) : v;
        }
    }

    @Override public void maskedGradMoments(float[] g, float[] mask, float[] gOut, float[] x, int off, int rows, int len, int stride,
                                            float mean, double[] out, int o) {
        double s = 0, sp = 0;
        for (int r = 0; r < rows; r++) {
            int base = off + r * stride;
            double rs = 0, rp = 0;
            for (int i = base; i < base + len; i++) {
                float gm = mask == null || mask[i] > 0f ? g[i] : 0f;
                if (gOut != null) gOut[i] = gm;
                rs += gm;
                rp += (double) gm * (x[i] - mean);
            }
            s += rs;
            sp += rp;
        }
        out[o] = s;
        out[o + 1] = sp;
    }

    @Override public void maskedBatchNormInputGrad(float[] dy, float[] mask, float[] x, float[] dx, int off, int len, float k1,
                                                   float meanDy, float mean, float k2) {
        for (int i = off; i < off + len; i++) dx[i] = k1 * ((mask == null || mask[i] > 0f ? dy[i] : 0f) - meanDy - (x[i] - mean) * k2);
    }
}
