package ai.bonsai.dsp.models;

import ai.bonsai.nn.BatchNorm2d;
import ai.bonsai.nn.Conv2d;
import ai.bonsai.nn.Dropout;
import ai.bonsai.nn.Functional;
import ai.bonsai.nn.Init;
import ai.bonsai.nn.Linear;
import ai.bonsai.nn.Module;
import ai.bonsai.nn.ReLU6;
import ai.bonsai.nn.Sequential;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;

/**
 * torchvision's MobileNetV2 at width 1.0 ({@code torchvision.models.mobilenet_v2}), module for module, so that the
 * state dict has torchvision's keys ({@code features.0.0.weight}, {@code features.1.conv.0.0.weight},
 * {@code features.18.1.running_var}, {@code classifier.1.weight}) and a torchvision checkpoint loads by name through
 * {@link TorchvisionWeights#load} (Bonsai's BatchNorm2d keeps no {@code num_batches_tracked}).
 *
 * <p>{@code features.0} is a 3x3 stride-2 conv + BN + ReLU6 to 32 channels; {@code features.1..17} are the inverted
 * residual blocks of {@link #SETTINGS}; {@code features.18} is a 1x1 conv + BN + ReLU6 to 1280 channels; then global
 * average pooling (functional, as in torchvision, so no module), flatten, and {@code classifier} = Dropout(0.2),
 * Linear(1280, numClasses). Any input of at least 32x32 runs (total stride 32, or 16 with the CIFAR stem).
 *
 * <p>The CIFAR stem option gives {@code features.0} stride 1, the usual change for 32x32 inputs (4x4 before the
 * pooling instead of 1x1); the keys and shapes are unchanged. Init is torchvision's: Kaiming normal (fan_out) for
 * convolutions, BN 1/0, N(0, 0.01) and bias 0 for the linear layer.
 */
public final class MobileNetV2 extends Module {
    /** Inverted residual settings, one row per stage: expansion t, output channels c, blocks n, first stride s. */
    static final int[][] SETTINGS = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2}, {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
    static final int STEM = 32, LAST = 1280;
    static final float DROPOUT = 0.2f;
    private final int numClasses;
    private final boolean cifarStem;
    private final Sequential features;
    private final Sequential classifier;

    /** torchvision's layout (stride-2 stem). */
    public static MobileNetV2 mobilenetV2(int numClasses, Generator g) { return new MobileNetV2(numClasses, false, g); }

    /**
     * @param cifarStem stride 1 instead of 2 in the first convolution, for 32x32 inputs
     * @param g draws the weights; the dropout layer gets its own generator split from it
     */
    public MobileNetV2(int numClasses, boolean cifarStem, Generator g) {
        if (numClasses < 1) throw new IllegalArgumentException("MobileNetV2: numClasses must be positive, got " + numClasses);
        if (g == null) throw new IllegalArgumentException("MobileNetV2: generator is null");
        this.numClasses = numClasses;
        this.cifarStem = cifarStem;
        features = new Sequential();
        features.add(convBnRelu6(3, STEM, 3, cifarStem ? 1 : 2, 1, g));
        int in = STEM;
        for (int[] row : SETTINGS) {
            int t = row[0], c = row[1], n = row[2], s = row[3];
            for (int i = 0; i < n; i++) {
                features.add(new InvertedResidual(in, c, i == 0 ? s : 1, t, g));
                in = c;
            }
        }
        features.add(convBnRelu6(in, LAST, 1, 1, 1, g));
        registerModule("features", features);
        classifier = registerModule("classifier", new Sequential(new Dropout(DROPOUT, g.split()), new Linear(LAST, numClasses, true, g)));
        apply(m -> {
            if (m instanceof Conv2d conv) {
                Init.kaimingNormal(conv.weight(), Init.FanMode.FAN_OUT, g);
                if (conv.bias() != null) Init.zeros(conv.bias());
            } else if (m instanceof BatchNorm2d bn) {
                Init.ones(bn.weight());
                Init.zeros(bn.bias());
            } else if (m instanceof Linear l) {
                Init.normal(l.weight(), 0f, 0.01f, g);
                Init.zeros(l.bias());
            }
        });
    }

    /** torchvision's Conv2dNormActivation: conv (no bias, padding (k-1)/2), BN, ReLU6, as children "0", "1", "2". */
    static Sequential convBnRelu6(int in, int out, int kernel, int stride, int groups, Generator g) {
        return new Sequential(new Conv2d(in, out, kernel, stride, (kernel - 1) / 2, groups, false, g), new BatchNorm2d(out), new ReLU6());
    }

    public int numClasses() { return numClasses; }

    public boolean cifarStem() { return cifarStem; }

    /** {@code features}: the stem, the 17 inverted residual blocks and the last 1x1 conv. */
    public Sequential features() { return features; }

    /** The 17 inverted residual blocks, {@code features.1} to {@code features.17}. */
    public List<InvertedResidual> blocks() {
        List<InvertedResidual> out = new ArrayList<>();
        for (Module m : features) if (m instanceof InvertedResidual b) out.add(b);
        return out;
    }

    /** Dropout then the linear layer. */
    public Sequential classifier() { return classifier; }

    /** x is (N, 3, H, W) with H, W >= 32; returns logits (N, numClasses). */
    @Override public Tensor forward(Tensor x) {
        if (x.rank() != 4 || x.dim(1) != 3 || x.dim(2) < 32 || x.dim(3) < 32) {
            throw new IllegalArgumentException("MobileNetV2: expected input (N, 3, H, W) with H, W >= 32, got " + x.shape());
        }
        Tensor h = Functional.adaptiveAvgPool2d(features.forward(x), 1, 1);
        return classifier.forward(h.flatten(1));
    }

    /**
     * torchvision's InvertedResidual: {@code conv} = [1x1 expand conv+BN+ReLU6 when t != 1], 3x3 depthwise
     * conv+BN+ReLU6 (groups = channels, the block's stride), 1x1 linear projection conv, BN. The input is added
     * back when the stride is 1 and the width is kept.
     */
    public static final class InvertedResidual extends Module {
        private final int in, out, stride, expandRatio;
        private final Sequential conv;

        InvertedResidual(int in, int out, int stride, int expandRatio, Generator g) {
            if (stride != 1 && stride != 2) throw new IllegalArgumentException("InvertedResidual: stride must be 1 or 2, got " + stride);
            this.in = in;
            this.out = out;
            this.stride = stride;
            this.expandRatio = expandRatio;
            int hidden = in * expandRatio;
            Sequential c = new Sequential();
            if (expandRatio != 1) c.add(convBnRelu6(in, hidden, 1, 1, 1, g));
            c.add(convBnRelu6(hidden, hidden, 3, stride, hidden, g));
            c.add(new Conv2d(hidden, out, 1, 1, 0, 1, false, g));
            c.add(new BatchNorm2d(out));
            conv = registerModule("conv", c);
        }

        /** Whether the block adds its input to its output (stride 1 and in == out). */
        public boolean useResConnect() { return stride == 1 && in == out; }

        public int stride() { return stride; }

        public int expandRatio() { return expandRatio; }

        public Sequential conv() { return conv; }

        @Override public Tensor forward(Tensor x) {
            return useResConnect() ? x.add(conv.forward(x)) : conv.forward(x);
        }
    }
}
