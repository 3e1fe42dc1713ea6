package ai.bonsai.dsp.pack;

import ai.bonsai.data.Cifar10;
import ai.bonsai.data.Transform;
import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.dsp.models.ModelStats;
import ai.bonsai.dsp.prune.PruneWrapper;
import ai.bonsai.dsp.testing.SharedData;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The packed network computes what the masked dense network computes (eval mode): max |diff| <= 1e-4 * max |out|
 * on random inputs for ResNet-20 and ResNet-56 with G = 2, 3, 4, on a block whose whole conv_b is pruned, and on
 * real CIFAR-10 images from ../shared (skipped when absent). Also: MAC accounting against ModelStats.
 */
class PackEquivalenceTest {
    private static final double TOL = 1e-4;

    private static void assertEquivalent(CifarResNet model, PackedModel packed, Tensor x, String what) {
        float[] ref = PackFixtures.denseLogits(model, x);
        float[] got = packed.forward(x).toFloatArray();
        double err = PackFixtures.relativeError(ref, got);
        assertTrue(err <= TOL, what + ": max |packed - masked| / max |masked| = " + err);
    }

    @ParameterizedTest(name = "ResNet-{0} G={1} rate={2}")
    @CsvSource({"20, 2, 0.50", "20, 3, 0.60", "20, 4, 0.65", "56, 2, 0.55", "56, 3, 0.60", "56, 4, 0.65"})
    void packedMatchesMaskedOnRandomInputs(int depth, int groups, double rate) {
        CifarResNet model = PackFixtures.masked(depth, groups, rate, 1000 + depth * 10 + groups);
        PackedModel packed = Packer.pack(model);
        Tensor x = Tensor.randn(new Generator(7), 3, 3, 32, 32);
        assertEquivalent(model, packed, x, "ResNet-" + depth + " G=" + groups);
        // Pruning happened, the counts agree with ModelStats for the dense network, and more than one branch exists.
        assertEquals(ModelStats.of(model).macs(), packed.denseMacs());
        assertEquals(ModelStats.of(model).params(), packed.denseParams());
        assertTrue(packed.macs() < 0.75 * packed.denseMacs(), "packed " + packed.macs() + " of " + packed.denseMacs());
        int maxBranches = packed.structure().blocks().stream().mapToInt(b -> b.convA().size()).max().orElse(0);
        assertTrue(maxBranches >= 2, "expected multi-branch blocks, got at most " + maxBranches);
    }

    @Test void blockWithWholeConvBPrunedPassesTheResidualThrough() {
        CifarResNet model = PackFixtures.masked(20, 4, 0.5, 77);
        PruneWrapper pw = new PruneWrapper(model, 4, 2);   // finds the existing buffers
        CifarResNet.BasicBlock blk = model.stage(1).get(1);
        int convB = -1;
        for (int l = 0; l < pw.layers().size(); l++) if (pw.layers().get(l).conv() == blk.convB()) convB = l;
        pw.mask(convB).fill(0f);
        pw.afterStep();                                    // applies the mask to the weights
        // What PruneWrapper's rule 1 does for empty filters: their BN goes to zero.
        blk.bnB().weight().fill(0f);
        blk.bnB().bias().fill(0f);
        PackedModel packed = Packer.pack(model);
        PackedModel.Block b = packed.structure().blocks().get(4);
        assertEquals("stage_2.1", b.name());
        assertTrue(b.convA().isEmpty() && b.convB().isEmpty() && b.residualBias() == null,
                "expected a pass-through block, got " + b.convA().size() + " conv_a and " + b.convB().size() + " conv_b branches");
        assertEquals(0, packed.blockStats().get(4).macs());
        assertEquivalent(model, packed, Tensor.randn(new Generator(8), 2, 3, 32, 32), "pass-through block");
    }

    @Test void emptyConvBFiltersWithNonZeroBnKeepTheirConstant() {
        CifarResNet model = PackFixtures.masked(20, 2, 0.5, 78);
        PruneWrapper pw = new PruneWrapper(model, 2, 2);
        CifarResNet.BasicBlock blk = model.stage(0).get(2);
        for (int l = 0; l < pw.layers().size(); l++) if (pw.layers().get(l).conv() == blk.convB()) pw.mask(l).fill(0f);
        pw.afterStep();                                    // BN of conv_b left as it is: a constant per channel
        PackedModel packed = Packer.pack(model);
        assertTrue(packed.structure().blocks().get(2).residualBias() != null);
        assertEquivalent(model, packed, Tensor.randn(new Generator(9), 2, 3, 32, 32), "residual bias");
    }

    @Test void packedMatchesMaskedOnRealImages() throws Exception {
        Path file = SharedData.require("data/cifar10/first4000_of_data_batch_1.bin");
        Cifar10 data = Cifar10.forEval(file);
        int n = 32;
        float[] images = new float[n * 3 * 32 * 32];
        Transform norm = Transform.cifarEval();
        for (int i = 0; i < n; i++) {
            data.image(i, images, i * 3 * 32 * 32);
            norm.apply(images, i * 3 * 32 * 32, 3, 32, 32, new Generator(0));
        }
        Tensor x = Tensor.of(images, n, 3, 32, 32);
        for (int groups : new int[] {2, 4}) {
            CifarResNet model = PackFixtures.masked(20, groups, 0.6, 500 + groups);
            assertEquivalent(model, Packer.pack(model), x, "real images, G=" + groups);
        }
    }

    @Test void oddInputSizesAndBatchOne() {
        CifarResNet model = PackFixtures.masked(20, 3, 0.6, 91);
        PackedModel packed = Packer.pack(model);
        assertEquivalent(model, packed, Tensor.randn(new Generator(10), 1, 3, 32, 32), "batch 1");
        assertEquivalent(model, packed, Tensor.randn(new Generator(11), 5, 3, 13, 21), "13x21 input");
    }
}
