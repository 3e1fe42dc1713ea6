package ai.bonsai.backend.cpu;

import ai.bonsai.backend.ConvGeometry;

import ai.bonsai.backend.BranchConv;
import ai.bonsai.tensor.Buffer;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The fused multi-branch convolution ({@link CpuBackend#branchConv2d}, {@link BranchConvKernels}) against a naive
 * double-precision loop written here from the Backend contract: awkward sizes (1, 5, 13, 37 images; 1x1 to 13x13
 * inputs; kernels 1, 3, 5; strides 1 to 3), branch widths 1 to 19 (both tile shapes, remainders), overlapping
 * input sets, unused input channels, overwrite (untouched channels keep their values) and accumulate (overlapping
 * outputs add up); SIMD against scalar tiles; 1 against N threads bit for bit; and the plan's validation messages.
 * Also the 1-3 row tiles against their definition, and the fused conv_a -> conv_b pair against the two plans run
 * one after the other (bit for bit, in place included).
 */
class BranchConvKernelsTest {
    private static final CpuBackend BE = CpuBackend.get();

    /** n, cIn, cOut, h, w, kernel, stride, padding. */
    private static final int[][] CASES = {
        {2, 13, 11, 7, 5, 3, 1, 1},
        {1, 5, 9, 13, 13, 3, 2, 1},
        {3, 8, 19, 1, 1, 1, 1, 0},
        {5, 16, 16, 8, 8, 3, 1, 1},
        {37, 6, 7, 6, 9, 3, 1, 1},
        {2, 7, 12, 11, 10, 5, 3, 2},
        {4, 16, 32, 9, 9, 1, 2, 0},
        {1, 3, 4, 4, 4, 3, 1, 0},
    };

    private record Case(int n, int cIn, int cOut, int h, int w, int k, int st, int pad) {
        int oh() { return (h + 2 * pad - k) / st + 1; }

        int ow() { return (w + 2 * pad - k) / st + 1; }
    }

    private static Case of(int[] a) { return new Case(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]); }

    private static float[] random(SplittableRandom rnd, int len) {
        float[] v = new float[len];
        for (int i = 0; i < len; i++) v[i] = (float) (rnd.nextDouble() * 2 - 1);
        return v;
    }

    /** A random subset of [0, limit) of the given size, in random order. */
    private static int[] subset(SplittableRandom rnd, int limit, int size) {
        int[] all = new int[limit];
        for (int i = 0; i < limit; i++) all[i] = i;
        for (int i = limit - 1; i > 0; i--) {
            int j = rnd.nextInt(i + 1), t = all[i];
            all[i] = all[j];
            all[j] = t;
        }
        return Arrays.copyOf(all, size);
    }

    /**
     * Random branches: input sets of random size that may overlap (never the last input channel, so that an unused
     * channel is always present when cIn > 1); outputs disjoint when {@code disjoint}, else drawn independently.
     */
    private static BranchConv plan(Case c, SplittableRandom rnd, boolean disjoint) {
        int usable = c.cIn > 1 ? c.cIn - 1 : 1;
        int[] outPerm = subset(rnd, c.cOut, c.cOut);
        List<BranchConv.Branch> branches = new ArrayList<>();
        int used = 0;
        int count = 1 + rnd.nextInt(4);
        for (int b = 0; b < count; b++) {
            int width;
            int[] out;
            if (disjoint) {
                int left = c.cOut - used - (count - b - 1);
                if (left <= 0) break;
                width = b == count - 1 ? Math.max(1, left - 1) : 1 + rnd.nextInt(left);
                out = Arrays.copyOfRange(outPerm, used, used + width);
                used += width;
            } else {
                width = 1 + rnd.nextInt(c.cOut);
                out = subset(rnd, c.cOut, width);
            }
            int[] in = subset(rnd, usable, 1 + rnd.nextInt(usable));
            Buffer w = BE.fromFloats(random(rnd, width * in.length * c.k * c.k));
            Buffer sc = BE.fromFloats(random(rnd, width)), sh = BE.fromFloats(random(rnd, width));
            branches.add(new BranchConv.Branch(in, out, w, sc, sh, rnd.nextBoolean()));
        }
        return new BranchConv(c.cIn, c.cOut, c.k, c.st, c.pad, branches);
    }

    /** The contract, literally: per branch a gathered convolution in double, affine, optional ReLU, then = or +=. */
    private static double[] reference(Case c, BranchConv plan, float[] x, float[] yInit, boolean accumulate) {
        int oh = c.oh(), ow = c.ow();
        double[] y = new double[yInit.length];
        for (int i = 0; i < y.length; i++) y[i] = yInit[i];
        for (BranchConv.Branch b : plan.branches()) {
            float[] w = BE.toFloats(b.weight()), sc = BE.toFloats(b.scale()), sh = BE.toFloats(b.shift());
            int[] in = b.inChannels(), out = b.outChannels();
            for (int n = 0; n < c.n; n++)
                for (int j = 0; j < out.length; j++)
                    for (int oi = 0; oi < oh; oi++)
                        for (int oj = 0; oj < ow; oj++) {
                            double acc = 0;
                            for (int i = 0; i < in.length; i++)
                                for (int r = 0; r < c.k; r++)
                                    for (int s = 0; s < c.k; s++) {
                                        int hi = oi * c.st - c.pad + r, wi = oj * c.st - c.pad + s;
                                        if (hi < 0 || hi >= c.h || wi < 0 || wi >= c.w) continue;
                                        acc += (double) w[((j * in.length + i) * c.k + r) * c.k + s]
                                                * x[((n * c.cIn + in[i]) * c.h + hi) * c.w + wi];
                                    }
                            double t = acc * sc[j] + sh[j];
                            if (b.relu()) t = Math.max(t, 0);
                            int yi = ((n * c.cOut + out[j]) * oh + oi) * ow + oj;
                            y[yi] = accumulate ? y[yi] + t : t;
                        }
        }
        // The output stage, on every channel.
        if (plan.hasOutputStage()) {
            float[] shift = plan.outputShift() == null ? null : BE.toFloats(plan.outputShift());
            for (int i = 0; i < y.length; i++) {
                int ch = (i / (oh * ow)) % c.cOut;
                double v = y[i] + (shift == null ? 0 : shift[ch]);
                y[i] = plan.outputRelu() ? Math.max(v, 0) : v;
            }
        }
        return y;
    }

    /** {@code base} with an output stage: a per-channel shift (when {@code withShift}) and a ReLU (when {@code relu}). */
    private static BranchConv withOutputStage(BranchConv base, SplittableRandom rnd, boolean withShift, boolean relu) {
        Buffer shift = withShift ? BE.fromFloats(random(rnd, base.outChannels())) : null;
        return new BranchConv(base.inChannels(), base.outChannels(), base.kernel(), base.stride(), base.padding(),
                base.branches(), shift, relu);
    }

    @Test void outputStageAppliesToEveryChannelAfterTheBranches() {
        for (int t = 0; t < CASES.length; t++) {
            Case c = of(CASES[t]);
            SplittableRandom rnd = new SplittableRandom(200 + t);
            BranchConv plan = withOutputStage(plan(c, rnd, false), rnd, t % 3 != 0, t % 3 != 1);
            float[] x = random(rnd, c.n * c.cIn * c.h * c.w);
            float[] y0 = random(rnd, c.n * c.cOut * c.oh() * c.ow());
            double[] ref = reference(c, plan, x, y0, true);
            Buffer y = BE.fromFloats(y0);
            BE.branchConv2d(plan, BE.fromFloats(x), c.n, c.h, c.w, y, true);
            assertClose(ref, BE.toFloats(y), "case " + t + " " + plan + " (backend)");
            checkBothMethods(ref, c, plan, x, y0, true, "case " + t + " " + plan);
        }
        // No branches at all: the output stage still runs.
        Case c = of(CASES[0]);
        SplittableRandom rnd = new SplittableRandom(7);
        BranchConv empty = withOutputStage(new BranchConv(c.cIn, c.cOut, c.k, c.st, c.pad, List.of()), rnd, true, true);
        float[] x = random(rnd, c.n * c.cIn * c.h * c.w), y0 = random(rnd, c.n * c.cOut * c.oh() * c.ow());
        Buffer y = BE.fromFloats(y0);
        BE.branchConv2d(empty, BE.fromFloats(x), c.n, c.h, c.w, y, true);
        assertClose(reference(c, empty, x, y0, true), BE.toFloats(y), "no branches with an output stage");
    }

    @Test void outputShiftMustHaveOneEntryPerOutputChannel() {
        Buffer w = BE.fromFloats(new float[4 * 9]), s1 = BE.fromFloats(new float[1]);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new BranchConv(4, 4, 3, 1, 1,
                List.of(new BranchConv.Branch(new int[] {0, 1, 2, 3}, new int[] {0}, w, s1, s1, false)),
                BE.fromFloats(new float[3]), true));
        assertTrue(e.getMessage().contains("outputShift") && e.getMessage().contains("(4)"), e.getMessage());
    }

    private static void assertClose(double[] ref, float[] got, String what) {
        assertEquals(ref.length, got.length, what);
        for (int i = 0; i < ref.length; i++) {
            double tol = 1e-4 + 1e-4 * Math.abs(ref[i]);
            if (!(Math.abs(ref[i] - got[i]) <= tol)) fail(what + ": element " + i + " expected " + ref[i] + " got " + got[i]);
        }
    }

    private static float[] run(ConvMicroKernels kern, Case c, BranchConv plan, float[] x, float[] yInit, boolean accumulate) {
        return run(kern, c, plan, x, yInit, accumulate, ConvMethod.AUTO);
    }

    private static float[] run(ConvMicroKernels kern, Case c, BranchConv plan, float[] x, float[] yInit, boolean accumulate,
                               ConvMethod method) {
        float[] y = yInit.clone();
        BranchConvKernels.run(kern, plan, BranchConvKernels.prepare(plan, kern.mr(), BE), x, c.n, c.h, c.w, y, accumulate,
                method);
        return y;
    }

    /** Every plan through both methods, SIMD and scalar kernels (the Winograd one where it applies). */
    private static void checkBothMethods(double[] ref, Case c, BranchConv plan, float[] x, float[] y0, boolean accumulate, String what) {
        for (ConvMethod m : new ConvMethod[] {ConvMethod.DIRECT, ConvMethod.WINOGRAD}) {
            assertClose(ref, run(Conv2dKernels.kernels(), c, plan, x, y0, accumulate, m), what + " (" + m + ")");
            assertClose(ref, run(new ScalarConvMicroKernels(), c, plan, x, y0, accumulate, m), what + " (scalar, " + m + ")");
        }
    }

    @Test void overwriteMatchesReferenceAndLeavesOtherChannels() {
        for (int t = 0; t < CASES.length; t++) {
            Case c = of(CASES[t]);
            SplittableRandom rnd = new SplittableRandom(10 + t);
            BranchConv plan = plan(c, rnd, true);
            float[] x = random(rnd, c.n * c.cIn * c.h * c.w);
            float[] y0 = new float[c.n * c.cOut * c.oh() * c.ow()];
            Arrays.fill(y0, 7.5f);                       // channels of no branch must keep this
            double[] ref = reference(c, plan, x, y0, false);
            Buffer y = BE.fromFloats(y0);
            BE.branchConv2d(plan, BE.fromFloats(x), c.n, c.h, c.w, y, false);
            assertClose(ref, BE.toFloats(y), "case " + t + " " + plan + " (backend)");
            checkBothMethods(ref, c, plan, x, y0, false, "case " + t + " " + plan);
        }
    }

    /** The cases must keep exercising both the Winograd and the direct path. */
    @Test void casesCoverWinogradAndDirect() {
        int winograd = 0;
        for (int[] a : CASES) {
            Case c = of(a);
            if (Conv2dWinograd.applies(new ConvGeometry(c.n, c.cIn, c.h, c.w, 1, c.k, c.k, c.st, c.st, c.pad, c.pad, 1))) winograd++;
        }
        assertTrue(winograd >= 3 && winograd <= CASES.length - 3, winograd + " Winograd cases");
    }

    @Test void accumulateAddsOverlappingBranches() {
        for (int t = 0; t < CASES.length; t++) {
            Case c = of(CASES[t]);
            SplittableRandom rnd = new SplittableRandom(100 + t);
            BranchConv plan = plan(c, rnd, false);
            float[] x = random(rnd, c.n * c.cIn * c.h * c.w);
            float[] y0 = random(rnd, c.n * c.cOut * c.oh() * c.ow());
            double[] ref = reference(c, plan, x, y0, true);
            Buffer y = BE.fromFloats(y0);
            BE.branchConv2d(plan, BE.fromFloats(x), c.n, c.h, c.w, y, true);
            assertClose(ref, BE.toFloats(y), "case " + t + " " + plan + " (backend)");
            checkBothMethods(ref, c, plan, x, y0, true, "case " + t + " " + plan);
        }
    }

    @Test void sameBitsForAnyThreadCount() {
        Case c = of(CASES[4]);
        SplittableRandom rnd = new SplittableRandom(5);
        BranchConv plan = plan(c, rnd, false);
        float[] x = random(rnd, c.n * c.cIn * c.h * c.w), y0 = random(rnd, c.n * c.cOut * c.oh() * c.ow());
        int before = Parallel.threads();
        try {
            for (ConvMethod m : new ConvMethod[] {ConvMethod.DIRECT, ConvMethod.WINOGRAD}) {
                Parallel.setThreads(1);
                float[] one = run(Conv2dKernels.kernels(), c, plan, x, y0, true, m);
                Parallel.setThreads(3);
                float[] many = run(Conv2dKernels.kernels(), c, plan, x, y0, true, m);
                assertArrayEquals(one, many, m.toString());
            }
        } finally {
            Parallel.setThreads(before);
        }
    }

    /** Random branches of a second plan over the channels {@code first} writes (what branchConv2dPair requires). */
    private static BranchConv secondPlan(BranchConv first, int cOut, int k, SplittableRandom rnd, boolean disjoint) {
        List<Integer> written = new ArrayList<>();
        for (BranchConv.Branch b : first.branches()) for (int c : b.outChannels()) written.add(c);
        List<BranchConv.Branch> branches = new ArrayList<>();
        int[] outPerm = subset(rnd, cOut, cOut);
        int used = 0, count = 1 + rnd.nextInt(4);
        for (int b = 0; b < count && used < cOut; b++) {
            int width = disjoint ? 1 + rnd.nextInt(cOut - used) : 1 + rnd.nextInt(cOut);
            int[] out = disjoint ? Arrays.copyOfRange(outPerm, used, used + width) : subset(rnd, cOut, width);
            used += disjoint ? width : 0;
            int[] pick = subset(rnd, written.size(), 1 + rnd.nextInt(written.size()));
            int[] in = new int[pick.length];
            for (int i = 0; i < in.length; i++) in[i] = written.get(pick[i]);
            branches.add(new BranchConv.Branch(in, out, BE.fromFloats(random(rnd, width * in.length * k * k)),
                    BE.fromFloats(random(rnd, width)), BE.fromFloats(random(rnd, width)), rnd.nextBoolean()));
        }
        Buffer shift = rnd.nextBoolean() ? BE.fromFloats(random(rnd, cOut)) : null;
        return new BranchConv(first.outChannels(), cOut, k, 1, k / 2, branches, shift, rnd.nextBoolean());
    }

    /**
     * The fused pair (t per unit in scratch) gives the same bits as the two plans run one after the other through a
     * whole-batch t, for both methods, stride-2 first plans included, and for any thread count.
     */
    @Test void pairEqualsTwoStepsBitForBit() {
        int[][] cases = {   // n, cIn, cMid, cOut, h, w, k, firstStride
            {9, 16, 14, 16, 12, 12, 3, 1},
            {3, 7, 9, 5, 11, 6, 3, 2},
            {13, 8, 19, 8, 8, 8, 3, 1},
            {2, 5, 6, 4, 5, 7, 1, 1},
        };
        int before = Parallel.threads(), inPlace = 0;
        try {
            for (int t = 0; t < cases.length; t++) {
                int[] a = cases[t];
                int n = a[0], cIn = a[1], cMid = a[2], cOut = a[3], h = a[4], w = a[5], k = a[6], st = a[7];
                SplittableRandom rnd = new SplittableRandom(300 + t);
                BranchConv first = plan(new Case(n, cIn, cMid, h, w, k, st, k / 2), rnd, true);
                BranchConv second = secondPlan(first, cOut, k, rnd, t % 2 == 0);
                boolean accumulate = t % 2 == 1 || !second.disjointOutputs();
                int th = first.outSize(h), tw = first.outSize(w);
                float[] x = random(rnd, n * cIn * h * w), y0 = random(rnd, n * cOut * second.outSize(th) * second.outSize(tw));
                ConvMicroKernels kern = Conv2dKernels.kernels();
                var pa = BranchConvKernels.prepare(first, kern.mr(), BE);
                var pb = BranchConvKernels.prepare(second, kern.mr(), BE);
                for (ConvMethod m : ConvMethod.values()) {
                    float[] tt = new float[n * cMid * th * tw], expect = y0.clone();
                    BranchConvKernels.run(kern, first, pa, x, n, h, w, tt, false, m);
                    BranchConvKernels.run(kern, second, pb, tt, n, th, tw, expect, accumulate, m);
                    for (int threads : new int[] {1, 3}) {
                        Parallel.setThreads(threads);
                        float[] got = y0.clone();
                        BranchConvKernels.runPair(kern, first, pa, second, pb, x, n, h, w, got, accumulate, m);
                        assertArrayEquals(expect, got, "case " + t + " " + first + " then " + second + ", " + m + ", " + threads + " threads");
                    }
                }
                // And through the backend (AUTO, validation), against the interface's default two-step version.
                Buffer y = BE.fromFloats(y0), yRef = BE.fromFloats(y0);
                BE.branchConv2dPair(first, second, BE.fromFloats(x), n, h, w, y, accumulate);
                Buffer tRef = BE.allocate(ai.bonsai.tensor.DType.FLOAT32, n * cMid * th * tw);
                BE.branchConv2d(first, BE.fromFloats(x), n, h, w, tRef, false);
                BE.branchConv2d(second, tRef, n, th, tw, yRef, accumulate);
                assertArrayEquals(BE.toFloats(yRef), BE.toFloats(y), "case " + t + " through the backend");
                if (cIn == cOut && st == 1) {
                    // In place, as a packed block with an identity residual runs it: y starts as x and is x.
                    Buffer xy = BE.fromFloats(x), inPlaceRef = BE.fromFloats(x);
                    BE.branchConv2dPair(first, second, xy, n, h, w, xy, true);
                    BE.branchConv2d(first, BE.fromFloats(x), n, h, w, tRef, false);
                    BE.branchConv2d(second, tRef, n, th, tw, inPlaceRef, true);
                    assertArrayEquals(BE.toFloats(inPlaceRef), BE.toFloats(xy), "case " + t + " in place");
                    inPlace++;
                }
            }
            assertTrue(inPlace >= 1, "no in-place case ran");
        } finally {
            Parallel.setThreads(before);
        }
    }

    @Test void pairValidationNamesTheProblem() {
        Buffer w = BE.fromFloats(new float[2 * 9]), s1 = BE.fromFloats(new float[1]);
        BranchConv first = new BranchConv(4, 3, 3, 1, 1, List.of(
                new BranchConv.Branch(new int[] {0, 1}, new int[] {0}, w, s1, s1, true)));
        BranchConv readsUnwritten = new BranchConv(3, 4, 3, 1, 1, List.of(
                new BranchConv.Branch(new int[] {0, 2}, new int[] {1}, w, s1, s1, false)));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> BE.branchConv2dPair(first, readsUnwritten,
                BE.allocate(ai.bonsai.tensor.DType.FLOAT32, 64), 1, 4, 4, BE.allocate(ai.bonsai.tensor.DType.FLOAT32, 64), true));
        assertTrue(e.getMessage().contains("branch 0 of the second plan reads channel 2, which no branch of the first plan writes"), e.getMessage());
        BranchConv wrongWidth = new BranchConv(5, 4, 3, 1, 1, List.of(
                new BranchConv.Branch(new int[] {0, 1}, new int[] {1}, w, s1, s1, false)));
        e = assertThrows(IllegalArgumentException.class, () -> BranchConv.requireChainable(first, wrongWidth));
        assertTrue(e.getMessage().contains("second plan reads 5 channels but the first writes 3"), e.getMessage());
        BranchConv ok = new BranchConv(3, 4, 3, 1, 1, List.of(new BranchConv.Branch(new int[] {0}, new int[] {1},
                BE.fromFloats(new float[9]), s1, s1, false)));
        e = assertThrows(IllegalArgumentException.class, () -> BE.branchConv2dPair(first, ok,
                BE.allocate(ai.bonsai.tensor.DType.FLOAT32, 64), 1, 4, 4, BE.allocate(ai.bonsai.tensor.DType.FLOAT32, 60), true));
        assertTrue(e.getMessage().contains("needs x of 64 and y of 64 floats, got 64 and 60"), e.getMessage());
        // The message names both plans (built only when the check fails).
        assertTrue(e.getMessage().contains("branchConv2dPair: " + first + " then " + ok + " on (1,"), e.getMessage());
    }

    /** Every narrow tile height of both kernel sets against its definition, with an offset A block (rows past 0). */
    @Test void narrowTilesMatchTheirDefinition() {
        SplittableRandom rnd = new SplittableRandom(77);
        for (ConvMicroKernels kern : new ConvMicroKernels[] {Conv2dKernels.kernels(), new ScalarConvMicroKernels()}) {
            int mr = kern.mr(), cols = 2 * kern.nr(), np = 13, ld = cols + 5;
            float[] a = random(rnd, np * mr + mr), src = random(rnd, 400);
            int[] off = new int[np];
            for (int p = 0; p < np; p++) off[p] = rnd.nextInt(300);
            for (int rows = 1; rows < mr / 2; rows++) {
                for (int first = 0; first + rows <= mr; first += Math.max(1, mr / 2)) {
                    float[] out = new float[3 + rows * ld];
                    kern.shiftTileRows(rows, np, a, first, src, 7, off, out, 3, ld);
                    for (int i = 0; i < rows; i++) {
                        for (int j = 0; j < cols; j++) {
                            double ref = 0;
                            for (int p = 0; p < np; p++) ref += (double) a[first + p * mr + i] * src[7 + off[p] + j];
                            assertEquals(ref, out[3 + i * ld + j], 1e-5, kern.getClass().getSimpleName() + " rows " + rows + " i " + i + " j " + j);
                        }
                    }
                }
            }
            int bad = mr / 2;
            assertThrows(IllegalArgumentException.class, () -> kern.shiftTileRows(bad, np, a, 0, src, 0, off, new float[1000], 0, ld));
        }
    }

    /** AUTO's Winograd choice reads the filter-weighted input width: two 3-input filters and one 6-input filter give 4. */
    @Test void meanInputWidthIsWeightedByFilters() {
        Buffer w1 = BE.fromFloats(new float[2 * 3 * 9]), w2 = BE.fromFloats(new float[6 * 9]);
        Buffer s2 = BE.fromFloats(new float[2]), s1 = BE.fromFloats(new float[1]);
        BranchConv plan = new BranchConv(8, 3, 3, 1, 1, List.of(
                new BranchConv.Branch(new int[] {0, 1, 2}, new int[] {0, 1}, w1, s2, s2, false),
                new BranchConv.Branch(new int[] {2, 3, 4, 5, 6, 7}, new int[] {2}, w2, s1, s1, false)));
        assertEquals(4.0, BranchConvKernels.prepare(plan, Conv2dKernels.kernels().mr(), BE).meanInputWidth(), 1e-12);
        assertEquals(0.0, BranchConvKernels.prepare(new BranchConv(8, 3, 3, 1, 1, List.of()), 8, BE).meanInputWidth());
    }

    @Test void planValidationNamesBranchAndField() {
        Buffer w = BE.fromFloats(new float[2 * 2 * 9]), s2 = BE.fromFloats(new float[2]);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new BranchConv(4, 4, 3, 1, 1,
                List.of(new BranchConv.Branch(new int[] {0, 4}, new int[] {0, 1}, w, s2, s2, false))));
        assertTrue(e.getMessage().contains("branch 0 inChannels: index 4 at position 1 is outside [0, 4)"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new BranchConv(4, 4, 3, 1, 1,
                List.of(new BranchConv.Branch(new int[] {0, 1}, new int[] {2, 2}, w, s2, s2, false))));
        assertTrue(e.getMessage().contains("branch 0 outChannels: channel 2 appears twice"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new BranchConv(4, 4, 3, 1, 1,
                List.of(new BranchConv.Branch(new int[] {0}, new int[] {0, 1}, w, s2, s2, false))));
        assertTrue(e.getMessage().contains("branch 0 weight: expected (2,1,3,3) = 18 floats, got 36"), e.getMessage());
        BranchConv overlapping = new BranchConv(4, 4, 3, 1, 1, List.of(
                new BranchConv.Branch(new int[] {0, 1}, new int[] {0, 1}, w, s2, s2, false),
                new BranchConv.Branch(new int[] {2, 3}, new int[] {1, 2}, w, s2, s2, false)));
        e = assertThrows(IllegalArgumentException.class, () -> BE.branchConv2d(overlapping, BE.allocate(ai.bonsai.tensor.DType.FLOAT32, 64),
                1, 4, 4, BE.allocate(ai.bonsai.tensor.DType.FLOAT32, 64), false));
        assertTrue(e.getMessage().contains("overwriting needs disjoint branch outputs"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> BE.branchConv2d(overlapping, BE.allocate(ai.bonsai.tensor.DType.FLOAT32, 64),
                2, 4, 4, BE.allocate(ai.bonsai.tensor.DType.FLOAT32, 64), true));
        assertTrue(e.getMessage().contains("needs x of 128 and y of 128 floats, got 64 and 64"), e.getMessage());
        assertTrue(e.getMessage().contains("branchConv2d: " + overlapping + " on (2,"), e.getMessage());
    }
}
