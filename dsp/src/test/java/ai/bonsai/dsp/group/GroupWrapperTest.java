package ai.bonsai.dsp.group;

import ai.bonsai.autograd.GradMode;
import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.dsp.prune.PrunableLayer;
import ai.bonsai.nn.Functional;
import ai.bonsai.optim.SGD;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link GroupWrapper} on a ResNet-8 (one block per stage, six prunable layers) with 2-image 8x8 batches: the
 * seeded Gumbel sampling, the look-ahead leaving no trace but the hard penalty and the Adam step on the
 * logits, no NaN from dead channels, stats(), and a bit-exact resume through tensors()/metadata()/restore().
 */
class GroupWrapperTest {
    private static final int G = 4;
    private static final float LAMBDA = 0.5f, TAU = 0.5f;
    private static final long T = 10;

    /** A model, its optimiser and a wrapper, all from fixed seeds. */
    record Setup(CifarResNet model, SGD opt, GroupWrapper gw) {
        static Setup of(long modelSeed, long groupSeed) {
            CifarResNet model = new CifarResNet(8, 10, new Generator(modelSeed));
            SGD opt = new SGD(model.parameters(), 0.05f, 0.9f, 1e-3f);
            GroupWrapper gw = new GroupWrapper(model, PrunableLayer.find(model), opt, Functional::crossEntropy, LAMBDA, T, G, TAU,
                    new Generator(groupSeed), GroupWrapper.DEFAULT_GROUP_LR, null);
            return new Setup(model, opt, gw);
        }

        /** initialize, forward, backward, optimiser step: everything before afterStep. */
        void trainStep(Tensor x, Tensor y) {
            gw.initialize();
            Tensor loss = Functional.crossEntropy(model.forward(x), y);
            opt.zeroGrad();
            loss.backward();
            opt.step();
        }

        void iteration(Tensor x, Tensor y) {
            trainStep(x, y);
            gw.afterStep(x, y);
        }
    }

    static Tensor batch() { return Tensor.randn(new Generator(42), 2, 3, 8, 8); }

    static Tensor labels() { return Tensor.ofLongs(new long[] {3, 7}, 2); }

    static Map<String, float[]> values(Map<String, Tensor> state) {
        Map<String, float[]> m = new LinkedHashMap<>();
        state.forEach((k, v) -> m.put(k, v.toFloatArray()));
        return m;
    }

    @Test
    void findsAndPrintsThePrunableLayersAndRegistersGroupBuffers() {
        CifarResNet model = new CifarResNet(8, 10, new Generator(1));
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        GroupWrapper gw = new GroupWrapper(model, PrunableLayer.find(model), new SGD(model.parameters(), 0.1f), Functional::crossEntropy,
                LAMBDA, T, 3, TAU, new Generator(2), 1e-3f, new PrintStream(bytes, true, StandardCharsets.UTF_8));
        String printed = bytes.toString(StandardCharsets.UTF_8);
        assertEquals(6, gw.layers().size());
        assertTrue(printed.contains("  0 stage_1.0.conv_a         16   16  3"), printed);
        assertTrue(printed.contains("  5 stage_3.0.conv_b         64   64  3"), printed);
        Map<String, Tensor> state = model.stateDict();
        assertArrayEquals(new int[] {3, 16}, state.get("stage_1.0.conv_a.group").dims());
        assertArrayEquals(new int[] {3, 64}, state.get("stage_3.0.conv_b.group").dims());
        assertFalse(state.containsKey("conv_1_3x3.group"));
        assertFalse(state.containsKey("stage_2.0.downsample.0.group"));
        assertEquals(0.0, gw.stats());
        assertEquals("std 0.0000", gw.progressFields());
    }

