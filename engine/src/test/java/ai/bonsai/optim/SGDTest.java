package ai.bonsai.optim;

import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** SGD against values worked out by hand (a one-element parameter, gradient 1 every step) and a double-precision reference. */
class SGDTest {

    /** Runs three steps of {@code opt} on p (initially 1) with gradient 1 and returns p after each. */
    private static float[] threeSteps(java.util.function.Function<List<Tensor>, SGD> make) {
        Tensor p = Tensor.of(new float[] {1f}, 1).requiresGrad(true);
        SGD opt = make.apply(List.of(p));
        float[] out = new float[3];
        for (int s = 0; s < 3; s++) {
            p.setGrad(Tensor.of(new float[] {1f}, 1));
            opt.step();
            out[s] = p.item();
        }
        return out;
    }

    @Test
    void handComputedSteps() {
        // plain: p -= 0.1 * 1
        assertArrayEquals(new float[] {0.9f, 0.8f, 0.7f}, threeSteps(ps -> new SGD(ps, 0.1f)), 1e-6f);
        // momentum 0.9: buf = 1, 1.9, 2.71 -> p = 0.9, 0.71, 0.439
        assertArrayEquals(new float[] {0.9f, 0.71f, 0.439f}, threeSteps(ps -> new SGD(ps, 0.1f, 0.9f, 0f)), 1e-6f);
        // dampening 0.5 (not applied on the first step): buf = 1, 0.9 + 0.5 = 1.4, 1.26 + 0.5 = 1.76
        assertArrayEquals(new float[] {0.9f, 0.76f, 0.584f}, threeSteps(ps -> new SGD(ps, 0.1f, 0.9f, 0.5f, 0f, false)), 1e-6f);
        // Nesterov: buf = 1, 1.9, 2.71; d = 1 + 0.9 buf = 1.9, 2.71, 3.439
        assertArrayEquals(new float[] {0.81f, 0.539f, 0.1951f}, threeSteps(ps -> new SGD(ps, 0.1f, 0.9f, 0f, 0f, true)), 1e-6f);
        // weight decay 0.1: d = 1 + 0.1 p = 1.1, 1.089, 1.07811
        assertArrayEquals(new float[] {0.89f, 0.7811f, 0.673289f}, threeSteps(ps -> new SGD(ps, 0.1f, 0f, 0.1f)), 1e-6f);
    }

    /** PyTorch's SGD pseudo-code in double precision, one element at a time. */
    private static double[] reference(double[] p0, double[][] grads, double lr, double mom, double damp, double wd, boolean nesterov) {
        double[] p = p0.clone(), buf = new double[p.length];
        for (int t = 0; t < grads.length; t++) {
            for (int i = 0; i < p.length; i++) {
                double d = grads[t][i] + wd * p[i];
                if (mom != 0) {
                    buf[i] = t == 0 ? d : mom * buf[i] + (1 - damp) * d;
                    d = nesterov ? d + mom * buf[i] : buf[i];
                }
                p[i] -= lr * d;
            }
        }
        return p;
    }

    @Test
    void allOptionsTogetherMatchReference() {
        double[] p0 = {0.5, -1.5, 2};
        double[][] grads = {{1, -2, 0.5}, {-0.3, 0.7, 2}, {0.25, 0.1, -1}};
        for (boolean nesterov : new boolean[] {false, true}) {
            float damp = nesterov ? 0f : 0.3f;
            Tensor p = Tensor.of(new float[] {0.5f, -1.5f, 2f}, 3).requiresGrad(true);
            SGD opt = new SGD(List.of(p), 0.05f, 0.8f, damp, 0.01f, nesterov);
            for (double[] g : grads) {
                p.setGrad(Tensor.of(new float[] {(float) g[0], (float) g[1], (float) g[2]}, 3));
                opt.step();
            }
            double[] ref = reference(p0, grads, 0.05f, 0.8f, damp, 0.01f, nesterov);
            float[] got = p.toFloatArray();
            for (int i = 0; i < 3; i++) assertEquals(ref[i], got[i], 1e-6, "nesterov=" + nesterov + " element " + i);
        }
    }

    @Test
    void parametersWithoutGradientAreSkipped() {
        Tensor a = Tensor.ones(2).requiresGrad(true), b = Tensor.ones(2).requiresGrad(true);
        SGD opt = new SGD(List.of(a, b), 0.1f, 0.9f, 0f);
        a.setGrad(Tensor.ones(2));
        opt.step();
        assertArrayEquals(new float[] {1, 1}, b.toFloatArray());
        assertNull(opt.momentumBuffer(1), "no buffer before the first step with a gradient");
        assertNotNull(opt.momentumBuffer(0));
        opt.zeroGrad();
        assertNull(a.grad());
    }

