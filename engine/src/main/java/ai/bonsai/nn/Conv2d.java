package ai.bonsai.nn;

import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;

/**
 * 2-D convolution with square kernels, PyTorch's {@code nn.Conv2d}. x is (N, in, H, W); the parameter
 * {@code weight} is (out, in/groups, k, k) and the optional {@code bias} is (out).
 *
 * <p>Default init is PyTorch's: weight ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform with
 * a = sqrt(5)) and bias from the same range, fan_in = in/groups * k*k. Channel counts are read from the
 * weight, so a pruned layer whose weight was replaced reports its new size.
 */
public final class Conv2d extends Module {
    private final int kernel, stride, padding, groups;

    /** A convolution with stride 1, no padding, one group and a bias. */
    public Conv2d(int in, int out, int kernel, Generator g) { this(in, out, kernel, 1, 0, 1, true, g); }

    public Conv2d(int in, int out, int kernel, int stride, int padding, int groups, boolean bias, Generator g) {
        if (in < 1 || out < 1 || kernel < 1 || stride < 1 || padding < 0 || groups < 1) {
            throw new IllegalArgumentException("Conv2d: in=" + in + ", out=" + out + ", kernel=" + kernel + ", stride=" + stride
                    + ", padding=" + padding + ", groups=" + groups + " (sizes, stride and groups must be positive, padding >= 0)");
        }
        if (in % groups != 0 || out % groups != 0) {
            throw new IllegalArgumentException("Conv2d: groups=" + groups + " must divide in=" + in + " and out=" + out);
        }
        this.kernel = kernel;
        this.stride = stride;
        this.padding = padding;
        this.groups = groups;
        Tensor w = registerParameter("weight", Tensor.zeros(out, in / groups, kernel, kernel));
        Init.kaimingUniform(w, Math.sqrt(5), Init.FanMode.FAN_IN, g);
        if (bias) {
            float bound = (float) (1 / Math.sqrt(Init.fanIn(w)));
            Init.uniform(registerParameter("bias", Tensor.zeros(out)), -bound, bound, g);
        }
    }

    @Override public Tensor forward(Tensor x) {
        return Functional.conv2d(x, weight(), bias(), stride, padding, groups);
    }

    public Tensor weight() { return parameter("weight"); }

    /** The bias, or null when the layer has none. */
    public Tensor bias() { return parameterOrNull("bias"); }

    public int inChannels() { return weight().dim(1) * groups; }

    public int outChannels() { return weight().dim(0); }

    public int kernelSize() { return kernel; }

    public int stride() { return stride; }

    public int padding() { return padding; }

    public int groups() { return groups; }

    @Override protected String extraRepr() {
        StringBuilder sb = new StringBuilder().append(inChannels()).append(", ").append(outChannels())
                .append(", kernel_size=(").append(kernel).append(", ").append(kernel).append(')')
                .append(", stride=(").append(stride).append(", ").append(stride).append(')');
        if (padding != 0) sb.append(", padding=(").append(padding).append(", ").append(padding).append(')');
        if (groups != 1) sb.append(", groups=").append(groups);
        if (bias() == null) sb.append(", bias=False");
        return sb.toString();
    }
}
