package ai.bonsai.nn;

import ai.bonsai.tensor.Tensor;

/** Average pooling of (N, C, H, W) to a fixed (outH, outW) with PyTorch's bins, {@code nn.AdaptiveAvgPool2d}. */
public final class AdaptiveAvgPool2d extends Module {
    private final int outH, outW;

    /** Square output, e.g. 1 for global average pooling. */
    public AdaptiveAvgPool2d(int size) { this(size, size); }

    public AdaptiveAvgPool2d(int outH, int outW) {
        if (outH < 1 || outW < 1) throw new IllegalArgumentException("AdaptiveAvgPool2d: output size " + outH + "x" + outW + " must be positive");
        this.outH = outH;
        this.outW = outW;
    }

    @Override public Tensor forward(Tensor x) { return Functional.adaptiveAvgPool2d(x, outH, outW); }

    @Override protected String extraRepr() { return "output_size=(" + outH + ", " + outW + ")"; }
}
