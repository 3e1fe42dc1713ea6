package ai.bonsai.dsp.imports;

import ai.bonsai.dsp.imports.PackedResNet.Block;
import ai.bonsai.dsp.imports.PackedResNet.BranchA;
import ai.bonsai.dsp.imports.PackedResNet.BranchB;
import ai.bonsai.dsp.imports.PackedResNet.ConvBn;

import java.util.Locale;

/**
 * Multiply-adds and weights of a {@link PackedResNet} for one input of its {@code inputSize}, against the
 * dense ResNet it was pruned from, with the accounting of the published DSP table (spec section 5).
 *
 * <p>Prunable layers are conv_a and conv_b of every block. A branch that reads a gathered subset of channels
 * costs exactly its packed convolution: (filters x gathered channels x k x k) weights and that times the
 * output area in multiply-adds, which is what the masked dense layer's non-zero kernels cost; gathers,
 * concatenation and the scatter-add are memory moves and are not counted. The dense counterpart of a block
 * with input width C, output width N and k x k kernels has conv_a of N x C x k x k and conv_b of N x N x k x k.
 * Whole-network figures add the stem, the shortcut projections and the classifier (weights and bias); batch
 * norm is not counted, as in {@code ModelStats}.
 */
public record PackedResNetStats(long prunableMacs, long densePrunableMacs, long prunableParams, long densePrunableParams,
                                long macs, long denseMacs, long params, long denseParams) {

    public static PackedResNetStats of(PackedResNet net) {
        long pm = 0, dpm = 0, pp = 0, dpp = 0, other = 0, otherParams = 0;
        int stemOut = net.stem().outSize(net.inputSize());
        other += conv(net.stem(), stemOut);
        otherParams += params(net.stem());
        for (Block b : net.blocks()) {
            long area = (long) b.outSize() * b.outSize();
            for (BranchA a : b.branchesA()) { pm += conv(a.conv(), b.outSize()); pp += a.conv().weight().numel(); }
            for (BranchB x : b.branchesB()) { pm += conv(x.conv(), b.outSize()); pp += x.conv().weight().numel(); }
            int ka = b.branchesA().get(0).conv().kernel(), kb = b.branchesB().get(0).conv().kernel();
            long denseA = (long) b.outChannels() * b.inChannels() * ka * ka, denseB = (long) b.outChannels() * b.outChannels() * kb * kb;
            dpp += denseA + denseB;
            dpm += (denseA + denseB) * area;
            if (b.shortcut() != null) {
                other += conv(b.shortcut(), b.outSize());
                otherParams += params(b.shortcut());
            }
        }
        long fc = net.classifier().weight().numel();
        other += fc;
        otherParams += fc + (net.classifier().bias() == null ? 0 : net.classifier().bias().numel());
        return new PackedResNetStats(pm, dpm, pp, dpp, pm + other, dpm + other, pp + otherParams, dpp + otherParams);
    }

    private static long conv(ConvBn c, int outSize) { return (long) c.weight().numel() * outSize * outSize; }

    private static long params(ConvBn c) { return c.weight().numel() + (c.bias() == null ? 0 : c.bias().numel()); }

    /** 100 * (1 - remaining / dense) multiply-adds of the prunable convolutions. */
    public double prunedFlopsPercent() { return 100.0 * (1 - (double) prunableMacs / densePrunableMacs); }

    /** 100 * (1 - remaining / dense) weights of the prunable convolutions. */
    public double prunedParamsPercent() { return 100.0 * (1 - (double) prunableParams / densePrunableParams); }

    /** A readable account: per block, each branch's (in, out) widths, then the totals. */
    public static String report(PackedResNet net) {
        PackedResNetStats s = of(net);
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "packed CIFAR ResNet from %s: %d blocks, stem %d -> %d%n", net.source(), net.blocks().size(),
                net.stem().inChannels(), net.stem().outChannels()));
        for (Block b : net.blocks()) {
            sb.append(String.format(Locale.ROOT, "  %-10s %3d -> %3d ch, %2dx%-2d -> %2dx%-2d%s%n", b.name(), b.inChannels(), b.outChannels(),
                    b.inSize(), b.inSize(), b.outSize(), b.outSize(), b.shortcut() == null ? "" : ", 1x1 shortcut"));
            sb.append("    conv_a (in, out):");
            for (BranchA a : b.branchesA()) sb.append(String.format(Locale.ROOT, " (%d, %d)", a.conv().inChannels(), a.conv().outChannels()));
            sb.append(String.format(Locale.ROOT, "  = %d channels%n    conv_b (in, out):", b.concatWidth()));
            for (BranchB x : b.branchesB()) sb.append(String.format(Locale.ROOT, " (%d, %d)", x.conv().inChannels(), x.conv().outChannels()));
            sb.append('\n');
        }
        sb.append(String.format(Locale.ROOT, "prunable convolutions: %,d of %,d weights remain (pruned params %.2f %%), %,d of %,d multiply-adds (pruned FLOPs %.2f %%)%n",
                s.prunableParams(), s.densePrunableParams(), s.prunedParamsPercent(), s.prunableMacs(), s.densePrunableMacs(), s.prunedFlopsPercent()));
        sb.append(String.format(Locale.ROOT, "whole network (stem, shortcuts, classifier included): %,d multiply-adds (dense %,d), %,d weights (dense %,d)%n",
                s.macs(), s.denseMacs(), s.params(), s.denseParams()));
        return sb.toString();
    }
}
