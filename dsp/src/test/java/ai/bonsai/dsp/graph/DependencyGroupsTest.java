package ai.bonsai.dsp.graph;

import ai.bonsai.dsp.graph.DependencyGroups.Group;
import ai.bonsai.dsp.graph.DependencyGroups.Member;
import ai.bonsai.dsp.graph.DependencyGroups.Role;
import ai.bonsai.dsp.graph.ModelGraph.Kind;
import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.nn.BatchNorm2d;
import ai.bonsai.nn.Conv2d;
import ai.bonsai.nn.Linear;
import ai.bonsai.nn.Module;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The traced graph and its dependency groups on hand-built models, each with the groups stated by hand: a
 * residual add, a concat, a depthwise convolution and a flatten into a linear layer.
 */
class DependencyGroupsTest {
    static final Generator G = new Generator(7);

    /** The members of group of (layer's filter f), as "layer role [indices]" strings, sorted. */
    static List<String> groupOfFilter(DependencyGroups d, String layer, int f) {
        Group g = d.groupsOfFilters(layer).get(f);
        List<String> out = new ArrayList<>();
        for (Member m : g.members()) out.add(m.toString());
        out.sort(null);
        return out;
    }

    /** x -> a (3x3) -> bn_a -> relu -> b (3x3) -> bn_b; c (1x1) -> bn_c; add; relu -> d (1x1). */
    static final class Residual extends Module {
        final Conv2d a = registerModule("a", new Conv2d(3, 4, 3, 1, 1, 1, false, G));
        final BatchNorm2d bnA = registerModule("bn_a", new BatchNorm2d(4));
        final Conv2d b = registerModule("b", new Conv2d(4, 5, 3, 1, 1, 1, false, G));
        final BatchNorm2d bnB = registerModule("bn_b", new BatchNorm2d(5));
        final Conv2d c = registerModule("c", new Conv2d(3, 5, 1, 1, 0, 1, false, G));
        final BatchNorm2d bnC = registerModule("bn_c", new BatchNorm2d(5));
        final Conv2d d = registerModule("d", new Conv2d(5, 2, 1, 1, 0, 1, false, G));

        @Override public Tensor forward(Tensor x) {
            Tensor y = bnB.forward(b.forward(bnA.forward(a.forward(x)).relu()));
            return d.forward(y.add(bnC.forward(c.forward(x))).relu());
        }
    }

    @Test
    void residualAddTiesTheFiltersOfEveryBranch() {
        ModelGraph g = ModelGraph.trace(new Residual(), 3, 6, 6);
        assertEquals(List.of(Kind.INPUT, Kind.CONV, Kind.BATCH_NORM, Kind.ACTIVATION, Kind.CONV, Kind.BATCH_NORM, Kind.CONV, Kind.BATCH_NORM,
                Kind.ADD, Kind.ACTIVATION, Kind.CONV), g.ops().stream().map(ModelGraph.Op::kind).toList(), g.toString());
        DependencyGroups d = new DependencyGroups(g);
        // Channel 2 after the add: filter 2 of b and of c, their BN channels, column 2 of d.
        assertEquals(List.of("b producer [2]", "bn_b batch_norm [2]", "bn_c batch_norm [2]", "c producer [2]", "d consumer [2]"),
                groupOfFilter(d, "b", 2), d.toString());
        assertEquals(d.groupsOfFilters("b").get(2), d.groupsOfFilters("c").get(2));
        // Inside the branch: filter 1 of a goes with bn_a channel 1 and column 1 of b, and nothing else.
        assertEquals(List.of("a producer [1]", "b consumer [1]", "bn_a batch_norm [1]"), groupOfFilter(d, "a", 1));
        assertFalse(d.groupsOfFilters("a").get(1).pinned());
        // d's filters are the model's output: pinned.
        assertTrue(d.groupsOfFilters("d").get(0).pinned());
        // The input's channels are read by a and c: pinned.
        assertTrue(d.group(d.groupOf(0, 0)).pinned());
    }

    /** Two convolutions concatenated, then a 1x1 conv. */
    static final class Concat extends Module {
        final Conv2d a = registerModule("a", new Conv2d(3, 2, 3, 1, 1, 1, false, G));
        final Conv2d b = registerModule("b", new Conv2d(3, 3, 1, 1, 0, 1, false, G));
        final Conv2d c = registerModule("c", new Conv2d(5, 4, 1, 1, 0, 1, false, G));

        @Override public Tensor forward(Tensor x) { return c.forward(Tensor.cat(1, a.forward(x).relu(), b.forward(x))); }
    }

    @Test
    void concatOffsetsTheChannelIndices() {
        ModelGraph g = ModelGraph.trace(new Concat(), 3, 5, 5);
        assertEquals(1, g.ops(Kind.CONCAT).size(), g.toString());
        DependencyGroups d = new DependencyGroups(g);
        assertEquals(List.of("a producer [1]", "c consumer [1]"), groupOfFilter(d, "a", 1));
        assertEquals(List.of("b producer [0]", "c consumer [2]"), groupOfFilter(d, "b", 0));
        assertEquals(List.of("b producer [2]", "c consumer [4]"), groupOfFilter(d, "b", 2));
    }

