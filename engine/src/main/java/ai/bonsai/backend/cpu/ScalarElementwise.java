package ai.bonsai.backend.cpu;

/** The plain-Java {@link ElementwiseKernels}: the reference for the SIMD version and the fallback. */
public final class ScalarElementwise implements ElementwiseKernels {

    @Override public void reluBackward(float[] g, float[] x, float[] out, int from, int to) {
        for (int i = from; i < to; i++) out[i] = x[i] > 0f ? g[i] : 0f;
    }

    @Override public void rowMoments(float[] a, int off, int rows, int len, float[] shifts, double[] out, int o) {
        for (int r = 0; r < rows; r++) {
            int base = off + r * len;
            float shift = shifts == null ? 0f : shifts[r];
            double r1 = 0, r2 = 0;
            for (int i = base; i < base + len; i++) {
                double d = a[i] - shift;
                r1 += d;
                r2 += d * d;
            }
            out[o + 2 * r] = r1;
            out[o + 2 * r + 1] = r2;
        }
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

    @Override public void rowGradMoments(float[] g, float[] mask, float[] gOut, float[] x, int off, int rows, int len,
                                         float[] means, double[] out, int o) {
        for (int r = 0; r < rows; r++) {
            int base = off + r * len;
            float mean = means[r];
            double rs = 0, rp = 0;
            for (int i = base; i < base + len; i++) {
                float gm = mask == null || mask[i] > 0f ? g[i] : 0f;
                if (gOut != null) gOut[i] = gm;
                rs += gm;
                rp += (double) gm * (x[i] - mean);
            }
            out[o + 2 * r] = rs;
            out[o + 2 * r + 1] = rp;
        }
    }

    @Override public void maskedBatchNormInputGrad(float[] dy, float[] mask, float[] x, float[] dx, int off, int len, float k1,
                                                   float meanDy, float mean, float k2) {
        for (int i = off; i < off + len; i++) dx[i] = k1 * ((mask == null || mask[i] > 0f ? dy[i] : 0f) - meanDy - (x[i] - mean) * k2);
    }

    @Override public void rowGradMomentsReluOfAffine(float[] g, float[] x, int off, int rows, int len, float[] scales,
                                                     float[] shifts, float[] means, double[] out, int o) {
        for (int r = 0; r < rows; r++) {
            int base = off + r * len;
            float mean = means[r], scale = scales[r], shift = shifts[r];
            double rs = 0, rp = 0;
            for (int i = base; i < base + len; i++) {
                float gm = x[i] * scale + shift > 0f ? g[i] : 0f;
                rs += gm;
                rp += (double) gm * (x[i] - mean);
            }
            out[o + 2 * r] = rs;
            out[o + 2 * r + 1] = rp;
        }
    }

    @Override public void reluOfAffineBatchNormInputGrad(float[] dy, float[] x, float[] dx, int off, int len, float scale,
                                                         float shift, float k1, float meanDy, float mean, float k2) {
        for (int i = off; i < off + len; i++) dx[i] = k1 * ((x[i] * scale + shift > 0f ? dy[i] : 0f) - meanDy - (x[i] - mean) * k2);
    }
}
