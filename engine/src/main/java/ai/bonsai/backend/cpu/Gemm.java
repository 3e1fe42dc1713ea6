package ai.bonsai.backend.cpu;

import java.util.Arrays;

/**
 * Single-precision matrix multiply on row-major arrays: C = alpha * op(A) * op(B) + beta * C,
 * where op(A) is (m, k) and op(B) is (k, n). {@code beta == 0} overwrites C without reading it.
 *
 * <p>Structure (the classic Goto/BLIS loop nest): C's columns (or rows, whichever has more tiles) are split into
 * one contiguous, tile-aligned range per thread. Each thread walks its range in NC-column blocks, the shared
 * dimension in KC blocks, packs op(B) into KC x NC and op(A) into MC x KC panels (zero-padded to whole tiles),
 * and calls a {@link GemmMicroKernel} per tile. Tiles at the matrix edge are computed into a scratch tile and
 * copied out, so every element of C goes through the same arithmetic, in the same order, whatever the thread
 * count: results are bitwise identical for 1 or N threads.
 *
 * <p>The kernel is the Vector API one when available ({@link VectorizationProvider}), else the scalar one.
 * Benchmark: {@code benchmarks/run Gemm}.
 */
public final class Gemm {
    /** Shared-dimension block: a KC x NR panel of B (32 KB at NR=32) stays in the 48 KB L1 while A streams. */
    static final int KC = 256;
    /** Row block: the MC x KC panel of A (128 KB) stays in L2. */
    static final int MC = 128;
    /** Column block: the KC x NC panel of B (512 KB) stays in the 1 MB L2. */
    static final int NC = 512;
    /** Below this many multiply-adds one thread is faster than waking the pool. */
    private static final long PARALLEL_MACS = 1L << 18;

    private static final GemmMicroKernel KERNEL = VectorizationProvider.load(
            GemmMicroKernel.class, "ai.bonsai.backend.cpu.simd.VectorGemmMicroKernel", new ScalarGemmMicroKernel());

    private Gemm() {}

    /** The microkernel in use (SIMD or scalar). */
    static GemmMicroKernel kernel() { return KERNEL; }

