package ai.bonsai.dsp.imports;

import ai.bonsai.data.Cifar10;
import ai.bonsai.data.DataLoader;
import ai.bonsai.data.Transform;
import ai.bonsai.dsp.imports.PackedResNet.Block;
import ai.bonsai.dsp.testing.SharedData;
import ai.bonsai.dsp.train.Trainer;
import ai.bonsai.tensor.Device;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The published packed ResNet-20 (G = 4) read from ../shared/reference/resnet20_g4.pt: its structure, the
 * published pruning figures, and the reference model's own accuracy on the shared CIFAR-10 sample (99.175 %,
 * which only an exactly right import and forward reproduce). Skips when ../shared is absent.
 */
class TorchSampleModelTest {
    private static PackedResNet net;

    @BeforeAll
    static void load() throws Exception {
        net = TorchPackedImporter.read(SharedData.require("reference/resnet20_g4.pt"));
    }

    @Test
    void structureIsAResNet20() {
        assertEquals(9, net.blocks().size());
        assertEquals(16, net.stem().outChannels());
        int[] widths = {16, 16, 16, 32, 32, 32, 64, 64, 64};
        for (int i = 0; i < 9; i++) {
            Block b = net.blocks().get(i);
            assertEquals(widths[i], b.outChannels(), b.name());
            assertEquals(i == 3 || i == 6 ? 2 : 1, b.stride(), b.name());
            assertEquals(i == 3 || i == 6, b.shortcut() != null, b.name());
            assertTrue(b.branchesA().size() >= 1 && b.branchesA().size() <= 4 && b.branchesB().size() >= 1 && b.branchesB().size() <= 4, b.name());
        }
        assertEquals("stage_2.0", net.blocks().get(3).name());
        assertEquals(3, net.blocks().get(3).branchesA().size());   // Sampler_T3 in the code
        assertNull(net.blocks().get(0).shortcut());
        assertEquals(8, net.blocks().get(8).outSize());
    }

    @Test
    void publishedPruningFigures() {
        PackedResNetStats s = PackedResNetStats.of(net);
        assertEquals(267_264, s.densePrunableParams());
        assertEquals(40_108_032, s.densePrunableMacs());
        assertEquals(132_426, s.prunableParams());
        assertEquals(63.57, s.prunedFlopsPercent(), 0.005);
        assertEquals(50.45, s.prunedParamsPercent(), 0.005);
        assertEquals(14.6e6, s.prunableMacs(), 0.05e6);
        assertEquals(15.32e6, s.macs(), 0.005e6);
        assertEquals(40.81e6, s.denseMacs(), 0.005e6);
        String report = PackedResNetStats.report(net);
        assertTrue(report.contains("132,426 of 267,264"), report);
    }

    @Test
    void reproducesTheReferencePredictions() throws Exception {
        Path data = SharedData.require("data/cifar10/first4000_of_data_batch_1.bin");
        Cifar10 ds = Cifar10.forEval(data);
        try (DataLoader loader = DataLoader.builder(ds).batchSize(500).transform(Transform.cifarEval()).build()) {
            Trainer.EpochStats r = Trainer.evaluate(new PackedResNetForward(net), loader, Device.cpu());
            assertEquals(4000, r.images());
            assertEquals(99.175, r.accuracy(), 1e-9);
        }
    }
}
