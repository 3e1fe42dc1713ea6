package ai.bonsai.dsp.prune;

import ai.bonsai.nn.BatchNorm2d;
import ai.bonsai.nn.Conv2d;
import ai.bonsai.nn.Linear;
import ai.bonsai.nn.Module;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Group channel pruning and dead-structure removal on models that are not CIFAR ResNets, with small cases worked by
 * hand: a residual add (a dead channel takes the filter of every branch), a concat (offsets), a depthwise
 * convolution (left alone, but a dead expand filter kills the channel through it) and a flatten into a linear layer.
 */
class PruneAnyGraphTest {
    static final Generator G = new Generator(11);

    static void zeroColumn(Conv2d c, int column) {
        float[] w = c.weight().toFloatArray();
        int in = c.inChannels(), kk = c.kernelSize() * c.kernelSize();
        for (int o = 0; o < c.outChannels(); o++) java.util.Arrays.fill(w, (o * in + column) * kk, (o * in + column + 1) * kk, 0f);
        c.weight().copyFrom(Tensor.of(w, c.weight().dims()));
    }

    static void zeroRow(Conv2d c, int filter) {
        float[] w = c.weight().toFloatArray();
        int row = c.inChannels() * c.kernelSize() * c.kernelSize();
        java.util.Arrays.fill(w, filter * row, (filter + 1) * row, 0f);
        c.weight().copyFrom(Tensor.of(w, c.weight().dims()));
    }

    static boolean rowZero(Conv2d c, int filter) {
        float[] w = c.weight().toFloatArray();
        int row = w.length / c.outChannels();
        for (int i = filter * row; i < (filter + 1) * row; i++) if (w[i] != 0f) return false;
        return true;
    }

    static float[] row(Tensor mask, int r) {
        int c = mask.dim(1);
        float[] m = mask.toFloatArray();
        return java.util.Arrays.copyOfRange(m, r * c, (r + 1) * c);
    }

    /** stem -> relu -> (p1 -> bn1) + (p2 -> bn2) -> relu -> q -> bnq -> relu -> r (output). */
    static final class TwoBranch extends Module {
        final Conv2d stem = registerModule("stem", new Conv2d(3, 4, 3, 1, 1, 1, false, G));
        final Conv2d p1 = registerModule("p1", new Conv2d(4, 6, 3, 1, 1, 1, false, G));
        final BatchNorm2d bn1 = registerModule("bn1", new BatchNorm2d(6));
        final Conv2d p2 = registerModule("p2", new Conv2d(4, 6, 1, 1, 0, 1, false, G));
        final BatchNorm2d bn2 = registerModule("bn2", new BatchNorm2d(6));
        final Conv2d q = registerModule("q", new Conv2d(6, 5, 3, 1, 1, 1, false, G));
        final BatchNorm2d bnq = registerModule("bnq", new BatchNorm2d(5));
        final Conv2d r = registerModule("r", new Conv2d(5, 2, 1, 1, 0, 1, false, G));

        @Override public Tensor forward(Tensor x) {
            Tensor h = stem.forward(x).relu();
            Tensor s = bn1.forward(p1.forward(h)).add(bn2.forward(p2.forward(h))).relu();
            return r.forward(bnq.forward(q.forward(s)).relu());
        }
    }

    @Test
    void aChannelNothingReadsTakesTheFilterOfEveryBranchOfTheAdd() {
        TwoBranch m = new TwoBranch();
        PrunableLayer.Discovery d = PrunableLayer.discover(m, 3, 6, 6);
        assertEquals(List.of("p1", "p2", "q", "r"), d.layers().stream().map(PrunableLayer::name).toList());
        assertEquals("stem", d.notPrunable().get(0).name());
        PruneWrapper pw = new PruneWrapper(m, d, 2, -1, null);
        zeroColumn(m.q, 3);           // nobody reads channel 3 of the sum any more
        pw.setBeta(0);                // masks keep everything; only the dead structure goes
        pw.prune();
        assertTrue(rowZero(m.p1, 3) && rowZero(m.p2, 3), "filter 3 of both branches is dead");
        assertEquals(0f, m.bn1.weight().toFloatArray()[3]);
        assertEquals(0f, m.bn2.bias().toFloatArray()[3]);
        assertArrayEquals(new float[4], row(pw.mask(0), 3));
        assertArrayEquals(new float[4], row(pw.mask(1), 3));
        assertEquals(2, pw.lastRemoval().deadFilters());
        for (int f : new int[] {0, 1, 2, 4, 5}) assertTrue(!rowZero(m.p1, f) && !rowZero(m.p2, f), "filter " + f + " stays");
    }

