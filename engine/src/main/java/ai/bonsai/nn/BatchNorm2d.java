package ai.bonsai.nn;

import ai.bonsai.tensor.Tensor;

/**
 * Batch normalisation over the channels of (N, C, H, W) input, PyTorch's {@code nn.BatchNorm2d}:
 * parameters {@code weight} (ones) and {@code bias} (zeros), buffers {@code running_mean} (zeros) and
 * {@code running_var} (ones). In training mode it normalises with the batch statistics and moves the
 * running statistics towards them, running = (1 - momentum) * running + momentum * batch, with the
 * unbiased batch variance; in eval mode it uses the running statistics.
 *
 * <p>Unlike PyTorch there is no {@code num_batches_tracked} buffer: it only matters for momentum=None
 * (cumulative averaging), which is not supported.
 */
public final class BatchNorm2d extends Module {
    private final float eps, momentum;

    public BatchNorm2d(int numFeatures) { this(numFeatures, 1e-5f, 0.1f); }

    public BatchNorm2d(int numFeatures, float eps, float momentum) {
        if (numFeatures < 1) throw new IllegalArgumentException("BatchNorm2d: numFeatures must be positive, got " + numFeatures);
        if (!(eps > 0)) throw new IllegalArgumentException("BatchNorm2d: eps must be positive, got " + eps);
        if (!(momentum >= 0 && momentum <= 1)) throw new IllegalArgumentException("BatchNorm2d: momentum must be in [0, 1], got " + momentum);
        this.eps = eps;
        this.momentum = momentum;
        registerParameter("weight", Tensor.ones(numFeatures));
        registerParameter("bias", Tensor.zeros(numFeatures));
        registerBuffer("running_mean", Tensor.zeros(numFeatures));
        registerBuffer("running_var", Tensor.ones(numFeatures));
    }

    @Override public Tensor forward(Tensor x) {
        checkInput(x);
        return Functional.batchNorm(x, runningMean(), runningVar(), weight(), bias(), isTraining(), momentum, eps);
    }

    /** relu(forward(x)) as one op ({@link Functional#batchNormAct}): what {@link Sequential} runs for a BN, ReLU pair. */
    public Tensor forwardRelu(Tensor x) {
        checkInput(x);
        return Functional.batchNormAct(x, runningMean(), runningVar(), weight(), bias(), isTraining(), momentum, eps, null, true);
    }

    /** relu(residual + forward(x)) as one op ({@link Functional#batchNormAct}): the tail of a residual block. */
    public Tensor forwardAddRelu(Tensor x, Tensor residual) {
        checkInput(x);
        return Functional.batchNormAct(x, runningMean(), runningVar(), weight(), bias(), isTraining(), momentum, eps, residual, true);
    }

    private void checkInput(Tensor x) {
        if (x.rank() != 4 || x.dim(1) != numFeatures()) {
            throw new IllegalArgumentException("BatchNorm2d: expected (N," + numFeatures() + ",H,W) input, got " + x.shape());
        }
    }

    public Tensor weight() { return parameter("weight"); }

    public Tensor bias() { return parameter("bias"); }

    public Tensor runningMean() { return buffer("running_mean"); }

    public Tensor runningVar() { return buffer("running_var"); }

    public int numFeatures() { return weight().dim(0); }

    public float eps() { return eps; }

    public float momentum() { return momentum; }

    @Override protected String extraRepr() {
        return numFeatures() + ", eps=" + pyFloat(eps) + ", momentum=" + pyFloat(momentum) + ", affine=True, track_running_stats=True";
    }
}
