package ai.bonsai.dsp.prune;

import ai.bonsai.dsp.testing.RandomBatchNorm;
import ai.bonsai.autograd.GradMode;
import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.nn.BatchNorm2d;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * prune()'s dead-structure removal: the pruned network computes exactly what the masked network computes once
 * the BN channels behind empty filters are zeroed (the one documented change, rule 1), in eval mode and in
 * training mode, and no BN running statistic is written.
 */
class PruneDeadStructureTest {

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 3, 4})
    void removalPreservesTheMaskedFunctionAndRunningStatistics(int groups) {
        long seed = 300 + groups;
        CifarResNet model = PruneFixtures.resnet(20, seed);
        // Filter pruning on some conv_a layers too (0, 4, 10) so that empty conv_a filters with nonzero BN
        // biases exist, and on every conv_b.
        int[] fp = {0, 1, 3, 4, 5, 7, 9, 10, 11, 13, 15, 17};
        PruneWrapper pw = new PruneWrapper(model, groups, fp);
        Generator gen = new Generator(seed);
        PruneFixtures.randomGroups(pw, gen);
        RandomBatchNorm.apply(model, gen);

        // The reference network: a copy with the rule masks applied and rule 1's BN zeroing, nothing else.
        CifarResNet expected = PruneFixtures.resnet(20, seed + 1);
        new PruneWrapper(expected, groups, fp);          // registers the same buffers so the state dicts match
        expected.loadStateDict(model.stateDict(), true);
        pw.setBeta(0.4);
        float[][] masks = pw.ruleMasks();
        applyMasksAndEmptyFilterRule(pw, expected, masks);

        Map<String, float[]> statsBefore = PruneFixtures.runningStats(model);
        pw.prune();
        PruneFixtures.assertSameArrays(statsBefore, PruneFixtures.runningStats(model));

        // The pruned model has more zero kernels than the reference network (the rules did something) ...
        assertTrue(zeroKernels(pw, model) > zeroKernels(pw, expected), "dead-structure removal zeroed nothing");
        // ... yet computes the same function, in eval mode (running statistics) ...
        Tensor x = Tensor.randn(new Generator(seed + 2), 3, 3, 8, 8);
        model.eval();
        expected.eval();
        try (var scope = GradMode.noGrad()) {
            assertArrayEquals(expected.forward(x).toFloatArray(), model.forward(x).toFloatArray(), 1e-5f, "eval mode");
            // ... and in training mode (batch statistics; both models update their running statistics alike).
            model.train();
            expected.train();
            assertArrayEquals(expected.forward(x).toFloatArray(), model.forward(x).toFloatArray(), 1e-5f, "training mode");
        }
        // Each rule fired.
        PruneSummary.DeadStructure removed = pw.lastRemoval();
        assertTrue(removed.emptyFilterBnChannels() > 0, "no empty filter: " + removed);
        assertTrue(removed.deadInputChannels() > 0, "no dead conv_b input channel: " + removed);
        if (groups == 1) assertTrue(removed.deadFilters() > 0, "no dead conv_a filter: " + removed);

        // Every stored mask covers the weights' zeros it introduced: weights are zero wherever the mask is.
        for (PrunableLayer p : pw.layers()) {
            float[] m = pw.mask(p.index()).toFloatArray(), w = p.conv().weight().toFloatArray();
            int kk = p.kernel() * p.kernel();
            for (int i = 0; i < m.length; i++) {
                if (m[i] == 0f) for (int j = 0; j < kk; j++) assertEquals(0f, w[i * kk + j], p.name());
            }
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {20, 56})
    void initializeLeavesRunningStatisticsAlone(int depth) {
        CifarResNet model = PruneFixtures.resnet(depth, 77);
        PruneWrapper pw = new PruneWrapper(model, 4, 2);
        Generator gen = new Generator(78);
        PruneFixtures.randomGroups(pw, gen);
        RandomBatchNorm.apply(model, gen);
        Map<String, float[]> before = PruneFixtures.runningStats(model);
        pw.initialize(0.5);
        PruneFixtures.assertSameArrays(before, PruneFixtures.runningStats(model));
    }

    /** Masks the copy's prunable weights and zeroes the BN channel behind every filter left without kernels. */
    private static void applyMasksAndEmptyFilterRule(PruneWrapper pw, CifarResNet copy, float[][] masks) {
        int l = 0;
        for (int s = 0; s < 3; s++) {
            for (CifarResNet.BasicBlock b : copy.stage(s)) {
                maskConv(b.convA().weight(), b.bnA(), masks[l++]);
                maskConv(b.convB().weight(), b.bnB(), masks[l++]);
            }
        }
        assertEquals(pw.layers().size(), l);
    }

    private static void maskConv(Tensor weight, BatchNorm2d bn, float[] mask) {
        float[] w = weight.toFloatArray();
        int n = weight.dim(0), rowLen = weight.numel() / n, kk = weight.dim(2) * weight.dim(3);
        for (int i = 0; i < mask.length; i++) if (mask[i] == 0f) for (int j = 0; j < kk; j++) w[i * kk + j] = 0f;
        float[] gamma = bn.weight().toFloatArray(), beta = bn.bias().toFloatArray();
        for (int f = 0; f < n; f++) {
            boolean empty = true;
            for (int i = f * rowLen; i < (f + 1) * rowLen; i++) empty &= w[i] == 0f;
            if (empty) {
                gamma[f] = 0f;
                beta[f] = 0f;
            }
        }
        weight.copyFrom(Tensor.of(w, weight.dims()));
        bn.weight().copyFrom(Tensor.of(gamma, n));
        bn.bias().copyFrom(Tensor.of(beta, n));
    }

    private static int zeroKernels(PruneWrapper pw, CifarResNet m) {
        int zeros = 0;
        Map<String, Tensor> state = m.stateDict();
        for (PrunableLayer p : pw.layers()) {
            float[] w = state.get(p.name() + ".weight").toFloatArray();
            int kk = p.kernel() * p.kernel();
            for (int i = 0; i < p.filters() * p.channels(); i++) {
                boolean zero = true;
                for (int j = 0; j < kk; j++) zero &= w[i * kk + j] == 0f;
                if (zero) zeros++;
            }
        }
        return zeros;
    }
}
