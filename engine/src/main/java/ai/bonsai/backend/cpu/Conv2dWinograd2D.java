package ai.bonsai.backend.cpu;

import ai.bonsai.backend.ConvGeometry;

import static ai.bonsai.backend.cpu.Conv2dKernels.ceilDiv;
import static ai.bonsai.backend.cpu.Conv2dKernels.roundUp;
import static ai.bonsai.backend.cpu.Conv2dKernels.zero;

/**
 * Stride-1 3x3 convolutions by Winograd's F(4x4, 3x3): a quarter of the direct method's multiply-adds (36 products
 * per 4x4 output tile and channel pair instead of 144), half those of {@link Conv2dWinograd}'s rows-only F(4, 3).
 *
 * <p>With P the zero-padded input, tile (ty, tx) of output rows {@code 4ty..4ty+3} and columns {@code 4tx..4tx+3}
 * reads the 6x6 patch of P at {@code (4ty, 4tx)} (Lavin and Gray, 2016; points 0, +-1, +-2, infinity):
 * <pre>
 *   y[k][tile] = AT M[k] A,   M[a][b][k][tile] = sum_c U[a][b][k][c] * V[a][b][c][tile],
 *   V[c][tile] = BT d[c][tile] B,   U[k][c] = G w[k][c] GT.
 * </pre>
 * The 36 products are 36 plain GEMMs over the channels ({@link Conv2dKernels#shiftGemm} with one tap column, as 36
 * "groups"). The transforms stay element-wise along rows, as in the rows-only method, by splitting every row into
 * its four column phases: with tiles laid side by side, phase j of a row holds column {@code 4tx + j} at position
 * tx, so the 6 columns a tile reads are phases 0..3 at tx and phases 0 and 1 at tx + 1.
 * <ul>
 *   <li>Input: the row transform of {@link ConvMicroKernels#winogradInput} over 6 padded rows (along the image
 *       height), then each resulting row split into its phases (two {@link ConvMicroKernels#deinterleave}s), and
 *       the same transform over the 6 phase rows (along the width).</li>
 *   <li>Output: {@link ConvMicroKernels#winogradOutput} over a (height), then
 *       {@link ConvMicroKernels#winogradOutputInterleaved} over b (width), which writes the four columns of each
 *       tile back in place.</li>
 * </ul>
 * Each image's padded rows take {@code 4 * (tilesW + 1)} columns so that every image starts at phase 0; the tile
 * slot past an image's last tile reads into the next image and is discarded (one slot in 9 at 32 columns).
 *
 * <p>backwardData is this forward pass on dy with the flipped, transposed weights, as in {@link Conv2dWinograd}.
 * Threads take whole units of images, so results are bitwise identical for any thread count. The 2D transforms add
 * more rounding than the rows-only ones (sums of up to 100 scaled inputs instead of 10): {@code Conv2dKernelsTest}
 * holds both to the same double-precision references. Disable with {@code -Dbonsai.conv.winograd2d=false}.
 */
final class Conv2dWinograd2D {
    static final int M = Conv2dWinograd.M, ALPHA = Conv2dWinograd.ALPHA, TAPS = ALPHA * ALPHA;
    /** Target floats of one unit's working set (padded input, transformed input, GEMM output), as in the 1D method. */
    private static final int UNIT_FLOATS = 1 << 19;
    /** Tiles a unit should reach: below this, per-unit costs (tails, transforms' set-up) dominate. */
    private static final int UNIT_MIN_TILES = 64;

    static final boolean ENABLED = !"false".equalsIgnoreCase(System.getProperty("bonsai.conv.winograd2d", "true"));

    private Conv2dWinograd2D() {}

    /**
     * Whether this method can compute {@code g}: a 3x3 kernel, stride 1, one group, at least one whole tile each
     * way, and padding the backward pass can express (at most 2 each way).
     */
    static boolean applies(ConvGeometry g) {
        return g.r() == 3 && g.s() == 3 && g.strideH() == 1 && g.strideW() == 1 && g.groups() == 1
                && g.padH() <= 2 && g.padW() <= 2 && g.outH() >= M && g.outW() >= M;
    }

