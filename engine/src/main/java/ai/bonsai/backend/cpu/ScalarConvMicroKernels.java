package ai.bonsai.backend.cpu;

/**
 * Plain-Java {@link ConvMicroKernels}: 4x8 shift tiles with the accumulators in locals, used when the Vector API
 * is unavailable or {@code -Dbonsai.simd=false}.
 */
public final class ScalarConvMicroKernels implements ConvMicroKernels {
    private static final int MR = 4, NR = 8;

    @Override public int mr() { return MR; }

    @Override public int nr() { return NR; }

    @Override
    public void shiftTile(int np, float[] a, int aOff, float[] src, int srcOff, int[] off, float[] out, int outOff, int ldo) {
        float[] acc = new float[MR * NR];
        for (int p = 0; p < np; p++) {
            int s = srcOff + off[p], ai = aOff + p * MR;
            for (int i = 0; i < MR; i++) {
                float av = a[ai + i];
                int base = i * NR;
                for (int j = 0; j < NR; j++) acc[base + j] += av * src[s + j];
            }
        }
        for (int i = 0; i < MR; i++) System.arraycopy(acc, i * NR, out, outOff + i * ldo, NR);
    }

    @Override
    public void shiftTileHalf(int np, float[] a, int aOff, float[] src, int srcOff, int[] off, float[] out, int outOff, int ldo) {
        final int rows = MR / 2, cols = 2 * NR;
        float[] acc = new float[rows * cols];
        for (int p = 0; p < np; p++) {
            int s = srcOff + off[p], ai = aOff + p * MR;
            for (int i = 0; i < rows; i++) {
                float av = a[ai + i];
                int base = i * cols;
                for (int j = 0; j < cols; j++) acc[base + j] += av * src[s + j];
            }
        }
        for (int i = 0; i < rows; i++) System.arraycopy(acc, i * cols, out, outOff + i * ldo, cols);
    }

    @Override
    public void gradTile(int nq, float[] g, int gOff, int ldg, float[] src, int srcOff, int[] off, int offIdx,
                         float[] dw, int dwOff, int ldw) {
        for (int i = 0; i < GRAD_ROWS; i++) {
            int gi = gOff + i * ldg;
            for (int j = 0; j < GRAD_COLS; j++) {
                int s = srcOff + off[offIdx + j];
                float acc = 0;
                for (int q = 0; q < nq; q++) acc += g[gi + q] * src[s + q];
                dw[dwOff + i * ldw + j] += acc;
            }
        }
    }

    private static final int GMR = 4, GNR = 8;

    @Override public int gradMr() { return GMR; }

    @Override public int gradNr() { return GNR; }

    @Override
    public void gradShiftTile(int nq, float[] src, int srcOff, int[] off, int offIdx, float[] gT, int gOff,
                              float[] dwT, int dOff, int ldd) {
        float[] acc = new float[GMR * GNR];
        for (int q = 0; q < nq; q++) {
            int gq = gOff + q * GNR;
            for (int i = 0; i < GMR; i++) {
                float sv = src[srcOff + off[offIdx + i] + q];
                for (int j = 0; j < GNR; j++) acc[i * GNR + j] += sv * gT[gq + j];
            }
        }
        for (int i = 0; i < GMR; i++) {
            for (int j = 0; j < GNR; j++) dwT[dOff + i * ldd + j] += acc[i * GNR + j];
        }
    }
}
