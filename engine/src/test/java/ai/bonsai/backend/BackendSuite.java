package ai.bonsai.backend;

import ai.bonsai.tensor.Buffer;
import ai.bonsai.tensor.DType;
import ai.bonsai.tensor.Generator;
import ai.bonsai.testing.Ref;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The engine's backend test suite: every {@link Backend} primitive that training, DSP's group learning and packed
 * inference use, held to
 * a naive double-precision reference ({@link Ref} and the loops here) on seeded random inputs of awkward sizes.
 * One suite, parameterised over backends by subclassing: the CPU backend runs it here
 * ({@code CpuBackendSuiteTest}), the CUDA backend under the CPU emulator and, where a driver exists, on a GPU
 * (kernels: {@code CudaEmulatedBackendSuiteTest}, {@code CudaBackendSuiteTest}; scripts/gpu-check runs the latter).
 *
 * <p>Sizes stay small (an emulated GPU runs each thread as a fiber) but include 1, primes and non-multiples of any
 * block or vector width. Tolerance: |got - ref| <= 1e-4 + 1e-4 |ref| (float32 against double).
 */
public abstract class BackendSuite {
    static final double ATOL = 1e-4, RTOL = 1e-4;
    static final int[] SIZES = {1, 3, 13, 207, 1031};

    /** The backend under test. */
    protected abstract Backend backend();

    private Buffer up(double[] x) {
        float[] f = new float[x.length];
        for (int i = 0; i < x.length; i++) f[i] = (float) x[i];
        return backend().fromFloats(f);
    }

    /** Uniform values in [lo, hi), rounded to float so that the reference sees exactly the backend's inputs. */
    static double[] rand(int n, long seed, double lo, double hi) {
        Random r = new Random(seed);
        double[] x = new double[n];
        for (int i = 0; i < n; i++) x[i] = (float) (lo + (hi - lo) * r.nextDouble());
        return x;
    }

    private Buffer zeros(int n) {
        Buffer b = backend().allocate(DType.FLOAT32, n);
        backend().fill(b, 0f);
        return b;
    }

    private void check(double[] ref, Buffer got, String what) {
        float[] g = backend().toFloats(got);
        assertEquals(ref.length, g.length, what + ": length");
        for (int i = 0; i < ref.length; i++) {
            double e = ref[i];
            if (Double.isNaN(e) && Float.isNaN(g[i])) continue;
            if (e == g[i]) continue;
            assertTrue(Math.abs(g[i] - e) <= ATOL + RTOL * Math.abs(e),
                    what + " on " + backend().device() + ": element " + i + " expected " + e + " but was " + g[i]);
        }
    }

    // ---------------------------------------------------------------- memory

    @Test void fillCopyAndRoundTrips() {
        Backend b = backend();
        for (int n : SIZES) {
            double[] x = rand(n, n, -2, 2);
            Buffer buf = up(x);
            check(x, buf, "fromFloats/toFloats n=" + n);
            Buffer f = b.allocate(DType.FLOAT32, n + 2);
            b.fill(f, 2.5f);
            b.copy(buf, 0, f, 1, n);
            double[] want = new double[n + 2];
            java.util.Arrays.fill(want, 2.5);
            System.arraycopy(x, 0, want, 1, n);
            check(want, f, "fill then copy n=" + n);
        }
        long[] l = {0, -1, 7, Long.MAX_VALUE >> 20};
        assertArrayEquals(l, b.toLongs(b.fromLongs(l)), "INT64 round trip");
        int[] i = {3, -4, 0};
        assertArrayEquals(new long[] {3, -4, 0}, b.toLongs(b.fromInts(i)), "INT32 round trip");
    }

    @Test void randomDrawsFollowTheGeneratorInElementOrder() {
        Backend b = backend();
        for (int n : SIZES) {
            Buffer u = b.allocate(DType.FLOAT32, n);
            b.uniform(u, new Generator(11), -1f, 3f);
            Buffer cpu = ai.bonsai.backend.cpu.CpuBackend.get().allocate(DType.FLOAT32, n);
            ai.bonsai.backend.cpu.CpuBackend.get().uniform(cpu, new Generator(11), -1f, 3f);
            assertArrayEquals(ai.bonsai.backend.cpu.CpuBackend.get().toFloats(cpu), b.toFloats(u), "uniform n=" + n + ": same draws as the CPU");
            for (float v : b.toFloats(u)) assertTrue(v >= -1f && v < 3f, "uniform in range: " + v);
        }
    }

    // ---------------------------------------------------------------- element-wise

    @Test void unaryOps() {
        for (int n : SIZES) {
            double[] x = rand(n, 100 + n, -3, 3);
            for (UnaryOp op : UnaryOp.values()) {
                double[] in = x.clone();
                if (op == UnaryOp.LOG || op == UnaryOp.SQRT || op == UnaryOp.RSQRT || op == UnaryOp.RECIPROCAL) {
                    for (int i = 0; i < n; i++) in[i] = Math.abs(in[i]) + 0.05;
                }
                double[] ref = new double[n];
                for (int i = 0; i < n; i++) ref[i] = unary(op, in[i]);
                Buffer out = backend().allocate(DType.FLOAT32, n);
                backend().unary(op, up(in), out);
                check(ref, out, op + " n=" + n);
                Buffer inPlace = up(in);
                backend().unary(op, inPlace, inPlace);
                check(ref, inPlace, op + " in place n=" + n);
            }
            double[] ref = new double[n];
            for (int i = 0; i < n; i++) ref[i] = x[i] * -1.5 + 0.25;
            Buffer out = backend().allocate(DType.FLOAT32, n);
            backend().affine(up(x), -1.5f, 0.25f, out);
            check(ref, out, "affine n=" + n);
        }
    }