    /** Whether the Winograd path ({@link Conv2dWinograd#preferred}) takes the 2D transform for {@code g}. */
    static boolean preferred(ConvGeometry g) {
        return ENABLED && applies(g);
    }

    /**
     * One unit's buffers. Images lie side by side in every row, each in {@code wq = 4 * slots} columns, and a row's
     * tile slots are padded to whole vectors ({@code rowQ}), so that every transform runs over whole vectors.
     * <ul>
     *   <li>P[c][row][col]: padded rows of {@code rs = 4 * rowQ} columns, zero borders and zero past the images;</li>
     *   <li>V[ab][c][q], q = ty*rowQ + img*slots + tx: the transformed tiles, zero past {@code tiles};</li>
     *   <li>M[ab][k][q]: the GEMM output, rows of {@code qRound}.</li>
     * </ul>
     */
    static final class Layout {
        final int imgs, tilesH, slots, wq, rowQ, rs, hp, pChannel, phaseLen, tiles, qRound, vPlane;

        Layout(ConvGeometry g, int imgs, int nr) {
            this.imgs = imgs;
            tilesH = ceilDiv(g.outH(), M);
            slots = ceilDiv(g.outW(), M) + 1;
            wq = M * slots;
            rowQ = roundUp(imgs * slots, Math.max(1, nr / 2));
            rs = M * rowQ;
            hp = M * tilesH + 2;
            pChannel = hp * rs;
            phaseLen = hp * rowQ;
            tiles = tilesH * rowQ;
            qRound = roundUp(tiles, nr);
            vPlane = g.c() * qRound;
        }

        /** Floats of one image's P, V and M with {@code kPad} GEMM rows. */
        static int floatsPerImage(ConvGeometry g, int kPad) {
            Layout one = new Layout(g, 1, 1);
            return g.c() * one.pChannel + TAPS * (g.c() + kPad) * one.qRound;
        }
    }

    static ImageUnits units(ConvGeometry g, int kPad) {
        Layout one = new Layout(g, 1, 1);
        int byMemory = Math.max(1, UNIT_FLOATS / Math.max(1, Layout.floatsPerImage(g, kPad)));
        int byTiles = ceilDiv(UNIT_MIN_TILES, one.tiles);
        return ImageUnits.of(g.n(), Math.max(byTiles, ceilDiv(g.n(), 16)), byMemory);
    }

    // ------------------------------------------------------------------------------------------ transforms

