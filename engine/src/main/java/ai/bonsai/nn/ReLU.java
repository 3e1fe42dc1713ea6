package ai.bonsai.nn;

import ai.bonsai.tensor.Tensor;

/** max(x, 0) element-wise, PyTorch's {@code nn.ReLU}. */
public final class ReLU extends Module {
    @Override public Tensor forward(Tensor x) { return x.relu(); }
}
