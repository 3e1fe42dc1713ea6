package ai.bonsai.backend.cpu;

import ai.bonsai.backend.ConvGeometry;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * {@link Conv2dKernels} against naive double-precision loops written here, on seeded random inputs over
 * awkward geometries (sizes 1, 13, 207; strides 1-3; padding 0-2; groups 1, 2, 4; 1x1, 3x3, 5x3 and larger
 * kernels); the SIMD and scalar kernels against each other; and 1 vs N threads bit for bit.
 */
class Conv2dKernelsTest {
    /** n, c, h, w, k, r, s, strideH, strideW, padH, padW, groups. */
    private static final int[][] GEOMETRIES = {
        {2, 3, 13, 13, 5, 3, 3, 1, 1, 1, 1, 1},
        {3, 4, 7, 9, 6, 3, 3, 2, 2, 1, 1, 2},
        {1, 8, 13, 11, 8, 5, 3, 1, 2, 2, 1, 4},
        {2, 5, 1, 1, 3, 1, 1, 1, 1, 0, 0, 1},
        {2, 16, 8, 8, 32, 1, 1, 2, 2, 0, 0, 1},
        {2, 4, 5, 5, 4, 5, 5, 1, 1, 2, 2, 1},
        {1, 2, 1, 3, 3, 1, 5, 1, 1, 0, 2, 1},
        {2, 6, 9, 10, 4, 3, 3, 2, 1, 0, 2, 2},
        {4, 3, 15, 13, 7, 2, 2, 3, 3, 1, 0, 1},
        {1, 1, 207, 3, 2, 3, 1, 1, 1, 1, 0, 1},
        {2, 3, 6, 6, 13, 1, 1, 1, 1, 1, 1, 1},
        {2, 4, 9, 9, 4, 3, 3, 1, 1, 1, 1, 4},
        {20, 8, 6, 6, 8, 3, 3, 1, 1, 1, 1, 1},
        // More than 16 units of one image each: backwardWeight adds several units into each partial.
        {17, 16, 46, 46, 32, 1, 1, 1, 1, 0, 0, 1},
        {17, 16, 46, 46, 4, 3, 3, 1, 1, 1, 1, 1},
        {3, 16, 32, 32, 16, 3, 3, 1, 1, 1, 1, 1},
        {2, 8, 32, 32, 16, 3, 3, 1, 1, 1, 1, 2},
        {2, 16, 32, 32, 32, 3, 3, 2, 2, 1, 1, 1},
        // Winograd F(4, 3) along rows (stride 1, r = 3, one group): output heights that are not a multiple of 4,
        // padding 0 and 2, kernel widths 1, 3 and 5, a single full tile row, and channel counts past one tile.
        {2, 5, 11, 7, 6, 3, 3, 1, 1, 1, 1, 1},
        {1, 3, 6, 9, 2, 3, 1, 1, 1, 0, 0, 1},
        {3, 7, 13, 10, 9, 3, 5, 1, 1, 2, 2, 1},
        {2, 13, 9, 14, 17, 3, 3, 1, 1, 2, 1, 1},
        {1, 33, 8, 8, 40, 3, 3, 1, 1, 1, 1, 1},
        {5, 1, 4, 4, 1, 3, 3, 1, 1, 1, 1, 1},
        // Winograd forward with a direct weight gradient (16 filters: below the SIMD gradient tile), and 4 filters.
        {2, 9, 10, 7, 16, 3, 3, 1, 1, 1, 1, 1},
        {3, 5, 7, 9, 4, 3, 1, 1, 1, 1, 0, 1},
        // Column stride 2 with even and odd padding and odd widths (how the stride phases are staged).
        {2, 3, 9, 12, 5, 3, 3, 2, 2, 0, 0, 1},
        {3, 2, 8, 13, 4, 5, 5, 2, 2, 2, 2, 1},
        {2, 5, 7, 11, 3, 3, 4, 1, 2, 1, 3, 1},
        // Column stride 2 with one column phase (kernel width 1): odd widths, padding 0 and 1 (staged by the SIMD split).
        {3, 4, 7, 9, 5, 1, 1, 2, 2, 1, 1, 1},
        {2, 3, 6, 11, 4, 3, 1, 2, 2, 1, 0, 1},
        {2, 5, 5, 33, 3, 1, 1, 1, 2, 0, 0, 1},
        // A ResNet shortcut (1x1, stride 2, no padding): staged rows as wide as y's, copied into y an image at a time.
        {3, 6, 8, 8, 10, 1, 1, 2, 2, 0, 0, 1},
        {2, 3, 9, 7, 4, 1, 1, 2, 2, 0, 0, 1},
        // Winograd with output rows of whole vectors (written into y in place): a partial last tile row, padding 0.
        {2, 5, 13, 16, 7, 3, 3, 1, 1, 1, 1, 1},
        {3, 4, 10, 18, 9, 3, 3, 1, 1, 0, 0, 1},
        // 32x32 planes (4 KB apart) of more filters than one transposed gradient tile, with a partial last tile.
        {2, 4, 32, 32, 36, 3, 3, 1, 1, 1, 1, 1},
        // Stride 2 on rows of one vector of pairs (16 or 17 columns with 16 lanes, 8 with 8), split by whole-vector
        // stores that spill zeros past each staged row: both column phases (3x3, padding 1 and 0, two groups) and
        // one (1x1, padding 0 and 1).
        {2, 5, 16, 16, 9, 3, 3, 2, 2, 1, 1, 1},
        {3, 3, 11, 17, 4, 3, 3, 2, 2, 1, 1, 1},
        {2, 4, 9, 16, 6, 3, 3, 2, 2, 0, 0, 2},
        {2, 4, 8, 8, 6, 3, 3, 2, 2, 1, 1, 1},
        {2, 6, 16, 16, 10, 1, 1, 2, 2, 0, 0, 1},
        {2, 3, 7, 17, 5, 1, 1, 2, 2, 1, 1, 1},
    };

