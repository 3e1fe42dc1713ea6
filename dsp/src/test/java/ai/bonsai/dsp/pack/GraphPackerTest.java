package ai.bonsai.dsp.pack;

import ai.bonsai.dsp.graph.ModelGraph;
import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.dsp.models.ModelStats;
import ai.bonsai.dsp.pack.PackedGraph.Type;
import ai.bonsai.dsp.testing.RandomBatchNorm;
import ai.bonsai.nn.BatchNorm2d;
import ai.bonsai.nn.Conv2d;
import ai.bonsai.nn.Module;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A packed graph computes what the masked model computes in eval mode (relative error at most 1e-4 of the logit
 * scale, batches of 1, 3 and 5), on CIFAR ResNets and on hand-built stand-ins for the other architectures; and it
 * costs fewer multiply-adds than the dense model, with more than one branch somewhere.
 */
class GraphPackerTest {

    /** Packs, checks equivalence on batches 1, 3, 5 at each size, and the MAC/branch claims; returns the packed graph. */
    static PackedGraph checkEquivalent(Module masked, int[] inputDims, int[]... extraSizes) {
        PackedGraph packed = GraphPacker.pack(masked, inputDims);
        Generator g = new Generator(99);
        int[][] sizes = new int[extraSizes.length + 1][];
        sizes[0] = new int[] {inputDims[1], inputDims[2]};
        System.arraycopy(extraSizes, 0, sizes, 1, extraSizes.length);
        for (int[] hw : sizes) {
            for (int n : new int[] {1, 3, 5}) {
                Tensor x = Tensor.randn(g, n, inputDims[0], hw[0], hw[1]);
                float[] ref = PackFixtures.denseLogits(masked, x);
                float[] got = packed.forward(x).toFloatArray();
                double err = PackFixtures.relativeError(ref, got);
                assertTrue(err <= 1e-4, "batch " + n + " at " + Arrays.toString(hw) + ": relative error " + err + "\n" + packed);
            }
        }
        assertTrue(packed.macs() < packed.denseMacs(), "packed MACs " + packed.macs() + " vs dense " + packed.denseMacs() + "\n" + packed);
        assertEquals(ModelStats.of(masked, inputDims).macs(), packed.denseMacs());
        assertTrue(packed.maxBranches() > 1, "expected some convolution with several branches\n" + packed);
        return packed;
    }

    static long count(PackedGraph p, Type t) { return p.structure().steps().stream().filter(s -> s.type() == t).count(); }

    @Test
    void cifarResNet8PacksIntoPairsThatAddIntoTheResidual() {
        CifarResNet m = PackFixtures.masked(8, 4, 0.5, 1);
        PackedGraph p = checkEquivalent(m, new int[] {3, 32, 32}, new int[] {13, 9});
        // One pair per basic block, accumulating into its residual; the rest: stem, 2 projections, pool, flatten, fc.
        assertEquals(3, count(p, Type.CONV_PAIR), p.toString());
        p.structure().steps().stream().filter(s -> s.type() == Type.CONV_PAIR).forEach(s -> assertEquals(2, s.inputs().length, s.name()));
        assertEquals(3, count(p, Type.CONV), p.toString());
        assertEquals(0, count(p, Type.RELU) + count(p, Type.ADD), "every ReLU and add is fused\n" + p);
    }

    @Test
    void concurrentForwardsOnOneInstanceGiveTheSingleThreadedResult() throws Exception {
        PackedGraph p = GraphPacker.pack(PackFixtures.masked(8, 4, 0.5, 4), 3, 32, 32);
        Tensor[] xs = new Tensor[4];
        float[][] want = new float[xs.length][];
        for (int i = 0; i < xs.length; i++) {
            xs[i] = Tensor.randn(new Generator(40 + i), 1 + i, 3, 32, 32);
            want[i] = p.forward(xs[i]).toFloatArray();
        }
        java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(4);
        try {
            List<java.util.concurrent.Future<?>> done = new java.util.ArrayList<>();
            for (int t = 0; t < 4; t++) {
                done.add(pool.submit(() -> {
                    for (int r = 0; r < 5; r++) {
                        for (int i = 0; i < xs.length; i++) org.junit.jupiter.api.Assertions.assertArrayEquals(want[i], p.forward(xs[i]).toFloatArray());
                    }
                    return null;
                }));
            }
            for (java.util.concurrent.Future<?> f : done) f.get();
        } finally {
            pool.shutdown();
        }
    }