    @Test
    void anEmptyFilterZeroesItsBatchNormAndTheColumnsThatReadIt() {
        TwoBranch m = new TwoBranch();
        PruneWrapper pw = new PruneWrapper(m, PrunableLayer.discover(m, 3, 6, 6), 2, -1, null);
        zeroRow(m.q, 1);               // q's filter 1 is empty: bnq[1] outputs its bias, zeroed; r's column 1 reads 0
        pw.setBeta(0);
        pw.prune();
        assertEquals(0f, m.bnq.weight().toFloatArray()[1]);
        assertEquals(0f, m.bnq.bias().toFloatArray()[1]);
        assertEquals(1, pw.lastRemoval().emptyFilterBnChannels());
        float[] mr = pw.mask(3).toFloatArray();
        for (int o = 0; o < 2; o++) assertEquals(0f, mr[o * 5 + 1], "r's column 1 masked");
        assertEquals(1, pw.lastRemoval().deadInputChannels());
        // But the add's channels: p1 filter 1 empty alone does not kill channel 1 of the sum (p2 still writes it).
        TwoBranch m2 = new TwoBranch();
        PruneWrapper pw2 = new PruneWrapper(m2, PrunableLayer.discover(m2, 3, 6, 6), 2, -1, null);
        zeroRow(m2.p1, 1);
        pw2.setBeta(0);
        pw2.prune();
        assertTrue(!rowZero(m2.p2, 1), "p2's filter 1 still feeds q");
        float[] mq = pw2.mask(2).toFloatArray();
        for (int o = 0; o < 5; o++) assertEquals(1f, mq[o * 6 + 1], "q still reads channel 1");
    }

    /** stem; a (3x3) and b (1x1) concatenated; c reads the concat. */
    static final class Concat extends Module {
        final Conv2d stem = registerModule("stem", new Conv2d(3, 4, 3, 1, 1, 1, false, G));
        final Conv2d a = registerModule("a", new Conv2d(4, 2, 3, 1, 1, 1, false, G));
        final BatchNorm2d bnA = registerModule("bn_a", new BatchNorm2d(2));
        final Conv2d b = registerModule("b", new Conv2d(4, 3, 1, 1, 0, 1, false, G));
        final BatchNorm2d bnB = registerModule("bn_b", new BatchNorm2d(3));
        final Conv2d c = registerModule("c", new Conv2d(5, 4, 1, 1, 0, 1, false, G));

        @Override public Tensor forward(Tensor x) {
            Tensor h = stem.forward(x).relu();
            return c.forward(Tensor.cat(1, bnA.forward(a.forward(h)).relu(), bnB.forward(b.forward(h)).relu()));
        }
    }

    @Test
    void concatOffsetsDecideWhichFilterDies() {
        Concat m = new Concat();
        PruneWrapper pw = new PruneWrapper(m, PrunableLayer.discover(m, 3, 5, 5), 2, -1, null);
        zeroColumn(m.c, 3);           // concat channel 3 = b's filter 1
        pw.setBeta(0);
        pw.prune();
        assertTrue(rowZero(m.b, 1), "b's filter 1");
        assertEquals(0f, m.bnB.weight().toFloatArray()[1]);
        for (int f = 0; f < 2; f++) assertTrue(!rowZero(m.a, f), "a untouched");
        assertTrue(!rowZero(m.b, 0) && !rowZero(m.b, 2));
        assertEquals(1, pw.lastRemoval().deadFilters());
    }

    /** stem; expand 1x1 -> bn -> relu6 -> depthwise 3x3 -> bn -> relu6 -> project 1x1 -> bn. */
    static final class Inverted extends Module {
        final Conv2d stem = registerModule("stem", new Conv2d(3, 4, 3, 1, 1, 1, false, G));
        final Conv2d expand = registerModule("expand", new Conv2d(4, 8, 1, 1, 0, 1, false, G));
        final BatchNorm2d bn1 = registerModule("bn1", new BatchNorm2d(8));
        final Conv2d dw = registerModule("dw", new Conv2d(8, 8, 3, 1, 1, 8, false, G));
        final BatchNorm2d bn2 = registerModule("bn2", new BatchNorm2d(8));
        final Conv2d project = registerModule("project", new Conv2d(8, 4, 1, 1, 0, 1, false, G));
        final BatchNorm2d bn3 = registerModule("bn3", new BatchNorm2d(4));

        static Tensor relu6(Tensor t) { return t.relu().minimum(Tensor.of(new float[] {6f}, 1)); }

        @Override public Tensor forward(Tensor x) {
            Tensor h = stem.forward(x).relu();
            Tensor e = relu6(bn1.forward(expand.forward(h)));
            e = relu6(bn2.forward(dw.forward(e)));
            return bn3.forward(project.forward(e)).add(h);
        }
    }

