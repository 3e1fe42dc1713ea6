package ai.bonsai.nn;

import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Initialisers: fans, the statistics of the draws, and PyTorch's default layer init ranges. */
class InitTest {

    private static double[] meanStd(float[] v) {
        double s = 0, s2 = 0;
        for (float x : v) { s += x; s2 += (double) x * x; }
        double mean = s / v.length;
        return new double[] {mean, Math.sqrt(s2 / v.length - mean * mean)};
    }

    /** Mean, variance and kurtosis (4th central moment / variance^2: 1.8 for a uniform, 3 for a normal). */
    static double[] moments(float[] v) {
        double mean = 0;
        for (float x : v) mean += x;
        mean /= v.length;
        double m2 = 0, m4 = 0;
        for (float x : v) {
            double d = x - mean;
            m2 += d * d;
            m4 += d * d * d * d;
        }
        m2 /= v.length;
        m4 /= v.length;
        return new double[] {mean, m2, m4 / (m2 * m2)};
    }

    /** v is U(-bound, bound) by its moments: mean 0, variance bound^2 / 3, kurtosis 1.8, and nothing outside. */
    static void assertUniform(float[] v, double bound, String what) {
        double[] m = moments(v);
        double var = bound * bound / 3;
        // n >= 40,000 draws: the sample mean is within 5 standard errors of 0, the variance within 2 % and the
        // kurtosis within 0.05 of the truth; a normal of the same variance has kurtosis 3.
        assertEquals(0, m[0], 5 * Math.sqrt(var / v.length), what + ": mean");
        assertEquals(var, m[1], 0.02 * var, what + ": variance");
        assertEquals(1.8, m[2], 0.05, what + ": kurtosis");
        for (float x : v) assertTrue(Math.abs(x) <= bound, what + ": " + x + " outside +-" + bound);
    }

    @Test
    void linearAndConvDefaultsAreKaimingUniformWithASqrt5ByMoments() {
        // Kaiming uniform with a = sqrt(5): bound = sqrt(2 / (1 + 5)) * sqrt(3 / fan_in) = 1 / sqrt(fan_in).
        Linear l = new Linear(1000, 500, new Generator(11));
        assertUniform(l.weight().toFloatArray(), 1 / Math.sqrt(1000), "Linear(1000, 500).weight");
        Linear wide = new Linear(64, 60_000, new Generator(12));                   // the bias needs many outputs
        assertUniform(wide.bias().toFloatArray(), 1 / Math.sqrt(64), "Linear(64, 60000).bias");
        assertUniform(wide.weight().toFloatArray(), 0.125, "Linear(64, 60000).weight");

        Conv2d c = new Conv2d(64, 128, 3, 1, 1, 1, true, new Generator(13));       // fan_in 576, 73,728 weights
        assertUniform(c.weight().toFloatArray(), 1 / Math.sqrt(576), "Conv2d(64, 128, 3).weight");
        Conv2d manyFilters = new Conv2d(2, 50_000, 1, 1, 0, 1, true, new Generator(14));   // fan_in 2
        assertUniform(manyFilters.bias().toFloatArray(), 1 / Math.sqrt(2), "Conv2d(2, 50000, 1).bias");
    }

    @Test
    void fansFollowPyTorch() {
        Tensor w = Tensor.zeros(16, 2, 3, 3);         // Conv2d(8, 16, 3, groups=4)
        assertEquals(18, Init.fanIn(w));
        assertEquals(144, Init.fanOut(w));
        assertEquals(5, Init.fanIn(Tensor.zeros(7, 5)));
        assertEquals(7, Init.fanOut(Tensor.zeros(7, 5)));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Init.fanIn(Tensor.zeros(4)));
        assertTrue(e.getMessage().contains("rank >= 2, got shape [4]"), e.getMessage());
    }

    @Test
    void kaimingNormalFanOutStd() {
        Tensor w = Tensor.zeros(256, 64, 3, 3).requiresGrad(true);   // parameters can be initialised in place
        Init.kaimingNormal(w, Init.FanMode.FAN_OUT, new Generator(1));
        double expected = Math.sqrt(2.0 / (256 * 9));
        double[] ms = meanStd(w.toFloatArray());
        // 147456 draws: the sample std is within ~0.2% of the true one, the mean within ~4 std/sqrt(n) of 0.
        assertEquals(expected, ms[1], 0.01 * expected);
        assertEquals(0, ms[0], 4 * expected / Math.sqrt(w.numel()));

        Tensor w2 = Tensor.zeros(64, 256, 3, 3);
        Init.kaimingNormal(w2, Init.FanMode.FAN_IN, new Generator(2));
        assertEquals(Math.sqrt(2.0 / (256 * 9)), meanStd(w2.toFloatArray())[1], 0.01 * Math.sqrt(2.0 / (256 * 9)));
    }

    @Test
    void uniformStaysInBoundsAndCoversThem() {
        Tensor t = Init.uniform(Tensor.zeros(10000), -0.3f, 0.7f, new Generator(3));
        float lo = Float.MAX_VALUE, hi = -Float.MAX_VALUE;
        for (float v : t.toFloatArray()) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
        assertTrue(lo >= -0.3f && hi < 0.7f, lo + " " + hi);
        assertTrue(lo < -0.29f && hi > 0.69f, lo + " " + hi);
        assertEquals(0.2, meanStd(t.toFloatArray())[0], 0.02);
        assertThrows(IllegalArgumentException.class, () -> Init.uniform(Tensor.zeros(2), 1f, 0f, new Generator(1)));
    }

    @Test
    void constantAndNormal() {
        assertArrayEquals(new float[] {2.5f, 2.5f, 2.5f}, Init.constant(Tensor.zeros(3), 2.5f).toFloatArray());
        double[] ms = meanStd(Init.normal(Tensor.zeros(20000), 3f, 0.5f, new Generator(4)).toFloatArray());
        assertEquals(3, ms[0], 0.02);
        assertEquals(0.5, ms[1], 0.01);
    }

    @Test
    void defaultLayerInitIsPyTorchs() {
        Generator g = new Generator(5);
        Conv2d c = new Conv2d(8, 16, 3, 1, 1, 4, true, g);
        float bound = (float) (1 / Math.sqrt(18));                  // fan_in = 8/4 * 3*3
        float max = 0;
        for (float v : c.weight().toFloatArray()) max = Math.max(max, Math.abs(v));
        assertTrue(max <= bound && max > 0.9f * bound, max + " vs " + bound);
        for (float v : c.bias().toFloatArray()) assertTrue(Math.abs(v) <= bound);

        Linear l = new Linear(100, 50, g);
        max = 0;
        for (float v : l.weight().toFloatArray()) max = Math.max(max, Math.abs(v));
        assertTrue(max <= 0.1f && max > 0.09f, Float.toString(max));
        for (float v : l.bias().toFloatArray()) assertTrue(Math.abs(v) <= 0.1f);

        // The same seed gives the same model.
        assertArrayEquals(new Linear(100, 50, new Generator(9)).weight().toFloatArray(), new Linear(100, 50, new Generator(9)).weight().toFloatArray());
    }
}
