package ai.bonsai.dsp.models;

import ai.bonsai.nn.AdaptiveAvgPool2d;
import ai.bonsai.nn.BatchNorm2d;
import ai.bonsai.nn.Conv2d;
import ai.bonsai.nn.Init;
import ai.bonsai.nn.Linear;
import ai.bonsai.nn.Module;
import ai.bonsai.nn.Sequential;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;

/**
 * The CIFAR ResNet of the DSP reference (spec section 8), with the reference's parameter names:
 * {@code conv_1_3x3}, {@code bn_1}, {@code stage_s.b.conv_a/bn_a/conv_b/bn_b}, {@code stage_s.b.downsample.0/1}
 * and {@code classifier}, so that state dicts line up with the reference's checkpoints.
 *
 * <p>Depth 6n + 2 (20, 32, 44, 56, 110): a 3x3 stem to 16 channels, three stages of n basic blocks with 16,
 * 32 and 64 channels (stride 2 at the first block of stages 2 and 3, with a 1x1 conv + BN projection as the
 * shortcut), global average pooling and a linear classifier.
 */
public final class CifarResNet extends Module {
    public static final int[] DEPTHS = {20, 32, 44, 56, 110};
    private final int depth;
    private final int numClasses;
    private final Conv2d stem;
    private final BatchNorm2d bn1;
    private final Sequential[] stages = new Sequential[3];
    private final AdaptiveAvgPool2d pool = new AdaptiveAvgPool2d(1);
    private final Linear classifier;

    public CifarResNet(int depth, int numClasses, Generator g) { this(depth, numClasses, 16, g); }

    /**
     * With stage widths {@code width}, 2 * width and 4 * width instead of 16, 32, 64: narrow models for tests that
     * must run fast (the emulated CUDA device). Draws from {@code g} in the same order as the published widths.
     * The width is not recorded in checkpoint metadata: the commands, and rebuilding a model from a checkpoint,
     * always use 16.
     */
    public CifarResNet(int depth, int numClasses, int width, Generator g) {
        if (width < 1) throw new IllegalArgumentException("CifarResNet: width must be positive, got " + width);
        if (depth < 8 || (depth - 2) % 6 != 0) {
            throw new IllegalArgumentException("CifarResNet: depth must be 6n+2 (20, 32, 44, 56, 110), got " + depth);
        }
        if (numClasses < 1) throw new IllegalArgumentException("CifarResNet: numClasses must be positive, got " + numClasses);
        this.depth = depth;
        this.numClasses = numClasses;
        int blocks = (depth - 2) / 6;
        stem = registerModule("conv_1_3x3", new Conv2d(3, width, 3, 1, 1, 1, false, g));
        bn1 = registerModule("bn_1", new BatchNorm2d(width));
        int in = width;
        int[] widths = {width, 2 * width, 4 * width};
        for (int s = 0; s < 3; s++) {
            Sequential stage = new Sequential();
            for (int b = 0; b < blocks; b++) {
                int stride = (s > 0 && b == 0) ? 2 : 1;
                stage.add(new BasicBlock(in, widths[s], stride, g));
                in = widths[s];
            }
            stages[s] = registerModule("stage_" + (s + 1), stage);
        }
        classifier = registerModule("classifier", new Linear(4 * width, numClasses, true, g));
        // The reference's init (cifar_pretrain.py), applied over the layers' PyTorch defaults: Kaiming normal
        // (fan_out) for every convolution, BN weight 1 and bias 0, classifier bias 0. The classifier weight keeps
        // nn.Linear's default, U(-1/sqrt(64), 1/sqrt(64)) = U(-0.125, 0.125): the reference never re-draws it.
        apply(m -> {
            if (m instanceof Conv2d c) Init.kaimingNormal(c.weight(), Init.FanMode.FAN_OUT, g);
            else if (m instanceof BatchNorm2d bn) {
                Init.ones(bn.weight());
                Init.zeros(bn.bias());
            } else if (m instanceof Linear l && l.bias() != null) {
                Init.zeros(l.bias());
            }
        });
    }

    public int depth() { return depth; }

    public Conv2d stemConv() { return stem; }

    /** Stage s (0, 1 or 2) as its blocks. */
    public List<BasicBlock> stage(int s) {
        List<BasicBlock> blocks = new ArrayList<>();
        for (Module m : stages[s]) blocks.add((BasicBlock) m);
        return blocks;
    }

    public Linear classifier() { return classifier; }

    public int numClasses() { return numClasses; }

    /** x is (N, 3, H, W); returns logits (N, numClasses). */
    @Override public Tensor forward(Tensor x) {
        Tensor h = bn1.forwardRelu(stem.forward(x));
        for (Sequential stage : stages) h = stage.forward(h);
        return classifier.forward(pool.forward(h).flatten(1));
    }

    /** A basic block: conv_a, bn_a, ReLU, conv_b, bn_b, plus the shortcut, then ReLU. */
    public static final class BasicBlock extends Module {
        private final Conv2d convA, convB;
        private final BatchNorm2d bnA, bnB;
        private final Sequential downsample;

        BasicBlock(int in, int out, int stride, Generator g) {
            convA = registerModule("conv_a", new Conv2d(in, out, 3, stride, 1, 1, false, g));
            bnA = registerModule("bn_a", new BatchNorm2d(out));
            convB = registerModule("conv_b", new Conv2d(out, out, 3, 1, 1, 1, false, g));
            bnB = registerModule("bn_b", new BatchNorm2d(out));
            downsample = (stride != 1 || in != out)
                    ? registerModule("downsample", new Sequential(new Conv2d(in, out, 1, stride, 0, 1, false, g), new BatchNorm2d(out)))
                    : null;
        }

        @Override public Tensor forward(Tensor x) {
            // bn+relu and bn+add+relu each as one fused op: the same result as the separate ops, less memory
            Tensor y = bnA.forwardRelu(convA.forward(x));
            Tensor residual = downsample == null ? x : downsample.forward(x);
            return bnB.forwardAddRelu(convB.forward(y), residual);
        }

        public Conv2d convA() { return convA; }

        public Conv2d convB() { return convB; }

        public BatchNorm2d bnA() { return bnA; }

        public BatchNorm2d bnB() { return bnB; }

        /** The shortcut projection, or null for an identity shortcut. */
        public Sequential downsample() { return downsample; }
    }
}
