package ai.bonsai.dsp.prune;

import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.nn.Module;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Shared test fixtures: random CIFAR ResNets with random group logits and BN parameters, and the direct
 * (naive, written from the spec independently of PruneWrapper) computations the tests compare against.
 */
final class PruneFixtures {
    private PruneFixtures() {}

    /** Fills every layer's group logits with standard normal draws. */
    static void randomGroups(PruneWrapper pw, Generator g) {
        for (int l = 0; l < pw.layers().size(); l++) {
            Tensor a = pw.groupLogits(l);
            a.copyFrom(Tensor.randn(g, a.dims()));
        }
    }

    /** Deep copies of every parameter and buffer. */
    static Map<String, float[]> snapshot(Module model) {
        Map<String, float[]> out = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : model.stateDict().entrySet()) out.put(e.getKey(), e.getValue().toFloatArray());
        return out;
    }

    /** Copies of the BN running statistics only. */
    static Map<String, float[]> runningStats(Module model) {
        Map<String, float[]> out = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : model.namedBuffers().entrySet()) {
            if (e.getKey().endsWith("running_mean") || e.getKey().endsWith("running_var")) out.put(e.getKey(), e.getValue().toFloatArray());
        }
        return out;
    }

    static void assertSameArrays(Map<String, float[]> expected, Map<String, float[]> actual) {
        org.junit.jupiter.api.Assertions.assertEquals(expected.keySet(), actual.keySet());
        for (String k : expected.keySet()) {
            org.junit.jupiter.api.Assertions.assertArrayEquals(expected.get(k), actual.get(k), k + " changed");
        }
    }

    /** argmax over groups of a (G, N) logit array, ties to the lowest index: written as a scan for the maximum, then its first position. */
    static int[] naiveAssignment(float[] logits, int groups, int n) {
        int[] out = new int[n];
        for (int f = 0; f < n; f++) {
            float max = Float.NEGATIVE_INFINITY;
            for (int g = 0; g < groups; g++) max = Math.max(max, logits[g * n + f]);
            int g = 0;
            while (logits[g * n + f] != max) g++;
            out[f] = g;
        }
        return out;
    }

    /** The spec's cumulative rule, as a set of kept positions, by walking the ascending order. */
    static boolean[] naiveKeep(double[] importance, double beta) {
        int len = importance.length;
        Integer[] order = new Integer[len];
        for (int i = 0; i < len; i++) order[i] = i;
        Arrays.sort(order, (x, y) -> Double.compare(importance[x], importance[y]));
        double cum = 0;
        int count = 0;
        for (int r = 0; r < len; r++) {
            cum += importance[order[r]];
            if (!(cum < beta)) break;          // cumulative sums of non-negative values only grow
            count++;
        }
        boolean[] keep = new boolean[len];
        for (int i = 0; i < len; i++) keep[i] = count == 0 || importance[i] > importance[order[count - 1]];
        return keep;
    }

    /** The spec's channel rule (and filter rule when {@code filterRule}) element by element. */
    static float[] naiveMask(float[] w, int n, int c, int k, int[] group, int groups, double beta, boolean filterRule) {
        int kk = k * k;
        float[] m = new float[n * c];
        for (int g = 0; g < groups; g++) {
            double[] imp = new double[c];
            double sum = 0;
            for (int ch = 0; ch < c; ch++) {
                for (int f = 0; f < n; f++) {
                    double p = group[f] == g ? 1 : 0;
                    for (int j = 0; j < kk; j++) {
                        double v = w[(f * c + ch) * kk + j];
                        imp[ch] += p * p * v * v;
                    }
                }
                sum += imp[ch];
            }
            for (int ch = 0; ch < c; ch++) imp[ch] /= sum + 1e-12;
            boolean[] keep = naiveKeep(imp, beta);
            for (int f = 0; f < n; f++) if (group[f] == g) for (int ch = 0; ch < c; ch++) m[f * c + ch] = keep[ch] ? 1 : 0;
        }
        if (filterRule) {
            double[] imp = new double[n];
            double sum = 0;
            for (int f = 0; f < n; f++) {
                for (int i = 0; i < c * kk; i++) imp[f] += (double) w[f * c * kk + i] * w[f * c * kk + i];
                sum += imp[f];
            }
            for (int f = 0; f < n; f++) imp[f] /= sum + 1e-12;
            boolean[] keep = naiveKeep(imp, beta);
            for (int f = 0; f < n; f++) if (!keep[f]) for (int ch = 0; ch < c; ch++) m[f * c + ch] = 0;
        }
        return m;
    }

    static CifarResNet resnet(int depth, long seed) { return new CifarResNet(depth, 10, new Generator(seed)); }
}
