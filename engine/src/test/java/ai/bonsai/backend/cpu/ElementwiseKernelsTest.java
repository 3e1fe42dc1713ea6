package ai.bonsai.backend.cpu;

import ai.bonsai.backend.cpu.simd.VectorElementwise;
import ai.bonsai.tensor.Generator;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** The SIMD element-wise kernels against the scalar ones, on awkward lengths and offsets. */
class ElementwiseKernelsTest {
    final ElementwiseKernels scalar = new ScalarElementwise(), simd = new VectorElementwise();

    static float[] random(Generator g, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) g.nextGaussian() + 0.5f;
        return a;
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 3, 13, 17, 207, 1031, 5000})
    void simdMatchesScalar(int n) {
        Generator g = new Generator(n);
        float[] x = random(g, n + 5), y = random(g, n + 5);
        int off = 3, len = n;
        float[] a = new float[n + 5], b = new float[n + 5];
        scalar.reluBackward(x, y, a, off, off + len);
        simd.reluBackward(x, y, b, off, off + len);
        assertArrayEquals(a, b);
        double tol = 1e-5 * n;
        assertEquals(scalar.sum(x, off, len), simd.sum(x, off, len), tol);
        assertEquals(scalar.sumSquaredDeviation(x, off, len, 0.3f), simd.sumSquaredDeviation(x, off, len, 0.3f), tol);
        assertEquals(scalar.sumProductCentered(x, y, off, len, -0.2f), simd.sumProductCentered(x, y, off, len, -0.2f), tol);
        scalar.affine(x, a, off, len, 1.5f, -0.25f);
        simd.affine(x, b, off, len, 1.5f, -0.25f);
        assertArrayEquals(a, b, 1e-6f);
        scalar.batchNormInputGrad(x, y, a, off, len, 0.7f, 0.1f, 0.2f, 0.3f);
        simd.batchNormInputGrad(x, y, b, off, len, 0.7f, 0.1f, 0.2f, 0.3f);
        assertArrayEquals(a, b, 1e-5f);
    }
}