    @Test
    void depthwiseIsLeftAloneButCarriesDeadChannels() {
        Inverted m = new Inverted();
        PrunableLayer.Discovery d = PrunableLayer.discover(m, 3, 5, 5);
        assertEquals(List.of("expand", "project"), d.layers().stream().map(PrunableLayer::name).toList());
        assertTrue(d.notPrunable().contains(new PrunableLayer.NotPrunable("dw", "a depthwise convolution")), d.format());
        PruneWrapper pw = new PruneWrapper(m, d, 2, -1, null);
        zeroRow(m.expand, 5);
        pw.setBeta(0);
        pw.prune();
        // expand[5] empty -> bn1[5] zeroed -> relu6 0 -> dw[5] reads only zeros, outputs 0 -> bn2[5] zeroed -> project's column 5 dead.
        assertEquals(0f, m.bn1.weight().toFloatArray()[5]);
        assertEquals(0f, m.bn2.weight().toFloatArray()[5]);
        assertEquals(0f, m.bn2.bias().toFloatArray()[5]);
        assertEquals(2, pw.lastRemoval().emptyFilterBnChannels());
        float[] mp = pw.mask(1).toFloatArray();
        for (int o = 0; o < 4; o++) assertEquals(0f, mp[o * 8 + 5]);
        assertTrue(!rowZero(m.dw, 5), "the depthwise weights are not touched");
    }

    /** stem; conv -> bn -> relu -> flatten -> fc. */
    static final class FlattenLinear extends Module {
        final Conv2d stem = registerModule("stem", new Conv2d(3, 4, 3, 1, 1, 1, false, G));
        final Conv2d conv = registerModule("conv", new Conv2d(4, 3, 3, 2, 1, 1, false, G));
        final BatchNorm2d bn = registerModule("bn", new BatchNorm2d(3));
        final Linear fc = registerModule("fc", new Linear(3 * 2 * 2, 4, true, G));

        @Override public Tensor forward(Tensor x) {
            return fc.forward(bn.forward(conv.forward(stem.forward(x).relu())).relu().flatten(1));
        }
    }

    @Test
    void aFilterWhoseFeaturesTheLinearLayerIgnoresDies() {
        FlattenLinear m = new FlattenLinear();
        PruneWrapper pw = new PruneWrapper(m, PrunableLayer.discover(m, 3, 4, 4), 2, -1, null);
        float[] w = m.fc.weight().toFloatArray();
        for (int o = 0; o < 4; o++) java.util.Arrays.fill(w, o * 12 + 4, o * 12 + 8, 0f);      // features 4..7 = channel 1
        m.fc.weight().copyFrom(Tensor.of(w, m.fc.weight().dims()));
        pw.setBeta(0);
        pw.prune();
        assertTrue(rowZero(m.conv, 1));
        assertTrue(!rowZero(m.conv, 0) && !rowZero(m.conv, 2));
        assertEquals(0f, m.bn.weight().toFloatArray()[1]);
        assertEquals(1, pw.lastRemoval().deadFilters());
    }

    @Test
    void exclusionsAreHonouredAndUnknownPatternsRejected() {
        TwoBranch m = new TwoBranch();
        PrunableLayer.Discovery d = PrunableLayer.discover(m, new int[] {3, 6, 6}, PrunableLayer.InputSizeProbe.MODEL, List.of("p*"));
        assertEquals(List.of("q", "r"), d.layers().stream().map(PrunableLayer::name).toList());
        assertEquals(Set.of("stem", "p1", "p2"), d.notPrunable().stream().map(PrunableLayer.NotPrunable::name).collect(java.util.stream.Collectors.toSet()));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> PrunableLayer.discover(m, new int[] {3, 6, 6}, PrunableLayer.InputSizeProbe.MODEL, List.of("layer9.*")));
        assertTrue(e.getMessage().contains("layer9.*") && e.getMessage().contains("matches no module"), e.getMessage());
    }

    @Test
    void theReferenceProbeScalesInputSizeAt32Pixels() {
        TwoBranch m = new TwoBranch();
        PrunableLayer own = PrunableLayer.discover(m, new int[] {3, 64, 64}, PrunableLayer.InputSizeProbe.MODEL, List.of()).layers().get(0);
        PrunableLayer ref = PrunableLayer.discover(m, new int[] {3, 64, 64}, PrunableLayer.InputSizeProbe.REFERENCE, List.of()).layers().get(0);
        assertEquals(4.0 * 64 * 64 / (16 * 32 * 32), own.inputSize(), 1e-12);
        assertEquals(4.0 * 32 * 32 / (16 * 32 * 32), ref.inputSize(), 1e-12);
        assertEquals(own.flops(), ref.flops(), "FLOPs always at the model's own size");
        assertEquals(6L * 4 * 9 * 64 * 64, own.flops());
    }
}
