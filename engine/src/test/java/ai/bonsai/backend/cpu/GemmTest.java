package ai.bonsai.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * {@link Gemm#sgemm} against a double-precision triple loop on seeded random inputs of awkward sizes, every
 * transpose combination, alpha/beta, offsets and leading dimensions wider than the rows; the SIMD and scalar
 * microkernels against each other; and 1 vs N threads bit for bit.
 */
class GemmTest {
    private static final int[][] SIZES = {
        {1, 1, 1}, {1, 13, 3}, {13, 1, 7}, {3, 3, 3}, {8, 32, 5}, {9, 33, 17}, {13, 207, 13},
        {207, 13, 207}, {64, 64, 300}, {100, 37, 513}, {31, 129, 1}, {130, 70, 260}
    };

    /** C = alpha op(A) op(B) + beta C in double, on the stored layouts sgemm sees. */
    private static double[] reference(boolean ta, boolean tb, int m, int n, int k, float alpha, float[] a, int aOff,
                                      int lda, float[] b, int bOff, int ldb, float beta, float[] c, int cOff, int ldc) {
        double[] out = new double[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double acc = 0;
                for (int p = 0; p < k; p++) {
                    double av = ta ? a[aOff + p * lda + i] : a[aOff + i * lda + p];
                    double bv = tb ? b[bOff + j * ldb + p] : b[bOff + p * ldb + j];
                    acc += av * bv;
                }
                out[i * n + j] = alpha * acc + (beta == 0 ? 0 : beta * (double) c[cOff + i * ldc + j]);
            }
        }
        return out;
    }

    private static float[] random(SplittableRandom rnd, int len) {
        float[] v = new float[len];
        for (int i = 0; i < len; i++) v[i] = (float) (rnd.nextDouble() * 2 - 1);
        return v;
    }

    /** Runs one case through {@code kern} and checks it; returns C. */
    private static float[] runCase(GemmMicroKernel kern, SplittableRandom rnd, boolean ta, boolean tb, int m, int n,
                                   int k, float alpha, float beta) {
        int aRows = ta ? k : m, aCols = ta ? m : k, bRows = tb ? n : k, bCols = tb ? k : n;
        int lda = aCols + rnd.nextInt(3), ldb = bCols + rnd.nextInt(3), ldc = n + rnd.nextInt(3);
        int aOff = rnd.nextInt(5), bOff = rnd.nextInt(5), cOff = rnd.nextInt(5);
        float[] a = random(rnd, aOff + aRows * lda), b = random(rnd, bOff + bRows * ldb);
        float[] c = random(rnd, cOff + m * ldc + 2);
        // beta == 0 must not read C: poison it.
        if (beta == 0) Arrays.fill(c, cOff, cOff + m * ldc, Float.NaN);
        float[] before = c.clone();
        double[] ref = reference(ta, tb, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc);
        Gemm.sgemm(kern, ta, tb, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc);
        double atol = 2e-6 * k + 1e-6, rtol = 1e-4;
        String where = "ta=" + ta + " tb=" + tb + " m=" + m + " n=" + n + " k=" + k + " alpha=" + alpha + " beta=" + beta;
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double r = ref[i * n + j], got = c[cOff + i * ldc + j];
                if (!(Math.abs(got - r) <= atol + rtol * Math.abs(r))) {
                    fail(where + ": C(" + i + "," + j + ") = " + got + ", expected " + r);
                }
            }
            // Padding between rows (ldc > n) and the data around C are untouched.
            for (int j = n; j < ldc && i < m - 1; j++) {
                int idx = cOff + i * ldc + j;
                assertEquals(Float.floatToIntBits(before[idx]), Float.floatToIntBits(c[idx]), where + ": wrote outside C");
            }
        }
        for (int i = 0; i < cOff; i++) assertEquals(before[i], c[i], where + ": wrote before C");
        return c;
    }

    @Test
    void matchesReferenceForAllTransposesAlphaBetaOffsets() {
        SplittableRandom rnd = new SplittableRandom(42);
        float[][] alphaBeta = {{1f, 0f}, {-0.5f, 1f}, {2f, 0.3f}};
        for (int[] s : SIZES) {
            for (int t = 0; t < 4; t++) {
                float[] ab = alphaBeta[(t + s[0]) % alphaBeta.length];
                runCase(Gemm.kernel(), rnd, (t & 1) != 0, (t & 2) != 0, s[0], s[1], s[2], ab[0], ab[1]);
            }
        }
    }

    @Test
    void crossesCacheBlocksInEveryDimension() {
        // m > MC, n > NC and k > KC, so every blocking loop runs more than once and edges fall mid-block.
        SplittableRandom rnd = new SplittableRandom(7);
        runCase(Gemm.kernel(), rnd, false, false, Gemm.MC + 13, Gemm.NC + 37, Gemm.KC + 45, 1f, 0.5f);
        runCase(Gemm.kernel(), rnd, true, true, Gemm.MC + 3, Gemm.NC + 1, Gemm.KC * 2 + 1, 0.75f, 0f);
    }

    @Test
    void zeroSizesAndZeroAlpha() {
        float[] c = {1, 2, 3, 4};
        Gemm.sgemm(false, false, 2, 2, 0, 1f, new float[0], 0, 1, new float[0], 0, 2, 0.5f, c, 0, 2);
        assertArrayEquals(new float[] {0.5f, 1f, 1.5f, 2f}, c);
        Gemm.sgemm(false, false, 2, 2, 1, 0f, new float[] {Float.NaN, Float.NaN}, 0, 1, new float[2], 0, 2, 0f, c, 0, 2);
        assertArrayEquals(new float[4], c);
        Gemm.sgemm(false, false, 0, 5, 3, 1f, new float[0], 0, 3, new float[15], 0, 5, 0f, new float[0], 0, 5);
    }

    @Test
    void simdAndScalarKernelsAgree() {
        GemmMicroKernel simd = VectorizationProvider.load(GemmMicroKernel.class,
                "ai.bonsai.backend.cpu.simd.VectorGemmMicroKernel", null);
        assumeTrue(simd != null, "Vector API not enabled");
        GemmMicroKernel scalar = new ScalarGemmMicroKernel();
        for (int t = 0; t < 4; t++) {
            boolean ta = (t & 1) != 0, tb = (t & 2) != 0;
            float[] x = runCase(simd, new SplittableRandom(t), ta, tb, 67, 207, 300, 1.5f, 0.25f);
            float[] y = runCase(scalar, new SplittableRandom(t), ta, tb, 67, 207, 300, 1.5f, 0.25f);
            for (int i = 0; i < x.length; i++) {
                assertTrue(Math.abs(x[i] - y[i]) <= 1e-3 + 1e-4 * Math.abs(y[i]), "element " + i + ": " + x[i] + " vs " + y[i]);
            }
        }
    }

    @Test
    void singleAndMultiThreadedAreBitwiseIdentical() {
        int saved = Parallel.threads();
        try {
            for (int[] s : new int[][] {{207, 130, 100}, {40, 1000, 77}, {1000, 20, 33}}) {
                float[][] results = new float[3][];
                int[] threadCounts = {1, 2, 3};
                for (int t = 0; t < threadCounts.length; t++) {
                    Parallel.setThreads(threadCounts[t]);
                    results[t] = runCase(Gemm.kernel(), new SplittableRandom(99), false, true, s[0], s[1], s[2], 1f, 0.5f);
                }
                assertArrayEquals(results[0], results[1], "1 vs 2 threads " + Arrays.toString(s));
                assertArrayEquals(results[0], results[2], "1 vs 3 threads " + Arrays.toString(s));
            }
        } finally {
            Parallel.setThreads(saved);
        }
    }

    @Test
    void rejectsBadArguments() {
        float[] a = new float[6], b = new float[6], c = new float[4];
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Gemm.sgemm(false, false, 2, 2, 3, 1f, a, 0, 2, b, 0, 2, 0f, c, 0, 2));
        assertTrue(e.getMessage().contains("sgemm") && e.getMessage().contains("leading dimension of A"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> Gemm.sgemm(false, false, 2, 2, 3, 1f, a, 1, 3, b, 0, 2, 0f, c, 0, 2));
        assertTrue(e.getMessage().contains("A (2x3, offset 1) needs 7 floats"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> Gemm.sgemm(true, false, 2, 2, 3, 1f, a, 0, 2, b, 0, 2, 0f, new float[3], 0, 2));
        assertTrue(e.getMessage().contains("C (2x2"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Gemm.sgemm(false, false, -1, 2, 3, 1f, a, 0, 3, b, 0, 2, 0f, c, 0, 2));
    }
}
