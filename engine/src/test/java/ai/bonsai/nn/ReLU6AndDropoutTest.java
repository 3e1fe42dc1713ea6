package ai.bonsai.nn;

import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;
import ai.bonsai.testing.GradCheck;
import ai.bonsai.testing.GradCheck.Input;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * ReLU6 and Dropout against double-precision references (forward and central-difference gradients), Dropout's
 * mask statistics, seeding and eval-mode identity, and both modules' argument errors.
 */
class ReLU6AndDropoutTest {

    @Test
    void relu6ClampsToZeroSixAndItsGradientMatchesCentralDifferences() {
        // Values in [-4, 10]: below 0, inside and above 6; a draw landing within 1e-6 of a kink is practically impossible.
        GradCheck.check("relu6", 6, new Input[] {Input.of(3, 4, 5).range(7f, 3f)},
                t -> new ReLU6().forward(t[0]),
                x -> {
                    double[] y = new double[x[0].length];
                    for (int i = 0; i < y.length; i++) y[i] = Math.min(Math.max(x[0][i], 0), 6);
                    return y;
                }, 1e-5, 1e-5);
    }

    @Test
    void relu6GivesPyTorchsGradientAtTheKinks() {
        Tensor x = Tensor.of(new float[] {-1f, 0f, 3f, 6f, 7f}, 5).requiresGrad(true);
        Tensor y = new ReLU6().forward(x);
        assertArrayEquals(new float[] {0f, 0f, 3f, 6f, 6f}, y.toFloatArray());
        y.sum().backward();
        // hardtanh_backward passes the gradient only where 0 < x < 6.
        assertArrayEquals(new float[] {0f, 0f, 1f, 0f, 0f}, x.grad().toFloatArray());
    }

    @Test
    void dropoutGradientIsTheScaledMask() {
        float p = 0.3f;
        // The reference's mask is the module's own, read back from a forward of ones with an identically seeded generator.
        double[] mask = GradCheck.toDouble(new Dropout(p, new Generator(99)).forward(Tensor.ones(4, 6, 5)).toFloatArray());
        GradCheck.check("dropout", 11, new Input[] {Input.of(4, 6, 5)},
                t -> new Dropout(p, new Generator(99)).forward(t[0]),
                x -> {
                    double[] y = new double[x[0].length];
                    for (int i = 0; i < y.length; i++) y[i] = x[0][i] * mask[i];
                    return y;
                }, 1e-6, 1e-6);
        for (double m : mask) assertTrue(m == 0 || Math.abs(m - 1 / (1 - (double) p)) < 1e-6, "mask value " + m);
    }

    @Test
    void dropoutKeepsOneMinusPOfTheElementsAndPreservesTheMean() {
        Tensor y = new Dropout(0.2f, new Generator(5)).forward(Tensor.ones(200, 500));
        float[] v = y.toFloatArray();
        long kept = 0;
        double sum = 0;
        for (float f : v) { if (f != 0) kept++; sum += f; }
        // 100,000 Bernoulli(0.8) draws: the standard deviation of the kept fraction is about 0.0013.
        assertEquals(0.8, (double) kept / v.length, 0.006);
        assertEquals(1.0, sum / v.length, 0.008);
    }

    @Test
    void dropoutIsSeededAndIdentityInEvalMode() {
        Tensor x = Tensor.randn(new Generator(1), 3, 7);
        float[] a = new Dropout(0.5f, new Generator(42)).forward(x).toFloatArray();
        float[] b = new Dropout(0.5f, new Generator(42)).forward(x).toFloatArray();
        assertArrayEquals(a, b);
        Dropout d = new Dropout(0.5f, new Generator(42));
        d.eval();
        assertSame(x, d.forward(x));
        assertArrayEquals(new float[21], new Dropout(1f, new Generator(3)).forward(Tensor.ones(3, 7)).toFloatArray());
        assertArrayEquals(x.toFloatArray(), new Dropout(0f, new Generator(3)).forward(x).toFloatArray());
        assertEquals("Dropout(p=0.2, inplace=False)", new Dropout(0.2f, new Generator(3)).toString());
    }

    @Test
    void dropoutRejectsBadArguments() {
        var e = assertThrows(IllegalArgumentException.class, () -> new Dropout(1.5f, new Generator(1)));
        assertEquals("Dropout: p must be in [0, 1], got 1.5", e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new Dropout(Float.NaN, new Generator(1)));
        assertThrows(IllegalArgumentException.class, () -> new Dropout(0.1f, null));
    }
}
