package ai.bonsai.dsp.models;

import ai.bonsai.autograd.GradMode;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

class CifarResNetTest {

    /** Convolution and classifier parameters, the count the reference and the paper use. */
    static long convAndClassifierParams(CifarResNet m) {
        long n = 0;
        for (Map.Entry<String, Tensor> e : m.namedParameters().entrySet()) {
            String k = e.getKey();
            if (k.contains("conv") || k.contains("downsample.0") || k.startsWith("classifier")) n += e.getValue().numel();
        }
        return n;
    }

    @Test
    void parameterCountsMatchTheReference() {
        assertEquals(270_906, convAndClassifierParams(new CifarResNet(20, 10, new Generator(1))));
        assertEquals(851_514, convAndClassifierParams(new CifarResNet(56, 10, new Generator(1))));
        assertEquals(270_906, ModelStats.of(new CifarResNet(20, 10, new Generator(1))).params());
        assertEquals(851_514, ModelStats.of(new CifarResNet(56, 10, new Generator(1))).params());
    }

    @Test
    void multiplyAddsMatchThePublishedDenseFigures() {
        // Spec section 7: whole-network multiply-adds of the dense ResNet-20 and ResNet-56: 40.81 M and 125.75 M.
        assertEquals(40.81, ModelStats.of(new CifarResNet(20, 10, new Generator(1))).macs() / 1e6, 0.005);
        assertEquals(125.75, ModelStats.of(new CifarResNet(56, 10, new Generator(1))).macs() / 1e6, 0.005);
    }

    @Test
    void parameterNamesFollowTheReference() {
        Map<String, Tensor> sd = new CifarResNet(20, 10, new Generator(1)).stateDict();
        for (String k : new String[] {"conv_1_3x3.weight", "bn_1.weight", "bn_1.bias", "bn_1.running_mean", "bn_1.running_var",
                "stage_1.0.conv_a.weight", "stage_1.0.bn_a.weight", "stage_1.2.conv_b.weight", "stage_1.2.bn_b.running_var",
                "stage_2.0.downsample.0.weight", "stage_2.0.downsample.1.running_mean", "stage_3.0.downsample.1.weight",
                "stage_3.2.bn_b.bias", "classifier.weight", "classifier.bias"}) {
            assertTrue(sd.containsKey(k), "missing " + k + " in " + sd.keySet());
        }
        assertFalse(sd.containsKey("stage_1.0.downsample.0.weight"), "stage 1 has identity shortcuts");
        assertFalse(sd.containsKey("stage_2.1.downsample.0.weight"), "only the first block of a stage projects");
        assertArrayEquals(new int[] {32, 16, 1, 1}, sd.get("stage_2.0.downsample.0.weight").dims());
        assertArrayEquals(new int[] {64, 32, 3, 3}, sd.get("stage_3.0.conv_a.weight").dims());
    }

    @Test
    void everyDepthBuildsAndRuns() {
        for (int depth : CifarResNet.DEPTHS) {
            CifarResNet m = new CifarResNet(depth, 10, new Generator(depth));
            assertEquals(3 * (depth - 2) / 6, m.stage(0).size() + m.stage(1).size() + m.stage(2).size());
            if (depth <= 32) {
                m.eval();
                try (var s = GradMode.noGrad()) {
                    Tensor y = m.forward(Tensor.randn(new Generator(3), 2, 3, 32, 32));
                    assertArrayEquals(new int[] {2, 10}, y.dims());
                }
            }
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new CifarResNet(21, 10, new Generator(1)));
        assertTrue(e.getMessage().contains("6n+2") && e.getMessage().contains("21"), e.getMessage());
    }

    @Test
    void initialisationFollowsTheReference() {
        CifarResNet m = new CifarResNet(20, 10, new Generator(5));
        Map<String, Tensor> sd = m.stateDict();
        // Kaiming normal, fan_out: std = sqrt(2 / (out * k * k)); stage_3 conv_b has 64*64*9 = 36,864 draws.
        float[] w = sd.get("stage_3.1.conv_b.weight").toFloatArray();
        double ss = 0;
        for (float v : w) ss += v * v;
        assertEquals(Math.sqrt(2.0 / (64 * 9)), Math.sqrt(ss / w.length), 0.02 * Math.sqrt(2.0 / (64 * 9)));
        for (float v : sd.get("bn_1.weight").toFloatArray()) assertEquals(1f, v);
        for (float v : sd.get("bn_1.bias").toFloatArray()) assertEquals(0f, v);
        for (float v : sd.get("classifier.bias").toFloatArray()) assertEquals(0f, v);
    }

    @Test
    void classifierWeightKeepsLinearsDefaultAndConvolutionsAreKaimingNormal() {
        // The reference re-draws only convolutions; the classifier weight stays nn.Linear's U(-1/sqrt(64), 1/sqrt(64)),
        // variance 0.125^2 / 3 (std 0.072), not Kaiming normal's 2 / 64 (std 0.177). 2,000 classes give 128,000 draws.
        CifarResNet m = new CifarResNet(20, 2000, new Generator(6));
        float[] w = m.classifier().weight().toFloatArray();
        double mean = 0, m2 = 0, m4 = 0;
        float max = 0;
        for (float v : w) mean += v;
        mean /= w.length;
        for (float v : w) {
            double d = v - mean;
            m2 += d * d;
            m4 += d * d * d * d;
            max = Math.max(max, Math.abs(v));
        }
        m2 /= w.length;
        m4 /= w.length;
        assertEquals(0, mean, 5 * 0.125 / Math.sqrt(3 * w.length));
        assertEquals(0.125 * 0.125 / 3, m2, 0.02 * 0.125 * 0.125 / 3);
        assertEquals(1.8, m4 / (m2 * m2), 0.05, "kurtosis of a uniform");
        assertTrue(max <= 0.125f && max > 0.124f, "max |w| " + max);
        for (float v : m.classifier().bias().toFloatArray()) assertEquals(0f, v);

        // Convolutions: Kaiming normal, fan_out, so kurtosis 3 (the stem's 432 draws are too few; stage 3 has 36,864).
        float[] conv = m.stage(2).get(1).convA().weight().toFloatArray();
        double c2 = 0, c4 = 0;
        for (float v : conv) { c2 += (double) v * v; c4 += Math.pow(v, 4); }
        c2 /= conv.length;
        c4 /= conv.length;
        assertEquals(2.0 / (64 * 9), c2, 0.03 * 2.0 / (64 * 9));
        assertEquals(3, c4 / (c2 * c2), 0.15, "kurtosis of a normal");
    }
}