    public static void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                             float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                             float beta, float[] c, int cOff, int ldc) {
        sgemm(KERNEL, transA, transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc);
    }

    /** {@link #sgemm} with an explicit microkernel, so tests can hold the scalar and SIMD paths to each other. */
    static void sgemm(GemmMicroKernel kern, boolean transA, boolean transB, int m, int n, int k, float alpha,
                      float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                      float beta, float[] c, int cOff, int ldc) {
        validate(transA, transB, m, n, k, a, aOff, lda, b, bOff, ldb, c, cOff, ldc);
        if (m == 0 || n == 0) return;
        if (k == 0 || alpha == 0) {
            scale(m, n, beta, c, cOff, ldc);
            return;
        }
        int mr = kern.mr(), nr = kern.nr();
        int mTiles = (m + mr - 1) / mr, nTiles = (n + nr - 1) / nr;
        long macs = (long) m * n * k;
        int threads = macs < PARALLEL_MACS ? 1 : Parallel.threads();
        // Split the dimension with more tiles; each task owns a disjoint block of C.
        boolean splitN = nTiles >= mTiles;
        int tiles = splitN ? nTiles : mTiles;
        int tasks = Math.min(threads, tiles);
        int per = (tiles + tasks - 1) / tasks;
        int used = (tiles + per - 1) / per;
        Parallel.forEach(used, t -> {
            int lo = t * per, hi = Math.min(tiles, lo + per);
            if (splitN) {
                int j0 = lo * nr, j1 = Math.min(n, hi * nr);
                block(kern, transA, transB, 0, m, j0, j1, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc);
            } else {
                int i0 = lo * mr, i1 = Math.min(m, hi * mr);
                block(kern, transA, transB, i0, i1, 0, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc);
            }
        });
    }

    /** C[i0:i1, j0:j1] on the calling thread. */
    private static void block(GemmMicroKernel kern, boolean transA, boolean transB, int i0, int i1, int j0, int j1,
                              int k, float alpha, float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                              float beta, float[] c, int cOff, int ldc) {
        int mr = kern.mr(), nr = kern.nr();
        int kcMax = Math.min(KC, k);
        int ncMax = roundUp(Math.min(NC, j1 - j0), nr);
        int mcMax = roundUp(Math.min(MC, i1 - i0), mr);
        float[] bp = ScratchBuffers.get(ScratchBuffers.GEMM_B, kcMax * ncMax);
        float[] ap = ScratchBuffers.get(ScratchBuffers.GEMM_A, kcMax * mcMax);
        float[] edge = ScratchBuffers.get(ScratchBuffers.GEMM_EDGE, mr * nr);
        for (int jc = j0; jc < j1; jc += NC) {
            int nc = Math.min(NC, j1 - jc);
            for (int pc = 0; pc < k; pc += KC) {
                int kc = Math.min(KC, k - pc);
                // The first K block applies the caller's beta; later ones add onto what is already in C.
                float betaK = pc == 0 ? beta : 1f;
                packB(transB, b, bOff, ldb, pc, kc, jc, nc, nr, bp);
                for (int ic = i0; ic < i1; ic += MC) {
                    int mc = Math.min(MC, i1 - ic);
                    packA(transA, a, aOff, lda, ic, mc, pc, kc, mr, ap);
                    for (int jr = 0; jr < nc; jr += nr) {
                        int cols = Math.min(nr, nc - jr);
                        int bpOff = jr * kc;
                        for (int ir = 0; ir < mc; ir += mr) {
                            int rows = Math.min(mr, mc - ir);
                            int apOff = ir * kc;
                            int cIdx = cOff + (ic + ir) * ldc + jc + jr;
                            if (rows == mr && cols == nr) {
                                kern.tile(kc, ap, apOff, bp, bpOff, alpha, betaK, c, cIdx, ldc);
                            } else {
                                kern.tile(kc, ap, apOff, bp, bpOff, alpha, 0f, edge, 0, nr);
                                for (int i = 0; i < rows; i++) {
                                    int ci = cIdx + i * ldc, ei = i * nr;
                                    if (betaK == 0) {
                                        System.arraycopy(edge, ei, c, ci, cols);
                                    } else {
                                        for (int j = 0; j < cols; j++) c[ci + j] = edge[ei + j] + betaK * c[ci + j];
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /** Packs op(A)[ic:ic+mc, pc:pc+kc] as mr-row panels, p-major inside a panel, zero rows past m. */
    private static void packA(boolean transA, float[] a, int aOff, int lda, int ic, int mc, int pc, int kc,
                              int mr, float[] ap) {
        for (int ir = 0; ir < mc; ir += mr) {
            int rows = Math.min(mr, mc - ir);
            int base = ir * kc;
            if (transA) {
                // op(A)(i, p) = a[p * lda + i]: each p contributes mr consecutive floats.
                for (int p = 0; p < kc; p++) {
                    int src = aOff + (pc + p) * lda + ic + ir, dst = base + p * mr;
                    System.arraycopy(a, src, ap, dst, rows);
                    for (int i = rows; i < mr; i++) ap[dst + i] = 0f;
                }
            } else {
                for (int i = 0; i < rows; i++) {
                    int src = aOff + (ic + ir + i) * lda + pc, dst = base + i;
                    for (int p = 0; p < kc; p++) ap[dst + p * mr] = a[src + p];
                }
                for (int i = rows; i < mr; i++) {
                    for (int p = 0; p < kc; p++) ap[base + i + p * mr] = 0f;
                }
            }
        }
    }

    /** Packs op(B)[pc:pc+kc, jc:jc+nc] as nr-column panels, p-major inside a panel, zero columns past n. */
    private static void packB(boolean transB, float[] b, int bOff, int ldb, int pc, int kc, int jc, int nc,
                              int nr, float[] bp) {
        for (int jr = 0; jr < nc; jr += nr) {
            int cols = Math.min(nr, nc - jr);
            int base = jr * kc;
            if (!transB) {
                for (int p = 0; p < kc; p++) {
                    int src = bOff + (pc + p) * ldb + jc + jr, dst = base + p * nr;
                    System.arraycopy(b, src, bp, dst, cols);
                    if (cols < nr) Arrays.fill(bp, dst + cols, dst + nr, 0f);
                }
            } else {
                // op(B)(p, j) = b[j * ldb + p]: read each stored row once, scatter with stride nr.
                for (int j = 0; j < cols; j++) {
                    int src = bOff + (jc + jr + j) * ldb + pc, dst = base + j;
                    for (int p = 0; p < kc; p++) bp[dst + p * nr] = b[src + p];
                }
                for (int j = cols; j < nr; j++) {
                    for (int p = 0; p < kc; p++) bp[base + j + p * nr] = 0f;
                }
            }
        }
    }

    private static void scale(int m, int n, float beta, float[] c, int cOff, int ldc) {
        for (int i = 0; i < m; i++) {
            int row = cOff + i * ldc;
            if (beta == 0) {
                Arrays.fill(c, row, row + n, 0f);
            } else {
                for (int j = 0; j < n; j++) c[row + j] *= beta;
            }
        }
    }

    private static int roundUp(int v, int multiple) { return (v + multiple - 1) / multiple * multiple; }

    private static void validate(boolean transA, boolean transB, int m, int n, int k,
                                 float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                                 float[] c, int cOff, int ldc) {
        String shapes = "sgemm(transA=" + transA + ", transB=" + transB + ", m=" + m + ", n=" + n + ", k=" + k
                + ", lda=" + lda + ", ldb=" + ldb + ", ldc=" + ldc + ")";
        if (m < 0 || n < 0 || k < 0) throw new IllegalArgumentException(shapes + ": negative size");
        if (a == null || b == null || c == null) throw new IllegalArgumentException(shapes + ": null array");
        if (aOff < 0 || bOff < 0 || cOff < 0) {
            throw new IllegalArgumentException(shapes + ": negative offset (aOff=" + aOff + ", bOff=" + bOff + ", cOff=" + cOff + ")");
        }
        // Stored shapes: A is (m, k), or (k, m) when transposed; B is (k, n), or (n, k) when transposed.
        checkStored(shapes, "A", transA ? k : m, transA ? m : k, a, aOff, lda);
        checkStored(shapes, "B", transB ? n : k, transB ? k : n, b, bOff, ldb);
        checkStored(shapes, "C", m, n, c, cOff, ldc);
    }

    private static void checkStored(String shapes, String name, int rows, int cols, float[] arr, int off, int ld) {
        if (ld < Math.max(1, cols)) {
            throw new IllegalArgumentException(shapes + ": leading dimension of " + name + " is " + ld
                    + " but its stored rows have " + cols + " columns");
        }
        if (rows == 0 || cols == 0) return;
        long end = off + (long) (rows - 1) * ld + cols;
        if (end > arr.length) {
            throw new IllegalArgumentException(shapes + ": " + name + " (" + rows + "x" + cols + ", offset " + off
                    + ") needs " + end + " floats but the array has " + arr.length);
        }
    }
}
