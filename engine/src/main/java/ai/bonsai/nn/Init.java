package ai.bonsai.nn;

import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;

/**
 * In-place weight initialisers, PyTorch's {@code nn.init}. Each overwrites the tensor's values with draws
 * from the given {@link Generator} (never a global one, so a seed reproduces a model) and returns it.
 * They work on parameters that require a gradient: the values are written straight into the tensor's
 * buffer, which records nothing (the no-grad behaviour of PyTorch's init functions without a scope).
 *
 * <p>Fans follow PyTorch: for a weight of shape (out, in, k1, k2, ...) the receptive field is k1*k2*...,
 * fan_in = in * receptive and fan_out = out * receptive. A grouped convolution's weight is already
 * (out, in/groups, k, k), so its fan_in is in/groups * k*k.
 */
public final class Init {
    private Init() {}

    /** Which fan a variance-preserving initialiser scales by. */
    public enum FanMode { FAN_IN, FAN_OUT }

    /** fan_in of a weight of rank >= 2. */
    public static int fanIn(Tensor w) { return fans("fanIn", w)[0]; }

    /** fan_out of a weight of rank >= 2. */
    public static int fanOut(Tensor w) { return fans("fanOut", w)[1]; }

    private static int[] fans(String op, Tensor w) {
        if (w.rank() < 2) throw new IllegalArgumentException(op + ": fan in and fan out need a tensor of rank >= 2, got shape " + w.shape());
        int receptive = w.shape().size(2, w.rank());
        return new int[] {w.dim(1) * receptive, w.dim(0) * receptive};
    }

    private static int fan(String op, Tensor w, FanMode mode) {
        int[] f = fans(op, w);
        int v = mode == FanMode.FAN_IN ? f[0] : f[1];
        if (v == 0) throw new IllegalArgumentException(op + ": " + mode + " of shape " + w.shape() + " is 0");
        return v;
    }

    /**
     * He et al.'s normal init for ReLU networks: N(0, std^2) with std = sqrt(2 / fan). ResNets use it with
     * FAN_OUT for convolutions.
     */
    public static Tensor kaimingNormal(Tensor w, FanMode mode, Generator g) {
        double std = Math.sqrt(2.0 / fan("kaimingNormal", w, mode));
        return normal(w, 0f, (float) std, g);
    }

    /**
     * He et al.'s uniform init with leaky-ReLU slope {@code a}: U(-b, b), b = gain * sqrt(3 / fan),
     * gain = sqrt(2 / (1 + a^2)). With a = sqrt(5) and FAN_IN this is PyTorch's default for Conv2d and
     * Linear weights, b = 1 / sqrt(fan_in).
     */
    public static Tensor kaimingUniform(Tensor w, double a, FanMode mode, Generator g) {
        double gain = Math.sqrt(2.0 / (1 + a * a));
        double bound = gain * Math.sqrt(3.0 / fan("kaimingUniform", w, mode));
        return uniform(w, (float) -bound, (float) bound, g);
    }

    /** U(lo, hi). */
    public static Tensor uniform(Tensor t, float lo, float hi, Generator g) {
        t.requireFloat("uniform");
        if (!(lo <= hi)) throw new IllegalArgumentException("uniform: expected lo <= hi, got lo=" + lo + ", hi=" + hi);
        t.backend().uniform(t.buffer(), g, lo, hi);
        return t;
    }

    /** N(mean, std^2). */
    public static Tensor normal(Tensor t, float mean, float std, Generator g) {
        t.requireFloat("normal");
        if (!(std >= 0)) throw new IllegalArgumentException("normal: expected std >= 0, got " + std);
        t.backend().normal(t.buffer(), g, mean, std);
        return t;
    }

    /** Every element set to {@code value}. */
    public static Tensor constant(Tensor t, float value) {
        t.requireFloat("constant");
        t.fill(value);
        return t;
    }

    public static Tensor zeros(Tensor t) { return constant(t, 0f); }

    public static Tensor ones(Tensor t) { return constant(t, 1f); }
}