    private static ConvGeometry geometry(int[] a) {
        return new ConvGeometry(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11]);
    }

    private static float[] random(SplittableRandom rnd, int len) {
        float[] v = new float[len];
        for (int i = 0; i < len; i++) v[i] = (float) (rnd.nextDouble() * 2 - 1);
        return v;
    }

    /** Calls {@code f(n, k, i, j, c, r, s, xIndex, wIndex, yIndex)} for every in-bounds tap: the one loop all three references share. */
    private interface Tap {
        void at(int xIdx, int wIdx, int yIdx);
    }

    private static void forEachTap(ConvGeometry g, Tap f) {
        int oh = g.outH(), ow = g.outW(), cg = g.cg(), kg = g.kg();
        for (int n = 0; n < g.n(); n++)
            for (int k = 0; k < g.k(); k++)
                for (int i = 0; i < oh; i++)
                    for (int j = 0; j < ow; j++)
                        for (int c = 0; c < cg; c++)
                            for (int r = 0; r < g.r(); r++)
                                for (int s = 0; s < g.s(); s++) {
                                    int hi = i * g.strideH() - g.padH() + r, wi = j * g.strideW() - g.padW() + s;
                                    if (hi < 0 || hi >= g.h() || wi < 0 || wi >= g.w()) continue;
                                    int ci = (k / kg) * cg + c;
                                    f.at(((n * g.c() + ci) * g.h() + hi) * g.w() + wi,
                                         ((k * cg + c) * g.r() + r) * g.s() + s,
                                         ((n * g.k() + k) * oh + i) * ow + j);
                                }
    }

    /** Double-precision result plus the sum of |terms| per output, which scales the tolerance. */
    private record Ref(double[] value, double[] mass) {}

    private static Ref refForward(ConvGeometry g, float[] x, float[] w, float[] bias) {
        int len = g.n() * g.k() * g.outH() * g.outW();
        double[] v = new double[len], m = new double[len];
        forEachTap(g, (xi, wi, yi) -> { v[yi] += (double) x[xi] * w[wi]; m[yi] += Math.abs((double) x[xi] * w[wi]); });
        if (bias != null) {
            int hw = g.outH() * g.outW();
            for (int i = 0; i < len; i++) v[i] += bias[(i / hw) % g.k()];
        }
        return new Ref(v, m);
    }

    private static Ref refBackwardData(ConvGeometry g, float[] dy, float[] w) {
        int len = g.n() * g.c() * g.h() * g.w();
        double[] v = new double[len], m = new double[len];
        forEachTap(g, (xi, wi, yi) -> { v[xi] += (double) dy[yi] * w[wi]; m[xi] += Math.abs((double) dy[yi] * w[wi]); });
        return new Ref(v, m);
    }

    private static Ref refBackwardWeight(ConvGeometry g, float[] x, float[] dy) {
        int len = g.k() * g.cg() * g.r() * g.s();
        double[] v = new double[len], m = new double[len];
        forEachTap(g, (xi, wi, yi) -> { v[wi] += (double) dy[yi] * x[xi]; m[wi] += Math.abs((double) dy[yi] * x[xi]); });
        return new Ref(v, m);
    }

    private static void assertClose(String what, Ref ref, float[] got) {
        for (int i = 0; i < ref.value().length; i++) {
            double r = ref.value()[i];
            // atol scales with the magnitude of the summed terms (float rounding in any order), rtol with |ref|.
            double tol = 1e-5 + 2e-6 * ref.mass()[i] + 1e-5 * Math.abs(r);
            if (!(Math.abs(got[i] - r) <= tol)) fail(what + " element " + i + ": got " + got[i] + ", expected " + r);
        }
    }

    private static float[] poisoned(int len) {
        float[] a = new float[len];
        Arrays.fill(a, Float.NaN);
        return a;
    }

    /** forward, backwardData, backwardWeight outputs of one geometry through {@code kern}, checked against the reference. */
    private static float[][] runAll(ConvMicroKernels kern, ConvGeometry g, long seed, boolean withBias) {
        return runAll(kern, g, seed, withBias, true);
    }

    private static float[][] runAll(ConvMicroKernels kern, ConvGeometry g, long seed, boolean withBias, boolean check) {
        return runAll(kern, g, seed, withBias, check, ConvMethod.AUTO);
    }

    /**
     * With {@link ConvMethod#DIRECT}, the implicit-GEMM kernels; with {@link ConvMethod#WINOGRAD}, {@link Conv2dWinograd}
     * for each of the three passes it can compute (whatever the batch size), the direct kernel for the others.
     */
    private static float[][] runAll(ConvMicroKernels kern, ConvGeometry g, long seed, boolean withBias, boolean check,
                                    ConvMethod method) {
        SplittableRandom rnd = new SplittableRandom(seed);
        float[] x = random(rnd, g.n() * g.c() * g.h() * g.w());
        float[] w = random(rnd, g.k() * g.cg() * g.r() * g.s());
        float[] bias = withBias ? random(rnd, g.k()) : null;
        float[] dy = random(rnd, g.n() * g.k() * g.outH() * g.outW());
        // Outputs start as NaN: every kernel must overwrite all of its output.
        float[] y = poisoned(dy.length), dx = poisoned(x.length), dw = poisoned(w.length);
        if (method == ConvMethod.DIRECT) {
            Conv2dKernels.forwardDirect(kern, g, x, w, bias, y);
            Conv2dKernels.backwardDataDirect(kern, g, dy, w, dx, false);
            Conv2dKernels.backwardWeightDirect(kern, g, x, dy, dw);
        } else if (method == ConvMethod.WINOGRAD) {
            if (Conv2dWinograd.applies(g)) Conv2dWinograd.forward(kern, g, x, w, bias, y);
            else Conv2dKernels.forwardDirect(kern, g, x, w, bias, y);
            if (Conv2dWinograd.applies(g) && Conv2dWinograd.applies(Conv2dWinograd.transposed(g))) {
                Conv2dWinograd.backwardData(kern, g, dy, w, dx, false);
            } else {
                Conv2dKernels.backwardDataDirect(kern, g, dy, w, dx, false);
            }
            if (Conv2dWinograd.applies(g)) Conv2dWinograd.backwardWeight(kern, g, x, dy, dw);
            else Conv2dKernels.backwardWeightDirect(kern, g, x, dy, dw);
        } else {
            Conv2dKernels.forward(kern, g, x, w, bias, y);
            Conv2dKernels.backwardData(kern, g, dy, w, dx, false);
            Conv2dKernels.backwardWeight(kern, g, x, dy, dw);
        }
        if (!check) return new float[][] {y, dx, dw};
        assertClose("forward " + g, refForward(g, x, w, bias), y);
        assertClose("backwardData " + g, refBackwardData(g, dy, w), dx);
        assertClose("backwardWeight " + g, refBackwardWeight(g, x, dy), dw);
        return new float[][] {y, dx, dw};
    }

    @Test
    void allKernelsMatchNaiveReference() {
        for (int t = 0; t < GEOMETRIES.length; t++) {
            runAll(Conv2dKernels.kernels(), geometry(GEOMETRIES[t]), t, t % 2 == 0);
        }
    }

    @Test
    void bothMethodsMatchNaiveReferenceWhereWinogradApplies() {
        int winograd = 0, byChannels = 0;
        for (int t = 0; t < GEOMETRIES.length; t++) {
            ConvGeometry g = geometry(GEOMETRIES[t]);
            if (!Conv2dWinograd.applies(g)) continue;
            winograd++;
            if (g.k() >= Conv2dKernels.kernels().gradNr()) byChannels++;
            for (ConvMethod m : new ConvMethod[] {ConvMethod.DIRECT, ConvMethod.WINOGRAD}) {
                runAll(Conv2dKernels.kernels(), g, 300 + t, t % 2 == 1, true, m);
                runAll(new ScalarConvMicroKernels(), g, 400 + t, t % 2 == 0, true, m);
            }
        }
        // The list must keep exercising the Winograd path, both weight-gradient formulations included.
        assertTrue(winograd >= 8, "only " + winograd + " Winograd geometries");
        assertTrue(byChannels >= 1 && byChannels < winograd, byChannels + " of " + winograd + " use transposed gradient tiles");
    }

    @Test
    void winogradIsBitwiseIdenticalForAnyThreadCount() {
        int saved = Parallel.threads();
        try {
            for (int t : new int[] {15, 18, 19, 20, 22, 24}) {
                ConvGeometry g = geometry(GEOMETRIES[t]);
                assertTrue(Conv2dWinograd.applies(g), g.toString());
                Parallel.setThreads(1);
                float[][] one = runAll(Conv2dKernels.kernels(), g, 9, true, false, ConvMethod.WINOGRAD);
                Parallel.setThreads(3);
                float[][] many = runAll(Conv2dKernels.kernels(), g, 9, true, false, ConvMethod.WINOGRAD);
                for (int o = 0; o < 3; o++) assertArrayEquals(one[o], many[o], g + " output " + o);
            }
        } finally {
            Parallel.setThreads(saved);
        }
    }

    /** The Vector API kernels, or null where the JDK cannot load them. */
    private static ConvMicroKernels simdKernels() {
        return VectorizationProvider.load(ConvMicroKernels.class, "ai.bonsai.backend.cpu.simd.VectorConvMicroKernels", null);
    }

    /** The scalar kernels, and {@code simd} where it loaded. */
    private static ConvMicroKernels[] scalarAndSimd(ConvMicroKernels simd) {
        return simd == null ? new ConvMicroKernels[] {new ScalarConvMicroKernels()}
                : new ConvMicroKernels[] {new ScalarConvMicroKernels(), simd};
    }

    /**
     * The data gradient added into a gradient that is there gives the bits of the plain data gradient added
     * afterwards, on every geometry of the list and through every route (Winograd, the direct stride-1 kernel, paired
     * and strided stride-2 column phases, pixels that no tap reaches), in both kernels, and adds into every element.
     */
    @Test
    void backwardDataAddsIntoAGradientBitForBit() {
        ConvMicroKernels simd = simdKernels();
        int winograd = 0, uncovered = 0;
        for (ConvMicroKernels kern : scalarAndSimd(simd)) {
            for (int t = 0; t < GEOMETRIES.length; t++) {
                ConvGeometry g = geometry(GEOMETRIES[t]);
                SplittableRandom rnd = new SplittableRandom(500 + t);
                float[] w = random(rnd, g.k() * g.cg() * g.r() * g.s());
                float[] dy = random(rnd, g.n() * g.k() * g.outH() * g.outW());
                float[] pending = random(rnd, g.n() * g.c() * g.h() * g.w());
                boolean wino = Conv2dWinograd.applies(g) && Conv2dWinograd.applies(Conv2dWinograd.transposed(g));
                for (boolean useWinograd : wino ? new boolean[] {false, true} : new boolean[] {false}) {
                    float[] plain = poisoned(pending.length), added = pending.clone();
                    if (useWinograd) {
                        Conv2dWinograd.backwardData(kern, g, dy, w, plain, false);
                        Conv2dWinograd.backwardData(kern, g, dy, w, added, true);
                        winograd++;
                    } else {
                        Conv2dKernels.backwardDataDirect(kern, g, dy, w, plain, false);
                        Conv2dKernels.backwardDataDirect(kern, g, dy, w, added, true);
                    }
                    float[] expected = new float[pending.length];
                    for (int i = 0; i < expected.length; i++) expected[i] = pending[i] + plain[i];
                    assertArrayEquals(expected, added, g + (useWinograd ? " Winograd" : " direct") + " in " + kern.getClass().getSimpleName());
                    if (g.strideH() > g.r() || g.strideW() > g.s()) uncovered++;
                }
            }
        }
        assertTrue(winograd >= 8 && uncovered >= 1, winograd + " Winograd runs, " + uncovered + " with pixels no tap reaches");
    }

    /**
     * The Winograd output transform written straight into y's rows and through a scratch row give the same bits,
     * writing and adding (as the data gradient's forward pass does), in both kernels, on every Winograd geometry of
     * the list.
     */
    @Test
    void winogradOutputRoutesAreBitwiseIdentical() {
        ConvMicroKernels simd = simdKernels();
        int inPlaceByDefault = 0, runs = 0;
        for (ConvMicroKernels kern : scalarAndSimd(simd)) {
            for (int t = 0; t < GEOMETRIES.length; t++) {
                ConvGeometry g = geometry(GEOMETRIES[t]);
                if (!Conv2dWinograd.applies(g)) continue;
                SplittableRandom rnd = new SplittableRandom(900 + t);
                float[] x = random(rnd, g.n() * g.c() * g.h() * g.w()), w = random(rnd, g.k() * g.c() * 3 * g.s());
                float[] bias = random(rnd, g.k()), pending = random(rnd, g.n() * g.k() * g.outH() * g.outW());
                float[][] out = new float[2][], added = new float[2][];
                for (int route = 0; route < 2; route++) {
                    out[route] = poisoned(pending.length);
                    Conv2dWinograd.forward(kern, g, x, w, bias, out[route], false, route == 1);
                    added[route] = pending.clone();
                    Conv2dWinograd.forward(kern, g, x, w, bias, added[route], true, route == 1);
                }
                String what = g + " in " + kern.getClass().getSimpleName();
                assertArrayEquals(out[0], out[1], "writing, " + what);
                assertArrayEquals(added[0], added[1], "adding, " + what);
                runs++;
                if (kern == simd && Conv2dWinograd.writesOutputInPlace(kern, g)) inPlaceByDefault++;
            }
        }
        assertTrue(runs >= 8, runs + " runs");
        // The list keeps geometries whose default is the in-place route (rows of whole vectors).
        assertTrue(simd == null || inPlaceByDefault >= 3, inPlaceByDefault + " geometries write in place by default");
    }

    @Test
    void scalarKernelsMatchNaiveReference() {
        for (int t = 0; t < GEOMETRIES.length; t += 2) {
            runAll(new ScalarConvMicroKernels(), geometry(GEOMETRIES[t]), 100 + t, true);
        }
    }

    /**
     * Winograd's input transform straight from the image rows (tile rows overhanging the image read zeros instead of
     * a padded copy) gives the same V, bit for bit, as the transform of the zero-padded copy, in both kernels: every
     * Winograd geometry of the list, each forced down both routes, with a channel gather and a unit that starts past
     * the first image.
     */
    @Test
    void winogradTransformsTheSameFromImageRowsAsFromAPaddedCopy() {
        ConvMicroKernels simd = VectorizationProvider.load(ConvMicroKernels.class,
                "ai.bonsai.backend.cpu.simd.VectorConvMicroKernels", null);
        SplittableRandom rnd = new SplittableRandom(11);
        int checked = 0, inPlaceByDefault = 0;
        for (ConvMicroKernels k : simd == null ? new ConvMicroKernels[] {new ScalarConvMicroKernels()}
                : new ConvMicroKernels[] {new ScalarConvMicroKernels(), simd}) {
            for (int[] geo : GEOMETRIES) {
                ConvGeometry g = geometry(geo);
                if (!Conv2dWinograd.applies(g)) continue;
                int xChannels = g.c() + 2, n0 = 1, imgs = Math.max(1, g.n() - 1);
                int[] channels = new int[g.c()];
                for (int c = 0; c < g.c(); c++) channels[c] = (c * 3 + 1) % xChannels;
                float[] x = random(rnd, (n0 + imgs) * xChannels * g.h() * g.w());
                Conv2dWinograd.Layout lay = new Conv2dWinograd.Layout(g, imgs, k.nr());
                float[] staged = poisoned(Conv2dWinograd.ALPHA * lay.vPlane), inPlace = poisoned(staged.length);
                Conv2dWinograd.stageAndTransform(k, g, x, xChannels, channels, n0, lay, staged, false);
                Conv2dWinograd.stageAndTransform(k, g, x, xChannels, channels, n0, lay, inPlace, true);
                for (int a = 0; a < Conv2dWinograd.ALPHA; a++) {
                    for (int c = 0; c < g.c(); c++) {
                        int base = a * lay.vPlane + c * lay.vChannel;
                        for (int q = 0; q < lay.qRound + g.s(); q++) {
                            float want = staged[base + q], got = inPlace[base + q];
                            assertTrue(!Float.isNaN(want) && Float.floatToRawIntBits(want) == Float.floatToRawIntBits(got),
                                    k.getClass().getSimpleName() + " " + g + ": V[" + a + "][" + c + "][" + q + "] is "
                                            + got + " in place, " + want + " from the padded copy");
                        }
                    }
                }
                checked++;
                if (Conv2dWinograd.transformsRowsInPlace(k, g)) inPlaceByDefault++;
            }
        }
        assertTrue(checked >= 16, "only " + checked + " geometries checked");
        assertTrue(inPlaceByDefault >= 1 && inPlaceByDefault < checked,
                inPlaceByDefault + " of " + checked + " take the in-place route by default: both routes must run by default");
    }

    /** The stride-2 staging's row split, both implementations, against its definition: awkward lengths and offsets. */
    @Test
    void deinterleaveSplitsEvenAndOddColumns() {
        ConvMicroKernels simd = VectorizationProvider.load(ConvMicroKernels.class,
                "ai.bonsai.backend.cpu.simd.VectorConvMicroKernels", null);
        SplittableRandom r = new SplittableRandom(5);
        for (ConvMicroKernels k : simd == null ? new ConvMicroKernels[] {new ScalarConvMicroKernels()}
                : new ConvMicroKernels[] {new ScalarConvMicroKernels(), simd}) {
            for (int pairs : new int[] {0, 1, 3, 7, 8, 9, 16, 17, 33, 100}) {
                for (int xOff : new int[] {0, 1, 5}) {
                    float[] x = new float[xOff + 2 * pairs + 3];
                    for (int i = 0; i < x.length; i++) x[i] = (float) r.nextDouble(-1, 1);
                    float[] out = new float[2 * pairs + 9];
                    Arrays.fill(out, Float.NaN);
                    int eOff = 2, oOff = 3 + pairs;
                    k.deinterleave(x, xOff, pairs, out, eOff, out, oOff);
                    for (int m = 0; m < pairs; m++) {
                        if (out[eOff + m] != x[xOff + 2 * m] || out[oOff + m] != x[xOff + 2 * m + 1]) {
                            fail(k.getClass().getSimpleName() + ": pairs " + pairs + ", xOff " + xOff + ", m " + m);
                        }
                    }
                    assertTrue(Float.isNaN(out[0]) && Float.isNaN(out[1]) && Float.isNaN(out[eOff + pairs]) && Float.isNaN(out[oOff + pairs]),
                            "wrote outside its ranges: pairs " + pairs);
                }
            }
        }
    }

    /**
     * The spilling split: the same values as deinterleave, and past each row at most DEINTERLEAVE_SPILL floats
     * written, with zeros; nothing before a row. The SIMD kernels take their vector path at 8 pairs (16 lanes) or 4 (8).
     */
    @Test
    void deinterleaveSpillingWritesOnlyZerosPastItsRows() {
        ConvMicroKernels simd = VectorizationProvider.load(ConvMicroKernels.class,
                "ai.bonsai.backend.cpu.simd.VectorConvMicroKernels", null);
        int spill = ConvMicroKernels.DEINTERLEAVE_SPILL;
        SplittableRandom r = new SplittableRandom(6);
        int spilled = 0;
        for (ConvMicroKernels k : simd == null ? new ConvMicroKernels[] {new ScalarConvMicroKernels()}
                : new ConvMicroKernels[] {new ScalarConvMicroKernels(), simd}) {
            for (int pairs : new int[] {0, 1, 3, 4, 5, 7, 8, 9, 16, 17, 33}) {
                for (int xOff : new int[] {0, 3}) {
                    float[] x = new float[xOff + 2 * pairs];   // exactly the row: nothing past it may be read
                    for (int i = 0; i < x.length; i++) x[i] = (float) r.nextDouble(0.5, 1);
                    int eOff = 1, oOff = eOff + pairs + spill + 2;
                    float[] out = new float[oOff + pairs + spill + 2];
                    Arrays.fill(out, Float.NaN);
                    k.deinterleaveSpilling(x, xOff, pairs, out, eOff, out, oOff);
                    for (int m = 0; m < pairs; m++) {
                        assertEquals(x[xOff + 2 * m], out[eOff + m], k.getClass().getSimpleName() + ": pairs " + pairs + ", even " + m);
                        assertEquals(x[xOff + 2 * m + 1], out[oOff + m], k.getClass().getSimpleName() + ": pairs " + pairs + ", odd " + m);
                    }
                    for (int base : new int[] {eOff, oOff}) {
                        assertTrue(Float.isNaN(out[base - 1]), "wrote before a row: pairs " + pairs);
                        assertTrue(Float.isNaN(out[base + pairs + spill]), "wrote past the spill: pairs " + pairs);
                        for (int i = base + pairs; i < base + pairs + spill; i++) {
                            assertTrue(Float.isNaN(out[i]) || out[i] == 0f, "spilled a non-zero: pairs " + pairs + ", at " + (i - base));
                            if (out[i] == 0f) spilled++;
                        }
                    }
                }
            }
        }
        // The vector path ran (and spilled) whenever the SIMD kernels are in use.
        assertTrue(simd == null || spilled > 0, "the SIMD kernels never took their whole-vector path");
    }

    /** The stride-2 data gradient's row merge against its definition: awkward lengths and offsets. */
    @Test
    void interleaveMergesEvenAndOddColumns() {
        SplittableRandom r = new SplittableRandom(6);
        for (int pairs : new int[] {0, 1, 3, 7, 8, 9, 16, 17, 33, 100}) {
            for (int xOff : new int[] {0, 1, 5}) {
                float[] in = new float[2 * pairs + 9];
                for (int i = 0; i < in.length; i++) in[i] = (float) r.nextDouble(-1, 1);
                int eOff = 2, oOff = 3 + pairs;
                float[] x = new float[xOff + 2 * pairs + 3];
                Arrays.fill(x, Float.NaN);
                Conv2dKernels.interleave(in, eOff, in, oOff, pairs, x, xOff);
                for (int m = 0; m < pairs; m++) {
                    if (x[xOff + 2 * m] != in[eOff + m] || x[xOff + 2 * m + 1] != in[oOff + m]) {
                        fail("pairs " + pairs + ", xOff " + xOff + ", m " + m);
                    }
                }
                for (int i = 0; i < xOff; i++) assertTrue(Float.isNaN(x[i]), "wrote before its range: pairs " + pairs);
                assertTrue(Float.isNaN(x[xOff + 2 * pairs]), "wrote past its range: pairs " + pairs);
            }
        }
    }

    /** The weight gradients' q-major layout of dy against its definition: channel counts around the 8-row blocks. */
    @Test
    void transposeChannelsLaysOutEachPixelsChannels() {
        SplittableRandom r = new SplittableRandom(7);
        for (int gnr : new int[] {8, 32}) {
            for (int kn : new int[] {1, 7, 8, 9, 16, 17, 31, 32}) {
                if (kn > gnr) continue;
                for (int cols : new int[] {1, 5, 16, 33}) {
                    for (int plane : new int[] {cols, cols + 3, 1024}) {
                        int s = 3, d = 2;
                        float[] src = new float[s + kn * plane + 1];
                        for (int i = 0; i < src.length; i++) src[i] = (float) r.nextDouble(-1, 1);
                        float[] dst = new float[d + cols * gnr + 2];
                        Arrays.fill(dst, Float.NaN);
                        Conv2dKernels.transposeChannels(src, s, plane, kn, cols, dst, d, gnr);
                        for (int x = 0; x < cols; x++) {
                            for (int j = 0; j < gnr; j++) {
                                float want = j < kn ? src[s + j * plane + x] : 0f;
                                if (Float.compare(dst[d + x * gnr + j], want) != 0) {
                                    fail("gnr " + gnr + ", kn " + kn + ", cols " + cols + ", plane " + plane + ": pixel " + x
                                            + ", channel " + j + " is " + dst[d + x * gnr + j] + ", expected " + want);
                                }
                            }
                        }
                        assertTrue(Float.isNaN(dst[0]) && Float.isNaN(dst[1]) && Float.isNaN(dst[d + cols * gnr]),
                                "wrote outside its range: gnr " + gnr + ", kn " + kn + ", cols " + cols);
                    }
                }
            }
        }
    }

    @Test
    void simdAndScalarKernelsAgree() {
        ConvMicroKernels simd = VectorizationProvider.load(ConvMicroKernels.class,
                "ai.bonsai.backend.cpu.simd.VectorConvMicroKernels", null);
        assumeTrue(simd != null, "Vector API not enabled");
        for (int t : new int[] {1, 2, 12, 16, 17, 18, 20, 21, 24, 25}) {
            ConvGeometry g = geometry(GEOMETRIES[t]);
            float[][] a = runAll(simd, g, 7, true), b = runAll(new ScalarConvMicroKernels(), g, 7, true);
            for (int o = 0; o < 3; o++) {
                for (int i = 0; i < a[o].length; i++) {
                    assertTrue(Math.abs(a[o][i] - b[o][i]) <= 1e-3 + 1e-4 * Math.abs(b[o][i]),
                            g + " output " + o + " element " + i + ": " + a[o][i] + " vs " + b[o][i]);
                }
            }
        }
    }

    @Test
    void singleAndMultiThreadedAreBitwiseIdentical() {
        int saved = Parallel.threads();
        try {
            for (int t : new int[] {1, 2, 4, 11, 12, 13, 14, 16, 17, 18, 20, 21, 24, 25}) {
                ConvGeometry g = geometry(GEOMETRIES[t]);
                Parallel.setThreads(1);
                float[][] one = runAll(Conv2dKernels.kernels(), g, 5, true);
                for (int threads : new int[] {2, 3}) {
                    Parallel.setThreads(threads);
                    float[][] many = runAll(Conv2dKernels.kernels(), g, 5, true, false);
                    for (int o = 0; o < 3; o++) assertArrayEquals(one[o], many[o], g + " output " + o + ", " + threads + " threads");
                }
            }
        } finally {
            Parallel.setThreads(saved);
        }
    }

    @Test
    void rejectsArraysThatDoNotMatchTheGeometry() {
        ConvGeometry g = new ConvGeometry(2, 3, 4, 4, 5, 3, 3, 1, 1, 1, 1, 1);
        float[] x = new float[2 * 3 * 16], w = new float[5 * 3 * 9], y = new float[2 * 5 * 16];
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Conv2dKernels.forward(g, new float[10], w, null, y));
        assertTrue(e.getMessage().contains("conv2d forward: x must hold (2,3,4,4) = 96 floats but has 10"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Conv2dKernels.forward(g, x, w, new float[4], y));
        assertTrue(e.getMessage().contains("bias must hold (5)"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Conv2dKernels.backwardData(g, new float[3], w, x));
        assertTrue(e.getMessage().contains("conv2d backwardData: dy must hold (2,5,4,4)"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Conv2dKernels.backwardWeight(g, x, y, new float[1]));
        assertTrue(e.getMessage().contains("conv2d backwardWeight: dw must hold (5,3,3,3)"), e.getMessage());
    }
}
