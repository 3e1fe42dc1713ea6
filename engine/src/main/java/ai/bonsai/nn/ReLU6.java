package ai.bonsai.nn;

import ai.bonsai.tensor.Tensor;

/**
 * min(max(x, 0), 6) element-wise, PyTorch's {@code nn.ReLU6} (MobileNetV2's activation). Built from relu and an
 * element-wise minimum with a broadcast constant, so it runs on every backend and needs no backward of its own.
 * The constant is the minimum's first operand because the first operand wins ties: at exactly 6 the gradient then
 * goes to the constant, so x receives 0 there, as from PyTorch's hardtanh backward.
 */
public final class ReLU6 extends Module {
    @Override public Tensor forward(Tensor x) {
        return Tensor.full(6f, 1).to(x.device()).minimum(x.relu());
    }
}
