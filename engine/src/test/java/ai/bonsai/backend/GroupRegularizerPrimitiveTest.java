package ai.bonsai.backend;

import ai.bonsai.backend.cpu.CpuBackend;
import ai.bonsai.backend.cpu.Parallel;
import ai.bonsai.tensor.Buffer;
import ai.bonsai.tensor.DType;
import ai.bonsai.tensor.Generator;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static ai.bonsai.testing.GradCheck.assertClose;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The DSP group-regulariser primitives ({@link Backend#groupRegularizer}, {@link Backend#groupSecondOrderAdd})
 * against a naive double-precision reference written straight from the spec's formulas (sections 3 and 4,
 * step 8): explicit dL/dW, normalised weights and D / L tensors, one group at a time. Also checks the
 * overwrite/accumulate contract, the all-zero group channel and thread-count independence.
 */
class GroupRegularizerPrimitiveTest {
    private static final double EPS = 1e-8;
    private final Backend be = CpuBackend.get();

    /** The spec's quantities for one layer, in double. */
    record Ref(double[] penalty, double[] dRdp, double[] r, double[] s, double[] sumL, double[] dsdp, double[] dLdp,
               double[] l) {}

    static Ref reference(double[] w, double[] p, int groups, int n, int c, int kk, double scale) {
        double[] penalty = new double[n * c * kk], dRdp = new double[groups * n], r = new double[groups];
        double[] s = new double[groups], sumL = new double[groups], dsdp = new double[groups * n];
        double[] dLdp = new double[groups * n], l = new double[groups * c];
        for (int g = 0; g < groups; g++) {
            double bigS = 0;
            for (int f = 0; f < n; f++) bigS += Math.pow(p[g * n + f], 0.5);
            s[g] = bigS * bigS;
            for (int ch = 0; ch < c; ch++) {
                double acc = 0;
                for (int f = 0; f < n; f++) {
                    double pf = p[g * n + f];
                    for (int j = 0; j < kk; j++) acc += pf * pf * w[(f * c + ch) * kk + j] * w[(f * c + ch) * kk + j];
                }
                l[g * c + ch] = Math.sqrt(acc);
                sumL[g] += l[g * c + ch];
            }
            r[g] = s[g] * sumL[g];
            for (int f = 0; f < n; f++) {
                double pf = p[g * n + f];
                double dl = 0;
                for (int ch = 0; ch < c; ch++) {
                    double norm2 = 0;
                    for (int j = 0; j < kk; j++) norm2 += w[(f * c + ch) * kk + j] * w[(f * c + ch) * kk + j];
                    dl += pf * norm2 / (l[g * c + ch] + EPS);
                    for (int j = 0; j < kk; j++) {
                        int i = (f * c + ch) * kk + j;
                        double dLdW = pf * pf * w[i] / (l[g * c + ch] + EPS);
                        penalty[i] += scale * s[g] * dLdW;
                    }
                }
                dLdp[g * n + f] = dl;
                dsdp[g * n + f] = Math.pow(pf, 0.5) * s[g] / (pf * bigS + EPS);
                dRdp[g * n + f] = s[g] * dl + sumL[g] * dsdp[g * n + f];
            }
        }
        return new Ref(penalty, dRdp, r, s, sumL, dsdp, dLdp, l);
    }

    /** Step 8 from the spec, term by term: ds/dp <dL/dW, D> + s (2 <Nrm, D> - dL/dp <dL/dW, D / L>). */
    static double[] referenceSecondOrder(double[] w, double[] d, double[] p, int groups, int n, int c, int kk) {
        Ref r = reference(w, p, groups, n, c, kk, 1);
        double[] out = new double[groups * n];
        for (int g = 0; g < groups; g++)
            for (int f = 0; f < n; f++) {
                double pf = p[g * n + f];
                double dLdWD = 0, nrmD = 0, dLdWDoverL = 0;
                for (int ch = 0; ch < c; ch++) {
                    double lc = r.l[g * c + ch] + EPS;
                    for (int j = 0; j < kk; j++) {
                        int i = (f * c + ch) * kk + j;
                        double dLdW = pf * pf * w[i] / lc, nrm = pf * w[i] / lc;
                        dLdWD += dLdW * d[i];
                        nrmD += nrm * d[i];
                        dLdWDoverL += dLdW * d[i] / lc;
                    }
                }
                out[g * n + f] = r.dsdp[g * n + f] * dLdWD + r.s[g] * (2 * nrmD - r.dLdp[g * n + f] * dLdWDoverL);
            }
        return out;
    }

    static Stream<Arguments> shapes() {
        List<Arguments> a = new ArrayList<>();
        for (int g = 1; g <= 4; g++) {
            a.add(Arguments.of(g, 5, 3, 9));
            a.add(Arguments.of(g, 7, 9, 1));
            a.add(Arguments.of(g, 13, 1, 4));
        }
        a.add(Arguments.of(4, 64, 64, 9));           // large enough to run the weight passes in parallel
        a.add(Arguments.of(3, 207, 5, 9));
        return a.stream();
    }

    /** Soft assignment: per filter, a softmax over groups of random logits. */
    static float[] softAssignment(Generator rng, int groups, int n) {
        float[] p = new float[groups * n];
        for (int f = 0; f < n; f++) {
            double[] e = new double[groups];
            double sum = 0;
            for (int g = 0; g < groups; g++) { e[g] = Math.exp(3 * (rng.nextDouble() - 0.5)); sum += e[g]; }
            for (int g = 0; g < groups; g++) p[g * n + f] = (float) (e[g] / sum);
        }
        return p;
    }

    static float[] randomWeights(Generator rng, int len) {
        float[] w = new float[len];
        for (int i = 0; i < len; i++) w[i] = (float) rng.nextGaussian() * 0.3f;
        return w;
    }

    static double[] d(float[] a) {
        double[] o = new double[a.length];
        for (int i = 0; i < a.length; i++) o[i] = a[i];
        return o;
    }

    private float[] get(Buffer b) { return be.toFloats(b); }

    @ParameterizedTest(name = "G={0} N={1} C={2} kk={3}")
    @MethodSource("shapes")
    void regularizerMatchesReference(int groups, int n, int c, int kk) {
        Generator rng = new Generator(100L * groups + n + 7L * c + kk);
        float[] w = randomWeights(rng, n * c * kk), p = softAssignment(rng, groups, n);
        float scale = 0.37f;
        Ref ref = reference(d(w), d(p), groups, n, c, kk, scale);
        int row = Backend.groupPiecesRowLength(n, c);
        Buffer pen = be.fromFloats(filled(n * c * kk, 123f)), dRdp = be.fromFloats(filled(groups * n, -5f));
        Buffer pieces = be.fromFloats(filled(groups * row, 9f));
        be.groupRegularizer(be.fromFloats(w), be.fromFloats(p), groups, n, c, kk, scale, pen, dRdp, false, pieces);
        assertClose("penalty", ref.penalty, get(pen), 1e-6, 1e-4);
        assertClose("dR/dp", ref.dRdp, get(dRdp), 1e-5, 1e-4);
        float[] pc = get(pieces);
        double[] s = new double[groups], r = new double[groups], dsdp = new double[groups * n], dLdp = new double[groups * n];
        double[] l = new double[groups * c];
        for (int g = 0; g < groups; g++) {
            s[g] = pc[g * row];
            r[g] = (double) pc[g * row] * pc[g * row + 1];
            for (int f = 0; f < n; f++) {
                dsdp[g * n + f] = pc[g * row + 2 + f];
                dLdp[g * n + f] = pc[g * row + 2 + n + f];
            }
            for (int ch = 0; ch < c; ch++) l[g * c + ch] = pc[g * row + 2 + 2 * n + ch];
        }
        assertClose("s", ref.s, f(s), 1e-6, 1e-5);
        assertClose("R_g", ref.r, f(r), 1e-6, 1e-5);
        assertClose("ds/dp", ref.dsdp, f(dsdp), 1e-5, 1e-4);
        assertClose("dL/dp", ref.dLdp, f(dLdp), 1e-6, 1e-5);
        assertClose("L_c", ref.l, f(l), 1e-7, 1e-5);
    }

    @Test
    void dRdpAccumulatesOnlyWhenAsked() {
        int groups = 3, n = 5, c = 3, kk = 9;
        Generator rng = new Generator(3);
        float[] w = randomWeights(rng, n * c * kk), p = softAssignment(rng, groups, n);
        Ref ref = reference(d(w), d(p), groups, n, c, kk, 1);
        float[] start = new float[groups * n];
        for (int i = 0; i < start.length; i++) start[i] = i * 0.25f;
        Buffer acc = be.fromFloats(start);
        be.groupRegularizer(be.fromFloats(w), be.fromFloats(p), groups, n, c, kk, 1f, be.allocate(DType.FLOAT32, n * c * kk),
                acc, true, null);
        double[] expect = new double[start.length];
        for (int i = 0; i < start.length; i++) expect[i] = start[i] + ref.dRdp[i];
        assertClose("accumulated dR/dp", expect, get(acc), 1e-5, 1e-4);
    }

    @ParameterizedTest(name = "G={0} N={1} C={2} kk={3}")
    @MethodSource("shapes")
    void secondOrderMatchesReference(int groups, int n, int c, int kk) {
        Generator rng = new Generator(31L * groups + n + 11L * c + kk);
        float[] w = randomWeights(rng, n * c * kk), p = softAssignment(rng, groups, n), dd = randomWeights(rng, n * c * kk);
        for (int i = 0; i < dd.length; i++) dd[i] *= 0.01f;
        double[] expect = referenceSecondOrder(d(w), d(dd), d(p), groups, n, c, kk);
        Buffer pieces = be.allocate(DType.FLOAT32, groups * Backend.groupPiecesRowLength(n, c));
        be.groupRegularizer(be.fromFloats(w), be.fromFloats(p), groups, n, c, kk, 1f, be.allocate(DType.FLOAT32, w.length),
                null, false, pieces);
        float[] start = new float[groups * n];
        for (int i = 0; i < start.length; i++) start[i] = 1f - i * 0.5f;
        Buffer pgrad = be.fromFloats(start);
        be.groupSecondOrderAdd(be.fromFloats(w), be.fromFloats(dd), be.fromFloats(p), pieces, groups, n, c, kk, pgrad);
        for (int i = 0; i < start.length; i++) expect[i] += start[i];
        assertClose("step-8 term (accumulated)", expect, get(pgrad), 1e-5, 1e-4);
    }

    @Test
    void allZeroGroupChannelGivesNoNaN() {
        int groups = 2, n = 5, c = 3, kk = 9;
        Generator rng = new Generator(5);
        float[] w = randomWeights(rng, n * c * kk), dd = randomWeights(rng, n * c * kk);
        for (int f = 0; f < n; f++) for (int j = 0; j < kk; j++) w[(f * c + 1) * kk + j] = 0f;   // channel 1 is dead
        // Hard assignment with group 1 empty, and a soft one; D is non-zero on the dead channel.
        float[] hard = new float[groups * n];
        for (int f = 0; f < n; f++) hard[f] = 1f;
        for (float[] p : List.of(hard, softAssignment(rng, groups, n))) {
            Buffer pen = be.allocate(DType.FLOAT32, w.length), dRdp = be.allocate(DType.FLOAT32, groups * n);
            Buffer pieces = be.allocate(DType.FLOAT32, groups * Backend.groupPiecesRowLength(n, c));
            Buffer pgrad = be.allocate(DType.FLOAT32, groups * n);
            be.groupRegularizer(be.fromFloats(w), be.fromFloats(p), groups, n, c, kk, 1f, pen, dRdp, false, pieces);
            be.groupSecondOrderAdd(be.fromFloats(w), be.fromFloats(dd), be.fromFloats(p), pieces, groups, n, c, kk, pgrad);
            for (Buffer b : List.of(pen, dRdp, pieces, pgrad)) {
                for (float v : get(b)) assertTrue(Float.isFinite(v), "non-finite value " + v + " in " + b);
            }
            assertClose("second order with a dead channel", referenceSecondOrder(d(w), d(dd), d(p), groups, n, c, kk),
                    get(pgrad), 1e-5, 1e-4);
        }
    }

    @Test
    void resultsDoNotDependOnTheThreadCount() {
        int groups = 4, n = 64, c = 64, kk = 9;
        Generator rng = new Generator(17);
        float[] w = randomWeights(rng, n * c * kk), p = softAssignment(rng, groups, n), dd = randomWeights(rng, n * c * kk);
        int saved = Parallel.threads();
        float[][] runs = new float[2][];
        try {
            for (int t = 0; t < 2; t++) {
                Parallel.setThreads(t == 0 ? 1 : 4);
                Buffer pen = be.allocate(DType.FLOAT32, w.length), dRdp = be.allocate(DType.FLOAT32, groups * n);
                Buffer pieces = be.allocate(DType.FLOAT32, groups * Backend.groupPiecesRowLength(n, c));
                be.groupRegularizer(be.fromFloats(w), be.fromFloats(p), groups, n, c, kk, 0.5f, pen, dRdp, false, pieces);
                be.groupSecondOrderAdd(be.fromFloats(w), be.fromFloats(dd), be.fromFloats(p), pieces, groups, n, c, kk, dRdp);
                float[] a = get(pen), b = get(dRdp), q = get(pieces);
                float[] all = new float[a.length + b.length + q.length];
                System.arraycopy(a, 0, all, 0, a.length);
                System.arraycopy(b, 0, all, a.length, b.length);
                System.arraycopy(q, 0, all, a.length + b.length, q.length);
                runs[t] = all;
            }
        } finally {
            Parallel.setThreads(saved);
        }
        assertArrayEquals(runs[0], runs[1]);
    }

    private static float[] filled(int len, float v) {
        float[] a = new float[len];
        java.util.Arrays.fill(a, v);
        return a;
    }

    private static float[] f(double[] a) {
        float[] o = new float[a.length];
        for (int i = 0; i < a.length; i++) o[i] = (float) a[i];
        return o;
    }
}
