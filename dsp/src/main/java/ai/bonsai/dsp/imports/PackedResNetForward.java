package ai.bonsai.dsp.imports;

import ai.bonsai.dsp.imports.PackedResNet.BatchNorm;
import ai.bonsai.dsp.imports.PackedResNet.Block;
import ai.bonsai.dsp.imports.PackedResNet.BranchA;
import ai.bonsai.dsp.imports.PackedResNet.BranchB;
import ai.bonsai.dsp.imports.PackedResNet.ConvBn;
import ai.bonsai.nn.Functional;
import ai.bonsai.nn.Module;
import ai.bonsai.tensor.Device;
import ai.bonsai.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;

/**
 * The reference forward pass of a {@link PackedResNet}, written with plain engine ops exactly as the
 * structure's documentation reads: indexSelect for the gathers, conv2d + eval batchNorm (+ relu) per branch,
 * cat for the concatenation, indexAdd for the residual scatter-add. It is the yardstick a faster packed model
 * is compared with, not a fast path itself. Inference only: it has no trainable parameters of its own and
 * always runs batch norm in eval mode.
 */
public final class PackedResNetForward extends Module {
    private final PackedResNet net;
    private final Device device;
    /** Index tensors per block, built once: [a-branch inputs..., b-branch positions..., b-branch outputs...]. */
    private final List<Tensor[]> indices = new ArrayList<>();

    public PackedResNetForward(PackedResNet net) { this(net, Device.cpu()); }

    /** Runs on {@code device}: the weights are copied there once. */
    public PackedResNetForward(PackedResNet net, Device device) {
        this.device = device;
        this.net = device.equals(Device.cpu()) ? net : moved(net, device);
        for (Block b : this.net.blocks()) {
            int na = b.branchesA().size(), nb = b.branchesB().size();
            Tensor[] t = new Tensor[na + 2 * nb];
            for (int i = 0; i < na; i++) t[i] = index(b.branchesA().get(i).inputChannels());
            for (int i = 0; i < nb; i++) {
                t[na + i] = index(b.branchesB().get(i).concatPositions());
                t[na + nb + i] = index(b.branchesB().get(i).outputChannels());
            }
            indices.add(t);
        }
        eval();
    }

    public PackedResNet network() { return net; }

    /** x is (N, 3, H, W), normalised; returns (N, classes) logits. */
    @Override public Tensor forward(Tensor x) {
        if (x.rank() != 4 || x.dim(1) != net.inputChannels()) {
            throw new IllegalArgumentException("packed ResNet: expected input (N, " + net.inputChannels() + ", H, W), got " + x.shape());
        }
        x = convBn(x, net.stem()).relu();
        for (int k = 0; k < net.blocks().size(); k++) x = block(x, net.blocks().get(k), indices.get(k));
        x = Functional.adaptiveAvgPool2d(x, 1, 1).flatten(1);
        return Functional.linear(x, net.classifier().weight(), net.classifier().bias());
    }

    private static Tensor block(Tensor x, Block b, Tensor[] idx) {
        int na = b.branchesA().size(), nb = b.branchesB().size();
        Tensor[] parts = new Tensor[na];
        for (int i = 0; i < na; i++) {
            BranchA a = b.branchesA().get(i);
            parts[i] = convBn(Functional.indexSelect(x, 1, idx[i]), a.conv()).relu();
        }
        Tensor cat = na == 1 ? parts[0] : Tensor.cat(1, parts);
        Tensor r = b.shortcut() == null ? x : convBn(x, b.shortcut());
        for (int i = 0; i < nb; i++) {
            BranchB br = b.branchesB().get(i);
            Tensor y = convBn(Functional.indexSelect(cat, 1, idx[na + i]), br.conv());
            r = Functional.indexAdd(r, 1, idx[na + nb + i], y);
        }
        return r.relu();
    }

    private static Tensor convBn(Tensor x, ConvBn c) {
        Tensor y = Functional.conv2d(x, c.weight(), c.bias(), c.stride(), c.padding(), 1);
        BatchNorm bn = c.bn();
        return Functional.batchNorm(y, bn.runningMean(), bn.runningVar(), bn.weight(), bn.bias(), false, 0f, bn.eps());
    }

    private Tensor index(int[] v) {
        long[] l = new long[v.length];
        for (int i = 0; i < v.length; i++) l[i] = v[i];
        Tensor t = Tensor.ofLongs(l, l.length);
        return device.equals(Device.cpu()) ? t : t.to(device);
    }

    private static PackedResNet moved(PackedResNet n, Device d) {
        List<Block> blocks = new ArrayList<>();
        for (Block b : n.blocks()) {
            List<BranchA> as = new ArrayList<>();
            for (BranchA a : b.branchesA()) as.add(new BranchA(a.module(), a.inputChannels(), move(a.conv(), d)));
            List<BranchB> bs = new ArrayList<>();
            for (BranchB x : b.branchesB()) bs.add(new BranchB(x.module(), x.concatPositions(), x.outputChannels(), move(x.conv(), d)));
            blocks.add(new Block(b.name(), b.inChannels(), b.outChannels(), b.inSize(), b.outSize(), b.stride(), as, bs,
                    b.shortcut() == null ? null : move(b.shortcut(), d)));
        }
        PackedResNet.Linear fc = n.classifier();
        return new PackedResNet(n.source(), n.inputChannels(), n.inputSize(), move(n.stem(), d), blocks,
                new PackedResNet.Linear(fc.weight().to(d), fc.bias() == null ? null : fc.bias().to(d)));
    }

    private static ConvBn move(ConvBn c, Device d) {
        BatchNorm bn = c.bn();
        return new ConvBn(c.module(), c.weight().to(d), c.bias() == null ? null : c.bias().to(d), c.stride(), c.padding(),
                new BatchNorm(bn.weight().to(d), bn.bias().to(d), bn.runningMean().to(d), bn.runningVar().to(d), bn.eps()));
    }
}