    static double unary(UnaryOp op, double v) {
        return switch (op) {
            case NEG -> -v;
            case EXP -> Math.exp(v);
            case LOG -> Math.log(v);
            case SQRT -> Math.sqrt(v);
            case RSQRT -> 1 / Math.sqrt(v);
            case ABS -> Math.abs(v);
            case RELU -> Math.max(v, 0);
            case SIGMOID -> 1 / (1 + Math.exp(-v));
            case TANH -> Math.tanh(v);
            case RECIPROCAL -> 1 / v;
            case SQUARE -> v * v;
            case SIGN -> Math.signum(v);
        };
    }

    static double binary(BinaryOp op, double a, double b) {
        return switch (op) {
            case ADD -> a + b;
            case SUB -> a - b;
            case MUL -> a * b;
            case DIV -> a / b;
            case MAX -> Math.max(a, b);
            case MIN -> Math.min(a, b);
            case POW -> Math.pow(a, b);
            case GT -> a > b ? 1 : 0;
            case EQ -> a == b ? 1 : 0;
            case RELU_BACKWARD -> b > 0 ? a : 0;
        };
    }

    @Test void binaryOpsWithBroadcasting() {
        int[][][] shapes = {
                {{207}, {207}, {207}},
                {{1}, {13}, {13}},
                {{3, 1, 5}, {1, 7, 5}, {3, 7, 5}},
                {{2, 13, 3, 3}, {1, 13, 1, 1}, {2, 13, 3, 3}},
                {{4, 1}, {1, 1}, {4, 1}}};
        for (int[][] s : shapes) {
            double[] a = rand(Ref.numelOf(s[0]), 7, 0.1, 2), bb = rand(Ref.numelOf(s[1]), 8, -2, 2);
            for (int i = 0; i < Math.min(3, bb.length); i++) bb[i] = a[Math.min(i, a.length - 1)];   // ties for EQ/GT/MAX
            for (BinaryOp op : BinaryOp.values()) {
                double[] bIn = op == BinaryOp.DIV ? shift(bb) : bb;
                double[] ref = Ref.binary(a, s[0], bIn, s[1], (x, y) -> binary(op, x, y));
                Buffer out = backend().allocate(DType.FLOAT32, ref.length);
                backend().binary(op, up(a), s[0], up(bIn), s[1], out, s[2]);
                check(ref, out, op + " " + java.util.Arrays.deepToString(s));
            }
        }
    }

    private static double[] shift(double[] b) {
        double[] o = b.clone();
        for (int i = 0; i < o.length; i++) o[i] = Math.abs(o[i]) + 0.5;
        return o;
    }

    // ---------------------------------------------------------------- reductions

    @Test void reductionsAndArgmax() {
        int[][] dims = {{207}, {3, 13}, {2, 5, 3, 7}, {1, 1, 1}};
        for (int[] d : dims) {
            double[] x = rand(Ref.numelOf(d), 31, -4, 4);
            for (int mask = 1; mask < (1 << d.length); mask++) {
                boolean[] red = new boolean[d.length];
                for (int i = 0; i < d.length; i++) red[i] = (mask & (1 << i)) != 0;
                for (ReduceOp op : ReduceOp.values()) {
                    double[] ref = Ref.reduce(x, d, red, op.ordinal());
                    Buffer out = backend().allocate(DType.FLOAT32, ref.length);
                    backend().reduce(op, up(x), d, red, out);
                    check(ref, out, op + " of " + java.util.Arrays.toString(d) + " over " + java.util.Arrays.toString(red));
                }
            }
            for (int axis = 0; axis < d.length; axis++) {
                long[] ref = argmax(x, d, axis);
                Buffer out = backend().allocate(DType.INT64, ref.length);
                backend().argmax(up(x), d, axis, out);
                assertArrayEquals(ref, backend().toLongs(out), "argmax axis " + axis + " of " + java.util.Arrays.toString(d));
            }
        }
        // Ties: the first maximum wins.
        Buffer out = backend().allocate(DType.INT64, 1);
        backend().argmax(up(new double[] {1, 5, 5, 2}), new int[] {4}, 0, out);
        assertEquals(1, backend().toLongs(out)[0], "argmax tie");
    }

    private static long[] argmax(double[] x, int[] d, int axis) {
        int outer = 1, inner = 1;
        for (int i = 0; i < axis; i++) outer *= d[i];
        for (int i = axis + 1; i < d.length; i++) inner *= d[i];
        long[] r = new long[outer * inner];
        for (int o = 0; o < outer; o++)
            for (int i = 0; i < inner; i++) {
                int best = 0;
                for (int j = 1; j < d[axis]; j++) if (x[(o * d[axis] + j) * inner + i] > x[(o * d[axis] + best) * inner + i]) best = j;
                r[o * inner + i] = best;
            }
        return r;
    }

    // ---------------------------------------------------------------- movement

    @Test void stridedCopiesAndAccumulates() {
        // A permute of (3, 5, 7) to (7, 3, 5) written at an offset, then the same added again.
        int[] dims = {3, 5, 7};
        double[] x = rand(105, 41, -1, 1);
        int[] src = {35, 7, 1}, dst = {5, 1, 15};
        double[] ref = new double[105 + 4];
        for (int a = 0; a < 3; a++) for (int b = 0; b < 5; b++) for (int c = 0; c < 7; c++) ref[4 + a * 5 + b + c * 15] = x[a * 35 + b * 7 + c];
        Buffer out = zeros(109);
        backend().strided(up(x), 0, src, out, 4, dst, dims, false);
        check(ref, out, "strided permute");
        backend().strided(up(x), 0, src, out, 4, dst, dims, true);
        for (int i = 0; i < ref.length; i++) ref[i] *= 2;
        check(ref, out, "strided accumulate");
        // Broadcast-expand: a source stride of 0.
        double[] row = rand(13, 42, -1, 1);
        double[] want = new double[3 * 13];
        for (int r = 0; r < 3; r++) System.arraycopy(row, 0, want, r * 13, 13);
        Buffer e = backend().allocate(DType.FLOAT32, 39);
        backend().strided(up(row), 0, new int[] {0, 1}, e, 0, new int[] {13, 1}, new int[] {3, 13}, false);
        check(want, e, "strided expand");
    }