    /**
     * V of images [n0, n0+imgs) of x. Per channel: the padded rows (P), split into their column phases over the
     * whole channel at once (rows are whole multiples of 4 columns, so a phase of P is a phase of every row), the
     * width transform over the six phase planes, and the height transform per tile row.
     */
    static void stageAndTransform(ConvMicroKernels kern, ConvGeometry g, float[] x, int n0, Layout lay, float[] v) {
        int c = g.c(), h = g.h(), w = g.w(), pl = lay.phaseLen, rowQ = lay.rowQ;
        float[] p = ScratchBuffers.get(ScratchBuffers.CONV_GRAD, c * lay.pChannel);
        int top = g.padH(), left = g.padW(), used = lay.imgs * lay.wq;
        for (int ch = 0; ch < c; ch++) {
            for (int row = 0; row < lay.hp; row++) {
                int dst = ch * lay.pChannel + row * lay.rs, hi = row - top;
                if (hi < 0 || hi >= h) {
                    zero(p, dst, dst + lay.rs);
                    continue;
                }
                for (int img = 0; img < lay.imgs; img++) {
                    int d = dst + img * lay.wq;
                    zero(p, d, d + left);
                    System.arraycopy(x, (((n0 + img) * c + ch) * h + hi) * w, p, d + left, w);
                    zero(p, d + left + w, d + lay.wq);
                }
                zero(p, dst + used, dst + lay.rs);
            }
        }
        // tmp: even and odd columns (2 pl each), six phase planes (pl + 1 each: phases 4 and 5 are 0 and 1 one tile
        // on, column 4(tx + 1) + j, and the last read lands on one float of slack), the width transform (6 pl).
        int ph = ALPHA * pl + ALPHA, evOff = 0, odOff = 2 * pl, phOff = 4 * pl, wOff = phOff + ph, ld = pl + 1;
        float[] tmp = ScratchBuffers.get(ScratchBuffers.CONV_TMP, wOff + ALPHA * pl);
        for (int ch = 0; ch < c; ch++) {
            kern.deinterleave(p, ch * lay.pChannel, 2 * pl, tmp, evOff, tmp, odOff);
            kern.deinterleave(tmp, evOff, pl, tmp, phOff, tmp, phOff + 2 * ld);
            kern.deinterleave(tmp, odOff, pl, tmp, phOff + ld, tmp, phOff + 3 * ld);
            tmp[phOff + pl] = 0f;
            tmp[phOff + ld + pl] = 0f;
            System.arraycopy(tmp, phOff + 1, tmp, phOff + 4 * ld, pl);
            System.arraycopy(tmp, phOff + ld + 1, tmp, phOff + 5 * ld, pl);
            kern.winogradInput(tmp, phOff, ld, 0, ALPHA, pl, tmp, wOff, pl);
            for (int b = 0; b < ALPHA; b++) {
                for (int ty = 0; ty < lay.tilesH; ty++) {
                    kern.winogradInput(tmp, wOff + b * pl + M * ty * rowQ, rowQ, 0, ALPHA, rowQ,
                            v, b * lay.vPlane + ch * lay.qRound + ty * rowQ, ALPHA * lay.vPlane);
                }
            }
            for (int ab = 0; ab < TAPS; ab++) {
                int vc = ab * lay.vPlane + ch * lay.qRound;
                zero(v, vc + lay.tiles, vc + lay.qRound);
            }
        }
    }

    // ------------------------------------------------------------------------------------------ forward

    /** y = conv(x, w) + bias for a geometry that {@link #applies}. */
    static void forward(ConvMicroKernels kern, ConvGeometry g, float[] x, float[] w, float[] bias, float[] y) {
        forward(kern, g, x, w, bias, y, false);
    }

    /** As above, or with {@code accumulate} y += conv(x, w) + bias. */
    static void forward(ConvMicroKernels kern, ConvGeometry g, float[] x, float[] w, float[] bias, float[] y,
                        boolean accumulate) {
        int mr = kern.mr(), nr = kern.nr();
        int k = g.k(), c = g.c();
        int mBlocks = ceilDiv(k, mr), kPad = mBlocks * mr;
        float[] a = packTransformedWeights(k, c, w, mr, mBlocks);
        ImageUnits units = units(g, kPad);
        int slices = units.count() >= Parallel.threads() ? 1 : Parallel.threads();
        int oh = g.outH(), ow = g.outW();
        Parallel.forEach(units.count(), u -> {
            int n0 = units.start(u);
            Layout lay = new Layout(g, units.size(u), nr);
            float[] v = ScratchBuffers.get(ScratchBuffers.CONV_SRC, TAPS * lay.vPlane);
            stageAndTransform(kern, g, x, n0, lay, v);
            int qRound = lay.qRound, n = lay.tiles, rowLen = M * n;
            int[] offsets = new int[c];
            for (int ch = 0; ch < c; ch++) offsets[ch] = ch * qRound;
            float[] m = ScratchBuffers.get(ScratchBuffers.CONV_OUT, TAPS * kPad * qRound);
            Conv2dKernels.shiftGemm(kern, TAPS, mBlocks, c, a, v, lay.vPlane, offsets, m, qRound,
                    slices);
            // Per filter: the height transform into 4 rows per b, then the width transform of each row, interleaved
            // back into columns; then plain row copies into y, each image's plane front to back.
            float[] tmp = ScratchBuffers.get(ScratchBuffers.CONV_TMP, ALPHA * M * qRound + M * rowLen);
            int rowsOff = ALPHA * M * qRound;
            for (int kk = 0; kk < k; kk++) {
                for (int b = 0; b < ALPHA; b++) {
                    kern.winogradOutput(m, (b * kPad + kk) * qRound, ALPHA * kPad * qRound, n, 0f,
                            tmp, b * qRound, ALPHA * qRound, M);
                }
                float bk = bias == null ? 0f : bias[kk];
                for (int i = 0; i < M; i++) {
                    kern.winogradOutputInterleaved(tmp, i * ALPHA * qRound, qRound, n, bk, tmp, rowsOff + i * rowLen);
                }
                for (int img = 0; img < lay.imgs; img++) {
                    int yPlane = ((n0 + img) * k + kk) * oh * ow;
                    for (int ty = 0; ty < lay.tilesH; ty++) {
                        for (int i = 0; i < Math.min(M, oh - M * ty); i++) {
                            Conv2dKernels.writeRow(kern, tmp, rowsOff + i * rowLen + ty * lay.rs + img * lay.wq,
                                    y, yPlane + (M * ty + i) * ow, ow, accumulate);
                        }
                    }
                }
            }
        });
    }

