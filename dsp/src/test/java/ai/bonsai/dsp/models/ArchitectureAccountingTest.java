package ai.bonsai.dsp.models;

import ai.bonsai.dsp.graph.ModelGraph;
import ai.bonsai.dsp.prune.PrunableLayer;
import ai.bonsai.dsp.prune.PruneRates;
import ai.bonsai.dsp.prune.PruneWrapper;
import ai.bonsai.nn.Module;
import ai.bonsai.tensor.Generator;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Dense multiply-adds (convolutions and linear layers, from the traced graph) and parameters of each architecture
 * against the figures torchvision's documentation gives, and DSP's bisection hitting its pruned-FLOPs target within
 * 0.5 points on every architecture.
 */
class ArchitectureAccountingTest {
    static void check(Module m, double gmacs, long params) {
        ModelStats s = ModelStats.of(m, 3, 224, 224);
        assertEquals(gmacs, s.macs() / 1e9, 0.005, m.getClass().getSimpleName() + " GMACs");
        assertEquals(params, s.allParams(), m.getClass().getSimpleName() + " parameters");
    }

    @Test
    void resnet18() { check(TorchvisionResNet.resnet18(1000, new Generator(1)), 1.81, 11_689_512); }

    @Test
    void resnet34() { check(TorchvisionResNet.resnet34(1000, new Generator(1)), 3.66, 21_797_672); }

    @Test
    void resnet50() { check(TorchvisionResNet.resnet50(1000, new Generator(1)), 4.09, 25_557_032); }

    @Test
    void mobilenetV2() { check(MobileNetV2.mobilenetV2(1000, new Generator(1)), 0.30, 3_504_872); }

    @Test
    void everyArchitectureTracesWithoutOpaqueOps() {
        for (String name : Architectures.names()) {
            Module m = Architectures.of(name, 0).create(10, new Generator(2));
            ModelGraph g = ModelGraph.trace(m, 3, 32, 32);
            assertEquals(List.of(), g.ops(ModelGraph.Kind.OPAQUE), name + "\n" + g);
        }
    }

    /** Which convolutions DSP takes: every plain conv but the stem and projections; MobileNetV2's depthwise ones never. */
    @Test
    void prunableLayersFollowTheReferenceRule() {
        PrunableLayer.Discovery r50 = PrunableLayer.discover(TorchvisionResNet.resnet50(10, new Generator(3)), 3, 32, 32);
        assertEquals(48, r50.layers().size(), r50.format());          // 16 bottlenecks x 3
        assertEquals(1 + 4, r50.notPrunable().size(), r50.format());  // the stem and 4 projections
        PrunableLayer.Discovery mb = PrunableLayer.discover(MobileNetV2.mobilenetV2(10, new Generator(3)), 3, 32, 32);
        long depthwise = mb.notPrunable().stream().filter(n -> n.reason().equals("a depthwise convolution")).count();
        assertEquals(17, depthwise, mb.format());
        assertTrue(mb.layers().stream().allMatch(p -> p.conv().groups() == 1));
        PrunableLayer.Discovery vgg = PrunableLayer.discover(new Vgg16Bn(10, new Generator(3)), 3, 32, 32);
        assertEquals(12, vgg.layers().size(), vgg.format());
    }

    /** The bisection's final beta prunes close to the target on every architecture (CIFAR-sized input, G=2). */
    @Test
    void prunedFlopsHitTheTargetWithinHalfAPoint() {
        for (String name : Architectures.names()) {
            Module m = Architectures.of(name, 0).create(10, new Generator(4));
            PrunableLayer.Discovery d = PrunableLayer.discover(m, 3, 32, 32);
            PruneWrapper pw = new PruneWrapper(m, d, 2, name.equals("resnet50") ? 3 : 2, null);
            PruneRates r = pw.initialize(0.5);
            assertEquals(50, r.prunedFlopsPercent(), 0.5, name + ": " + r);
        }
        CifarResNet c = new CifarResNet(20, 10, new Generator(4));
        assertEquals(50, new PruneWrapper(c, 4, 2).initialize(0.5).prunedFlopsPercent(), 0.5, "CIFAR ResNet-20");
    }
}
