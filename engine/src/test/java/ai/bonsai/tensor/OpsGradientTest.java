package ai.bonsai.tensor;

import ai.bonsai.nn.Functional;
import ai.bonsai.testing.GradCheck;
import ai.bonsai.testing.GradCheck.Input;
import ai.bonsai.testing.Ref;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.function.DoubleBinaryOperator;
import java.util.function.DoubleUnaryOperator;
import java.util.function.Function;

/**
 * Every op, forward and backward, against the double-precision references in {@link Ref}, on awkward sizes.
 */
class OpsGradientTest {
    static final double ATOL = 2e-4, RTOL = 2e-4;

    static void check(String name, Input[] in, Function<Tensor[], Tensor> op, Function<double[][], double[]> ref) {
        GradCheck.check(name, name.hashCode(), in, op, ref, ATOL, RTOL);
    }

    static double[] map(double[] x, DoubleUnaryOperator f) {
        double[] y = new double[x.length];
        for (int i = 0; i < x.length; i++) y[i] = f.applyAsDouble(x[i]);
        return y;
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 3, 13, 207})
    void unaryOps(int n) {
        Input pos = Input.of(n, 2).range(0.9f, 1.1f);          // in [0.2, 2]: log, sqrt, reciprocal stay smooth
        Input any = Input.of(n, 2).range(2f, 0f);
        check("neg", new Input[] {any}, t -> t[0].neg(), x -> map(x[0], v -> -v));
        check("exp", new Input[] {any}, t -> t[0].exp(), x -> map(x[0], Math::exp));
        check("log", new Input[] {pos}, t -> t[0].log(), x -> map(x[0], Math::log));
        check("sqrt", new Input[] {pos}, t -> t[0].sqrt(), x -> map(x[0], Math::sqrt));
        check("reciprocal", new Input[] {pos}, t -> t[0].reciprocal(), x -> map(x[0], v -> 1 / v));
        check("square", new Input[] {any}, t -> t[0].square(), x -> map(x[0], v -> v * v));
        check("sigmoid", new Input[] {any}, t -> t[0].sigmoid(), x -> map(x[0], v -> 1 / (1 + Math.exp(-v))));
        check("tanh", new Input[] {any}, t -> t[0].tanh(), x -> map(x[0], Math::tanh));
        check("pow", new Input[] {pos}, t -> t[0].pow(1.5f), x -> map(x[0], v -> Math.pow(v, 1.5)));
        check("affine", new Input[] {any}, t -> t[0].affine(-1.5f, 0.25f), x -> map(x[0], v -> -1.5 * v + 0.25));
        // relu and abs: keep inputs away from the kink at 0, where central differences are meaningless.
        Input offZero = Input.of(n, 2).range(0.8f, 1.2f);
        check("relu", new Input[] {offZero}, t -> t[0].mul(-1f).relu().add(t[0].relu()),
                x -> map(x[0], v -> Math.max(-v, 0) + Math.max(v, 0)));
        check("abs", new Input[] {offZero}, t -> t[0].neg().abs(), x -> map(x[0], Math::abs));
    }

    static void binary(String name, int[] ad, int[] bd, java.util.function.BinaryOperator<Tensor> op, DoubleBinaryOperator f, boolean positiveB) {
        Input b = positiveB ? Input.of(bd).range(0.9f, 1.1f) : Input.of(bd);
        check(name + java.util.Arrays.toString(ad) + java.util.Arrays.toString(bd), new Input[] {Input.of(ad), b},
                t -> op.apply(t[0], t[1]), x -> Ref.binary(x[0], ad, x[1], bd, f));
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 3, 13, 207})
    void broadcastingBinaryOps(int n) {
        int[][][] pairs = {
                {{n, 3}, {n, 3}}, {{n, 3}, {3}}, {{n, 1}, {1, 3}}, {{2, n, 3}, {n, 1}}, {{1}, {n, 2}}, {{2, 3, 4, n}, {1, 3, 1, 1}}};
        for (int[][] p : pairs) {
            binary("add", p[0], p[1], Tensor::add, Double::sum, false);
            binary("sub", p[0], p[1], Tensor::sub, (a, b) -> a - b, false);
            binary("mul", p[0], p[1], Tensor::mul, (a, b) -> a * b, false);
            binary("div", p[0], p[1], Tensor::div, (a, b) -> a / b, true);
        }
        // maximum/minimum: values are distinct almost surely, so the gradient is well defined.
        binary("maximum", new int[] {n, 3}, new int[] {3}, Tensor::maximum, Math::max, false);
        binary("minimum", new int[] {n, 3}, new int[] {n, 1}, Tensor::minimum, Math::min, false);
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 3, 13, 207})
    void reductions(int n) {
        int[] d = {3, n, 2};
        boolean[][] sets = {{true, false, false}, {false, true, false}, {false, false, true}, {true, false, true}, {true, true, true}};
        for (boolean[] red : sets) {
            int[] axes = java.util.stream.IntStream.range(0, 3).filter(i -> red[i]).toArray();
            String tag = java.util.Arrays.toString(axes);
            check("sum" + tag, new Input[] {Input.of(d)}, t -> t[0].sum(axes, true), x -> Ref.reduce(x[0], d, red, 0));
            check("mean" + tag, new Input[] {Input.of(d)}, t -> t[0].mean(axes, false), x -> Ref.reduce(x[0], d, red, 1));
            check("max" + tag, new Input[] {Input.of(d)}, t -> t[0].max(axes, true), x -> Ref.reduce(x[0], d, red, 2));
        }
    }

    @Test
    void argmaxPicksTheFirstMaximum() {
        Tensor t = Tensor.of(new float[] {1, 5, 5, 0, 2, -1, 7, 7}, 2, 4);
        org.junit.jupiter.api.Assertions.assertArrayEquals(new long[] {1, 2}, t.argmax(1).toLongArray());
        org.junit.jupiter.api.Assertions.assertArrayEquals(new long[] {1, 0, 1, 1}, t.argmax(0).toLongArray());
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 3, 13, 207})
    void movementOps(int n) {
        int[] d = {2, n, 3};
        check("permute", new Input[] {Input.of(d)}, t -> t[0].permute(2, 0, 1), x -> Ref.permute(x[0], d, new int[] {2, 0, 1}));
        check("transpose", new Input[] {Input.of(d)}, t -> t[0].transpose(0, 1), x -> Ref.permute(x[0], d, new int[] {1, 0, 2}));
        check("reshape", new Input[] {Input.of(d)}, t -> t[0].reshape(-1, 2).mul(t[0].reshape(-1, 2)), x -> map(x[0], v -> v * v));
        int start = n / 3, step = 2;
        check("slice", new Input[] {Input.of(d)}, t -> t[0].slice(1, start, n, step), x -> {
            int cnt = (n - start + step - 1) / step;
            double[] o = new double[2 * cnt * 3];
            for (int a = 0; a < 2; a++) for (int b = 0; b < cnt; b++) for (int c = 0; c < 3; c++)
                o[(a * cnt + b) * 3 + c] = x[0][(a * n + start + b * step) * 3 + c];
            return o;
        });
        check("cat", new Input[] {Input.of(2, n, 3), Input.of(2, 2, 3)}, t -> Tensor.cat(1, t[0], t[1]), x -> {
            double[] o = new double[2 * (n + 2) * 3];
            for (int a = 0; a < 2; a++) {
                System.arraycopy(x[0], a * n * 3, o, a * (n + 2) * 3, n * 3);
                System.arraycopy(x[1], a * 2 * 3, o, a * (n + 2) * 3 + n * 3, 2 * 3);
            }
            return o;
        });
        check("expand", new Input[] {Input.of(1, n, 1)}, t -> t[0].expand(2, n, 3),
                x -> Ref.binary(x[0], new int[] {1, n, 1}, new double[6 * n], new int[] {2, n, 3}, Double::sum));
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 3, 13, 207})
    void matMul(int n) {
        check("matMul2d", new Input[] {Input.of(n, 5), Input.of(5, 3)}, t -> t[0].matMul(t[1]), x -> Ref.matmul(x[0], x[1], 1, n, 5, 3, false));
        check("matMul2dBig", new Input[] {Input.of(3, n), Input.of(n, 4)}, t -> t[0].matMul(t[1]), x -> Ref.matmul(x[0], x[1], 1, 3, n, 4, false));
        check("matMulBatched", new Input[] {Input.of(2, n, 4), Input.of(2, 4, 3)}, t -> t[0].matMul(t[1]), x -> Ref.matmul(x[0], x[1], 2, n, 4, 3, false));
        check("matMulShared", new Input[] {Input.of(3, 2, n), Input.of(n, 5)}, t -> t[0].matMul(t[1]), x -> Ref.matmul(x[0], x[1], 3, 2, n, 5, true));
        check("linear", new Input[] {Input.of(n, 6), Input.of(4, 6), Input.of(4)}, t -> Functional.linear(t[0], t[1], t[2]), x -> {
            double[] wt = Ref.permute(x[1], new int[] {4, 6}, new int[] {1, 0});
            double[] y = Ref.matmul(x[0], wt, 1, n, 6, 4, false);
            return Ref.binary(y, new int[] {n, 4}, x[2], new int[] {4}, Double::sum);
        });
    }

    /** n, c, h, w, k, r, stride, pad, groups, bias (1/0). */
    static final int[][] CONVS = {
            {2, 3, 7, 5, 4, 3, 1, 1, 1, 1}, {1, 4, 6, 6, 6, 3, 2, 1, 2, 0}, {3, 2, 5, 5, 3, 1, 1, 0, 1, 1},
            {2, 4, 9, 7, 4, 3, 2, 0, 4, 1}, {1, 1, 13, 13, 1, 5, 3, 2, 1, 0}, {2, 6, 4, 4, 3, 1, 2, 0, 3, 0}};

    @Test
    void conv2dAgainstReference() {
        for (int[] p : CONVS) {
            int n = p[0], c = p[1], h = p[2], w = p[3], k = p[4], r = p[5], st = p[6], pad = p[7], g = p[8];
            boolean bias = p[9] == 1;
            Input[] in = bias
                    ? new Input[] {Input.of(n, c, h, w), Input.of(k, c / g, r, r), Input.of(k)}
                    : new Input[] {Input.of(n, c, h, w), Input.of(k, c / g, r, r)};
            check("conv2d" + java.util.Arrays.toString(p), in,
                    t -> Functional.conv2d(t[0], t[1], bias ? t[2] : null, st, pad, g),
                    x -> Ref.conv2d(x[0], x[1], bias ? x[2] : null, n, c, h, w, k, r, r, st, pad, g));
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 3, 13})
    void batchNormTraining(int n) {
        int c = 3, hw = 5;
        check("batchNorm", new Input[] {Input.of(n + 1, c, 1, hw).range(2f, 1f), Input.of(c).range(0.5f, 1f), Input.of(c)},
                t -> Functional.batchNorm(t[0], Tensor.zeros(c), Tensor.ones(c), t[1], t[2], true, 0.1f, 1e-5f),
                x -> Ref.batchNorm(x[0], n + 1, c, hw, x[1], x[2], 1e-5));
    }

    /** relu(batchNorm(x) + residual) as one op, and the bn + relu form, against the double composition. */
    @ParameterizedTest
    @ValueSource(ints = {1, 3, 13})
    void batchNormActTraining(int n) {
        int c = 3, hw = 5, len = (n + 1) * c * hw;
        check("batchNormAct residual relu", new Input[] {Input.of(n + 1, c, 1, hw).range(2f, 1f), Input.of(c).range(0.5f, 1f), Input.of(c), Input.of(n + 1, c, 1, hw)},
                t -> Functional.batchNormAct(t[0], Tensor.zeros(c), Tensor.ones(c), t[1], t[2], true, 0.1f, 1e-5f, t[3], true),
                x -> {
                    double[] y = Ref.batchNorm(x[0], n + 1, c, hw, x[1], x[2], 1e-5);
                    for (int i = 0; i < len; i++) y[i] = Math.max(y[i] + x[3][i], 0);
                    return y;
                });
        check("batchNormAct relu", new Input[] {Input.of(n + 1, c, 1, hw).range(2f, 1f), Input.of(c).range(0.5f, 1f), Input.of(c)},
                t -> Functional.batchNormAct(t[0], Tensor.zeros(c), Tensor.ones(c), t[1], t[2], true, 0.1f, 1e-5f, null, true),
                x -> map(Ref.batchNorm(x[0], n + 1, c, hw, x[1], x[2], 1e-5), v -> Math.max(v, 0)));
    }

    @Test
    void batchNormEval() {
        int c = 4;
        Tensor rm = Tensor.of(new float[] {0.5f, -1f, 2f, 0f}, c), rv = Tensor.of(new float[] {1f, 4f, 0.25f, 2f}, c);
        check("batchNormEval", new Input[] {Input.of(3, c, 2, 3), Input.of(c), Input.of(c)},
                t -> Functional.batchNorm(t[0], rm, rv, t[1], t[2], false, 0.1f, 1e-5f), x -> {
                    double[] m = GradCheck.toDouble(rm.toFloatArray()), v = GradCheck.toDouble(rv.toFloatArray());
                    double[] y = new double[x[0].length];
                    for (int i = 0; i < y.length; i++) {
                        int ch = (i / 6) % c;
                        y[i] = (x[0][i] - m[ch]) / Math.sqrt(v[ch] + 1e-5) * x[1][ch] + x[2][ch];
                    }
                    return y;
                });
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 3, 13})
    void pooling(int h) {
        int hh = h + 2;
        check("maxPool", new Input[] {Input.of(2, 3, hh, hh + 1)}, t -> Functional.maxPool2d(t[0], 3, 2, 1),
                x -> Ref.maxPool(x[0], 6, hh, hh + 1, 3, 2, 1));
        check("adaptiveAvgPool1", new Input[] {Input.of(2, 3, h, h + 2)}, t -> Functional.adaptiveAvgPool2d(t[0], 1, 1),
                x -> Ref.adaptiveAvgPool(x[0], 6, h, h + 2, 1, 1));
        check("adaptiveAvgPool3", new Input[] {Input.of(2, 3, hh, hh + 2)}, t -> Functional.adaptiveAvgPool2d(t[0], 3, 2),
                x -> Ref.adaptiveAvgPool(x[0], 6, hh, hh + 2, 3, 2));
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 3, 13, 207})
    void softmaxAndLosses(int n) {
        check("softmax", new Input[] {Input.of(n, 7).range(3f, 0f)}, t -> Functional.softmax(t[0], 1), x -> Ref.softmaxRows(x[0], n, 7, false));
        check("logSoftmax", new Input[] {Input.of(n, 7).range(3f, 0f)}, t -> Functional.logSoftmax(t[0], -1), x -> Ref.softmaxRows(x[0], n, 7, true));
        check("softmaxAxis0", new Input[] {Input.of(4, n)}, t -> Functional.softmax(t[0], 0),
                x -> Ref.permute(Ref.softmaxRows(Ref.permute(x[0], new int[] {4, n}, new int[] {1, 0}), n, 4, false), new int[] {n, 4}, new int[] {1, 0}));
        long[] target = new long[n];
        for (int i = 0; i < n; i++) target[i] = (i * 7L + 3) % 10;
        Tensor tt = Tensor.ofLongs(target, n);
        for (float eps : new float[] {0f, 0.1f}) {
            check("crossEntropy" + eps, new Input[] {Input.of(n, 10).range(3f, 0f)}, t -> Functional.crossEntropy(t[0], tt, eps),
                    x -> new double[] {Ref.crossEntropy(x[0], n, 10, target, eps)});
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 3, 13})
    void gathersAlongChannels(int c) {
        long[] idx = {c - 1, 0, c / 2, c - 1};
        Tensor index = Tensor.ofLongs(idx, idx.length);
        int n = 2, hw = 3;
        check("indexSelect", new Input[] {Input.of(n, c, 1, hw)}, t -> Functional.indexSelect(t[0], 1, index), x -> {
            double[] o = new double[n * idx.length * hw];
            for (int b = 0; b < n; b++) for (int j = 0; j < idx.length; j++) for (int s = 0; s < hw; s++)
                o[(b * idx.length + j) * hw + s] = x[0][(b * c + (int) idx[j]) * hw + s];
            return o;
        });
        check("indexAdd", new Input[] {Input.of(n, c, 1, hw), Input.of(n, idx.length, 1, hw)}, t -> Functional.indexAdd(t[0], 1, index, t[1]), x -> {
            double[] o = x[0].clone();
            for (int b = 0; b < n; b++) for (int j = 0; j < idx.length; j++) for (int s = 0; s < hw; s++)
                o[(b * c + (int) idx[j]) * hw + s] += x[1][(b * idx.length + j) * hw + s];
            return o;
        });
        long[] pick = new long[n * hw];
        for (int i = 0; i < pick.length; i++) pick[i] = (i * 5L) % c;
        Tensor pickT = Tensor.ofLongs(pick, n, 1, hw);
        check("takeAlongAxis", new Input[] {Input.of(n, c, hw)}, t -> Functional.takeAlongAxis(t[0], 1, pickT), x -> {
            double[] o = new double[n * hw];
            for (int b = 0; b < n; b++) for (int s = 0; s < hw; s++) o[b * hw + s] = x[0][(b * c + (int) pick[b * hw + s]) * hw + s];
            return o;
        });
    }
}