    @Test void gathersAndScatters() {
        int outer = 3, axis = 7, inner = 5;
        double[] x = rand(outer * axis * inner, 51, -1, 1);
        long[] index = {6, 0, 3, 3, 1};
        double[] ref = new double[outer * index.length * inner];
        for (int o = 0; o < outer; o++) for (int j = 0; j < index.length; j++) for (int i = 0; i < inner; i++)
            ref[(o * index.length + j) * inner + i] = x[(o * axis + (int) index[j]) * inner + i];
        Buffer out = backend().allocate(DType.FLOAT32, ref.length);
        backend().indexSelect(up(x), outer, axis, inner, backend().fromLongs(index), index.length, out);
        check(ref, out, "indexSelect");
        double[] acc = rand(outer * axis * inner, 52, -1, 1), want = acc.clone();
        double[] src = rand(ref.length, 53, -1, 1);
        for (int o = 0; o < outer; o++) for (int j = 0; j < index.length; j++) for (int i = 0; i < inner; i++)
            want[(o * axis + (int) index[j]) * inner + i] += src[(o * index.length + j) * inner + i];
        Buffer dst = up(acc);
        backend().indexAdd(dst, outer, axis, inner, backend().fromLongs(index), index.length, up(src));
        check(want, dst, "indexAdd (repeated index 3)");

        long[] per = new long[outer * inner];
        for (int k = 0; k < per.length; k++) per[k] = (k * 5L) % axis;
        double[] t = new double[outer * inner];
        for (int o = 0; o < outer; o++) for (int i = 0; i < inner; i++) t[o * inner + i] = x[(o * axis + (int) per[o * inner + i]) * inner + i];
        Buffer tg = backend().allocate(DType.FLOAT32, t.length);
        backend().takeAlongAxis(up(x), outer, axis, inner, backend().fromLongs(per), tg);
        check(t, tg, "takeAlongAxis");
        double[] w2 = acc.clone();
        for (int o = 0; o < outer; o++) for (int i = 0; i < inner; i++) w2[(o * axis + (int) per[o * inner + i]) * inner + i] += t[o * inner + i];
        Buffer d2 = up(acc);
        backend().takeAlongAxisAdd(d2, outer, axis, inner, backend().fromLongs(per), up(t));
        check(w2, d2, "takeAlongAxisAdd");
    }

    // ---------------------------------------------------------------- dense maths

    @Test void gemmAllTranspositionsAndBatches() {
        int[][] mnk = {{1, 1, 1}, {13, 3, 7}, {5, 17, 33}};
        for (int[] s : mnk) {
            int m = s[0], n = s[1], k = s[2];
            for (int t = 0; t < 4; t++) {
                boolean ta = (t & 1) != 0, tb = (t & 2) != 0;
                for (int batch : new int[] {1, 3}) {
                    double[] a = rand(batch * m * k, 61, -1, 1), bm = rand(k * n, 62, -1, 1), c0 = rand(batch * m * n, 63, -1, 1);
                    double[] ref = new double[batch * m * n];
                    for (int q = 0; q < batch; q++)
                        for (int i = 0; i < m; i++)
                            for (int j = 0; j < n; j++) {
                                double acc = 0;
                                for (int p = 0; p < k; p++) {
                                    double av = ta ? a[q * m * k + p * m + i] : a[q * m * k + i * k + p];
                                    double bv = tb ? bm[j * k + p] : bm[p * n + j];
                                    acc += av * bv;
                                }
                                ref[(q * m + i) * n + j] = 0.5 * acc + 2 * c0[(q * m + i) * n + j];
                            }
                    Buffer c = up(c0);
                    // B shared across the batch (stride 0), as a convolution's weight is.
                    backend().gemm(ta, tb, batch, m, n, k, 0.5f, up(a), m * k, up(bm), 0, 2f, c);
                    check(ref, c, "gemm m=" + m + " n=" + n + " k=" + k + " transA=" + ta + " transB=" + tb + " batch " + batch);
                }
            }
        }
    }