    @Test
    void cifarResNet20MatchesTheMaskedModel() {
        CifarResNet m = PackFixtures.masked(20, 4, 0.5, 2);
        PackedGraph p = checkEquivalent(m, new int[] {3, 32, 32});
        assertEquals(9, count(p, Type.CONV_PAIR), p.toString());
    }

    @Test
    void cifarResNetPackedGraphAgreesWithTheResNetPacker() {
        CifarResNet m = PackFixtures.masked(8, 4, 0.6, 3);
        PackedGraph g = GraphPacker.pack(m, 3, 32, 32);
        PackedModel r = Packer.pack(m);
        assertEquals(r.macs(), g.macs(), "same convolution and classifier MACs as PackedModel");
        Tensor x = Tensor.randn(new Generator(5), 2, 3, 32, 32);
        assertTrue(PackFixtures.relativeError(r.forward(x).toFloatArray(), g.forward(x).toFloatArray()) <= 1e-5);
    }

    @Test
    void concatOfTwoPrunedBranches() {
        Generator g = new Generator(11);
        int[] dims = {3, 12, 12};
        Module m = GraphModels.prune(new GraphModels.ConcatNet(g), dims, 3, 2, 0.5, g);
        PackedGraph p = checkEquivalent(m, dims, new int[] {7, 10});
        assertEquals(1, count(p, Type.CONCAT), p.toString());
    }

    @Test
    void invertedResidualWithDepthwiseConvolutionsAndReLU6() {
        Generator g = new Generator(12);
        int[] dims = {3, 10, 10};
        Module m = GraphModels.prune(new GraphModels.InvertedResidualNet(g, 6f), dims, 4, 2, 0.5, g);
        PackedGraph p = checkEquivalent(m, dims, new int[] {9, 7});
        assertEquals(2, count(p, Type.GROUPED_CONV), p.toString());
        assertTrue(count(p, Type.MIN) >= 4, p.toString());
        // The same network with a cap of 0.5, so that the clamp changes values on random weights.
        Generator g2 = new Generator(13);
        Module low = GraphModels.prune(new GraphModels.InvertedResidualNet(g2, 0.5f), dims, 4, 2, 0.5, g2);
        checkEquivalent(low, dims);
    }

    @Test
    void bottleneckBlocksWithProjectionAndMaxPool() {
        Generator g = new Generator(14);
        int[] dims = {3, 16, 16};
        Module m = GraphModels.prune(new GraphModels.BottleneckNet(g), dims, 4, 3, 0.5, g);
        PackedGraph p = checkEquivalent(m, dims, new int[] {11, 13});
        assertEquals(1, count(p, Type.MAX_POOL), p.toString());
        assertEquals(0, count(p, Type.ADD), "both residual adds are scatter-adds\n" + p);
    }

    @Test
    void vggChainWithFlattenIntoLinear() {
        Generator g = new Generator(15);
        int[] dims = {3, 8, 8};
        Module m = GraphModels.prune(new GraphModels.VggNet(g), dims, 4, 2, 0.5, g);
        PackedGraph p = checkEquivalent(m, dims);
        assertEquals(2, count(p, Type.MAX_POOL), p.toString());
        assertEquals(2, count(p, Type.LINEAR), p.toString());
        assertEquals(1, count(p, Type.FLATTEN), p.toString());
    }

