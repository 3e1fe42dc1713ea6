package ai.bonsai.backend.cpu;

/**
 * Inner kernels of {@link Conv2dKernels}. Convolution there is an implicit GEMM over a staged input whose
 * every tap is a constant shift: output column q reads {@code src[q + off[p]]} for reduction index p. These
 * two kernels are that GEMM's register tiles; {@code off} is the per-p shift table built by the caller.
 *
 * <p>Scalar version in this package, Vector API version in {@code ai.bonsai.backend.cpu.simd}, chosen by
 * {@link VectorizationProvider}.
 */
public interface ConvMicroKernels {
    /** Rows (k) of a {@link #gradTile} block. */
    int GRAD_ROWS = 4;
    /** Columns (p) of a {@link #gradTile} block. */
    int GRAD_COLS = 4;

    /** Rows (output channels) of a {@link #shiftTile}. */
    int mr();

    /** Columns (output positions) of a {@link #shiftTile}; also the alignment {@link #gradTile} needs for nq. */
    int nr();

    /**
     * Overwrites an {@code mr() x nr()} tile:
     * {@code out[outOff + i*ldo + j] = sum_{p<np} a[aOff + p*mr() + i] * src[srcOff + off[p] + j]}.
     */
    void shiftTile(int np, float[] a, int aOff, float[] src, int srcOff, int[] off, float[] out, int outOff, int ldo);

    /**
     * A tile of {@code mr() / 2} rows by {@code 2 * nr()} columns, with {@code a} packed exactly as for
     * {@link #shiftTile} (stride {@code mr()} per p; only the first half of each group is read):
     * {@code out[outOff + i*ldo + j] = sum_p a[aOff + p*mr() + i] * src[srcOff + off[p] + j]}, i < mr/2, j < 2*nr.
     * Narrow row blocks are common in packed DSP branches (4 or 5 filters): the full tile would spend half its
     * multiply-adds on padding rows, and a half-height tile of the usual width would do half the multiply-adds per
     * load; half height at double width keeps the full tile's ratio.
     */
    void shiftTileHalf(int np, float[] a, int aOff, float[] src, int srcOff, int[] off, float[] out, int outOff, int ldo);

    /**
     * A tile of {@code rows} rows, {@code 1 <= rows < mr() / 2}, by {@code 2 * nr()} columns, {@code a} packed as for
     * {@link #shiftTile}: {@code out[outOff + i*ldo + j] = sum_p a[aOff + p*mr() + i] * src[srcOff + off[p] + j]},
     * i < rows, j < 2*nr. Packed branches of 1-3 filters (and the 5-7 filter ones, as a half tile plus this) are
     * common; a half tile there computes up to 4x the rows it keeps. With one load of B per p shared by all rows,
     * these do nearly as many multiply-adds per load as the half tile.
     */
    void shiftTileRows(int rows, int np, float[] a, int aOff, float[] src, int srcOff, int[] off, float[] out, int outOff,
                       int ldo);

    /**
     * Accumulates a {@code GRAD_ROWS x GRAD_COLS} block of dot products:
     * {@code dw[dwOff + i*ldw + j] += sum_{q<nq} g[gOff + i*ldg + q] * src[srcOff + off[offIdx + j] + q]}.
     * {@code nq} is a multiple of {@link #nr()}.
     */
    void gradTile(int nq, float[] g, int gOff, int ldg, float[] src, int srcOff, int[] off, int offIdx,
                  float[] dw, int dwOff, int ldw);

    /** Rows (p, reduction index of the forward pass) of a {@link #gradShiftTile}. */
    int gradMr();

    /** Columns (k, output channels) of a {@link #gradShiftTile}. */
    int gradNr();

    /**
     * The transposed weight-gradient tile, a GEMM tile with no lane reductions:
     * {@code dwT[dOff + i*ldd + j] += sum_{q<nq} src[srcOff + off[offIdx + i] + q] * gT[gOff + q*gradNr() + j]}
     * for i < gradMr(), j < gradNr(), where gT is dy packed q-major, gradNr() channels per q.
     */
    void gradShiftTile(int nq, float[] src, int srcOff, int[] off, int offIdx, float[] gT, int gOff,
                       float[] dwT, int dOff, int ldd);

    // ------------------------------------------------------------------ Winograd F(4, 3) along rows
    // The row transforms of {@link Conv2dWinograd}: element-wise over t along a row, so every lane does the same
    // arithmetic in the same order and the SIMD and scalar versions agree to the last bit of each formula.