    @Test void convolutionForwardAndBothBackwards() {
        ConvGeometry[] gs = {
                new ConvGeometry(2, 3, 7, 5, 4, 3, 3, 1, 1, 1, 1, 1),
                new ConvGeometry(1, 4, 9, 9, 6, 3, 3, 2, 2, 1, 1, 2),
                new ConvGeometry(3, 5, 6, 6, 5, 1, 1, 2, 2, 0, 0, 1),
                new ConvGeometry(2, 6, 5, 5, 6, 3, 3, 1, 1, 1, 1, 6)};
        for (ConvGeometry g : gs) {
            int stride = g.strideH(), pad = g.padH();
            double[] x = rand(g.n() * g.c() * g.h() * g.w(), 71, -1, 1), w = rand(g.k() * g.cg() * g.r() * g.s(), 72, -1, 1);
            double[] bias = rand(g.k(), 73, -1, 1);
            double[] ref = Ref.conv2d(x, w, bias, g.n(), g.c(), g.h(), g.w(), g.k(), g.r(), g.s(), stride, pad, g.groups());
            Buffer y = backend().allocate(DType.FLOAT32, ref.length);
            backend().conv2d(g, up(x), up(w), up(bias), y);
            check(ref, y, "conv2d " + g);
            // Backwards by the adjoint identity: <dy, conv(x, w)> is bilinear, so dx and dw are the gradients of it,
            // computed here by finite structure: dx[i] = sum over outputs of dy * w at the matching tap.
            double[] dy = rand(ref.length, 74, -1, 1);
            double[] dx = new double[x.length], dw = new double[w.length];
            for (int i = 0; i < x.length; i++) {
                double[] e = new double[x.length];
                e[i] = 1;
                double[] col = Ref.conv2d(e, w, null, g.n(), g.c(), g.h(), g.w(), g.k(), g.r(), g.s(), stride, pad, g.groups());
                for (int o = 0; o < col.length; o++) dx[i] += dy[o] * col[o];
            }
            for (int i = 0; i < w.length; i++) {
                double[] e = new double[w.length];
                e[i] = 1;
                double[] col = Ref.conv2d(x, e, null, g.n(), g.c(), g.h(), g.w(), g.k(), g.r(), g.s(), stride, pad, g.groups());
                for (int o = 0; o < col.length; o++) dw[i] += dy[o] * col[o];
            }
            Buffer gx = backend().allocate(DType.FLOAT32, x.length), gw = backend().allocate(DType.FLOAT32, w.length);
            backend().conv2dBackwardData(g, up(dy), up(w), gx);
            backend().conv2dBackwardWeight(g, up(x), up(dy), gw);
            check(dx, gx, "conv2dBackwardData " + g);
            check(dw, gw, "conv2dBackwardWeight " + g);
            // Added into a gradient that is there: pending + dx.
            double[] pending = rand(x.length, 75, -1, 1), sum = new double[x.length];
            for (int i = 0; i < x.length; i++) sum[i] = pending[i] + dx[i];
            Buffer acc = up(pending);
            backend().conv2dBackwardDataAdd(g, up(dy), up(w), acc);
            check(sum, acc, "conv2dBackwardDataAdd " + g);
        }
    }

    // ---------------------------------------------------------------- normalisation and pooling

    @Test void batchNormTrainEvalAndBackward() {
        int n = 3, c = 5, hw = 13;
        double eps = 1e-5, momentum = 0.1;
        double[] x = rand(n * c * hw, 81, -2, 3), gamma = rand(c, 82, 0.5, 1.5), beta = rand(c, 83, -1, 1);
        double[] rm0 = rand(c, 84, -1, 1), rv0 = rand(c, 85, 0.5, 2);
        Buffer y = backend().allocate(DType.FLOAT32, x.length), rm = up(rm0), rv = up(rv0);
        Buffer mean = backend().allocate(DType.FLOAT32, c), inv = backend().allocate(DType.FLOAT32, c);
        backend().batchNormTrain(up(x), n, c, hw, up(gamma), up(beta), rm, rv, (float) momentum, (float) eps, y, mean, inv);
        check(Ref.batchNorm(x, n, c, hw, gamma, beta, eps), y, "batchNormTrain y");
        double[] m = new double[c], v = new double[c], rmW = new double[c], rvW = new double[c], invW = new double[c];
        int cnt = n * hw;
        for (int ch = 0; ch < c; ch++) {
            for (int b = 0; b < n; b++) for (int j = 0; j < hw; j++) m[ch] += x[(b * c + ch) * hw + j];
            m[ch] /= cnt;
            for (int b = 0; b < n; b++) for (int j = 0; j < hw; j++) { double d = x[(b * c + ch) * hw + j] - m[ch]; v[ch] += d * d; }
            invW[ch] = 1 / Math.sqrt(v[ch] / cnt + eps);
            rmW[ch] = (1 - momentum) * rm0[ch] + momentum * m[ch];
            rvW[ch] = (1 - momentum) * rv0[ch] + momentum * v[ch] / (cnt - 1);
        }
        check(m, mean, "batchNormTrain saveMean");
        check(invW, inv, "batchNormTrain saveInvStd");
        check(rmW, rm, "batchNormTrain running mean");
        check(rvW, rv, "batchNormTrain running variance (unbiased)");

        double[] ye = new double[x.length];
        for (int b = 0; b < n; b++) for (int ch = 0; ch < c; ch++) for (int j = 0; j < hw; j++) {
            int i = (b * c + ch) * hw + j;
            ye[i] = (x[i] - rm0[ch]) / Math.sqrt(rv0[ch] + eps) * gamma[ch] + beta[ch];
        }
        Buffer yEval = backend().allocate(DType.FLOAT32, x.length);
        backend().batchNormEval(up(x), n, c, hw, up(gamma), up(beta), up(rm0), up(rv0), (float) eps, yEval);
        check(ye, yEval, "batchNormEval");

        // Backward: the textbook closed form with batch statistics.
        double[] dy = rand(x.length, 86, -1, 1), dx = new double[x.length], dg = new double[c], db = new double[c];
        for (int ch = 0; ch < c; ch++) {
            double sdy = 0, sdyx = 0;
            for (int b = 0; b < n; b++) for (int j = 0; j < hw; j++) {
                int i = (b * c + ch) * hw + j;
                double xh = (x[i] - m[ch]) * invW[ch];
                sdy += dy[i];
                sdyx += dy[i] * xh;
            }
            dg[ch] = sdyx;
            db[ch] = sdy;
            for (int b = 0; b < n; b++) for (int j = 0; j < hw; j++) {
                int i = (b * c + ch) * hw + j;
                double xh = (x[i] - m[ch]) * invW[ch];
                dx[i] = gamma[ch] * invW[ch] / cnt * (cnt * dy[i] - sdy - xh * sdyx);
            }
        }
        Buffer gx = backend().allocate(DType.FLOAT32, x.length), gg = backend().allocate(DType.FLOAT32, c), gb = backend().allocate(DType.FLOAT32, c);
        backend().batchNormBackward(up(x), up(dy), n, c, hw, up(gamma), mean, inv, gx, gg, gb);
        check(dx, gx, "batchNormBackward dx");
        check(dg, gg, "batchNormBackward dGamma");
        check(db, gb, "batchNormBackward dBeta");
    }