    @Test
    void validationMessages() {
        List<Tensor> ps = List.of(Tensor.ones(1).requiresGrad(true));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new SGD(ps, 0.1f, 0f, 0f, 0f, true)).getMessage()
                .contains("Nesterov momentum requires momentum > 0 and dampening = 0, got momentum=0.0, dampening=0.0"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new SGD(ps, 0.1f, 0.9f, 0.1f, 0f, true)).getMessage()
                .contains("dampening=0.1"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new SGD(ps, -1f)).getMessage().contains("learning rate must be >= 0, got -1.0"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new SGD(ps, 0.1f, -0.5f, 0f)).getMessage().contains("momentum must be >= 0"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new SGD(ps, 0.1f, 0f, -1f)).getMessage().contains("weight decay must be >= 0"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new SGD(List.of(), 0.1f)).getMessage().contains("empty parameter list"));
        Tensor p = ps.get(0);
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new SGD(List.of(p, p), 0.1f)).getMessage().contains("more than once"));
    }

    /** Steps {@code opt} over {@code ps} with gradients derived from the step number, identical for any copy. */
    private static void stepWith(SGD opt, List<Tensor> ps, int t) {
        for (int i = 0; i < ps.size(); i++) {
            Tensor p = ps.get(i);
            float[] g = new float[p.numel()];
            for (int j = 0; j < g.length; j++) g[j] = (float) Math.sin(1 + t * 7 + i * 3 + j);
            p.setGrad(Tensor.of(g, p.dims()));
        }
        opt.step();
    }

    private static List<Tensor> params() {
        return List.of(Tensor.of(new float[] {1, 2, 3, 4, 5, 6}, 2, 3).requiresGrad(true), Tensor.of(new float[] {-1, 0.5f}, 2).requiresGrad(true));
    }

    private static List<Tensor> copies(List<Tensor> ps) {
        return ps.stream().map(p -> p.copy().requiresGrad(true)).toList();
    }

    @Test
    void copiedStateGivesIdenticalSteps() {
        List<Tensor> a = params();
        SGD optA = new SGD(a, 0.1f, 0.9f, 0f, 1e-3f, true);
        stepWith(optA, a, 0);
        stepWith(optA, a, 1);

        List<Tensor> b = copies(a);
        SGD optB = new SGD(b, 0.1f, 0.9f, 0f, 1e-3f, true);
        optB.copyStateFrom(optA);
        assertNotSame(optA.momentumBuffer(0), optB.momentumBuffer(0));
        for (int t = 2; t < 5; t++) {
            stepWith(optA, a, t);
            stepWith(optB, b, t);
        }
        for (int i = 0; i < a.size(); i++) assertArrayEquals(a.get(i).toFloatArray(), b.get(i).toFloatArray());

        // Without the state, the next steps differ (the buffers would start afresh).
        List<Tensor> c = copies(a);
        SGD fresh = new SGD(c, 0.1f, 0.9f, 0f, 1e-3f, true);
        stepWith(optA, a, 5);
        stepWith(fresh, c, 5);
        assertFalse(java.util.Arrays.equals(a.get(0).toFloatArray(), c.get(0).toFloatArray()));

        SGD other = new SGD(List.of(Tensor.zeros(3, 2).requiresGrad(true), Tensor.zeros(2).requiresGrad(true)), 0.1f);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> other.copyStateFrom(optA));
        assertTrue(e.getMessage().contains("parameter 0: [3, 2] vs source [2, 3]"), e.getMessage());
    }

    @Test
    void stateDictRoundTripIsExact() {
        List<Tensor> a = params();
        SGD optA = new SGD(a, 0.1f, 0.9f, 0.1f, 5e-4f, false);
        stepWith(optA, a, 0);
        stepWith(optA, a, 1);
        optA.setLr(0.0123f);
        Map<String, Tensor> saved = new LinkedHashMap<>();
        optA.stateDict().forEach((k, v) -> saved.put(k, v.copy()));
        assertEquals(List.of("param_groups.0.lr", "param_groups.0.momentum", "param_groups.0.dampening", "param_groups.0.weight_decay",
                "param_groups.0.nesterov", "state.0.momentum_buffer", "state.1.momentum_buffer"), List.copyOf(saved.keySet()));

        List<Tensor> b = copies(a);
        SGD optB = new SGD(b, 1f);                    // different hyper-parameters: all restored from the state dict
        optB.loadStateDict(saved);
        assertEquals(0.0123f, optB.lr());
        assertEquals(0.9f, optB.momentum());
        assertEquals(0.1f, optB.dampening());
        assertEquals(5e-4f, optB.weightDecay());
        for (int t = 2; t < 4; t++) {
            stepWith(optA, a, t);
            stepWith(optB, b, t);
        }
        for (int i = 0; i < a.size(); i++) assertArrayEquals(a.get(i).toFloatArray(), b.get(i).toFloatArray());
    }

    @Test
    void loadStateDictReportsEveryProblem() {
        SGD opt = new SGD(params(), 0.1f, 0.9f, 0f);
        Map<String, Tensor> sd = new LinkedHashMap<>(opt.stateDict());
        sd.remove("param_groups.0.momentum");
        sd.put("state.0.momentum_buffer", Tensor.zeros(3, 2));
        sd.put("state.7.momentum_buffer", Tensor.zeros(1));
        sd.put("foo", Tensor.zeros(1));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> opt.loadStateDict(sd));
        String msg = e.getMessage();
        assertTrue(msg.startsWith("SGD.loadStateDict: 4 problem(s)"), msg);
        assertTrue(msg.contains("missing key param_groups.0.momentum"), msg);
        assertTrue(msg.contains("unexpected key state.7.momentum_buffer"), msg);
        assertTrue(msg.contains("unexpected key foo"), msg);
        assertTrue(msg.contains("state.0: momentum_buffer is FLOAT32 [3, 2] but parameter 0 is FLOAT32 [2, 3]"), msg);
    }
}
