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