    @Test
    void sharedWeightsSelfResidualBatchNormAfterConcatAndBiasConstants() {
        Generator g = new Generator(16);
        int[] dims = {3, 9, 9};
        Module m = GraphModels.prune(new GraphModels.OddNet(g), dims, 3, 2, 0.5, g);
        PackedGraph p = checkEquivalent(m, dims, new int[] {6, 11});
        assertEquals(1, count(p, Type.AFFINE), "the BN after the concat\n" + p);
        assertEquals(1, count(p, Type.MAX), p.toString());
        assertEquals(1, count(p, Type.CONCAT), p.toString());
        // The shared 1x1 convolution is packed once per use: here its two uses, ReLU between, make one pair.
        assertEquals(1, p.structure().steps().stream().filter(s -> s.name().equals("shared+shared")).count(), p.toString());
        // The one-convolution residual reads its own residual: it accumulates into a copy (still exact, above).
        assertEquals(List.of(1, 1), p.structure().steps().stream().filter(s -> s.name().equals("s")).map(s -> List.of(s.inputs()[0], s.inputs()[1])).findFirst().orElseThrow());
    }

    @Test
    void theTraceRecordsTheMaxPoolWindowEvenForADirectCall() {
        ModelGraph graph = ModelGraph.trace(new GraphModels.VggNet(new Generator(1)), 3, 8, 8);
        assertEquals(2, graph.ops(ModelGraph.Kind.POOL).size());
        for (ModelGraph.Op op : graph.ops(ModelGraph.Kind.POOL)) assertEquals("maxPool2d k2 s2 p0", op.detail());
        ModelGraph b = ModelGraph.trace(new GraphModels.BottleneckNet(new Generator(1)), 3, 16, 16);
        assertEquals("maxPool2d k3 s2 p1", b.ops(ModelGraph.Kind.POOL).get(0).detail());
        // No MaxPool2d module at all: the window is found by search (k2 s2 p0 and k4 s2 p1 give the same shape).
        ModelGraph f = ModelGraph.trace(new FunctionalPool(), 3, 8, 8);
        assertEquals("maxPool2d k3 s2 p1", f.ops(ModelGraph.Kind.POOL).get(0).detail());
        Tensor x = Tensor.randn(new Generator(2), 2, 3, 8, 8);
        FunctionalPool m = new FunctionalPool();
        assertTrue(PackFixtures.relativeError(PackFixtures.denseLogits(m, x), GraphPacker.pack(m, 3, 8, 8).forward(x).toFloatArray()) <= 1e-6);
    }

    /** conv then a max pooling called through Functional, with no module to read its window from. */
    static final class FunctionalPool extends Module {
        final Conv2d c = registerModule("c", GraphModels.conv(3, 4, 3, 1, new Generator(1)));

        @Override public Tensor forward(Tensor x) { return ai.bonsai.nn.Functional.maxPool2d(c.forward(x), 3, 2, 1); }
    }

    /** x -> a -> bn_a -> relu -> b -> bn_b; + x; relu; with masks set by hand and the BN of empty filters left non-zero. */
    static final class Block extends Module {
        final Conv2d stem, a, b;
        final BatchNorm2d bnStem, bnA, bnB;

        Block(Generator g) {
            stem = registerModule("stem", GraphModels.conv(3, 6, 3, 1, g));
            bnStem = registerModule("bn_stem", new BatchNorm2d(6));
            a = registerModule("a", GraphModels.conv(6, 6, 3, 1, g));
            bnA = registerModule("bn_a", new BatchNorm2d(6));
            b = registerModule("b", GraphModels.conv(6, 6, 3, 1, g));
            bnB = registerModule("bn_b", new BatchNorm2d(6));
        }

        @Override public Tensor forward(Tensor x) {
            Tensor h = bnStem.forward(stem.forward(x)).relu();
            Tensor y = bnB.forward(b.forward(bnA.forward(a.forward(h)).relu()));
            return h.add(y).relu();
        }
    }

    /** Empties filter f of conv c (mask row and weights), leaving its BN alone. */
    static void emptyFilter(Conv2d c, int f) {
        int n = c.outChannels(), ch = c.inChannels(), kk = c.kernelSize() * c.kernelSize();
        float[] mask = new float[n * ch];
        Arrays.fill(mask, 1f);
        Tensor existing = c.namedBuffers().get("mask");
        if (existing != null) mask = existing.toFloatArray();
        Arrays.fill(mask, f * ch, (f + 1) * ch, 0f);
        if (existing != null) existing.copyFrom(Tensor.of(mask, n, ch));
        else c.registerBuffer("mask", Tensor.of(mask, n, ch));
        float[] w = c.weight().toFloatArray();
        Arrays.fill(w, f * ch * kk, (f + 1) * ch * kk, 0f);
        c.weight().copyFrom(Tensor.of(w, c.weight().dims()));
    }