    /** 1x1 expand, depthwise 3x3, 1x1 project (MobileNetV2's inverted residual without the add). */
    static final class Depthwise extends Module {
        final Conv2d expand = registerModule("expand", new Conv2d(3, 6, 1, 1, 0, 1, false, G));
        final BatchNorm2d bn1 = registerModule("bn1", new BatchNorm2d(6));
        final Conv2d dw = registerModule("dw", new Conv2d(6, 6, 3, 1, 1, 6, false, G));
        final BatchNorm2d bn2 = registerModule("bn2", new BatchNorm2d(6));
        final Conv2d project = registerModule("project", new Conv2d(6, 4, 1, 1, 0, 1, false, G));

        @Override public Tensor forward(Tensor x) {
            Tensor h = bn1.forward(expand.forward(x)).relu();
            h = bn2.forward(dw.forward(h)).relu();
            return project.forward(h);
        }
    }

    @Test
    void depthwiseConvolutionTiesItsInputToItsOutput() {
        DependencyGroups d = new DependencyGroups(ModelGraph.trace(new Depthwise(), 3, 5, 5));
        // Filter 3 of expand -> bn1[3] -> dw channel 3 -> bn2[3] -> column 3 of project: one group.
        assertEquals(List.of("bn1 batch_norm [3]", "bn2 batch_norm [3]", "dw depthwise [3]", "expand producer [3]", "project consumer [3]"),
                groupOfFilter(d, "expand", 3), d.toString());
        assertEquals(d.groupsOfFilters("expand").get(3), d.groupsOfFilters("dw").get(3));
    }

    /** conv -> flatten -> linear. */
    static final class FlattenLinear extends Module {
        final Conv2d conv = registerModule("conv", new Conv2d(3, 2, 3, 1, 0, 1, true, G));
        final Linear fc = registerModule("fc", new Linear(2 * 2 * 3, 5, true, G));

        @Override public Tensor forward(Tensor x) { return fc.forward(conv.forward(x).relu().flatten(1)); }
    }

    @Test
    void flattenIntoLinearFollowsTheLastFeatureMapsChannels() {
        ModelGraph g = ModelGraph.trace(new FlattenLinear(), 3, 4, 5);
        assertEquals(List.of(Kind.INPUT, Kind.CONV, Kind.ACTIVATION, Kind.FLATTEN, Kind.LINEAR), g.ops().stream().map(ModelGraph.Op::kind).toList(), g.toString());
        assertEquals("bias", g.ops(Kind.LINEAR).get(0).detail(), "the bias add is part of the linear op");
        DependencyGroups d = new DependencyGroups(g);
        // The feature map is 2 channels of 2x3: filter 1 goes with the linear layer's columns 6..11.
        assertEquals(List.of("conv producer [1]", "fc consumer [6, 7, 8, 9, 10, 11]"), groupOfFilter(d, "conv", 1));
        assertEquals(List.of("conv producer [0]", "fc consumer [0, 1, 2, 3, 4, 5]"), groupOfFilter(d, "conv", 0));
    }

    @Test
    void cifarResNetTracesWithEveryBlockAndItsShortcut() {
        CifarResNet m = new CifarResNet(8, 10, new Generator(1));
        m.train();
        ModelGraph g = ModelGraph.trace(m, 3, 32, 32);
        assertTrue(m.isTraining() && m.stemConv().isTraining(), "train mode restored");
        assertEquals(1 + 2 * 3 + 2, g.ops(Kind.CONV).size(), g.toString());   // stem, 2 per block, 2 projections
        assertEquals(3, g.ops(Kind.ADD).size());
        assertEquals(1, g.ops(Kind.LINEAR).size());
        assertEquals(0, g.ops(Kind.OPAQUE).size(), g.toString());
        DependencyGroups d = new DependencyGroups(g);
        // Stage 2's residual stream: conv_b of its block and the projection write the same channels.
        assertEquals(d.groupsOfFilters("stage_2.0.conv_b").get(7), d.groupsOfFilters("stage_2.0.downsample.0").get(7));
        // conv_a's filter 5 goes with bn_a and conv_b's column 5 only.
        assertEquals(List.of("stage_2.0.bn_a batch_norm [5]", "stage_2.0.conv_a producer [5]", "stage_2.0.conv_b consumer [5]"),
                groupOfFilter(d, "stage_2.0.conv_a", 5));
        // The last stage's channels reach the classifier through pooling and flatten.
        assertTrue(groupOfFilter(d, "stage_3.0.conv_b", 3).contains("classifier consumer [3]"), d.toString());
    }

    @Test
    void aProbeOfTheWrongSizeSaysSo() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ModelGraph.trace(new FlattenLinear(), 3, 8, 8));
        assertTrue(e.getMessage().contains("[1, 3, 8, 8]"), e.getMessage());
    }
}
