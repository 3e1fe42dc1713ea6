package ai.bonsai.dsp.group;

import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * {@link GroupRegularizer} against autograd (R built from Tensor ops and back-propagated), a naive
 * double-precision reference, a hand-worked step-8 case and a direct hard-assignment computation.
 */
class GroupRegularizerTest {
    static Stream<Arguments> layers() {
        List<Arguments> a = new ArrayList<>();
        for (int g = 1; g <= 4; g++) {
            a.add(Arguments.of(g, 5, 3, 3));
            a.add(Arguments.of(g, 7, 9, 1));
        }
        return a.stream();
    }

    static Tensor randomWeight(Generator rng, int n, int c, int k) { return Tensor.randn(rng, n, c, k, k).mul(0.3f); }

    /** Columns summing to one, as a Gumbel-softmax sample. */
    static Tensor softAssignment(Generator rng, int groups, int n) {
        return ai.bonsai.nn.Functional.softmax(Tensor.randn(rng, groups, n).mul(1.5f), 0);
    }

    /** R = scale * sum_g (sum_n sqrt(p_n))^2 * sum_c sqrt(sum_n p_n^2 ||W[n,c]||^2), from Tensor ops. */
    static Tensor autogradR(Tensor w, Tensor p, float scale) {
        Tensor sq = w.square().sum(new int[] {2, 3}, false);            // (N, C)
        Tensor l = p.square().matMul(sq).sqrt();                        // (G, C)
        Tensor s = p.pow(0.5f).sum(1, false).square();                  // (G)
        return s.mul(l.sum(1, false)).sum().mul(scale);
    }

    /** The spec's section 3 in double: {R, dR/dW (scaled), dR/dp (unscaled)} flattened as one record. */
    record Ref(double r, double[] dRdW, double[] dRdp) {}

    static Ref reference(float[] w, float[] p, int groups, int n, int c, int kk, double scale) {
        double r = 0;
        double[] dW = new double[w.length], dp = new double[groups * n];
        for (int g = 0; g < groups; g++) {
            double bigS = 0;
            for (int f = 0; f < n; f++) bigS += Math.sqrt(p[g * n + f]);
            double s = bigS * bigS, sumL = 0;
            double[] l = new double[c];
            for (int ch = 0; ch < c; ch++) {
                double acc = 0;
                for (int f = 0; f < n; f++)
                    for (int j = 0; j < kk; j++) {
                        double v = w[(f * c + ch) * kk + j];
                        acc += (double) p[g * n + f] * p[g * n + f] * v * v;
                    }
                l[ch] = Math.sqrt(acc);
                sumL += l[ch];
            }
            r += scale * s * sumL;
            for (int f = 0; f < n; f++) {
                double pf = p[g * n + f], dLdp = 0;
                for (int ch = 0; ch < c; ch++)
                    for (int j = 0; j < kk; j++) {
                        int i = (f * c + ch) * kk + j;
                        dW[i] += scale * s * pf * pf * w[i] / (l[ch] + 1e-8);
                        dLdp += pf * (double) w[i] * w[i] / (l[ch] + 1e-8);
                    }
                dp[g * n + f] = s * dLdp + sumL * Math.sqrt(pf) * s / (pf * bigS + 1e-8);
            }
        }
        return new Ref(r, dW, dp);
    }

    @ParameterizedTest(name = "G={0} N={1} C={2} k={3}")
    @MethodSource("layers")
    void matchesAutogradAndReference(int groups, int n, int c, int k) {
        Generator rng = new Generator(1000L * groups + 10L * n + c);
        Tensor w = randomWeight(rng, n, c, k), p = softAssignment(rng, groups, n);
        double inputSize = 0.75;
        GroupRegularizer reg = new GroupRegularizer(groups, n, c, k, inputSize);
        float scale = reg.scale();
        assertEquals(Math.sqrt(inputSize) * k * Math.pow((double) groups / n, 1.5), scale, 1e-6 * scale);

        Tensor wg = w.copy().requiresGrad(true), pg = p.copy().requiresGrad(true);
        Tensor rAuto = autogradR(wg, pg, scale);
        rAuto.backward();
        Ref ref = reference(w.toFloatArray(), p.toFloatArray(), groups, n, c, k * k, scale);

        double r = reg.value(w, p);
        assertEquals(ref.r, r, 1e-5 * Math.abs(ref.r), "R vs double reference");
        assertEquals(rAuto.item(), r, 1e-4 * Math.abs(ref.r), "R vs autograd");

        float[] penalty = reg.penalty(w, p).toFloatArray();
        assertClose("dR/dW vs reference", ref.dRdW, penalty, 1e-6, 1e-4);
        assertClose("dR/dW vs autograd", toDouble(wg.grad().toFloatArray()), penalty, 1e-5, 1e-3);

        float[] dRdp = reg.dRdp(w, p).toFloatArray();
        assertClose("dR/dp vs reference", ref.dRdp, dRdp, 1e-5, 1e-4);
        // Autograd differentiates the scaled R; the primitive's dR/dp is unscaled.
        double[] auto = toDouble(pg.grad().toFloatArray());
        for (int i = 0; i < auto.length; i++) auto[i] /= scale;
        assertClose("dR/dp vs autograd", auto, dRdp, 1e-4, 1e-3);
    }

