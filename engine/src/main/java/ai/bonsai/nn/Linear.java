package ai.bonsai.nn;

import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;

/**
 * y = x W^T + b, PyTorch's {@code nn.Linear}. x is (N, in); {@code weight} is (out, in), {@code bias} (out).
 * Default init is PyTorch's: the weight is Kaiming uniform with a = sqrt(5), which is U(-1/sqrt(in), 1/sqrt(in)),
 * and the bias is drawn from the same range.
 */
public final class Linear extends Module {

    public Linear(int in, int out, Generator g) { this(in, out, true, g); }

    public Linear(int in, int out, boolean bias, Generator g) {
        if (in < 1 || out < 1) throw new IllegalArgumentException("Linear: in=" + in + " and out=" + out + " must be positive");
        Tensor w = registerParameter("weight", Tensor.zeros(out, in));
        Init.kaimingUniform(w, Math.sqrt(5), Init.FanMode.FAN_IN, g);
        if (bias) {
            float bound = (float) (1 / Math.sqrt(in));
            Init.uniform(registerParameter("bias", Tensor.zeros(out)), -bound, bound, g);
        }
    }

    @Override public Tensor forward(Tensor x) { return Functional.linear(x, weight(), bias()); }

    public Tensor weight() { return parameter("weight"); }

    /** The bias, or null when the layer has none. */
    public Tensor bias() { return parameterOrNull("bias"); }

    public int inFeatures() { return weight().dim(1); }

    public int outFeatures() { return weight().dim(0); }

    @Override protected String extraRepr() {
        return "in_features=" + inFeatures() + ", out_features=" + outFeatures() + ", bias=" + (bias() == null ? "False" : "True");
    }
}
