package ai.bonsai.optim;

import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** Adam against hand-computed steps and a double-precision reference of PyTorch's algorithm. */
class AdamTest {

    @Test
    void handComputedStepsShowBiasCorrectionAndEps() {
        // With a constant gradient 1 the bias-corrected moments are exactly m^ = 1 and v^ = 1 at every step
        // (without the correction the first step would use m = 0.1, v = 0.001), so each update is
        // lr * 1 / (1 + eps); eps = 1 halves it: p = 1 - 0.05 t.
        Tensor p = Tensor.of(new float[] {1f}, 1).requiresGrad(true);
        Adam opt = new Adam(List.of(p), 0.1f, 0.9f, 0.999f, 1f, 0f);
        float[] got = new float[3];
        for (int t = 0; t < 3; t++) {
            p.setGrad(Tensor.of(new float[] {1f}, 1));
            opt.step();
            got[t] = p.item();
        }
        assertArrayEquals(new float[] {0.95f, 0.9f, 0.85f}, got, 1e-6f);
        assertEquals(3, opt.stepCount(0));

        // Gradient 2 then 0 with eps ~ 0: step 1 moves by lr; step 2 has m = 0.18, v = 0.003996,
        // m^ = 0.18 / 0.19, v^ = 0.003996 / 0.001999, update = 0.1 * m^ / sqrt(v^).
        Tensor q = Tensor.of(new float[] {0f}, 1).requiresGrad(true);
        Adam opt2 = new Adam(List.of(q), 0.1f, 0.9f, 0.999f, 1e-12f, 0f);
        q.setGrad(Tensor.of(new float[] {2f}, 1));
        opt2.step();
        assertEquals(-0.1f, q.item(), 1e-6f);
        q.setGrad(Tensor.of(new float[] {0f}, 1));
        opt2.step();
        double update2 = 0.1 * (0.18 / 0.19) / Math.sqrt(0.003996 / 0.001999);
        assertEquals(-0.1 - update2, q.item(), 1e-6);
    }

    /** PyTorch's Adam pseudo-code in double precision. */
    private static double[] reference(double[] p0, double[][] grads, double lr, double b1, double b2, double eps, double wd) {
        double[] p = p0.clone(), m = new double[p.length], v = new double[p.length];
        for (int t = 1; t <= grads.length; t++) {
            for (int i = 0; i < p.length; i++) {
                double g = grads[t - 1][i] + wd * p[i];
                m[i] = b1 * m[i] + (1 - b1) * g;
                v[i] = b2 * v[i] + (1 - b2) * g * g;
                double mh = m[i] / (1 - Math.pow(b1, t)), vh = v[i] / (1 - Math.pow(b2, t));
                p[i] -= lr * mh / (Math.sqrt(vh) + eps);
            }
        }
        return p;
    }

    @Test
    void matchesReferenceWithWeightDecay() {
        double[][] grads = {{1, -2, 0.5}, {-0.3, 0.7, 2}, {0.25, 0.1, -1}, {0, 0, 0}};
        Tensor p = Tensor.of(new float[] {0.5f, -1.5f, 2f}, 3).requiresGrad(true);
        Adam opt = new Adam(List.of(p), 0.01f, 0.8f, 0.99f, 1e-3f, 0.1f);
        for (double[] g : grads) {
            p.setGrad(Tensor.of(new float[] {(float) g[0], (float) g[1], (float) g[2]}, 3));
            opt.step();
        }
        double[] ref = reference(new double[] {0.5, -1.5, 2}, grads, 0.01f, 0.8f, 0.99f, 1e-3f, 0.1f);
        float[] got = p.toFloatArray();
        for (int i = 0; i < 3; i++) assertEquals(ref[i], got[i], 1e-6, "element " + i);
    }

    @Test
    void stateDictRoundTripAndValidation() {
        Tensor a = Tensor.of(new float[] {1, 2}, 2).requiresGrad(true), b = Tensor.ones(3).requiresGrad(true);
        Adam opt = new Adam(List.of(a, b), 0.01f);
        a.setGrad(Tensor.of(new float[] {0.5f, -1}, 2));
        opt.step();                                   // b has no gradient: no state for it
        Map<String, Tensor> saved = new LinkedHashMap<>();
        opt.stateDict().forEach((k, v) -> saved.put(k, v.copy()));
        assertEquals(List.of("param_groups.0.lr", "param_groups.0.beta1", "param_groups.0.beta2", "param_groups.0.eps", "param_groups.0.weight_decay",
                "state.0.step", "state.0.exp_avg", "state.0.exp_avg_sq"), List.copyOf(saved.keySet()));
        assertEquals(1, saved.get("state.0.step").toLongArray()[0]);

        Tensor a2 = a.copy().requiresGrad(true), b2 = b.copy().requiresGrad(true);
        Adam opt2 = new Adam(List.of(a2, b2), 0.5f);
        opt2.loadStateDict(saved);
        for (Tensor t : List.of(a, b, a2, b2)) t.setGrad(Tensor.full(0.3f, t.dims()));
        opt.step();
        opt2.step();
        assertArrayEquals(a.toFloatArray(), a2.toFloatArray());
        assertArrayEquals(b.toFloatArray(), b2.toFloatArray());
        assertEquals(2, opt2.stepCount(0));
        assertEquals(1, opt2.stepCount(1));

        saved.remove("state.0.exp_avg_sq");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> opt2.loadStateDict(saved));
        assertTrue(e.getMessage().contains("state.0: expected all of"), e.getMessage());
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new Adam(List.of(a), 0.1f, 1f, 0.999f, 1e-8f, 0f))
                .getMessage().contains("beta1 must be in [0, 1), got 1.0"));
    }
}
