package ai.bonsai.backend.cpu;

/**
 * Plain-Java {@link GemmMicroKernel}: a 4x4 tile held in sixteen locals so the JIT keeps it in registers.
 * Used when the Vector API is unavailable or {@code -Dbonsai.simd=false}.
 */
public final class ScalarGemmMicroKernel implements GemmMicroKernel {
    private static final int MR = 4, NR = 4;

    @Override public int mr() { return MR; }

    @Override public int nr() { return NR; }

    @Override
    public void tile(int kc, float[] ap, int apOff, float[] bp, int bpOff, float alpha, float beta,
                     float[] c, int cOff, int ldc) {
        float c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
        float c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
        int ai = apOff, bi = bpOff;
        for (int p = 0; p < kc; p++, ai += MR, bi += NR) {
            float b0 = bp[bi], b1 = bp[bi + 1], b2 = bp[bi + 2], b3 = bp[bi + 3];
            float a0 = ap[ai], a1 = ap[ai + 1], a2 = ap[ai + 2], a3 = ap[ai + 3];
            c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
            c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
            c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
            c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
        }
        store(c, cOff, alpha, beta, c00, c01, c02, c03);
        store(c, cOff + ldc, alpha, beta, c10, c11, c12, c13);
        store(c, cOff + 2 * ldc, alpha, beta, c20, c21, c22, c23);
        store(c, cOff + 3 * ldc, alpha, beta, c30, c31, c32, c33);
    }

    private static void store(float[] c, int o, float alpha, float beta, float v0, float v1, float v2, float v3) {
        if (beta == 0) {
            c[o] = alpha * v0; c[o + 1] = alpha * v1; c[o + 2] = alpha * v2; c[o + 3] = alpha * v3;
        } else {
            c[o] = alpha * v0 + beta * c[o];
            c[o + 1] = alpha * v1 + beta * c[o + 1];
            c[o + 2] = alpha * v2 + beta * c[o + 2];
            c[o + 3] = alpha * v3 + beta * c[o + 3];
        }
    }
}