    /**
     * Batch norm fused with its epilogue, y = relu?(bn(x) + residual?), in all four forms, against double
     * references; backward with the mask read from the forward's own output (ReLU's kink is where float and double
     * may disagree), with and without the masked gradient written out, and without dx; and, with a ReLU and no
     * residual, {@code batchNormReluBackward}.
     */
    @Test void batchNormActTrainAndBackward() {
        int n = 3, c = 5, hw = 13, len = n * c * hw, cnt = n * hw;
        double eps = 1e-5;
        double[] x = rand(len, 91, -2, 3), gamma = rand(c, 92, 0.5, 1.5), beta = rand(c, 93, -1, 1), r = rand(len, 94, -1, 1);
        double[] bn = Ref.batchNorm(x, n, c, hw, gamma, beta, eps);
        double[] m = new double[c], invW = new double[c];
        for (int ch = 0; ch < c; ch++) {
            double v = 0;
            for (int b = 0; b < n; b++) for (int j = 0; j < hw; j++) m[ch] += x[(b * c + ch) * hw + j];
            m[ch] /= cnt;
            for (int b = 0; b < n; b++) for (int j = 0; j < hw; j++) { double d = x[(b * c + ch) * hw + j] - m[ch]; v += d * d; }
            invW[ch] = 1 / Math.sqrt(v / cnt + eps);
        }
        double[] dy = rand(len, 95, -1, 1);
        for (boolean withResidual : new boolean[] {false, true}) {
            for (boolean relu : new boolean[] {false, true}) {
                String form = "batchNormAct (residual " + withResidual + ", relu " + relu + ")";
                double[] want = new double[len];
                for (int i = 0; i < len; i++) {
                    want[i] = bn[i] + (withResidual ? r[i] : 0);
                    if (relu) want[i] = Math.max(want[i], 0);
                }
                Buffer y = backend().allocate(DType.FLOAT32, len), rm = zeros(c), rv = up(rand(c, 96, 0.5, 2));
                Buffer mean = backend().allocate(DType.FLOAT32, c), inv = backend().allocate(DType.FLOAT32, c);
                backend().batchNormActTrain(up(x), n, c, hw, up(gamma), up(beta), rm, rv, 0.1f, (float) eps,
                        withResidual ? up(r) : null, relu, y, mean, inv);
                check(want, y, form + " y");
                check(m, mean, form + " saveMean");
                check(invW, inv, form + " saveInvStd");

                double[] rm0 = rand(c, 97, -1, 1), rv0 = rand(c, 98, 0.5, 2), wantEval = new double[len];
                for (int i = 0; i < len; i++) {
                    int ch = (i / hw) % c;
                    wantEval[i] = (x[i] - rm0[ch]) / Math.sqrt(rv0[ch] + eps) * gamma[ch] + beta[ch] + (withResidual ? r[i] : 0);
                    if (relu) wantEval[i] = Math.max(wantEval[i], 0);
                }
                Buffer yEval = backend().allocate(DType.FLOAT32, len);
                backend().batchNormActEval(up(x), n, c, hw, up(gamma), up(beta), up(rm0), up(rv0), (float) eps, withResidual ? up(r) : null, relu, yEval);
                check(wantEval, yEval, form + " eval");

                float[] yf = backend().toFloats(y);
                double[] g = new double[len];
                for (int i = 0; i < len; i++) g[i] = !relu || yf[i] > 0 ? dy[i] : 0;
                double[] dx = new double[len], dg = new double[c], db = new double[c];
                for (int ch = 0; ch < c; ch++) {
                    double sdy = 0, sdyx = 0;
                    for (int b = 0; b < n; b++) for (int j = 0; j < hw; j++) {
                        int i = (b * c + ch) * hw + j;
                        sdy += g[i];
                        sdyx += g[i] * (x[i] - m[ch]) * invW[ch];
                    }
                    dg[ch] = sdyx;
                    db[ch] = sdy;
                    for (int b = 0; b < n; b++) for (int j = 0; j < hw; j++) {
                        int i = (b * c + ch) * hw + j;
                        dx[i] = gamma[ch] * invW[ch] / cnt * (cnt * g[i] - sdy - (x[i] - m[ch]) * invW[ch] * sdyx);
                    }
                }
                for (boolean writeMasked : relu ? new boolean[] {false, true} : new boolean[] {false}) {
                    for (boolean withDx : new boolean[] {true, false}) {
                        String what = form + (writeMasked ? " writing the masked gradient" : "") + (withDx ? "" : " without dx");
                        Buffer gx = withDx ? backend().allocate(DType.FLOAT32, len) : null, gm = writeMasked ? backend().allocate(DType.FLOAT32, len) : null;
                        Buffer gg = backend().allocate(DType.FLOAT32, c), gb = backend().allocate(DType.FLOAT32, c);
                        backend().batchNormActBackward(up(x), up(dy), relu ? y : null, n, c, hw, up(gamma), mean, inv, gm, gx, gg, gb);
                        if (withDx) check(dx, gx, what + " dx");
                        check(dg, gg, what + " dGamma");
                        check(db, gb, what + " dBeta");
                        if (writeMasked) check(g, gm, what + " masked gradient");
                    }
                }
                if (relu && !withResidual) {
                    // The ReLU's mask may be recomputed from x, gamma and beta instead of read from y.
                    for (boolean withDx : new boolean[] {true, false}) {
                        String what = "batchNormReluBackward" + (withDx ? "" : " without dx");
                        Buffer gx = withDx ? backend().allocate(DType.FLOAT32, len) : null;
                        Buffer gg = backend().allocate(DType.FLOAT32, c), gb = backend().allocate(DType.FLOAT32, c);
                        backend().batchNormReluBackward(up(x), up(dy), y, n, c, hw, up(gamma), up(beta), mean, inv, gx, gg, gb);
                        if (withDx) check(dx, gx, what + " dx");
                        check(dg, gg, what + " dGamma");
                        check(db, gb, what + " dBeta");
                    }
                }
            }
        }
    }