    /**
     * Step 8 by hand. N=2 filters, C=1, k=1, W = [3, 4], D = [1, 2], so q = W * D = [3, 8].
     *
     * <p>G=1, p = [1, 1]: S = 2, s = 4, L = sqrt(9 + 16) = 5; ds/dp = 1 * 4 / 2 = 2 for both filters;
     * dL/dp = p ||W||^2 / L = [1.8, 3.2]; &lt;dL/dW, D&gt; = &lt;Nrm, D&gt; = p q / L = [0.6, 1.6];
     * &lt;dL/dW, D / L&gt; = q / 25 = [0.12, 0.32]. Term = 2 * a + 4 * (2 a - dL/dp * b):
     * filter 0: 1.2 + 4 * (1.2 - 0.216) = 5.136; filter 1: 3.2 + 4 * (3.2 - 1.024) = 11.904.
     *
     * <p>G=2, P = [[1, 0], [0, 1]] (one filter per group): group 0 has S = s = 1, L = 3, so for filter 0
     * ds/dp = 1, dL/dp = 9 / 3 = 3, a = 3 / 3 = 1, b = 3 / 9: 1 + (2 - 3 / 3) = 2. Group 1: L = 4, filter 1
     * ds/dp = 1, dL/dp = 4, a = 8 / 4 = 2, b = 8 / 16 = 0.5: 2 + (4 - 2) = 4. Filters with p = 0 get 0.
     */
    @Test
    void secondOrderTermMatchesHandComputation() {
        Tensor w = Tensor.of(new float[] {3, 4}, 2, 1, 1, 1), d = Tensor.of(new float[] {1, 2}, 2, 1, 1, 1);

        GroupRegularizer one = new GroupRegularizer(1, 2, 1, 1, 1.0);
        Tensor p1 = Tensor.of(new float[] {1, 1}, 1, 2);
        one.compute(w, p1, null, false, true);
        Tensor pgrad1 = Tensor.zeros(1, 2);
        one.secondOrderAdd(w, d, p1, pgrad1);
        assertArrayEquals(new float[] {5.136f, 11.904f}, pgrad1.toFloatArray(), 1e-5f);

        GroupRegularizer two = new GroupRegularizer(2, 2, 1, 1, 1.0);
        Tensor p2 = Tensor.of(new float[] {1, 0, 0, 1}, 2, 2);
        two.compute(w, p2, null, false, true);
        Tensor pgrad2 = Tensor.of(new float[] {10, 20, 30, 40}, 2, 2);   // accumulates
        two.secondOrderAdd(w, d, p2, pgrad2);
        assertArrayEquals(new float[] {12, 20, 30, 44}, pgrad2.toFloatArray(), 1e-5f);
    }

    @Test
    void hardAssignmentTakesTheLowestGroupOnTies() {
        assertArrayEquals(new float[] {1, 1, 1, 0, 0, 0, 0, 0, 0}, GroupRegularizer.hardAssignment(Tensor.zeros(3, 3)).toFloatArray());
        // Column 0: group 1 wins; column 1: groups 0 and 2 tie at 2 -> group 0; column 2: group 2.
        Tensor a = Tensor.of(new float[] {0, 2, -1, 1, 1, -1, 0, 2, 5}, 3, 3);
        assertArrayEquals(new float[] {0, 1, 0, 1, 0, 0, 0, 0, 1}, GroupRegularizer.hardAssignment(a).toFloatArray());
    }

