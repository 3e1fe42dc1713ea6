package ai.bonsai.nn;

import ai.bonsai.tensor.Tensor;

/** Max pooling of (N, C, H, W) with a square window, PyTorch's {@code nn.MaxPool2d} (floor mode, dilation 1). */
public final class MaxPool2d extends Module {
    private final int kernel, stride, padding;

    /** Non-overlapping windows: stride = kernel, no padding. */
    public MaxPool2d(int kernel) { this(kernel, kernel, 0); }

    public MaxPool2d(int kernel, int stride, int padding) {
        if (kernel < 1 || stride < 1 || padding < 0 || padding * 2 > kernel) {
            throw new IllegalArgumentException("MaxPool2d: kernel=" + kernel + ", stride=" + stride + ", padding=" + padding
                    + " (kernel and stride must be positive, padding at most half the kernel)");
        }
        this.kernel = kernel;
        this.stride = stride;
        this.padding = padding;
    }

    @Override public Tensor forward(Tensor x) { return Functional.maxPool2d(x, kernel, stride, padding); }

    public int kernel() { return kernel; }

    public int stride() { return stride; }

    public int padding() { return padding; }

    @Override protected String extraRepr() {
        return "kernel_size=" + kernel + ", stride=" + stride + ", padding=" + padding + ", dilation=1, ceil_mode=False";
    }
}
