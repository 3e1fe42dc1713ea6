package ai.bonsai.dsp.imports;

import ai.bonsai.dsp.pack.PackedModel;
import ai.bonsai.tensor.Tensor;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Maps an imported {@link PackedResNet} one to one onto Bonsai's {@link PackedModel}, so a published DSP model
 * runs on the same fused multi-branch kernels, is timed by {@code bonsai bench} and saved in the packed format
 * like a model Bonsai pruned itself.
 *
 * <p>The only renaming: the packed model indexes conv_a's outputs by original filter number, which a published
 * archive no longer records; the position in the conv_a concatenation serves instead (it is unique, and below
 * the block width because pruning only removes filters).
 */
public final class PackedResNetConverter {
    private PackedResNetConverter() {}

    /**
     * Imports a TorchScript archive straight into a packed model. The result may be shared by concurrent callers of
     * {@code forward}, as any {@link PackedModel}.
     */
    public static PackedModel load(Path file) throws IOException {
        return PackedModel.of(toStructure(TorchPackedImporter.read(file)));
    }

    public static PackedModel.Structure toStructure(PackedResNet net) {
        int depth = 2 * net.blocks().size() + 2;
        PackedResNet.ConvBn stem = net.stem();
        PackedModel.DenseConv stemConv = dense(stem);
        List<PackedModel.Block> blocks = new ArrayList<>();
        for (PackedResNet.Block b : net.blocks()) {
            if (b.concatWidth() > b.outChannels()) {
                throw new IllegalArgumentException(net.source() + ": block " + b.name() + " concatenates " + b.concatWidth()
                        + " conv_a outputs, more than its " + b.outChannels() + " channels; not a pruned basic block");
            }
            int kernel = -1;
            List<PackedModel.Branch> convA = new ArrayList<>();
            int position = 0;
            for (PackedResNet.BranchA a : b.branchesA()) {
                kernel = checkKernel(net, b, a.conv(), kernel);
                int[] out = new int[a.conv().outChannels()];
                for (int j = 0; j < out.length; j++) out[j] = position++;
                convA.add(new PackedModel.Branch(a.inputChannels().clone(), out, a.conv().weight().toFloatArray(), affine(a.conv())));
            }
            List<PackedModel.Branch> convB = new ArrayList<>();
            for (PackedResNet.BranchB br : b.branchesB()) {
                kernel = checkKernel(net, b, br.conv(), kernel);
                convB.add(new PackedModel.Branch(br.concatPositions().clone(), br.outputChannels().clone(), br.conv().weight().toFloatArray(),
                        affine(br.conv())));
            }
            if (kernel < 0) kernel = 3;
            blocks.add(new PackedModel.Block(b.name(), b.inChannels(), b.outChannels(), b.stride(), kernel, convA, convB,
                    b.shortcut() == null ? null : dense(b.shortcut()), null));
        }
        PackedResNet.Linear fc = net.classifier();
        Tensor bias = fc.bias() != null ? fc.bias() : Tensor.zeros(fc.weight().dim(0));
        PackedModel.Classifier classifier = new PackedModel.Classifier(fc.weight().dim(1), fc.weight().dim(0), fc.weight().toFloatArray(),
                bias.toFloatArray());
        return new PackedModel.Structure("cifar_resnet", depth, net.inputChannels(), net.inputSize(), stemConv, blocks, classifier);
    }

    private static int checkKernel(PackedResNet net, PackedResNet.Block b, PackedResNet.ConvBn c, int kernel) {
        if (c.kernel() != c.weight().dim(3) || c.padding() != c.kernel() / 2) {
            throw new IllegalArgumentException(net.source() + ": block " + b.name() + " convolution " + c.module() + " has kernel "
                    + Arrays.toString(c.weight().dims()) + " and padding " + c.padding() + "; only square kernels with 'same' padding are supported");
        }
        if (kernel >= 0 && kernel != c.kernel()) {
            throw new IllegalArgumentException(net.source() + ": block " + b.name() + " mixes kernel sizes " + kernel + " and " + c.kernel());
        }
        return c.kernel();
    }

    private static PackedModel.DenseConv dense(PackedResNet.ConvBn c) {
        return new PackedModel.DenseConv(c.inChannels(), c.outChannels(), c.kernel(), c.stride(), c.padding(), c.weight().toFloatArray(), affine(c));
    }

    /** Eval-mode BN folded into scale and shift; a convolution bias, if any, is folded into the shift. */
    private static PackedModel.Affine affine(PackedResNet.ConvBn c) {
        PackedResNet.BatchNorm bn = c.bn();
        PackedModel.Affine a = PackedModel.Affine.fromBatchNorm(bn.weight().toFloatArray(), bn.bias().toFloatArray(),
                bn.runningMean().toFloatArray(), bn.runningVar().toFloatArray(), bn.eps());
        if (c.bias() == null) return a;
        float[] bias = c.bias().toFloatArray(), shift = a.shift().clone();
        for (int i = 0; i < shift.length; i++) shift[i] += a.scale()[i] * bias[i];
        return new PackedModel.Affine(a.scale(), shift);
    }
}
