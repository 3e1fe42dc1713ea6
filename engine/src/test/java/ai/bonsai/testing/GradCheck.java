package ai.bonsai.testing;

import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;

import java.util.Arrays;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Checks an engine op against an independent double-precision reference, forward and backward.
 *
 * <p>Forward: the float32 op must match the reference to {@code atol + rtol * |ref|}. Backward: with a random
 * upstream gradient u, autograd's gradient of sum(op(x) * u) must match central differences of
 * sum(ref(x) * u) computed in double precision, so the reference, not the op, supplies the numerical side.
 */
public final class GradCheck {
    private GradCheck() {}

    /** An input: its shape, and whether a gradient is checked for it. */
    public record Input(int[] dims, boolean grad, float scale, float shift) {
        public static Input of(int... dims) { return new Input(dims, true, 1f, 0f); }

        public static Input noGrad(int... dims) { return new Input(dims, false, 1f, 0f); }

        /** Values drawn uniform in [shift - scale, shift + scale]. */
        public Input range(float scale, float shift) { return new Input(dims, grad, scale, shift); }
    }

    public static void check(String name, long seed, Input[] inputs, Function<Tensor[], Tensor> op,
                             Function<double[][], double[]> ref, double atol, double rtol) {
        Generator g = new Generator(seed);
        Tensor[] ts = new Tensor[inputs.length];
        double[][] xs = new double[inputs.length][];
        for (int i = 0; i < inputs.length; i++) {
            Input in = inputs[i];
            ts[i] = Tensor.rand(g, in.shift - in.scale, in.shift + in.scale, in.dims).requiresGrad(in.grad);
            xs[i] = toDouble(ts[i].toFloatArray());
        }
        Tensor out = op.apply(ts);
        double[] expect = ref.apply(xs);
        float[] got = out.toFloatArray();
        assertClose(name + " forward", expect, got, atol, rtol);

        Tensor u = Tensor.rand(g, -1f, 1f, out.dims());
        double[] ud = toDouble(u.toFloatArray());
        out.mul(u).sum().backward();
        for (int i = 0; i < inputs.length; i++) {
            if (!inputs[i].grad) continue;
            assertNotNull(ts[i].grad(), name + ": no gradient for input " + i);
            double[] num = new double[xs[i].length];
            for (int j = 0; j < xs[i].length; j++) {
                double keep = xs[i][j];
                double h = 1e-6 * Math.max(1, Math.abs(keep));
                xs[i][j] = keep + h;
                double up = dot(ref.apply(xs), ud);
                xs[i][j] = keep - h;
                double down = dot(ref.apply(xs), ud);
                xs[i][j] = keep;
                num[j] = (up - down) / (2 * h);
            }
            assertClose(name + " gradient of input " + i, num, ts[i].grad().toFloatArray(), atol * 10, rtol * 10);
        }
    }

    public static double[] toDouble(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) d[i] = a[i];
        return d;
    }

    static double dot(double[] a, double[] b) {
        if (a.length != b.length) fail("reference output has " + a.length + " values, upstream gradient " + b.length);
        double s = 0;
        for (int i = 0; i < a.length; i++) s += a[i] * b[i];
        return s;
    }

    public static void assertClose(String what, double[] expect, float[] got, double atol, double rtol) {
        assertEquals(expect.length, got.length, what + ": length");
        double worst = 0;
        int at = -1;
        for (int i = 0; i < expect.length; i++) {
            double err = Math.abs(expect[i] - got[i]) - (atol + rtol * Math.abs(expect[i]));
            if (!(err <= worst) || Double.isNaN(got[i])) {
                if (at < 0 || err > worst || Double.isNaN(got[i])) { worst = Double.isNaN(got[i]) ? Double.POSITIVE_INFINITY : err; at = i; }
            }
        }
        if (at >= 0) {
            fail(what + ": element " + at + " expected " + expect[at] + " got " + got[at]
                    + " (atol " + atol + ", rtol " + rtol + "); first values expected "
                    + Arrays.toString(Arrays.copyOf(expect, Math.min(6, expect.length))) + " got "
                    + Arrays.toString(Arrays.copyOf(got, Math.min(6, got.length))));
        }
    }
}