    /**
     * Input transform: {@code v[vOff + a*vStride + t] = sum_i BT[a][i] * d_i[t]} for a < 6, i < 6, t < len, with BT
     * of Winograd F(4, 3) (points 0, +-1, +-2, infinity), where row {@code d_i[t] = p[pOff + i*ld + t]} for
     * {@code lo <= i < hi} and zero for the other rows, which are not read: a tile row that overhangs the top or
     * bottom of an image transforms straight from the image, with no zero-padded copy.
     */
    void winogradInput(float[] p, int pOff, int ld, int lo, int hi, int len, float[] v, int vOff, int vStride);

    /**
     * {@link #winogradInput} for one tile row of {@code imgs} images, each straight from its rows: image i's rows start
     * at {@code xOff + i*xImg} (stride w, rows {@code lo..hi} read, the others zero) and its w transformed columns go
     * to {@code v[vOff + i*wp + pw + a*vStride ..]}, with the padding columns {@code [0, pw)} and {@code [pw + w, wp)}
     * of its stretch written as zeros. One call per tile row rather than per image, for the reason given at
     * {@link #winogradOutputImages}.
     */
    void winogradInputImages(float[] x, int xOff, int xImg, int w, int lo, int hi, int imgs, float[] v, int vOff,
                             int wp, int pw, int vStride);

    /**
     * Output transform: {@code y[yOff + i*ldy + t] = bias + sum_a AT[i][a] * m[mOff + a*mStride + t]} for
     * i < rows (at most 4), t < len.
     */
    void winogradOutput(float[] m, int mOff, int mStride, int len, float bias, float[] y, int yOff, int ldy, int rows);

    /**
     * The output transform written into y's image planes, for one filter of a unit: for {@code img < imgs},
     * {@code t < tiles} and the rows {@code i < min(4, oh - 4t)} of tile row t,
     * {@code y[yOff + img*yImg + (4t + i)*ow + x] = bias + sum_a AT[i][a] * m[mOff + a*mStride + t*rs + img*wp + x]}
     * for {@code x < ow}; with {@code add}, that value (rounded to float first) is added into y. One call per filter
     * rather than per row: called per row, the transform was inlined into the convolution's unit loop, whose
     * compiled size then left some of its vector operations boxed in some JVMs.
     */
    void winogradOutputImages(float[] m, int mOff, int mStride, int rs, int wp, int imgs, int tiles, int oh, int ow,
                              float bias, float[] y, int yOff, int yImg, boolean add);

    /**
     * The adjoint of the output transform, for the weight gradient:
     * {@code d[dOff + a*dStride + t] = sum_{i<rows} AT[i][a] * g[gOff + i*ld + t]} for a < 6, t < len; rows past
     * {@code rows} (at most 4) count as zero.
     */
    void winogradOutputAdjoint(float[] g, int gOff, int ld, int rows, int len, float[] d, int dOff, int dStride);

    /**
     * {@code even[eOff + m] = x[xOff + 2m]} and {@code odd[oOff + m] = x[xOff + 2m + 1]} for {@code m < pairs}: an
     * input row split into its two column phases, as a stride-2 convolution stages its input.
     */
    void deinterleave(float[] x, int xOff, int pairs, float[] even, int eOff, float[] odd, int oOff);

    /** Floats past the end of each output row that {@link #deinterleaveSpilling} may overwrite (with zeros). */
    int DEINTERLEAVE_SPILL = 16;

    /**
     * {@link #deinterleave}, allowed to write zeros into the {@link #DEINTERLEAVE_SPILL} floats that follow each output
     * row ({@code even[eOff + pairs ..]}, {@code odd[oOff + pairs ..]}), for callers that rewrite that memory
     * afterwards. A row of exactly one vector (16 input columns with 16 lanes: ResNet's 16x16 stride-2 layers) is
     * then split by whole-vector stores instead of in {@link #deinterleave}'s scalar tail. Same values either way.
     */
    default void deinterleaveSpilling(float[] x, int xOff, int pairs, float[] even, int eOff, float[] odd, int oOff) {
        deinterleave(x, xOff, pairs, even, eOff, odd, oOff);
    }

    /**
     * {@code dst[dOff + i] += src[sOff + i]} for {@code i < len}: a row of a data gradient added into the gradient
     * that is there. The rows are short (8-32 floats), too short for the JIT's own vectorised loop, whose unrolled
     * main part never runs below 64 floats: that version made the stride-1 data gradient 30 % slower.
     */
    void addRow(float[] src, int sOff, float[] dst, int dOff, int len);
}