    @Test void maxAndAdaptiveAveragePooling() {
        int planes = 5, h = 7, w = 7, k = 3, s = 2, p = 1;
        int oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1;
        double[] x = rand(planes * h * w, 91, -1, 1);
        double[] ref = Ref.maxPool(x, planes, h, w, k, s, p);
        Buffer y = backend().allocate(DType.FLOAT32, ref.length), am = backend().allocate(DType.INT32, ref.length);
        backend().maxPool2d(up(x), planes, h, w, k, k, s, s, p, p, oh, ow, y, am);
        check(ref, y, "maxPool2d");
        double[] dy = rand(ref.length, 92, -1, 1), dx = new double[x.length];
        long[] idx = backend().toLongs(am);
        for (int pl = 0; pl < planes; pl++) for (int o = 0; o < oh * ow; o++) {
            int i = (int) idx[pl * oh * ow + o];
            assertEquals(ref[pl * oh * ow + o], x[pl * h * w + i], 0.0, "argmax points at the maximum");
            dx[pl * h * w + i] += dy[pl * oh * ow + o];
        }
        Buffer gx = backend().allocate(DType.FLOAT32, x.length);
        backend().maxPool2dBackward(up(dy), am, planes, h, w, oh, ow, gx);
        check(dx, gx, "maxPool2dBackward");

        for (int[] o : new int[][] {{1, 1}, {3, 2}, {7, 7}}) {
            double[] a = Ref.adaptiveAvgPool(x, planes, h, w, o[0], o[1]);
            Buffer ay = backend().allocate(DType.FLOAT32, a.length);
            backend().adaptiveAvgPool2d(up(x), planes, h, w, o[0], o[1], ay);
            check(a, ay, "adaptiveAvgPool2d to " + o[0] + "x" + o[1]);
            // Backward: each output's gradient spread evenly over its (possibly overlapping) bin.
            double[] g = rand(a.length, 93, -1, 1), gxr = new double[x.length];
            for (int pl = 0; pl < planes; pl++) for (int i = 0; i < o[0]; i++) for (int j = 0; j < o[1]; j++) {
                int h0 = (int) Math.floor((double) i * h / o[0]), h1 = (int) Math.ceil((double) (i + 1) * h / o[0]);
                int w0 = (int) Math.floor((double) j * w / o[1]), w1 = (int) Math.ceil((double) (j + 1) * w / o[1]);
                double share = g[(pl * o[0] + i) * o[1] + j] / ((h1 - h0) * (w1 - w0));
                for (int aa = h0; aa < h1; aa++) for (int bb = w0; bb < w1; bb++) gxr[(pl * h + aa) * w + bb] += share;
            }
            Buffer ag = backend().allocate(DType.FLOAT32, x.length);
            backend().adaptiveAvgPool2dBackward(up(g), planes, h, w, o[0], o[1], ag);
            check(gxr, ag, "adaptiveAvgPool2dBackward from " + o[0] + "x" + o[1]);
        }
    }

    @Test void softmaxAndLogSoftmaxRows() {
        for (int[] rc : new int[][] {{1, 1}, {3, 10}, {13, 207}}) {
            double[] x = rand(rc[0] * rc[1], 101, -20, 20);
            for (boolean log : new boolean[] {false, true}) {
                Buffer y = backend().allocate(DType.FLOAT32, x.length);
                backend().softmax(up(x), rc[0], rc[1], log, y);
                check(Ref.softmaxRows(x, rc[0], rc[1], log), y, (log ? "log-softmax " : "softmax ") + rc[0] + "x" + rc[1]);
            }
        }
    }

    // ---------------------------------------------------------------- DSP: packed multi-branch convolution

    /** A branch description in doubles, for the reference; the backend gets the same values as buffers. */
    private record RefBranch(int[] in, int[] out, double[] w, double[] scale, double[] shift, boolean relu) {}

    private BranchConv plan(int cin, int cout, int k, int stride, int pad, java.util.List<RefBranch> bs, double[] outShift, boolean outRelu) {
        java.util.List<BranchConv.Branch> list = new java.util.ArrayList<>();
        for (RefBranch b : bs) list.add(new BranchConv.Branch(b.in(), b.out(), up(b.w()), up(b.scale()), up(b.shift()), b.relu()));
        return new BranchConv(cin, cout, k, stride, pad, list, outShift == null ? null : up(outShift), outRelu);
    }

