package ai.bonsai.dsp.pack;

import ai.bonsai.dsp.models.Architectures;
import ai.bonsai.dsp.prune.PrunableLayer;
import ai.bonsai.dsp.prune.PruneWrapper;
import ai.bonsai.dsp.testing.RandomBatchNorm;
import ai.bonsai.nn.Module;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The packed model equals the masked one on every architecture: random batch-norm statistics (so folding and the
 * constants of dead filters matter), random group logits (several branches per layer), pruned to 50 % of the FLOPs
 * with the reference's filter pruning, packed, and compared on seeded random inputs of batch 1 and 3.
 */
class GraphPackerArchitecturesTest {
    @ParameterizedTest
    @CsvSource({"resnet18, 2, 32", "resnet34, 2, 32", "resnet50, 3, 32", "vgg16, 2, 32", "mobilenetv2, 2, 32", "mobilenetv2, 2, 64"})
    void packedEqualsMasked(String arch, int fpEvery, int size) {
        Generator g = new Generator(21);
        Module model = Architectures.of(arch, 0).create(10, g);
        RandomBatchNorm.apply(model, g);
        PrunableLayer.Discovery d = PrunableLayer.discover(model, 3, size, size);
        PruneWrapper pw = new PruneWrapper(model, d, 2, fpEvery, null);
        for (int l = 0; l < pw.layers().size(); l++) {
            Tensor a = pw.groupLogits(l);
            a.copyFrom(Tensor.randn(g, a.dims()));
        }
        pw.initialize(0.5);
        model.eval();
        PackedGraph packed = GraphPacker.pack(model, 3, size, size);
        assertTrue(packed.macs() < packed.denseMacs(), arch + ": packed MACs " + packed.macs() + " vs dense " + packed.denseMacs());
        assertTrue(packed.maxBranches() > 1, arch + ": one branch everywhere");
        for (int batch : new int[] {1, 3}) {
            Tensor x = Tensor.randn(new Generator(batch), batch, 3, size, size);
            double rel = PackFixtures.relativeError(PackFixtures.denseLogits(model, x), packed.forward(x).toFloatArray());
            assertTrue(rel <= 1e-4, arch + " at " + size + ", batch " + batch + ": relative error " + rel);
        }
    }
}
