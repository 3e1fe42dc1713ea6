package ai.bonsai.backend.cpu;

import ai.bonsai.tensor.Buffer;
import ai.bonsai.tensor.DType;
import ai.bonsai.tensor.Generator;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The CPU backend's batch-norm kernels against double-precision definitions, on awkward shapes and on inputs whose
 * mean is large against their spread (where a one-read variance can lose precision to cancellation).
 */
class BatchNormKernelsTest {
    private final CpuBackend be = CpuBackend.get();

    private Buffer buf(float[] v) { return be.fromFloats(v); }

    @ParameterizedTest
    @CsvSource({"1,2,3,0", "3,2,13,0", "13,3,17,0", "2,1,207,0", "128,2,64,0", "3,2,13,100", "13,3,17,-300", "2,1,207,1000", "128,2,64,50"})
    void trainAndBackwardMatchDefinitions(int n, int c, int hw, float offset) {
        Generator g = new Generator(7L * n + c + hw);
        int len = n * c * hw;
        float[] x = new float[len], dy = new float[len], gamma = new float[c], beta = new float[c];
        for (int i = 0; i < len; i++) {
            int ch = (i / hw) % c;
            x[i] = offset + (ch + 1) * (float) g.nextGaussian();      // a different spread per channel
            dy[i] = (float) g.nextGaussian();
        }
        for (int ch = 0; ch < c; ch++) {
            gamma[ch] = 0.5f + ch;
            beta[ch] = 0.25f - ch;
        }
        float[] rm0 = new float[c], rv0 = new float[c];
        java.util.Arrays.fill(rv0, 1f);
        Buffer rm = buf(rm0), rv = buf(rv0), y = be.allocate(DType.FLOAT32, len), mean = be.allocate(DType.FLOAT32, c),
                inv = be.allocate(DType.FLOAT32, c), dx = be.allocate(DType.FLOAT32, len), dg = be.allocate(DType.FLOAT32, c),
                db = be.allocate(DType.FLOAT32, c);
        float eps = 1e-5f, momentum = 0.1f;
        be.batchNormTrain(buf(x), n, c, hw, buf(gamma), buf(beta), rm, rv, momentum, eps, y, mean, inv);
        be.batchNormBackward(buf(x), buf(dy), n, c, hw, buf(gamma), mean, inv, dx, dg, db);
        float[] ys = be.toFloats(y), ms = be.toFloats(mean), is = be.toFloats(inv), rms = be.toFloats(rm), rvs = be.toFloats(rv),
                dxs = be.toFloats(dx), dgs = be.toFloats(dg), dbs = be.toFloats(db);
        long m = (long) n * hw;
        for (int ch = 0; ch < c; ch++) {
            double s = 0;
            for (int i = 0; i < n; i++) for (int j = 0; j < hw; j++) s += x[(i * c + ch) * hw + j];
            double mu = s / m, ss = 0;
            for (int i = 0; i < n; i++) for (int j = 0; j < hw; j++) { double d = x[(i * c + ch) * hw + j] - mu; ss += d * d; }
            double var = ss / m, invStd = 1 / Math.sqrt(var + eps);
            // float inputs near |offset| carry about 6e-8 * |offset| of rounding each, so the mean can be no closer
            double meanTol = 1e-6 * (1 + Math.abs(offset));
            assertEquals(mu, ms[ch], meanTol, "mean of channel " + ch);
            assertEquals(invStd, is[ch], 1e-5 * invStd, "inverse std of channel " + ch);
            assertEquals(momentum * mu, rms[ch], meanTol, "running mean of channel " + ch);
            assertEquals((1 - momentum) + momentum * ss / (m - 1), rvs[ch], 1e-5 * (1 + ss / (m - 1)), "running var of channel " + ch);
            double sdy = 0, sdyx = 0;
            for (int i = 0; i < n; i++) for (int j = 0; j < hw; j++) {
                int p = (i * c + ch) * hw + j;
                assertEquals(gamma[ch] * (x[p] - mu) * invStd + beta[ch], ys[p], 1e-4 * (1 + gamma[ch]), "y at " + p);
                sdy += dy[p];
                sdyx += dy[p] * (x[p] - mu) * invStd;
            }
            assertEquals(sdy, dbs[ch], 1e-5 * m, "dBeta of channel " + ch);
            assertEquals(sdyx, dgs[ch], 1e-5 * m, "dGamma of channel " + ch);
            for (int i = 0; i < n; i++) for (int j = 0; j < hw; j++) {
                int p = (i * c + ch) * hw + j;
                double xhat = (x[p] - mu) * invStd;
                double ref = gamma[ch] * invStd / m * (m * dy[p] - sdy - xhat * sdyx);
                assertEquals(ref, dxs[p], 1e-4 * (1 + Math.abs(gamma[ch] * invStd)), "dx at " + p);
            }
        }
    }