    /** The contract of {@link Backend#branchConv2d}, literally: gather, convolve, scale and shift, ReLU, write or add, output stage. */
    private static double[] refBranchConv(double[] x, int n, int cin, int h, int w, int k, int stride, int pad, java.util.List<RefBranch> bs,
                                          double[] y0, int cout, boolean accumulate, double[] outShift, boolean outRelu) {
        int oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
        double[] y = y0.clone();
        for (RefBranch b : bs) {
            int ci = b.in().length, co = b.out().length;
            double[] xg = new double[n * ci * h * w];
            for (int img = 0; img < n; img++) for (int i = 0; i < ci; i++)
                System.arraycopy(x, (img * cin + b.in()[i]) * h * w, xg, (img * ci + i) * h * w, h * w);
            double[] t = Ref.conv2d(xg, b.w(), null, n, ci, h, w, co, k, k, stride, pad, 1);
            for (int img = 0; img < n; img++) for (int j = 0; j < co; j++) for (int q = 0; q < oh * ow; q++) {
                double v = b.scale()[j] * t[(img * co + j) * oh * ow + q] + b.shift()[j];
                if (b.relu()) v = Math.max(v, 0);
                int at = (img * cout + b.out()[j]) * oh * ow + q;
                y[at] = accumulate ? y[at] + v : v;
            }
        }
        if (outShift != null || outRelu) {
            for (int img = 0; img < n; img++) for (int c = 0; c < cout; c++) for (int q = 0; q < oh * ow; q++) {
                int at = (img * cout + c) * oh * ow + q;
                double v = y[at] + (outShift == null ? 0 : outShift[c]);
                y[at] = outRelu ? Math.max(v, 0) : v;
            }
        }
        return y;
    }

    private static RefBranch branch(int[] in, int[] out, int k, long seed, boolean relu) {
        return new RefBranch(in, out, rand(out.length * in.length * k * k, seed, -0.5, 0.5), rand(out.length, seed + 1, 0.5, 1.5),
                rand(out.length, seed + 2, -0.3, 0.3), relu);
    }

    @Test void branchConvolutionOverwritingAccumulatingAndWithAnOutputStage() {
        int n = 2, cin = 7, h = 9, w = 6, cout = 5;
        double[] x = rand(n * cin * h * w, 131, -1, 1);
        for (int[] geo : new int[][] {{3, 1, 1}, {3, 2, 1}, {1, 2, 0}}) {
            int k = geo[0], stride = geo[1], pad = geo[2];
            int oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
            // Two branches over overlapping, unordered input channels, writing disjoint output channels; channel 2 is
            // written by no branch (left untouched when overwriting).
            java.util.List<RefBranch> bs = java.util.List.of(branch(new int[] {6, 0, 3}, new int[] {4, 0}, k, 140, true),
                    branch(new int[] {3, 5}, new int[] {1, 3}, k, 150, false));
            double[] y0 = rand(n * cout * oh * ow, 160, -1, 1);
            for (boolean acc : new boolean[] {false, true}) {
                double[] ref = refBranchConv(x, n, cin, h, w, k, stride, pad, bs, y0, cout, acc, null, false);
                Buffer y = up(y0);
                backend().branchConv2d(plan(cin, cout, k, stride, pad, bs, null, false), up(x), n, h, w, y, acc);
                check(ref, y, "branchConv2d k=" + k + " stride=" + stride + (acc ? " accumulate" : " overwrite"));
            }
            double[] outShift = rand(cout, 170, -0.5, 0.5);
            double[] ref = refBranchConv(x, n, cin, h, w, k, stride, pad, bs, y0, cout, true, outShift, true);
            Buffer y = up(y0);
            backend().branchConv2d(plan(cin, cout, k, stride, pad, bs, outShift, true), up(x), n, h, w, y, true);
            check(ref, y, "branchConv2d k=" + k + " stride=" + stride + " with output shift and ReLU");
        }
    }

    @Test void branchConvolutionPairAsAPackedBlock() {
        // conv_a (2 branches, 6 -> 4 concatenated) then conv_b (4 -> 6, adding into y, output shift and ReLU), into a
        // separate y and in place into the block's own input, as the identity residual does.
        int n = 2, c = 6, h = 7, w = 7;
        double[] x = rand(n * c * h * w, 181, -1, 1);
        java.util.List<RefBranch> a = java.util.List.of(branch(new int[] {0, 2, 4}, new int[] {0, 1}, 3, 190, true),
                branch(new int[] {1, 5}, new int[] {2, 3}, 3, 200, true));
        java.util.List<RefBranch> b = java.util.List.of(branch(new int[] {0, 1}, new int[] {5, 0, 2}, 3, 210, false),
                branch(new int[] {3, 2}, new int[] {1}, 3, 220, false));
        double[] outShift = rand(c, 230, -0.5, 0.5);
        double[] t = refBranchConv(x, n, c, h, w, 3, 1, 1, a, new double[n * 4 * h * w], 4, false, null, false);
        double[] ref = refBranchConv(t, n, 4, h, w, 3, 1, 1, b, x, c, true, outShift, true);
        Buffer y = up(x);
        backend().branchConv2dPair(plan(c, 4, 3, 1, 1, a, null, false), plan(4, c, 3, 1, 1, b, outShift, true), up(x), n, h, w, y, true);
        check(ref, y, "branchConv2dPair into another buffer");
        Buffer same = up(x);
        backend().branchConv2dPair(plan(c, 4, 3, 1, 1, a, null, false), plan(4, c, 3, 1, 1, b, outShift, true), same, n, h, w, same, true);
        check(ref, same, "branchConv2dPair in place");
    }

    // ---------------------------------------------------------------- DSP: the group regulariser