    /** G of F(4, 3), as in the rows-only method. */
    private static final double[][] G = {
        {1.0 / 4, 0, 0},
        {-1.0 / 6, -1.0 / 6, -1.0 / 6},
        {-1.0 / 6, 1.0 / 6, -1.0 / 6},
        {1.0 / 24, 1.0 / 12, 1.0 / 6},
        {1.0 / 24, -1.0 / 12, 1.0 / 6},
        {0, 0, 1},
    };

    /** A[ab][mb][c][i] = U[a][b][mb*mr + i][c] with U = G w GT (in double, rounded once); rows past k are zero. */
    static float[] packTransformedWeights(int k, int c, float[] w, int mr, int mBlocks) {
        float[] a = new float[TAPS * mBlocks * c * mr];
        int tapStride = mBlocks * c * mr;
        Parallel.forRange(k, 8, (from, to) -> {
            double[] gw = new double[ALPHA * 3];
            for (int kk = from; kk < to; kk++) {
                int base = (kk / mr) * c * mr + kk % mr;
                for (int ch = 0; ch < c; ch++) {
                    int wb = (kk * c + ch) * 9;
                    for (int al = 0; al < ALPHA; al++) {
                        for (int s = 0; s < 3; s++) {
                            gw[al * 3 + s] = G[al][0] * w[wb + s] + G[al][1] * w[wb + 3 + s] + G[al][2] * w[wb + 6 + s];
                        }
                    }
                    for (int al = 0; al < ALPHA; al++) {
                        for (int be = 0; be < ALPHA; be++) {
                            double u = gw[al * 3] * G[be][0] + gw[al * 3 + 1] * G[be][1] + gw[al * 3 + 2] * G[be][2];
                            a[(al * ALPHA + be) * tapStride + base + ch * mr] = (float) u;
                        }
                    }
                }
            }
        });
        return a;
    }

    // ------------------------------------------------------------------------------------------ backwardData

    /** dx = conv_transpose(dy, w) (with {@code accumulate}: dx +=), as the forward pass of the transposed geometry. */
    static void backwardData(ConvMicroKernels kern, ConvGeometry g, float[] dy, float[] w, float[] dx, boolean accumulate) {
        int k = g.k(), c = g.c();
        float[] wt = new float[w.length];
        for (int kk = 0; kk < k; kk++) {
            for (int ch = 0; ch < c; ch++) {
                for (int t = 0; t < 9; t++) wt[(ch * k + kk) * 9 + 8 - t] = w[(kk * c + ch) * 9 + t];
            }
        }
        forward(kern, Conv2dWinograd.transposed(g), dy, wt, null, dx, accumulate);
    }
}