    /** With one-hot P, group g's members M: s = |M|^2, L_c = sqrt(sum_{m in M} ||W[m,c]||^2). */
    @ParameterizedTest(name = "G={0} N={1} C={2} k={3}")
    @MethodSource("layers")
    void hardPenaltyMatchesDirectComputation(int groups, int n, int c, int k) {
        Generator rng = new Generator(77L * groups + n + c);
        Tensor w = randomWeight(rng, n, c, k), a = Tensor.randn(rng, groups, n);
        GroupRegularizer reg = new GroupRegularizer(groups, n, c, k, 0.25);
        float[] got = reg.hardPenalty(w, a).toFloatArray();
        float[] wv = w.toFloatArray(), av = a.toFloatArray();
        int kk = k * k;
        int[] group = new int[n];
        for (int f = 0; f < n; f++) for (int g = 1; g < groups; g++) if (av[g * n + f] > av[group[f] * n + f]) group[f] = g;
        double[] expect = new double[wv.length];
        for (int f = 0; f < n; f++) {
            int size = 0;
            for (int m = 0; m < n; m++) if (group[m] == group[f]) size++;
            for (int ch = 0; ch < c; ch++) {
                double l2 = 0;
                for (int m = 0; m < n; m++)
                    if (group[m] == group[f]) for (int j = 0; j < kk; j++) l2 += (double) wv[(m * c + ch) * kk + j] * wv[(m * c + ch) * kk + j];
                for (int j = 0; j < kk; j++) {
                    int i = (f * c + ch) * kk + j;
                    expect[i] = reg.scale() * (double) size * size * wv[i] / (Math.sqrt(l2) + 1e-8);
                }
            }
        }
        assertClose("hard penalty", expect, got, 1e-6, 1e-5);
    }

    @Test
    void allZeroGroupChannelGivesNoNaN() {
        Generator rng = new Generator(9);
        int groups = 3, n = 5, c = 3, k = 3;
        float[] wv = randomWeight(rng, n, c, k).toFloatArray();
        for (int f = 0; f < n; f++) for (int j = 0; j < 9; j++) wv[(f * c + 2) * 9 + j] = 0;
        Tensor w = Tensor.of(wv, n, c, k, k), p = softAssignment(rng, groups, n);
        GroupRegularizer reg = new GroupRegularizer(groups, n, c, k, 1);
        Tensor pgrad = reg.dRdp(w, p);
        reg.compute(w, p, pgrad, true, true);
        reg.secondOrderAdd(w, Tensor.randn(rng, n, c, k, k), p, pgrad);
        for (float v : pgrad.toFloatArray()) assertTrue(Float.isFinite(v), "dR/dp " + v);
        for (float v : reg.penalty().toFloatArray()) assertTrue(Float.isFinite(v), "penalty " + v);
        for (float v : reg.hardPenalty(w, Tensor.zeros(groups, n)).toFloatArray()) assertTrue(Float.isFinite(v), "hard penalty " + v);
        assertTrue(Double.isFinite(reg.value()));
    }

    @Test
    void errorsNameTheArgumentAndShapes() {
        GroupRegularizer reg = new GroupRegularizer(2, 5, 3, 3, 1);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> reg.penalty(Tensor.zeros(5, 4, 3, 3), Tensor.zeros(2, 5)));
        assertTrue(e.getMessage().contains("(5, 3, 3, 3), got FLOAT32 [5, 4, 3, 3]"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> reg.penalty(Tensor.zeros(5, 3, 3, 3), Tensor.zeros(3, 5)));
        assertTrue(e.getMessage().contains("p must be FLOAT32 (2, 5)"), e.getMessage());
        assertThrows(IllegalStateException.class, () -> new GroupRegularizer(1, 2, 1, 1, 1).value());
    }

    static double[] toDouble(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) d[i] = a[i];
        return d;
    }

    static void assertClose(String what, double[] expect, float[] got, double atol, double rtol) {
        assertEquals(expect.length, got.length, what + ": length");
        for (int i = 0; i < expect.length; i++) {
            if (!(Math.abs(expect[i] - got[i]) <= atol + rtol * Math.abs(expect[i]))) {
                fail(what + ": element " + i + " expected " + expect[i] + " got " + got[i] + " (atol " + atol + ", rtol " + rtol + ")");
            }
        }
    }
}
