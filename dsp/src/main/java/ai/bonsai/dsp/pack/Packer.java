package ai.bonsai.dsp.pack;

import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.dsp.pack.PackedModel.Affine;
import ai.bonsai.dsp.pack.PackedModel.Block;
import ai.bonsai.dsp.pack.PackedModel.Branch;
import ai.bonsai.dsp.pack.PackedModel.DenseConv;
import ai.bonsai.dsp.prune.PruneWrapper;
import ai.bonsai.nn.BatchNorm2d;
import ai.bonsai.nn.Conv2d;
import ai.bonsai.nn.Linear;
import ai.bonsai.tensor.Tensor;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Packs a fine-tuned, masked {@link CifarResNet} into a {@link PackedModel} (spec section 6), exactly: the packed
 * network computes what the masked one computes in eval mode, up to float rounding.
 *
 * <p>Per basic block, with each prunable conv's input-channel mask M (its {@code mask} buffer, or where absent the
 * non-zero kernels of its weight):
 * <ol>
 *   <li>conv_b's live filters are its rows with some kept input; conv_a's filter n is kept when its row is
 *       non-empty and some conv_b filter reads channel n (otherwise it cannot reach the output);</li>
 *   <li>conv_a's kept filters are grouped by identical mask rows, one branch per distinct row (any number of
 *       branches), in order of their first filter; the branch weight is W_a[out_b][:, in_b] and its BN is bn_a
 *       restricted to out_b, folded;</li>
 *   <li>conv_b's rows are restricted to the kept conv_a filters and grouped the same way; its outputs are
 *       scatter-added into the residual at their original channels.</li>
 * </ol>
 * Filters with an empty row vanish. Their BN output is a constant (shift, in eval mode), which PruneWrapper zeroes
 * (spec section 5, rule 1); should it be non-zero anyway, a conv_b filter's constant is kept exactly as the
 * block's residual bias, and a conv_a filter's constant that conv_b still reads is an error (it cannot be folded,
 * because zero padding makes conv_b's response to a constant plane non-constant at the borders).
 */
public final class Packer {
    private Packer() {}

    /** Packs {@code model} (its weights, masks and BN running statistics are read, never modified). */
    public static PackedModel pack(CifarResNet model) {
        return PackedModel.of(structure(model));
    }

    /** The packed structure of {@code model}, unvalidated. */
    public static PackedModel.Structure structure(CifarResNet model) {
        DenseConv stem = dense(model.stemConv(), bnOf(model, "bn_1"));
        List<Block> blocks = new ArrayList<>();
        for (int s = 0; s < 3; s++) {
            int b = 0;
            for (CifarResNet.BasicBlock block : model.stage(s)) {
                blocks.add(block("stage_" + (s + 1) + "." + b, block));
                b++;
            }
        }
        Linear fc = model.classifier();
        float[] bias = fc.bias() == null ? new float[fc.outFeatures()] : fc.bias().toFloatArray();
        PackedModel.Classifier cls = new PackedModel.Classifier(fc.inFeatures(), fc.outFeatures(), fc.weight().toFloatArray(), bias);
        return new PackedModel.Structure("cifar_resnet", model.depth(), model.stemConv().inChannels(), 32, stem, blocks, cls);
    }

    private static BatchNorm2d bnOf(CifarResNet model, String name) {
        return (BatchNorm2d) model.namedChildren().get(name);
    }

    private static Affine fold(BatchNorm2d bn) {
        return Affine.fromBatchNorm(bn.weight().toFloatArray(), bn.bias().toFloatArray(), bn.runningMean().toFloatArray(),
                bn.runningVar().toFloatArray(), bn.eps());
    }

    private static DenseConv dense(Conv2d c, BatchNorm2d bn) {
        if (c.groups() != 1 || c.bias() != null) {
            throw new IllegalArgumentException("Packer: convolution " + c + " must have groups=1 and no bias");
        }
        return new DenseConv(c.inChannels(), c.outChannels(), c.kernelSize(), c.stride(), c.padding(), c.weight().toFloatArray(), fold(bn));
    }

    private static Block block(String name, CifarResNet.BasicBlock blk) {
        Conv2d ca = blk.convA(), cb = blk.convB();
        int in = ca.inChannels(), planes = ca.outChannels(), kk = ca.kernelSize() * ca.kernelSize();
        if (cb.inChannels() != planes || cb.outChannels() != planes || cb.kernelSize() != ca.kernelSize() || cb.stride() != 1
                || ca.padding() != ca.kernelSize() / 2 || cb.padding() != cb.kernelSize() / 2) {
            throw new IllegalArgumentException("Packer: block " + name + " is not a basic block of same-padded convolutions (conv_a "
                    + ca.inChannels() + "->" + planes + " k" + ca.kernelSize() + ", conv_b " + cb.inChannels() + "->" + cb.outChannels() + " k" + cb.kernelSize() + ")");
        }
        float[] wa = ca.weight().toFloatArray(), wb = cb.weight().toFloatArray();
        boolean[][] ma = mask(ca, wa, kk), mb = mask(cb, wb, kk);
        Affine bnA = fold(blk.bnA()), bnB = fold(blk.bnB());

        // conv_a filters that conv_b reads through a live filter; an empty conv_a row is dropped, which is exact
        // only when its constant BN output relu(shift) is zero.
        boolean[] aKept = new boolean[planes];
        for (int n = 0; n < planes; n++) {
            boolean read = false;
            for (int m = 0; m < planes && !read; m++) read = mb[m][n];
            if (!read) continue;
            if (any(ma[n])) {
                aKept[n] = true;
            } else if (Math.max(bnA.shift()[n], 0f) != 0f) {
                throw new IllegalArgumentException("Packer: block " + name + " conv_a filter " + n + " has no input channels but its BN outputs the constant "
                        + bnA.shift()[n] + ", which conv_b still reads; prune the model with PruneWrapper (it zeroes the BN of empty filters) before packing");
            }
        }
        boolean[][] mbEff = new boolean[planes][];
        float[] residualBias = new float[planes];
        boolean hasBias = false;
        for (int m = 0; m < planes; m++) {
            mbEff[m] = new boolean[planes];
            for (int n = 0; n < planes; n++) mbEff[m][n] = mb[m][n] && aKept[n];
            if (!any(mbEff[m]) && bnB.shift()[m] != 0f) {
                residualBias[m] = bnB.shift()[m];           // the BN constant of a filter with no inputs left
                hasBias = true;
            }
        }
        List<Branch> branchesA = group(wa, in, kk, ma, aKept, bnA);
        boolean[] bLive = new boolean[planes];
        for (int m = 0; m < planes; m++) bLive[m] = any(mbEff[m]);
        List<Branch> branchesB = group(wb, planes, kk, mbEff, bLive, bnB);
        if (branchesB.isEmpty()) branchesA = List.of();   // nothing reads conv_a
        DenseConv shortcut = null;
        if (blk.downsample() != null) {
            shortcut = dense((Conv2d) blk.downsample().get(0), (BatchNorm2d) blk.downsample().get(1));
        }
        return new Block(name, in, planes, ca.stride(), ca.kernelSize(), branchesA, branchesB, shortcut, hasBias ? residualBias : null);
    }

    /** The input-channel mask of a conv: its {@code mask} buffer when registered, else its non-zero kernels. */
    static boolean[][] mask(Conv2d c, float[] w, int kk) {
        int n = c.outChannels(), ch = c.inChannels();
        Tensor buf = c.namedBuffers().get(PruneWrapper.MASK_BUFFER);
        float[] m = buf == null ? null : buf.toFloatArray();
        if (m != null && m.length != n * ch) {
            throw new IllegalArgumentException("packing: " + c + " mask has " + m.length + " entries, expected (" + n + ", " + ch + ") = " + (n * ch));
        }
        boolean[][] out = new boolean[n][ch];
        for (int f = 0; f < n; f++) {
            for (int i = 0; i < ch; i++) {
                if (m != null) {
                    out[f][i] = m[f * ch + i] != 0f;
                } else {
                    for (int j = 0; j < kk && !out[f][i]; j++) out[f][i] = w[(f * ch + i) * kk + j] != 0f;
                }
            }
        }
        return out;
    }

    /** Groups the {@code keep} filters by identical rows of {@code mask}: one branch per distinct row. */
    private static List<Branch> group(float[] w, int channels, int kk, boolean[][] mask, boolean[] keep, Affine bn) {
        Map<String, List<Integer>> rows = new LinkedHashMap<>();
        for (int f = 0; f < keep.length; f++) {
            if (!keep[f]) continue;
            rows.computeIfAbsent(key(mask[f]), k -> new ArrayList<>()).add(f);
        }
        List<Branch> out = new ArrayList<>();
        for (List<Integer> filters : rows.values()) {
            boolean[] row = mask[filters.get(0)];
            int[] in = indices(row);
            int[] outs = filters.stream().mapToInt(Integer::intValue).toArray();
            float[] weight = new float[outs.length * in.length * kk];
            for (int j = 0; j < outs.length; j++) {
                for (int i = 0; i < in.length; i++) {
                    System.arraycopy(w, (outs[j] * channels + in[i]) * kk, weight, (j * in.length + i) * kk, kk);
                }
            }
            out.add(new Branch(in, outs, weight, bn.select(outs)));
        }
        return out;
    }

    private static String key(boolean[] row) {
        char[] c = new char[row.length];
        for (int i = 0; i < row.length; i++) c[i] = row[i] ? '1' : '0';
        return new String(c);
    }

    private static int[] indices(boolean[] row) {
        return java.util.stream.IntStream.range(0, row.length).filter(i -> row[i]).toArray();
    }

    private static boolean any(boolean[] row) {
        for (boolean b : row) if (b) return true;
        return false;
    }
}
