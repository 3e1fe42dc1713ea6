package ai.bonsai.dsp.imports;

import ai.bonsai.tensor.Tensor;

import java.util.List;

/**
 * A packed (multi-branch) CIFAR ResNet as plain data: what {@link TorchPackedImporter} reads from a published
 * DSP TorchScript archive, independent of any model class, so that a converter can map it one to one onto a
 * packed model. {@link PackedResNetForward} runs it as written here; {@link PackedResNetStats} counts it.
 *
 * <pre>
 *   x (N, inputChannels, H, W)
 *   x = relu(stem(x))                                   stem: ConvBn
 *   for block in blocks:                                in order: stage 1 blocks, then stage 2, ...
 *       cat = concat over a in block.branchesA of       channel order = list order
 *                 relu(a.conv(x[:, a.inputChannels]))
 *       r   = x if block.shortcut is null else block.shortcut(x)       (1x1 conv + BN, no ReLU)
 *       for b in block.branchesB:
 *           r[:, b.outputChannels] += b.conv(cat[:, b.concatPositions])   (no ReLU; scatter-add)
 *       x = relu(r)                                     channels in no branch pass r through
 *   logits = classifier(flatten(adaptiveAvgPool(x, 1x1)))
 * </pre>
 *
 * Index arrays may repeat values (the archive's gathers allow it) and branch input sets may overlap. All
 * tensors are FLOAT32 on the CPU; weights are (out, in, k, k) with in = the length of the branch's index list.
 *
 * @param source        the archive it came from
 * @param inputChannels channels of the input image (3)
 * @param inputSize     height = width of the input the network was built for (32); it fixes the MAC counts
 * @param stem          the first convolution and its BN, followed by ReLU
 * @param blocks        every residual block in forward order
 * @param classifier    the final linear layer
 */
public record PackedResNet(String source, int inputChannels, int inputSize, ConvBn stem, List<Block> blocks, Linear classifier) {
    public PackedResNet {
        blocks = List.copyOf(blocks);
    }

    /** Eval-mode batch norm: y = (x - runningMean) / sqrt(runningVar + eps) * weight + bias, per channel. */
    public record BatchNorm(Tensor weight, Tensor bias, Tensor runningMean, Tensor runningVar, float eps) {
        public int channels() { return weight.numel(); }
    }

    /**
     * A convolution (no dilation, no groups) followed by batch norm.
     *
     * @param module  dotted module path of the convolution in the archive, for messages and reports
     * @param weight  (out, in, k, k)
     * @param bias    (out) or null
     */
    public record ConvBn(String module, Tensor weight, Tensor bias, int stride, int padding, BatchNorm bn) {
        public int outChannels() { return weight.dim(0); }

        public int inChannels() { return weight.dim(1); }

        public int kernel() { return weight.dim(2); }

        /** Output height (= width) for an input of {@code inSize}. */
        public int outSize(int inSize) { return (inSize + 2 * padding - kernel()) / stride + 1; }
    }

    /**
     * A conv_a branch: relu(conv(x gathered on {@code inputChannels})).
     *
     * @param inputChannels block-input channels the branch reads, in the order of the weight's input axis
     * @param module        index of the branch in the archive's {@code layers_a} list
     */
    public record BranchA(int module, int[] inputChannels, ConvBn conv) {}

    /**
     * A conv_b branch: conv(concat gathered on {@code concatPositions}), scatter-added into the residual.
     *
     * @param concatPositions positions in the conv_a concatenation the branch reads (weight input order)
     * @param outputChannels  the original conv_b filters = block output channels its outputs are added to,
     *                        in the order of the weight's output axis
     * @param module          index of the branch in the archive's {@code layers_b} list
     */
    public record BranchB(int module, int[] concatPositions, int[] outputChannels, ConvBn conv) {}

    /**
     * One residual block.
     *
     * @param name        dotted path, such as {@code stage_2.0}
     * @param inChannels  channels of the block input
     * @param outChannels channels of the block output (= residual width)
     * @param inSize      input height = width when the network input is {@code inputSize}
     * @param outSize     output height = width
     * @param stride      the stride of conv_a (and of the shortcut); conv_b has stride 1
     * @param branchesA   in concatenation order
     * @param branchesB   in the order the residual adds them
     * @param shortcut    the 1x1 projection + BN, or null for the identity
     */
    public record Block(String name, int inChannels, int outChannels, int inSize, int outSize, int stride,
                        List<BranchA> branchesA, List<BranchB> branchesB, ConvBn shortcut) {
        public Block {
            branchesA = List.copyOf(branchesA);
            branchesB = List.copyOf(branchesB);
        }

        /** Width of the conv_a concatenation. */
        public int concatWidth() { return branchesA.stream().mapToInt(a -> a.conv().outChannels()).sum(); }
    }

    /** y = x W^T + b; weight (classes, features), bias (classes) or null. */
    public record Linear(Tensor weight, Tensor bias) {}
}
