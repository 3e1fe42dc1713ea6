package ai.bonsai.dsp.models;

import ai.bonsai.nn.AdaptiveAvgPool2d;
import ai.bonsai.nn.BatchNorm2d;
import ai.bonsai.nn.Conv2d;
import ai.bonsai.nn.Init;
import ai.bonsai.nn.Linear;
import ai.bonsai.nn.MaxPool2d;
import ai.bonsai.nn.Module;
import ai.bonsai.nn.ReLU;
import ai.bonsai.nn.Sequential;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;

import java.util.Arrays;

/**
 * torchvision's ImageNet ResNet ({@code torchvision.models.resnet18/34/50}), module for module, so that the state
 * dict has torchvision's keys ({@code conv1.weight}, {@code layer1.0.conv1.weight}, {@code layer2.0.downsample.0.weight},
 * {@code fc.bias}) and a torchvision checkpoint loads by name through {@link TorchvisionWeights#load}. The one
 * difference is the batch-norm buffer {@code num_batches_tracked}, which Bonsai's BatchNorm2d does not keep.
 *
 * <p>Layout: conv1 7x7 stride 2 padding 3 (no bias), bn1, relu, maxpool 3x3 stride 2 padding 1, layer1..layer4
 * (64, 128, 256, 512 planes; stride 2 at the first block of layers 2-4), adaptive average pooling to 1x1, fc.
 * ResNet-18/34 use {@link BasicBlock}, ResNet-50 {@link Bottleneck} with expansion 4 and the stride on the 3x3
 * conv2 (torchvision's "v1.5"). A block whose stride or width changes gets a {@code downsample} = (1x1 conv, BN).
 * Any input of at least 32x32 runs (the total stride is 32, so 32x32 leaves 1x1 after layer4).
 *
 * <p>Init is torchvision's: Kaiming normal (fan_out) for every convolution, BN weight 1 and bias 0, and fc keeps
 * nn.Linear's default; zero_init_residual is off.
 */
public final class TorchvisionResNet extends Module {
    /** Which residual block a network is built from, and how much it widens its planes. */
    public enum BlockType {
        BASIC(1), BOTTLENECK(4);

        final int expansion;

        BlockType(int expansion) { this.expansion = expansion; }
    }

    private final BlockType block;
    private final int[] layers;
    private final int numClasses;
    private final Conv2d conv1;
    private final BatchNorm2d bn1;
    private final MaxPool2d maxpool;
    private final Sequential[] stages = new Sequential[4];
    private final AdaptiveAvgPool2d avgpool;
    private final Linear fc;

    public static TorchvisionResNet resnet18(int numClasses, Generator g) { return new TorchvisionResNet(BlockType.BASIC, new int[] {2, 2, 2, 2}, numClasses, g); }

    public static TorchvisionResNet resnet34(int numClasses, Generator g) { return new TorchvisionResNet(BlockType.BASIC, new int[] {3, 4, 6, 3}, numClasses, g); }

    public static TorchvisionResNet resnet50(int numClasses, Generator g) { return new TorchvisionResNet(BlockType.BOTTLENECK, new int[] {3, 4, 6, 3}, numClasses, g); }

    /** A ResNet with {@code layers[i]} blocks in stage i+1 (torchvision's {@code ResNet(block, layers)}). */
    public TorchvisionResNet(BlockType block, int[] layers, int numClasses, Generator g) {
        if (block == null) throw new IllegalArgumentException("TorchvisionResNet: block type is null");
        if (layers == null || layers.length != 4) {
            throw new IllegalArgumentException("TorchvisionResNet: layers must hold 4 block counts, got " + (layers == null ? "null" : Arrays.toString(layers)));
        }
        for (int n : layers) if (n < 1) throw new IllegalArgumentException("TorchvisionResNet: every stage needs at least one block, got layers " + Arrays.toString(layers));
        if (numClasses < 1) throw new IllegalArgumentException("TorchvisionResNet: numClasses must be positive, got " + numClasses);
        if (g == null) throw new IllegalArgumentException("TorchvisionResNet: generator is null");
        this.block = block;
        this.layers = layers.clone();
        this.numClasses = numClasses;
        conv1 = registerModule("conv1", new Conv2d(3, 64, 7, 2, 3, 1, false, g));
        bn1 = registerModule("bn1", new BatchNorm2d(64));
        registerModule("relu", new ReLU());      // in the module tree as in torchvision; forward fuses it with batch norm
        maxpool = registerModule("maxpool", new MaxPool2d(3, 2, 1));
        int in = 64;
        int[] planes = {64, 128, 256, 512};
        for (int s = 0; s < 4; s++) {
            Sequential stage = new Sequential();
            for (int b = 0; b < layers[s]; b++) {
                int stride = (s > 0 && b == 0) ? 2 : 1;
                stage.add(block == BlockType.BASIC ? new BasicBlock(in, planes[s], stride, g) : new Bottleneck(in, planes[s], stride, g));
                in = planes[s] * block.expansion;
            }
            stages[s] = registerModule("layer" + (s + 1), stage);
        }
        avgpool = registerModule("avgpool", new AdaptiveAvgPool2d(1));
        fc = registerModule("fc", new Linear(512 * block.expansion, numClasses, true, g));
        // torchvision's ResNet.__init__ loop: convolutions re-drawn, BN set to 1/0; nn.Linear keeps its default init.
        apply(m -> {
            if (m instanceof Conv2d c) Init.kaimingNormal(c.weight(), Init.FanMode.FAN_OUT, g);
            else if (m instanceof BatchNorm2d bn) {
                Init.ones(bn.weight());
                Init.zeros(bn.bias());
            }
        });
    }