    @Test
    void constantsOfEmptyFiltersAreKeptExactly() {
        Generator g = new Generator(21);
        Block m = new Block(g);
        RandomBatchNorm.apply(m, g);
        // conv_b filter 2 empty with a non-zero BN shift: a constant added to the residual; conv_a filter 4 empty with
        // a positive shift: relu(shift) is a constant plane that conv_b reads, so no pair (zero padding) but exact.
        m.bnB.bias().copyFrom(Tensor.of(new float[] {0.1f, 0.2f, 0.7f, -0.1f, 0.3f, 0.2f}, 6));
        m.bnA.bias().copyFrom(Tensor.of(new float[] {0.1f, 0.2f, 0.7f, -0.1f, 0.9f, 0.2f}, 6));
        m.bnA.runningMean().copyFrom(Tensor.zeros(6));
        emptyFilter(m.b, 2);
        emptyFilter(m.a, 4);
        emptyFilter(m.a, 1);
        m.eval();
        PackedGraph p = GraphPacker.pack(m, 3, 7, 7);
        assertEquals(0, count(p, Type.CONV_PAIR), "conv_a's constant plane is read by conv_b: no pair\n" + p);
        Tensor x = Tensor.randn(new Generator(3), 3, 3, 7, 7);
        double err = PackFixtures.relativeError(PackFixtures.denseLogits(m, x), p.forward(x).toFloatArray());
        assertTrue(err <= 1e-5, "relative error " + err + "\n" + p);
        // With conv_a's empty filter dark (shift <= 0 after the ReLU), the pair is back.
        m.bnA.bias().copyFrom(Tensor.of(new float[] {0.1f, -0.2f, 0.7f, -0.1f, -0.9f, 0.2f}, 6));
        PackedGraph pair = GraphPacker.pack(m, 3, 7, 7);
        assertEquals(1, count(pair, Type.CONV_PAIR), pair.toString());
        err = PackFixtures.relativeError(PackFixtures.denseLogits(m, x), pair.forward(x).toFloatArray());
        assertTrue(err <= 1e-5, "relative error " + err + "\n" + pair);
    }

    /** conv -> sigmoid: an activation a packed graph does not replay. */
    static final class Sigmoid extends Module {
        final Conv2d c = registerModule("c", GraphModels.conv(3, 4, 3, 1, new Generator(1)));

        @Override public Tensor forward(Tensor x) { return c.forward(x).sigmoid(); }
    }

    /** An element-wise product of two activations: an opaque op. */
    static final class Product extends Module {
        final Conv2d c = registerModule("c", GraphModels.conv(3, 4, 3, 1, new Generator(1)));

        @Override public Tensor forward(Tensor x) {
            Tensor h = c.forward(x);
            return h.mul(h.relu());
        }
    }

    @Test
    void unsupportedOpsAreNamed() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> GraphPacker.pack(new Sigmoid(), 3, 5, 5));
        assertTrue(e.getMessage().contains("sigmoid") && e.getMessage().contains("cannot replay"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> GraphPacker.pack(new Product(), 3, 5, 5));
        assertTrue(e.getMessage().contains("OPAQUE") && e.getMessage().contains("mul"), e.getMessage());
    }

    @Test
    void unprunedModelPacksIntoOneBranchPerConvolution() {
        Generator g = new Generator(31);
        GraphModels.BottleneckNet m = new GraphModels.BottleneckNet(g);
        RandomBatchNorm.apply(m, g);
        m.eval();
        PackedGraph p = GraphPacker.pack(m, 3, 16, 16);
        assertEquals(1, p.maxBranches(), p.toString());
        assertEquals(p.denseMacs(), p.macs(), "dense: every MAC is still there");
        Tensor x = Tensor.randn(g, 2, 3, 16, 16);
        assertTrue(PackFixtures.relativeError(PackFixtures.denseLogits(m, x), p.forward(x).toFloatArray()) <= 1e-5);
    }
}