    @Test
    void gumbelSamplingUsesTheSeed() {
        Setup a = Setup.of(1, 5), b = Setup.of(1, 5), c = Setup.of(1, 6);
        long before = a.gw.generator().state();
        a.gw.initialize();
        b.gw.beforeForward();
        c.gw.initialize();
        assertTrue(a.gw.generator().state() != before, "noise must come from the wrapper's generator");
        boolean differs = false;
        for (int l = 0; l < a.gw.layers().size(); l++) {
            float[] pa = a.gw.assignment(l).toFloatArray();
            assertArrayEquals(pa, b.gw.assignment(l).toFloatArray(), "same seed, same P (layer " + l + ")");
            differs |= !java.util.Arrays.equals(pa, c.gw.assignment(l).toFloatArray());
            int n = a.gw.layers().get(l).filters();
            for (int f = 0; f < n; f++) {
                double col = 0;
                for (int g = 0; g < G; g++) {
                    assertTrue(pa[g * n + f] > 0 && pa[g * n + f] < 1);
                    col += pa[g * n + f];
                }
                assertEquals(1.0, col, 1e-6, "column " + f + " of layer " + l);
            }
        }
        assertTrue(differs, "another seed gives another P");
    }

    @Test
    void afterStepChangesOnlyTheHardPenaltyAndTheLogits() {
        Setup s = Setup.of(1, 5);
        Tensor x = batch(), y = labels();
        s.iteration(x, y);                         // momentum buffers and Adam moments exist from here on
        s.trainStep(x, y);
        Map<String, float[]> before = values(s.model.stateDict());
        float[][] momentum = new float[s.opt.params().size()][];
        for (int i = 0; i < momentum.length; i++) momentum[i] = s.opt.momentumBuffer(i).toFloatArray();
        float lr = s.opt.lr();
        assertEquals(1, s.gw.step());

        s.gw.afterStep(x, y);

        assertEquals(2, s.gw.step());
        float alpha = (float) ((double) LAMBDA * lr * 2 / T);
        assertEquals(alpha, s.gw.alpha() * 2 / 3, 1e-9f, "alpha_t = lambda * lr * (t + 1) / T");
        Map<String, float[]> after = values(s.model.stateDict());
        Map<String, PrunableLayer> prunable = new LinkedHashMap<>();
        for (PrunableLayer l : s.gw.layers()) prunable.put(l.name() + ".weight", l);
        for (Map.Entry<String, float[]> e : before.entrySet()) {
            String key = e.getKey();
            float[] now = after.get(key);
            if (key.endsWith(".group")) {
                float[] was = e.getValue();
                double maxStep = 0;
                for (int i = 0; i < was.length; i++) {
                    assertTrue(Float.isFinite(now[i]));
                    maxStep = Math.max(maxStep, Math.abs(now[i] - was[i]));
                }
                assertTrue(maxStep > 0, key + " must move");
                assertTrue(maxStep <= 3 * GroupWrapper.DEFAULT_GROUP_LR, key + " moved by " + maxStep + ", more than an Adam step");
            } else if (prunable.containsKey(key)) {
                PrunableLayer l = prunable.get(key);
                Tensor wBefore = Tensor.of(e.getValue(), l.conv().weight().dims());
                Tensor logitsAfter = s.model.stateDict().get(l.name() + ".group");
                float[] pen = new GroupRegularizer(l, G).hardPenalty(wBefore, logitsAfter).toFloatArray();
                float[] expect = e.getValue().clone();
                for (int i = 0; i < expect.length; i++) expect[i] = expect[i] - pen[i] * alpha;
                assertArrayEquals(expect, now, key + " = W - alpha * penalty(W, Phat)");
                assertFalse(java.util.Arrays.equals(e.getValue(), now), key + " must feel the penalty");
            } else {
                assertArrayEquals(e.getValue(), now, key + " must be restored exactly");
            }
        }
        for (int i = 0; i < momentum.length; i++) {
            assertArrayEquals(momentum[i], s.opt.momentumBuffer(i).toFloatArray(), "momentum buffer " + i);
        }
        for (Tensor p : s.model.parameters()) assertNull(p.grad(), "look-ahead gradients are cleared");
    }

