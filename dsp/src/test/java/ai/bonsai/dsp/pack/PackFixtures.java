package ai.bonsai.dsp.pack;

import ai.bonsai.autograd.GradMode;
import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.dsp.prune.PruneWrapper;
import ai.bonsai.dsp.testing.RandomBatchNorm;
import ai.bonsai.nn.Module;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;

/**
 * Masked CIFAR ResNets for the packing tests: random weights, random BN parameters and running statistics, random
 * group logits, then {@link PruneWrapper#initialize} at the requested rate, in eval mode; plus the comparison the
 * tests share.
 */
public final class PackFixtures {
    private PackFixtures() {}

    /** A pruned model; filter pruning on every conv_b (fpEveryNthConv = 2), as on CIFAR. */
    public static CifarResNet masked(int depth, int groups, double rate, long seed) {
        Generator g = new Generator(seed);
        CifarResNet model = new CifarResNet(depth, 10, g);
        RandomBatchNorm.apply(model, g);
        PruneWrapper pw = new PruneWrapper(model, groups, 2);
        for (int l = 0; l < pw.layers().size(); l++) {
            Tensor a = pw.groupLogits(l);
            a.copyFrom(Tensor.randn(g, a.dims()));
        }
        pw.initialize(rate);
        model.eval();
        return model;
    }

    static float[] denseLogits(Module model, Tensor x) {
        try (var scope = GradMode.noGrad()) {
            return model.forward(x).toFloatArray();
        }
    }

    /** max |a - b| / max |a|: the tests require it to be at most 1e-4. */
    static double relativeError(float[] ref, float[] got) {
        if (ref.length != got.length) throw new AssertionError("lengths differ: " + ref.length + " vs " + got.length);
        double maxRef = 0, maxDiff = 0;
        for (int i = 0; i < ref.length; i++) {
            maxRef = Math.max(maxRef, Math.abs(ref[i]));
            maxDiff = Math.max(maxDiff, Math.abs(ref[i] - got[i]));
        }
        return maxDiff / Math.max(maxRef, 1e-30);
    }
}