    @Test void groupRegulariserAndItsSecondOrderTerm() {
        int groups = 3, filters = 5, channels = 4, kk = 9;
        double[] w = rand(filters * channels * kk, 241, -1, 1), p = rand(groups * filters, 242, 0.05, 1), d = rand(w.length, 243, -0.1, 0.1);
        for (int c = 0; c < channels; c++) for (int q = 0; q < kk; q++) w[(1 * channels + c) * kk + q] = 0;   // an all-zero filter
        double scale = 0.37;
        double[] penalty = new double[w.length], dRdp = new double[groups * filters];
        int row = Backend.groupPiecesRowLength(filters, channels);
        double[] pieces = new double[groups * row], pgrad0 = rand(groups * filters, 244, -1, 1), pgrad = pgrad0.clone();
        for (int g = 0; g < groups; g++) {
            double[] L = new double[channels];
            double sumL = 0, S = 0;
            for (int c = 0; c < channels; c++) {
                double acc = 0;
                for (int f = 0; f < filters; f++) acc += p[g * filters + f] * p[g * filters + f] * norm2(w, f, c, channels, kk);
                L[c] = Math.sqrt(acc);
                sumL += L[c];
            }
            for (int f = 0; f < filters; f++) S += Math.sqrt(p[g * filters + f]);
            double sg = S * S;
            pieces[g * row] = sg;
            pieces[g * row + 1] = sumL;
            for (int f = 0; f < filters; f++) {
                double pn = p[g * filters + f];
                double dsdp = Math.sqrt(pn) * sg / (pn * S + 1e-8), dLdp = 0, a2 = 0, a1 = 0, a3 = 0;
                for (int c = 0; c < channels; c++) {
                    double l = L[c] + 1e-8, q = 0;
                    dLdp += pn * norm2(w, f, c, channels, kk) / l;
                    for (int t = 0; t < kk; t++) {
                        int i = (f * channels + c) * kk + t;
                        penalty[i] += scale * sg * pn * pn * w[i] / l;
                        q += w[i] * d[i];
                    }
                    a2 += pn * pn * q / l;
                    a1 += pn * q / l;
                    a3 += pn * pn * q / (l * l);
                }
                dRdp[g * filters + f] = sg * dLdp + sumL * dsdp;
                pieces[g * row + 2 + f] = dsdp;
                pieces[g * row + 2 + filters + f] = dLdp;
                pgrad[g * filters + f] += dsdp * a2 + sg * (2 * a1 - dLdp * a3);
            }
            for (int c = 0; c < channels; c++) pieces[g * row + 2 + 2 * filters + c] = L[c];
        }
        Buffer pen = backend().allocate(DType.FLOAT32, w.length), dr = backend().allocate(DType.FLOAT32, dRdp.length);
        Buffer pc = backend().allocate(DType.FLOAT32, pieces.length);
        backend().groupRegularizer(up(w), up(p), groups, filters, channels, kk, (float) scale, pen, dr, false, pc);
        check(penalty, pen, "groupRegularizer penalty");
        check(dRdp, dr, "groupRegularizer dR/dp");
        check(pieces, pc, "groupRegularizer pieces");
        Buffer acc = up(pgrad0);
        backend().groupRegularizer(up(w), up(p), groups, filters, channels, kk, (float) scale, pen, acc, true, null);
        double[] accRef = pgrad0.clone();
        for (int i = 0; i < accRef.length; i++) accRef[i] += dRdp[i];
        check(accRef, acc, "groupRegularizer dR/dp accumulated");
        Buffer pg = up(pgrad0);
        backend().groupSecondOrderAdd(up(w), up(d), up(p), pc, groups, filters, channels, kk, pg);
        check(pgrad, pg, "groupSecondOrderAdd");
    }

    private static double norm2(double[] w, int f, int c, int channels, int kk) {
        double s = 0;
        for (int t = 0; t < kk; t++) { double v = w[(f * channels + c) * kk + t]; s += v * v; }
        return s;
    }

    // ---------------------------------------------------------------- optimisers

    @Test void sgdStepMatchesPyTorchsFormula() {
        for (int n : SIZES) {
            double[] p = rand(n, 111, -1, 1), g = rand(n, 112, -1, 1), buf = rand(n, 113, -1, 1);
            for (boolean nesterov : new boolean[] {false, true})
                for (boolean first : new boolean[] {true, false}) {
                    double lr = 0.1, mom = 0.9, damp = nesterov ? 0 : 0.1, wd = 5e-4;
                    double[] pw = p.clone(), bw = buf.clone();
                    for (int i = 0; i < n; i++) {
                        double gi = g[i] + wd * p[i];
                        bw[i] = first ? gi : mom * buf[i] + (1 - damp) * gi;
                        double step = nesterov ? gi + mom * bw[i] : bw[i];
                        pw[i] = p[i] - lr * step;
                    }
                    Buffer pb = up(p), bb = up(buf);
                    backend().sgdStep(pb, up(g), bb, (float) lr, (float) mom, (float) damp, (float) wd, nesterov, first);
                    check(pw, pb, "sgdStep param n=" + n + " nesterov=" + nesterov + " first=" + first);
                    check(bw, bb, "sgdStep momentum n=" + n + " nesterov=" + nesterov + " first=" + first);
                }
        }
    }

    @Test void adamStepMatchesPyTorchsFormula() {
        for (int n : SIZES) {
            double[] p = rand(n, 121, -1, 1), g = rand(n, 122, -1, 1), m = rand(n, 123, -0.1, 0.1), v = rand(n, 124, 0, 0.01);
            double lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 1e-4;
            int t = 3;
            double[] pw = new double[n], mw = new double[n], vw = new double[n];
            for (int i = 0; i < n; i++) {
                double gi = g[i] + wd * p[i];
                mw[i] = b1 * m[i] + (1 - b1) * gi;
                vw[i] = b2 * v[i] + (1 - b2) * gi * gi;
                double mh = mw[i] / (1 - Math.pow(b1, t)), vh = vw[i] / (1 - Math.pow(b2, t));
                pw[i] = p[i] - lr * mh / (Math.sqrt(vh) + eps);
            }
            Buffer pb = up(p), mb = up(m), vb = up(v);
            backend().adamStep(pb, up(g), mb, vb, (float) lr, (float) b1, (float) b2, (float) eps, (float) wd, t);
            check(pw, pb, "adamStep param n=" + n);
            check(mw, mb, "adamStep m n=" + n);
            check(vw, vb, "adamStep v n=" + n);
        }
    }
}
