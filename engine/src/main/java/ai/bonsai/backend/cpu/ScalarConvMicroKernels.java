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
        tile(MR, NR, np, a, aOff, src, srcOff, off, out, outOff, ldo);
    }

    @Override
    public void shiftTileHalf(int np, float[] a, int aOff, float[] src, int srcOff, int[] off, float[] out, int outOff, int ldo) {
        tile(MR / 2, 2 * NR, np, a, aOff, src, srcOff, off, out, outOff, ldo);
    }

    @Override
    public void shiftTileRows(int rows, int np, float[] a, int aOff, float[] src, int srcOff, int[] off, float[] out,
                              int outOff, int ldo) {
        if (rows < 1 || rows >= MR / 2) throw new IllegalArgumentException("shiftTileRows: rows must be in [1, " + MR / 2 + "), got " + rows);
        tile(rows, 2 * NR, np, a, aOff, src, srcOff, off, out, outOff, ldo);
    }

    /** The three tile shapes in one loop nest (plain Java gains nothing from spelling each out): rows x cols, a at stride MR. */
    private static void tile(int rows, int cols, int np, float[] a, int aOff, float[] src, int srcOff, int[] off, float[] out,
                             int outOff, int ldo) {
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

    @Override
    public void winogradInput(float[] p, int pOff, int ld, int lo, int hi, int len, float[] v, int vOff, int vStride) {
        boolean r0 = lo <= 0 && hi > 0, r1 = lo <= 1 && hi > 1, r2 = lo <= 2 && hi > 2;
        boolean r3 = lo <= 3 && hi > 3, r4 = lo <= 4 && hi > 4, r5 = lo <= 5 && hi > 5;
        for (int t = 0; t < len; t++) {
            int o = pOff + t;
            float d0 = r0 ? p[o] : 0f, d1 = r1 ? p[o + ld] : 0f, d2 = r2 ? p[o + 2 * ld] : 0f;
            float d3 = r3 ? p[o + 3 * ld] : 0f, d4 = r4 ? p[o + 4 * ld] : 0f, d5 = r5 ? p[o + 5 * ld] : 0f;
            int w = vOff + t;
            v[w] = 4f * d0 - 5f * d2 + d4;
            v[w + vStride] = (d4 + d3) - 4f * (d1 + d2);
            v[w + 2 * vStride] = (d4 - d3) + 4f * (d1 - d2);
            v[w + 3 * vStride] = (d4 - d2) + 2f * (d3 - d1);
            v[w + 4 * vStride] = (d4 - d2) - 2f * (d3 - d1);
            v[w + 5 * vStride] = 4f * d1 - 5f * d3 + d5;
        }
    }

    @Override
    public void winogradInputImages(float[] x, int xOff, int xImg, int w, int lo, int hi, int imgs, float[] v, int vOff,
                                    int wp, int pw, int vStride) {
        for (int img = 0; img < imgs; img++) {
            int dst = vOff + img * wp;
            winogradInput(x, xOff + img * xImg, w, lo, hi, w, v, dst + pw, vStride);
            zeroPadding(v, dst, w, wp, pw, vStride);
        }
    }

    /** Zeros the padding columns {@code [0, pw)} and {@code [pw + w, wp)} of a stretch in each of the six planes. */
    public static void zeroPadding(float[] v, int dst, int w, int wp, int pw, int vStride) {
        for (int a = 0; a < 6; a++) {
            int row = dst + a * vStride;
            for (int i = 0; i < pw; i++) v[row + i] = 0f;
            for (int i = pw + w; i < wp; i++) v[row + i] = 0f;
        }
    }

    @Override
    public void winogradOutput(float[] m, int mOff, int mStride, int len, float bias, float[] y, int yOff, int ldy, int rows) {
        outputRows(m, mOff, mStride, len, bias, y, yOff, ldy, rows, false);
    }

    @Override
    public void winogradOutputImages(float[] m, int mOff, int mStride, int rs, int wp, int imgs, int tiles, int oh, int ow,
                                     float bias, float[] y, int yOff, int yImg, boolean add) {
        for (int img = 0; img < imgs; img++) {
            for (int t = 0; t < tiles; t++) {
                int rows = Math.min(4, oh - 4 * t), mRow = mOff + t * rs + img * wp, yRow = yOff + img * yImg + 4 * t * ow;
                outputRows(m, mRow, mStride, ow, bias, y, yRow, ow, rows, add);
            }
        }
    }

    /**
     * {@link #winogradOutput}, or with {@code add} the same values added into y (the SIMD kernels' tails too, so
     * that a row's tail is rounded as its vectors are).
     */
    public static void outputRows(float[] m, int mOff, int mStride, int len, float bias, float[] y, int yOff, int ldy,
                                  int rows, boolean add) {
        for (int t = 0; t < len; t++) {
            int o = mOff + t;
            float m0 = m[o], m1 = m[o + mStride], m2 = m[o + 2 * mStride], m3 = m[o + 3 * mStride];
            float m4 = m[o + 4 * mStride], m5 = m[o + 5 * mStride];
            float s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4;
            float y0 = bias + (m0 + s12 + s34), y1 = bias + (d12 + 2f * d34);
            float y2 = bias + (s12 + 4f * s34), y3 = bias + (d12 + 8f * d34 + m5);
            int w = yOff + t;
            y[w] = add ? y[w] + y0 : y0;
            if (rows > 1) y[w + ldy] = add ? y[w + ldy] + y1 : y1;
            if (rows > 2) y[w + 2 * ldy] = add ? y[w + 2 * ldy] + y2 : y2;
            if (rows > 3) y[w + 3 * ldy] = add ? y[w + 3 * ldy] + y3 : y3;
        }
    }

    @Override
    public void winogradOutputAdjoint(float[] g, int gOff, int ld, int rows, int len, float[] d, int dOff, int dStride) {
        for (int t = 0; t < len; t++) {
            int o = gOff + t;
            float g0 = g[o], g1 = rows > 1 ? g[o + ld] : 0f, g2 = rows > 2 ? g[o + 2 * ld] : 0f, g3 = rows > 3 ? g[o + 3 * ld] : 0f;
            float s02 = g0 + g2, s13 = g1 + g3, q02 = g0 + 4f * g2, q13 = 2f * g1 + 8f * g3;
            int w = dOff + t;
            d[w] = g0;
            d[w + dStride] = s02 + s13;
            d[w + 2 * dStride] = s02 - s13;
            d[w + 3 * dStride] = q02 + q13;
            d[w + 4 * dStride] = q02 - q13;
            d[w + 5 * dStride] = g3;
        }
    }

    @Override public void addRow(float[] src, int sOff, float[] dst, int dOff, int len) {
        for (int i = 0; i < len; i++) dst[dOff + i] += src[sOff + i];
    }

    @Override public void deinterleave(float[] x, int xOff, int pairs, float[] even, int eOff, float[] odd, int oOff) {
        for (int m = 0; m < pairs; m++) {
            even[eOff + m] = x[xOff + 2 * m];
            odd[oOff + m] = x[xOff + 2 * m + 1];
        }
    }
}