    /**
     * With a ReLU and no residual, recomputing the mask from x gives the bits of reading it from the forward pass's
     * output, including where the affine is exactly zero and on shapes whose rows are not whole vectors.
     */
    @ParameterizedTest
    @CsvSource({"1,2,3", "3,2,13", "13,3,17", "2,1,207", "128,2,64", "4,3,1031"})
    void reluBackwardFromXEqualsReadingTheOutput(int n, int c, int hw) {
        Generator g = new Generator(11L * n + 3 * c + hw);
        int len = n * c * hw;
        float[] x = new float[len], dy = new float[len], gamma = new float[c], beta = new float[c];
        for (int i = 0; i < len; i++) {
            x[i] = (float) g.nextGaussian();
            dy[i] = (float) g.nextGaussian();
        }
        for (int ch = 0; ch < c; ch++) {
            gamma[ch] = ch % 2 == 0 ? 0.75f + ch : -0.5f - ch;       // negative scales flip the mask
            beta[ch] = 0.125f * ch - 0.1f;
        }
        Buffer y = be.allocate(DType.FLOAT32, len), mean = be.allocate(DType.FLOAT32, c), inv = be.allocate(DType.FLOAT32, c);
        Buffer rm = be.allocate(DType.FLOAT32, c), rv = buf(new float[c]);
        be.batchNormActTrain(buf(x), n, c, hw, buf(gamma), buf(beta), rm, rv, 0.1f, 1e-5f, null, true, y, mean, inv);
        // Put some inputs at the ReLU's kink, where the affine is zero or an ulp from it.
        float[] ms = be.toFloats(mean), is = be.toFloats(inv), xs = x.clone();
        for (int i = 0; i < len; i += 5) {
            int ch = (i / hw) % c;
            float scale = gamma[ch] * is[ch], shift = beta[ch] - ms[ch] * scale;
            xs[i] = -shift / scale;
        }
        // The scale and shift below are the forward pass's: they reproduce its output for x.
        assertArrayEquals(be.toFloats(y), reluOfAffine(x, n, c, hw, gamma, beta, ms, is), "forward output");
        float[] yv = reluOfAffine(xs, n, c, hw, gamma, beta, ms, is);   // the output the forward pass gives for xs
        Buffer[] want = {be.allocate(DType.FLOAT32, len), be.allocate(DType.FLOAT32, c), be.allocate(DType.FLOAT32, c)};
        Buffer[] got = {be.allocate(DType.FLOAT32, len), be.allocate(DType.FLOAT32, c), be.allocate(DType.FLOAT32, c)};
        be.batchNormActBackward(buf(xs), buf(dy), buf(yv), n, c, hw, buf(gamma), mean, inv, null, want[0], want[1], want[2]);
        be.batchNormReluBackward(buf(xs), buf(dy), buf(yv), n, c, hw, buf(gamma), buf(beta), mean, inv, got[0], got[1], got[2]);
        String[] names = {"dx", "dGamma", "dBeta"};
        for (int k = 0; k < 3; k++) {
            assertArrayEquals(be.toFloats(want[k]), be.toFloats(got[k]), names[k]);
        }
    }

    /** relu(x * scale + shift) per (image, channel) row, as the forward pass computes it from its statistics. */
    private static float[] reluOfAffine(float[] x, int n, int c, int hw, float[] gamma, float[] beta, float[] ms, float[] is) {
        float[] y = new float[x.length];
        for (int row = 0; row < n * c; row++) {
            int ch = row % c;
            float scale = gamma[ch] * is[ch], shift = beta[ch] - ms[ch] * scale;
            ElementwiseKernels.get().affineAct(x, null, true, y, row * hw, hw, scale, shift);
        }
        return y;
    }
}
