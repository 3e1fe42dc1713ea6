package ai.bonsai.backend.cpu;

/**
 * The register-blocked inner kernel of {@link Gemm}: one {@code mr() x nr()} tile of C from packed panels.
 *
 * <p>Packed layouts (written by {@link Gemm}'s packing routines, zero-padded to full tiles):
 * {@code ap[apOff + p * mr() + i]} is op(A)(i, p) and {@code bp[bpOff + p * nr() + j]} is op(B)(p, j), for p in [0, kc).
 *
 * <p>Contract, so that every implementation rounds the same way at the tile's edge and inside it:
 * {@code t = alpha * sum_p a(i,p) * b(p,j)}; then {@code c = t} when {@code beta == 0} (C is not read),
 * else {@code c = t + beta * c}. The scalar version lives in this package, the Vector API one in
 * {@code ai.bonsai.backend.cpu.simd}; {@link VectorizationProvider} picks one.
 */
public interface GemmMicroKernel {
    /** Rows of the C tile. */
    int mr();

    /** Columns of the C tile. */
    int nr();

    void tile(int kc, float[] ap, int apOff, float[] bp, int bpOff, float alpha, float beta,
              float[] c, int cOff, int ldc);
}