    public BlockType blockType() { return block; }

    /** The number of blocks in each of the four stages. */
    public int[] layers() { return layers.clone(); }

    public int numClasses() { return numClasses; }

    /** Stage s (0..3), torchvision's {@code layer<s+1>}. */
    public Sequential layer(int s) {
        if (s < 0 || s >= 4) throw new IndexOutOfBoundsException("TorchvisionResNet.layer: stage " + s + ", expected 0..3");
        return stages[s];
    }

    public Linear fc() { return fc; }

    /** x is (N, 3, H, W) with H, W >= 32; returns logits (N, numClasses). */
    @Override public Tensor forward(Tensor x) {
        if (x.rank() != 4 || x.dim(1) != 3 || x.dim(2) < 32 || x.dim(3) < 32) {
            throw new IllegalArgumentException("TorchvisionResNet: expected input (N, 3, H, W) with H, W >= 32, got " + x.shape());
        }
        Tensor h = maxpool.forward(bn1.forwardRelu(conv1.forward(x)));
        for (Sequential stage : stages) h = stage.forward(h);
        return fc.forward(avgpool.forward(h).flatten(1));
    }

    /** The shortcut of a block whose stride or width changes: 1x1 conv with the block's stride, then BN. */
    private static Sequential projection(int in, int out, int stride, Generator g) {
        return new Sequential(new Conv2d(in, out, 1, stride, 0, 1, false, g), new BatchNorm2d(out));
    }

    /** conv1 3x3 (stride), bn1, relu, conv2 3x3, bn2, plus the shortcut, then relu (torchvision's BasicBlock). */
    public static final class BasicBlock extends Module {
        private final Conv2d conv1, conv2;
        private final BatchNorm2d bn1, bn2;
        private final Sequential downsample;

        BasicBlock(int in, int planes, int stride, Generator g) {
            conv1 = registerModule("conv1", new Conv2d(in, planes, 3, stride, 1, 1, false, g));
            bn1 = registerModule("bn1", new BatchNorm2d(planes));
            registerModule("relu", new ReLU());      // in the module tree as in torchvision; forward fuses it with batch norm
            conv2 = registerModule("conv2", new Conv2d(planes, planes, 3, 1, 1, 1, false, g));
            bn2 = registerModule("bn2", new BatchNorm2d(planes));
            downsample = (stride != 1 || in != planes) ? registerModule("downsample", projection(in, planes, stride, g)) : null;
        }

        @Override public Tensor forward(Tensor x) {
            // bn+relu and bn+add+relu each as one fused op: the same result as the separate ops, less memory
            Tensor y = bn1.forwardRelu(conv1.forward(x));
            Tensor identity = downsample == null ? x : downsample.forward(x);
            return bn2.forwardAddRelu(conv2.forward(y), identity);
        }

        public Conv2d conv1() { return conv1; }

        public Conv2d conv2() { return conv2; }

        public BatchNorm2d bn1() { return bn1; }

        public BatchNorm2d bn2() { return bn2; }

        /** The shortcut projection, or null for an identity shortcut. */
        public Sequential downsample() { return downsample; }
    }

    /**
     * conv1 1x1, bn1, relu, conv2 3x3 (stride), bn2, relu, conv3 1x1 to 4x planes, bn3, plus the shortcut, then relu
     * (torchvision's Bottleneck, stride on the 3x3 as in "ResNet v1.5").
     */
    public static final class Bottleneck extends Module {
        private final Conv2d conv1, conv2, conv3;
        private final BatchNorm2d bn1, bn2, bn3;
        private final Sequential downsample;

        Bottleneck(int in, int planes, int stride, Generator g) {
            int out = planes * BlockType.BOTTLENECK.expansion;
            conv1 = registerModule("conv1", new Conv2d(in, planes, 1, 1, 0, 1, false, g));
            bn1 = registerModule("bn1", new BatchNorm2d(planes));
            conv2 = registerModule("conv2", new Conv2d(planes, planes, 3, stride, 1, 1, false, g));
            bn2 = registerModule("bn2", new BatchNorm2d(planes));
            conv3 = registerModule("conv3", new Conv2d(planes, out, 1, 1, 0, 1, false, g));
            bn3 = registerModule("bn3", new BatchNorm2d(out));
            registerModule("relu", new ReLU());      // in the module tree as in torchvision; forward fuses it with batch norm
            downsample = (stride != 1 || in != out) ? registerModule("downsample", projection(in, out, stride, g)) : null;
        }

        @Override public Tensor forward(Tensor x) {
            Tensor y = bn1.forwardRelu(conv1.forward(x));
            y = bn2.forwardRelu(conv2.forward(y));
            Tensor identity = downsample == null ? x : downsample.forward(x);
            return bn3.forwardAddRelu(conv3.forward(y), identity);
        }

        public Conv2d conv1() { return conv1; }

        public Conv2d conv2() { return conv2; }

        public Conv2d conv3() { return conv3; }

        public BatchNorm2d bn1() { return bn1; }

        public BatchNorm2d bn2() { return bn2; }

        public BatchNorm2d bn3() { return bn3; }

        /** The shortcut projection, or null for an identity shortcut. */
        public Sequential downsample() { return downsample; }
    }
}
