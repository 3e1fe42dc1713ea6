package ai.bonsai.backend.cpu;

import ai.bonsai.backend.cpu.simd.VectorElementwise;
import ai.bonsai.tensor.Generator;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The SIMD element-wise kernels against the scalar ones, on awkward lengths and offsets. */
class ElementwiseKernelsTest {
    final ElementwiseKernels scalar = new ScalarElementwise(), simd = new VectorElementwise();

    static float[] random(Generator g, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) g.nextGaussian() + 0.5f;
        return a;
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 3, 13, 17, 207, 1031, 5000})
    void simdMatchesScalar(int n) {
        Generator g = new Generator(n);
        float[] x = random(g, n + 5), y = random(g, n + 5);
        int off = 3, len = n;
        float[] a = new float[n + 5], b = new float[n + 5];
        scalar.reluBackward(x, y, a, off, off + len);
        simd.reluBackward(x, y, b, off, off + len);
        assertArrayEquals(a, b);
        double tol = 1e-5 * n;
        double[] ms = new double[3], mv = new double[3];
        scalar.rowMoments(x, off, 1, len, new float[] {0.3f}, ms, 1);
        simd.rowMoments(x, off, 1, len, new float[] {0.3f}, mv, 1);
        assertEquals(0, ms[0]);
        assertEquals(ms[1], mv[1], tol);
        assertEquals(ms[2], mv[2], tol);
        scalar.rowGradMoments(x, null, null, y, off, 1, len, new float[] {-0.2f}, ms, 0);
        simd.rowGradMoments(x, null, null, y, off, 1, len, new float[] {-0.2f}, mv, 0);
        assertEquals(ms[0], mv[0], tol);
        assertEquals(ms[1], mv[1], tol);
        scalar.affine(x, a, off, len, 1.5f, -0.25f);
        simd.affine(x, b, off, len, 1.5f, -0.25f);
        assertArrayEquals(a, b, 1e-6f);
        scalar.batchNormInputGrad(x, y, a, off, len, 0.7f, 0.1f, 0.2f, 0.3f);
        simd.batchNormInputGrad(x, y, b, off, len, 0.7f, 0.1f, 0.2f, 0.3f);
        assertArrayEquals(a, b, 1e-5f);
    }

    /**
     * The kernels fused with batch norm's epilogue give, in each implementation, exactly the bits of that
     * implementation's separate kernels run one after the other (affine, add, ReLU; ReLU's backward, then the
     * reductions or the input gradient), and the two implementations agree with each other.
     */
    @ParameterizedTest
    @ValueSource(ints = {1, 3, 13, 17, 207, 1031, 5000})
    void fusedBatchNormEpiloguesEqualTheSeparateKernels(int n) {
        Generator g = new Generator(31L * n);
        int off = 3, len = n, size = n + 5;
        float[] x = random(g, size), r = random(g, size), dy = random(g, size), out = random(g, size);
        for (int i = 0; i < size; i += 7) out[i] = 0f;                  // ReLU outputs: zeros and positives
        for (int i = 0; i < size; i++) out[i] = Math.max(out[i] - 0.5f, 0f);
        float[][] fusedY = new float[2][], fusedG = new float[2][];
        int k = 0;
        for (ElementwiseKernels ew : new ElementwiseKernels[] {scalar, simd}) {
            for (float[] res : new float[][] {null, r}) {
                for (boolean relu : new boolean[] {false, true}) {
                    float[] want = new float[size], got = new float[size];
                    ew.affine(x, want, off, len, 1.5f, -0.25f);
                    for (int i = off; i < off + len; i++) {
                        if (res != null) want[i] = res[i] + want[i];
                        if (relu) want[i] = Math.max(want[i], 0f);
                    }
                    ew.affineAct(x, res, relu, got, off, len, 1.5f, -0.25f);
                    assertArrayEquals(want, got, "affineAct residual " + (res != null) + " relu " + relu);
                    if (res != null && relu) fusedY[k] = got;
                }
            }
            float[] masked = new float[size], gOut = new float[size];
            ew.reluBackward(dy, out, masked, off, off + len);
            int rows = Math.max(1, len / 5), rowLen = len / rows;
            float[] means = new float[rows];
            for (int i = 0; i < rows; i++) means[i] = 0.2f - 0.01f * i;
            double[] want = new double[2 * rows], got = new double[2 * rows], got2 = new double[2 * rows];
            ew.rowGradMoments(masked, null, null, x, off, rows, rowLen, means, want, 0);
            ew.rowGradMoments(dy, out, null, x, off, rows, rowLen, means, got, 0);
            ew.rowGradMoments(dy, out, gOut, x, off, rows, rowLen, means, got2, 0);
            assertArrayEquals(want, got, "rowGradMoments with a mask");
            assertArrayEquals(want, got2, "rowGradMoments with a mask, writing the masked gradient");
            for (int i = off; i < off + rows * rowLen; i++) assertEquals(masked[i], gOut[i], "masked gradient at " + i);
            float[] dxWant = new float[size], dxGot = new float[size];
            ew.batchNormInputGrad(masked, x, dxWant, off, len, 0.7f, 0.1f, 0.2f, 0.3f);
            ew.maskedBatchNormInputGrad(dy, out, x, dxGot, off, len, 0.7f, 0.1f, 0.2f, 0.3f);
            assertArrayEquals(dxWant, dxGot, "maskedBatchNormInputGrad");
            fusedG[k++] = dxGot;
        }
        assertArrayEquals(fusedY[0], fusedY[1], 1e-5f, "affineAct, scalar against SIMD");
        assertArrayEquals(fusedG[0], fusedG[1], 1e-5f, "maskedBatchNormInputGrad, scalar against SIMD");
    }

    /**
     * The row reductions give each row the bits it gets when reduced alone. The SIMD kernels take short rows (at most
     * one folded piece) sixteen at a time and sum the lanes of four partial-sum vectors at once; alone, a row's lanes
     * are summed one vector at a time. Row counts around the chunk and the four-way fold, lengths with and without a
     * tail, of one piece and of several.
     */
    @ParameterizedTest
    @CsvSource({"1,16", "3,13", "4,64", "5,1", "16,64", "17,100", "33,256", "40,1024", "7,1031", "6,1040", "3,1666"})
    void rowReductionsGiveEachRowTheBitsOfItsOwnCall(int rows, int rowLen) {
        Generator g = new Generator(29L * rows + rowLen);
        int off = 5, size = off + rows * rowLen + 3;
        float[] x = random(g, size), dy = random(g, size), mask = random(g, size);
        float[] shifts = new float[rows], scales = new float[rows], means = new float[rows];
        for (int r = 0; r < rows; r++) {
            shifts[r] = 0.3f * r - 1f;
            scales[r] = r % 3 == 0 ? -0.5f : 1.25f;
            means[r] = 0.05f * r;
        }
        for (ElementwiseKernels ew : new ElementwiseKernels[] {scalar, simd}) {
            String name = ew.getClass().getSimpleName();
            double[][] all = new double[4][2 * rows + 1], alone = new double[4][2 * rows + 1];
            float[] gOutAll = new float[size], gOutAlone = new float[size];
            ew.rowMoments(x, off, rows, rowLen, shifts, all[0], 1);
            ew.rowMoments(x, off, rows, rowLen, null, all[1], 1);
            ew.rowGradMoments(dy, mask, gOutAll, x, off, rows, rowLen, means, all[2], 1);
            ew.rowGradMomentsReluOfAffine(dy, x, off, rows, rowLen, scales, shifts, means, all[3], 1);
            for (int r = 0; r < rows; r++) {
                int o = off + r * rowLen;
                float[] sh = {shifts[r]}, sc = {scales[r]}, mn = {means[r]};
                ew.rowMoments(x, o, 1, rowLen, sh, alone[0], 1 + 2 * r);
                ew.rowMoments(x, o, 1, rowLen, null, alone[1], 1 + 2 * r);
                ew.rowGradMoments(dy, mask, gOutAlone, x, o, 1, rowLen, mn, alone[2], 1 + 2 * r);
                ew.rowGradMomentsReluOfAffine(dy, x, o, 1, rowLen, sc, sh, mn, alone[3], 1 + 2 * r);
            }
            String[] what = {"rowMoments", "rowMoments without shifts", "rowGradMoments with a mask", "rowGradMomentsReluOfAffine"};
            for (int k = 0; k < 4; k++) assertArrayEquals(alone[k], all[k], name + " " + what[k]);
            assertArrayEquals(gOutAlone, gOutAll, name + " rowGradMoments' masked gradient");
            for (int k = 0; k < 4; k++) assertTrue(java.util.Arrays.stream(all[k]).anyMatch(v -> v != 0), what[k] + " not all zero");
        }
    }

    /**
     * ReLU's mask recomputed from x gives, in each implementation, the bits of that implementation's kernels reading
     * the output of its own affineAct as the mask: rows long enough to span several SIMD blocks, rows shorter than a
     * vector, negative scales, and inputs where the affine is exactly zero.
     */
    @ParameterizedTest
    @CsvSource({"1,1", "3,5", "2,13", "3,17", "4,64", "3,207", "2,1031", "3,1666"})
    void reluOfAffineEqualsTheOutputAsMask(int rows, int rowLen) {
        Generator g = new Generator(17L * rows + rowLen);
        int off = 3, len = rows * rowLen, size = off + len + 2;
        float[] x = random(g, size), dy = random(g, size), scales = new float[rows], shifts = new float[rows], means = new float[rows];
        for (int r = 0; r < rows; r++) {
            scales[r] = r % 2 == 0 ? 0.5f + r : -0.75f;
            shifts[r] = -0.25f - 0.125f * r;
            means[r] = 0.1f * r;
            for (int i = off + r * rowLen; i < off + (r + 1) * rowLen; i += 4) x[i] = -shifts[r] / scales[r];  // affine 0 (or 1 ulp off)
        }
        for (ElementwiseKernels ew : new ElementwiseKernels[] {scalar, simd}) {
            String name = ew.getClass().getSimpleName();
            float[] y = new float[size];
            for (int r = 0; r < rows; r++) ew.affineAct(x, null, true, y, off + r * rowLen, rowLen, scales[r], shifts[r]);
            double[] want = new double[2 * rows + 1], got = new double[2 * rows + 1];
            ew.rowGradMoments(dy, y, null, x, off, rows, rowLen, means, want, 1);
            ew.rowGradMomentsReluOfAffine(dy, x, off, rows, rowLen, scales, shifts, means, got, 1);
            assertArrayEquals(want, got, name + " rowGradMomentsReluOfAffine");
            float[] dxWant = new float[size], dxGot = new float[size];
            for (int r = 0; r < rows; r++) {
                int o = off + r * rowLen;
                ew.maskedBatchNormInputGrad(dy, y, x, dxWant, o, rowLen, 0.7f, 0.1f, means[r], 0.3f);
                ew.reluOfAffineBatchNormInputGrad(dy, x, dxGot, o, rowLen, scales[r], shifts[r], 0.7f, 0.1f, means[r], 0.3f);
            }
            assertArrayEquals(dxWant, dxGot, name + " reluOfAffineBatchNormInputGrad");
            int masked = 0;
            for (int i = off; i < off + len; i++) if (y[i] <= 0) masked++;
            if (len >= 16) assertTrue(masked > 0 && masked < len, "the mask has both values");
        }
    }

    /**
     * The reductions against double-precision loops, both implementations, called as batch norm calls them: once per
     * image of an (n, c, hw) tensor, one row per channel with the channel's own shift or mean, and a channel's rows
     * added in image order. Awkward lengths, and rows long enough that the SIMD version folds its partial sums
     * mid-row.
     */
    @ParameterizedTest
    @CsvSource({"1,1,1", "3,2,13", "13,3,17", "207,2,3", "5,4,207", "40,3,64", "3,1,5000"})
    void rowMomentsMatchDefinitions(int images, int channels, int len) {
        Generator g = new Generator(100L * images + len);
        int off = 2, stride = channels * len;
        float[] x = random(g, off + images * stride), y = random(g, off + images * stride);
        float[] shifts = new float[channels], means = new float[channels];
        for (int ch = 0; ch < channels; ch++) {
            shifts[ch] = 0.4f + 0.1f * ch;
            means[ch] = -0.1f - 0.05f * ch;
        }
        double tol = 1e-5 * images * len;
        for (ElementwiseKernels k : new ElementwiseKernels[] {scalar, simd}) {
            double[] mom = new double[2 * images * channels], grad = new double[2 * images * channels];
            for (int i = 0; i < images; i++) {
                k.rowMoments(x, off + i * stride, channels, len, shifts, mom, 2 * i * channels);
                k.rowGradMoments(y, null, null, x, off + i * stride, channels, len, means, grad, 2 * i * channels);
            }
            for (int ch = 0; ch < channels; ch++) {
                double s1 = 0, s2 = 0, sg = 0, sgx = 0, got1 = 0, got2 = 0, gotG = 0, gotGx = 0;
                for (int i = 0; i < images; i++) {
                    for (int e = off + i * stride + ch * len, q = e; q < e + len; q++) {
                        double d = (double) x[q] - shifts[ch];
                        s1 += d;
                        s2 += d * d;
                        sg += y[q];
                        sgx += (double) y[q] * ((double) x[q] - means[ch]);
                    }
                    int r = 2 * (i * channels + ch);
                    got1 += mom[r];
                    got2 += mom[r + 1];
                    gotG += grad[r];
                    gotGx += grad[r + 1];
                }
                assertEquals(s1, got1, tol, "sum, channel " + ch);
                assertEquals(s2, got2, tol, "sum of squares, channel " + ch);
                assertEquals(sg, gotG, tol, "gradient sum, channel " + ch);
                assertEquals(sgx, gotGx, tol, "gradient moment, channel " + ch);
            }
            double[] none = new double[2 * channels];
            k.rowMoments(x, off, channels, len, null, none, 0);
            double plain = 0;
            for (int q = off; q < off + len; q++) plain += x[q];
            assertEquals(plain, none[0], 1e-5 * len, "no shifts: shift 0");
        }
    }

    /** ReLU's backward is a select: bitwise the scalar rule on signed zeros, infinities, NaNs and subnormals. */
    @ParameterizedTest
    @ValueSource(ints = {1, 3, 13, 17, 207})
    void reluBackwardSpecialValues(int n) {
        float[] specials = {0f, -0f, Float.NaN, -Float.NaN, Float.intBitsToFloat(0xffc00001), Float.POSITIVE_INFINITY,
                Float.NEGATIVE_INFINITY, Float.MIN_VALUE, -Float.MIN_VALUE, Float.MAX_VALUE, -Float.MAX_VALUE, 1f, -1f};
        Generator gen = new Generator(n);
        float[] x = new float[n], g = random(gen, n);
        for (int i = 0; i < n; i++) x[i] = specials[(i * 7 + n) % specials.length];
        g[0] = Float.NaN;
        float[] a = new float[n], b = new float[n];
        scalar.reluBackward(g, x, a, 0, n);
        simd.reluBackward(g, x, b, 0, n);
        for (int i = 0; i < n; i++) {
            assertEquals(Float.floatToRawIntBits(x[i] > 0f ? g[i] : 0f), Float.floatToRawIntBits(a[i]), "scalar at " + i);
            assertEquals(Float.floatToRawIntBits(a[i]), Float.floatToRawIntBits(b[i]), "simd at " + i + " for x = " + x[i]);
        }
    }
}
