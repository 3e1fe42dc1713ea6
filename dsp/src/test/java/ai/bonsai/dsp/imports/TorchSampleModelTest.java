package ai.bonsai.dsp.imports;

import ai.bonsai.data.Cifar10;
import ai.bonsai.data.DataLoader;
import ai.bonsai.data.Transform;
import ai.bonsai.dsp.imports.PackedResNet.Block;
import ai.bonsai.dsp.testing.PublishedModels;
import ai.bonsai.dsp.testing.PublishedModels.Model;
import ai.bonsai.dsp.testing.SharedData;
import ai.bonsai.dsp.train.Trainer;
import ai.bonsai.tensor.Device;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The six published packed models read from ../shared/reference: their structure, the published pruning
 * figures and multiply-adds, and each model's own accuracy on the shared CIFAR-10 sample (which only an
 * exactly right import and forward reproduce: these models were trained on those images). Skips when
 * ../shared is absent.
 */
class TorchSampleModelTest {

    @ParameterizedTest(name = "{0}")
    @MethodSource("ai.bonsai.dsp.testing.PublishedModels#all")
    void structureIsACifarResNet(Model m) throws Exception {
        PackedResNet net = TorchPackedImporter.read(m.file());
        int perStage = (m.depth() - 2) / 6;
        assertEquals(3 * perStage, net.blocks().size());
        assertEquals(16, net.stem().outChannels());
        boolean singleA = false;
        for (int i = 0; i < net.blocks().size(); i++) {
            Block b = net.blocks().get(i);
            int stage = i / perStage;
            boolean first = i % perStage == 0 && stage > 0;
            assertEquals("stage_" + (stage + 1) + "." + (i % perStage), b.name());
            assertEquals(16 << stage, b.outChannels(), b.name());
            assertEquals(first ? 2 : 1, b.stride(), b.name());
            assertEquals(first, b.shortcut() != null, b.name());
            assertEquals(32 >> stage, b.outSize(), b.name());
            assertTrue(b.branchesA().size() >= 1 && b.branchesB().size() >= 1, b.name());
            singleA |= b.branchesA().size() == 1;
        }
        assertNull(net.blocks().get(0).shortcut());
        // The README of ../shared/reference: some blocks of the files other than ResNet-20 G=4 and G=3 pack
        // conv_a into a single branch, the form the first importer refused.
        if (!m.name().equals("resnet20_g4") && !m.name().equals("resnet20_g3")) assertTrue(singleA, "no single-branch conv_a in " + m);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("ai.bonsai.dsp.testing.PublishedModels#all")
    void publishedFigures(Model m) throws Exception {
        PackedResNetStats s = PackedResNetStats.of(TorchPackedImporter.read(m.file()));
        assertEquals(m.prunedFlopsPercent(), s.prunedFlopsPercent(), 0.005);
        assertEquals(m.prunedParamsPercent(), s.prunedParamsPercent(), 0.005);
        assertEquals(m.denseMacs(), s.denseMacs());
        assertEquals(m.packedMacs(), s.macs());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("ai.bonsai.dsp.testing.PublishedModels#all")
    void reproducesTheReferencePredictions(Model m) throws Exception {
        PackedResNet net = TorchPackedImporter.read(m.file());
        Path data = SharedData.require("data/cifar10/first4000_of_data_batch_1.bin");
        try (DataLoader loader = DataLoader.builder(Cifar10.forEval(data)).batchSize(500).transform(Transform.cifarEval()).build()) {
            Trainer.EpochStats r = Trainer.evaluate(new PackedResNetForward(net), loader, Device.cpu());
            assertEquals(4000, r.images());
            assertEquals(m.accuracy(), r.accuracy(), 1e-9, m.name());
        }
    }

    /** Hand-checked details of ResNet-20 G=4 (its code names Sampler_T3 for stage_2.0's conv_a). */
    @Test
    void resnet20G4Details() throws Exception {
        PackedResNet net = TorchPackedImporter.read(PublishedModels.ALL.get(0).file());
        assertEquals(3, net.blocks().get(3).branchesA().size());
        PackedResNetStats s = PackedResNetStats.of(net);
        assertEquals(267_264, s.densePrunableParams());
        assertEquals(40_108_032, s.densePrunableMacs());
        assertEquals(132_426, s.prunableParams());
        String report = PackedResNetStats.report(net);
        assertTrue(report.contains("132,426 of 267,264"), report);
    }
}
