package ai.bonsai.dsp.imports;

import ai.bonsai.autograd.GradMode;
import ai.bonsai.dsp.pack.PackedModel;
import ai.bonsai.dsp.testing.SharedData;
import ai.bonsai.io.torch.TorchArchive;
import ai.bonsai.io.torch.TorchLimits;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Imported models run on Bonsai's packed model (fused multi-branch kernels): its logits equal the importer's
 * reference forward, its counts equal the importer's, and it survives the packed file format.
 */
class PackedResNetConverterTest {

    static void assertSameLogits(PackedResNet net, PackedModel packed, Tensor x) {
        try (var scope = GradMode.noGrad()) {
            float[] want = new PackedResNetForward(net).forward(x).toFloatArray();
            float[] got = packed.forward(x).toFloatArray();
            float max = 0;
            for (float v : want) max = Math.max(max, Math.abs(v));
            for (int i = 0; i < want.length; i++) assertEquals(want[i], got[i], 1e-4 * max + 1e-6, "logit " + i);
        }
    }

    @Test
    void aSyntheticArchiveOfAnotherShape(@TempDir Path tmp) throws Exception {
        SyntheticPackedModel m = new SyntheticPackedModel(7);
        PackedResNet net = TorchPackedImporter.read(TorchArchive.read(m.bytes(), "fake.pt", TorchLimits.DEFAULT));
        PackedModel packed = PackedModel.of(PackedResNetConverter.toStructure(net));
        assertSameLogits(net, packed, Tensor.randn(new Generator(1), 3, 3, 8, 8));
        Path file = tmp.resolve("fake.packed.safetensors");
        packed.save(file);
        assertSameLogits(net, PackedModel.load(file), Tensor.randn(new Generator(2), 2, 3, 8, 8));
    }

    @Test
    void thePublishedResNet20(@TempDir Path tmp) throws Exception {
        Path pt = SharedData.require("reference/resnet20_g4.pt");
        PackedResNet net = TorchPackedImporter.read(pt);
        PackedModel packed = PackedResNetConverter.load(pt);
        assertSameLogits(net, packed, Tensor.randn(new Generator(3), 4, 3, 32, 32));
        PackedResNetStats s = PackedResNetStats.of(net);
        PackedModel.PrunableCounts c = packed.prunableCounts();
        assertEquals(s.prunableMacs(), c.macs());
        assertEquals(s.densePrunableMacs(), c.denseMacs());
        assertEquals(132_426, c.params());
        assertEquals(267_264, c.denseParams());
        assertEquals(63.57, c.prunedFlopsPercent(), 0.005);
        assertEquals(50.45, c.prunedParamsPercent(), 0.005);
        assertEquals(s.macs(), packed.macs());
        Path file = tmp.resolve("resnet20_g4.packed.safetensors");
        packed.save(file);
        assertSameLogits(net, PackedModel.load(file), Tensor.randn(new Generator(4), 2, 3, 32, 32));
    }
}