    @Test
    void deadGroupChannelGivesNoNaN() {
        Setup s = Setup.of(3, 4);
        Tensor w = s.gw.layers().get(1).conv().weight();
        float[] wv = w.toFloatArray();
        int c = w.dim(1);
        for (int f = 0; f < w.dim(0); f++) for (int j = 0; j < 9; j++) wv[(f * c + 2) * 9 + j] = 0f;   // input channel 2 dead
        try (var scope = GradMode.noGrad()) {
            w.copyFrom(Tensor.of(wv, w.dims()));
        }
        Tensor x = batch(), y = labels();
        for (int i = 0; i < 3; i++) s.iteration(x, y);
        for (Map.Entry<String, Tensor> e : s.model.stateDict().entrySet()) {
            for (float v : e.getValue().toFloatArray()) assertTrue(Float.isFinite(v), e.getKey() + " holds " + v);
        }
        assertTrue(Double.isFinite(s.gw.stats()));
    }

    @Test
    void statsIsTheMeanUnbiasedStdOfTheLogits() {
        Setup s = Setup.of(1, 5);
        double expect = 0;
        for (int l = 0; l < s.gw.layers().size(); l++) {
            Tensor a = s.gw.logits(l);
            float[] v = new float[a.numel()];
            for (int i = 0; i < v.length; i++) v[i] = i % 2;                    // half zeros, half ones
            a.copyFrom(Tensor.of(v, a.dims()));
            expect += Math.sqrt(0.25 * v.length / (v.length - 1));              // torch.std (unbiased)
        }
        assertEquals(expect / s.gw.layers().size(), s.gw.stats(), 1e-12);
    }

    @Test
    void resumeContinuesBitExactly() {
        Tensor x = batch(), y = labels();
        Setup a = Setup.of(1, 5);
        a.iteration(x, y);
        a.iteration(x, y);
        Map<String, Tensor> extraTensors = new LinkedHashMap<>();
        a.gw.tensors().forEach((k, v) -> extraTensors.put(k, v.copy()));
        Map<String, String> meta = a.gw.metadata();
        Map<String, Tensor> modelState = new LinkedHashMap<>();
        a.model.stateDict().forEach((k, v) -> modelState.put(k, v.copy()));
        Map<String, Tensor> optState = new LinkedHashMap<>();
        a.opt.stateDict().forEach((k, v) -> optState.put(k, v.copy()));

        Setup b = Setup.of(99, 1234);                                       // different seeds: everything comes from the save
        b.model.loadStateDict(modelState, true);
        b.opt.loadStateDict(optState);
        b.gw.restore(extraTensors, meta);
        assertEquals(2, b.gw.step());

        a.iteration(x, y);
        b.iteration(x, y);
        Map<String, float[]> va = values(a.model.stateDict()), vb = values(b.model.stateDict());
        for (String k : va.keySet()) assertArrayEquals(va.get(k), vb.get(k), k);
        assertEquals(a.gw.generator().state(), b.gw.generator().state());
    }

    @Test
    void misuseIsReported() {
        Setup s = Setup.of(1, 5);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> s.gw.afterStep(batch(), labels()));
        assertTrue(e.getMessage().contains("initialize()"), e.getMessage());
        IllegalArgumentException bad = assertThrows(IllegalArgumentException.class, () -> new GroupWrapper(s.model, s.opt,
                Functional::crossEntropy, LAMBDA, 0, G, TAU, new Generator(1)));
        assertTrue(bad.getMessage().contains("totalIterations must be >= 1, got 0"), bad.getMessage());
        bad = assertThrows(IllegalArgumentException.class, () -> s.gw.restore(Map.of(), Map.of()));
        assertTrue(bad.getMessage().contains("group_t"), bad.getMessage());
        List<PrunableLayer> none = List.of();
        assertThrows(IllegalArgumentException.class, () -> new GroupWrapper(s.model, none, s.opt, Functional::crossEntropy, LAMBDA, T, G,
                TAU, new Generator(1), 1e-3f, null));
    }
}
