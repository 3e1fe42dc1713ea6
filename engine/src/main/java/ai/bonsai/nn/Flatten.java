package ai.bonsai.nn;

import ai.bonsai.tensor.Tensor;

/** Flattens every dimension from {@code startDim} on into one, PyTorch's {@code nn.Flatten} (end_dim = -1). */
public final class Flatten extends Module {
    private final int startDim;

    /** Keeps the batch axis: (N, C, H, W) becomes (N, C*H*W). */
    public Flatten() { this(1); }

    public Flatten(int startDim) { this.startDim = startDim; }

    @Override public Tensor forward(Tensor x) {
        if (startDim >= x.rank() || startDim < -x.rank()) {
            throw new IllegalArgumentException("Flatten: start_dim " + startDim + " is out of range for input " + x.shape());
        }
        return x.flatten(startDim);
    }

    @Override protected String extraRepr() { return "start_dim=" + startDim + ", end_dim=-1"; }
}
