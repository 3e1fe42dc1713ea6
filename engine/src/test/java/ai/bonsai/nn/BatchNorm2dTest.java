package ai.bonsai.nn;

import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** BatchNorm2d against a hand computation on a (2, 2, 1, 2) input. */
class BatchNorm2dTest {
    // x[n, c, 0, w]: channel 0 holds 1, 2 | 3, 4 (mean 2.5, biased var 1.25, unbiased 5/3);
    // channel 1 holds 0, 0 | 2, -2 (mean 0, biased var 2, unbiased 8/3).
    private static final float[] X = {1, 2, 0, 0, 3, 4, 2, -2};

    @Test
    void trainingUsesBatchStatisticsAndUpdatesRunningOnes() {
        BatchNorm2d bn = new BatchNorm2d(2);
        Tensor y = bn.forward(Tensor.of(X, 2, 2, 1, 2));
        double s0 = Math.sqrt(1.25 + 1e-5), s1 = Math.sqrt(2 + 1e-5);
        float[] expected = {
                (float) (-1.5 / s0), (float) (-0.5 / s0), 0, 0,
                (float) (0.5 / s0), (float) (1.5 / s0), (float) (2 / s1), (float) (-2 / s1)};
        assertArrayEquals(expected, y.toFloatArray(), 1e-5f);
        // running = 0.9 * running + 0.1 * batch, with the unbiased variance
        assertArrayEquals(new float[] {0.25f, 0f}, bn.runningMean().toFloatArray(), 1e-6f);
        assertArrayEquals(new float[] {(float) (0.9 + 0.1 * 5 / 3.0), (float) (0.9 + 0.1 * 8 / 3.0)}, bn.runningVar().toFloatArray(), 1e-6f);
    }

    @Test
    void evalUsesRunningStatisticsAndAffine() {
        BatchNorm2d bn = new BatchNorm2d(2);
        bn.forward(Tensor.of(X, 2, 2, 1, 2));
        bn.weight().copyFrom(Tensor.of(new float[] {2, 0.5f}, 2));
        bn.bias().copyFrom(Tensor.of(new float[] {1, -1}, 2));
        bn.eval();
        Tensor x = Tensor.of(new float[] {1, 2, 3, 4}, 1, 2, 1, 2);
        float[] y = bn.forward(x).toFloatArray();
        double m0 = 0.25, v0 = 0.9 + 0.1 * 5 / 3.0, m1 = 0, v1 = 0.9 + 0.1 * 8 / 3.0;
        float[] expected = {
                (float) ((1 - m0) / Math.sqrt(v0 + 1e-5) * 2 + 1), (float) ((2 - m0) / Math.sqrt(v0 + 1e-5) * 2 + 1),
                (float) ((3 - m1) / Math.sqrt(v1 + 1e-5) * 0.5 - 1), (float) ((4 - m1) / Math.sqrt(v1 + 1e-5) * 0.5 - 1)};
        assertArrayEquals(expected, y, 1e-5f);
        float rm = bn.runningMean().toFloatArray()[0];
        bn.forward(x);
        assertEquals(rm, bn.runningMean().toFloatArray()[0], "eval must not update the running statistics");
    }

    @Test
    void rejectsWrongChannelCount() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new BatchNorm2d(3).forward(Tensor.zeros(2, 2, 2, 2)));
        assertTrue(e.getMessage().contains("expected (N,3,H,W) input, got [2, 2, 2, 2]"), e.getMessage());
    }
}
