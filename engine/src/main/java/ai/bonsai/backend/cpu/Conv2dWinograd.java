package ai.bonsai.backend.cpu;

import ai.bonsai.backend.ConvGeometry;

import java.util.Arrays;

import static ai.bonsai.backend.cpu.Conv2dKernels.ceilDiv;
import static ai.bonsai.backend.cpu.Conv2dKernels.roundUp;
import static ai.bonsai.backend.cpu.Conv2dKernels.zero;

/**
 * 3-row stride-1 convolutions with Winograd's minimal filtering F(4, 3) along the rows and the direct shift GEMM of
 * {@link Conv2dKernels} along the columns: half the multiply-adds of the direct method (each 4 output rows cost
 * 6 products per tap column instead of 12), with no gathers or scatters, because every transform runs along
 * contiguous rows.
 *
 * <p>For output rows {@code 4t .. 4t+3} of one image (a "tile row") and input rows {@code 4t .. 4t+5} of the
 * zero-padded input P, F(4, 3) gives (Lavin and Gray, 2016; points 0, +-1, +-2, infinity)
 * <pre>
 *   y[k][4t+i][j] = sum_a AT[i][a] * M[a][k][t][j],
 *   M[a][k][t][j] = sum_{c, s} U[a][k][c][s] * V[a][c][t][j + s],
 *   V[a][c][t][x] = sum_i BT[a][i] * P[c][4t + i][x],      U[a][k][c][s] = sum_r G[a][r] * w[k][c][r][s].
 * </pre>
 * The six M are one shift GEMM each, over the reduction (c, s) of length {@code c * s} instead of {@code c * 3 * s}:
 * {@code Conv2dKernels.shiftGemm} runs them as six "groups". Rows of V keep the padded row length, so reading past
 * a row's end lands on the next row's left padding (transformed zeros), as in the direct method.
 *
 * <p>backwardData is this forward pass on dy with the flipped, transposed weights. backwardWeight uses the adjoint:
 * {@code dw[k][c][r][s] = sum_a G[a][r] * dU[a][k][c][s]} with
 * {@code dU[a][k][c][s] = sum_{t, j} D[a][k][t][j] * V[a][c][t][j + s]} and {@code D[a] = sum_i AT[i][a] dy[4t+i]}
 * (zero at discarded columns and rows): six GEMMs per unit, as transposed gradient tiles with D packed q-major for
 * layers of at least a tile's width of filters, else as dot-product tiles over the unit's whole q range.
 *
 * <p>Threads take whole units of images whose size depends only on the geometry, and the weight gradient adds
 * per-unit partials in a fixed order, so results are bitwise identical for any thread count. The transforms add a
 * few ulps of rounding relative to the direct method (the transformed values are sums of up to 10 scaled inputs);
 * {@code Conv2dKernelsTest} holds it to the same double-precision references as the direct method. Disable with
 * {@code -Dbonsai.conv.winograd=false} (e.g. to compare the two in {@code benchmarks/run Conv2dBench}).
 */
final class Conv2dWinograd {
    /** Output rows per tile row, and input rows per tile row (m + r - 1). */
    static final int M = 4, ALPHA = 6;
    /**
     * Target floats of one unit's working set (padded input, transformed input, GEMM output), 2 MB. Larger than L2
     * on purpose: measured on ResNet shapes, longer units amortise the per-unit transforms and tails better than
     * they lose to cache misses (the GEMM streams each transformed plane once per row block).
     */
    private static final int UNIT_FLOATS = 1 << 19;
    /** q chunk of the weight gradient: its packed D tile (256 x gradNr floats) stays in L1. */
    private static final int GRAD_T_CHUNK = 256;
    /** The weight gradient keeps at most this many per-unit partials, however large the batch. */
    private static final int REDUCE_GROUPS = 16;

    static final boolean ENABLED = !"false".equalsIgnoreCase(System.getProperty("bonsai.conv.winograd", "true"));

    /** G of F(4, 3): U = G w along the kernel rows. */
    private static final double[][] G = {
        {1.0 / 4, 0, 0},
        {-1.0 / 6, -1.0 / 6, -1.0 / 6},
        {-1.0 / 6, 1.0 / 6, -1.0 / 6},
        {1.0 / 24, 1.0 / 12, 1.0 / 6},
        {1.0 / 24, -1.0 / 12, 1.0 / 6},
        {0, 0, 1},
    };

    private Conv2dWinograd() {}

    /** Smallest batch that takes the Winograd path by default (see {@link #preferred}). */
    static final int MIN_BATCH = 8;

    /**
     * Whether this method can compute {@code g}: three kernel rows, stride 1, one group, at least one full tile row
     * of output, and padding the backward pass can express ({@code padH <= 2}, {@code padW < s}).
     */
    static boolean applies(ConvGeometry g) {
        return g.r() == 3 && g.strideH() == 1 && g.strideW() == 1 && g.groups() == 1
                && g.padH() <= 2 && g.padW() <= g.s() - 1 && g.outH() >= M;
    }

    /**
     * Whether the convolution kernels take this path for {@code g}: it {@link #applies}, it is not switched off, and
     * the batch has at least {@link #MIN_BATCH} images. Measured on ResNet shapes (2 threads, warmed up): from 8
     * images on this path is at least as fast as the direct one (1.0-1.5x at 8-16 images, 1.4-1.9x at 128); at one
     * image the weight transform and the single unit's transforms cost more than the halved multiply-adds save.
     */
    static boolean preferred(ConvGeometry g) {
        return ENABLED && applies(g) && g.n() >= MIN_BATCH;
    }

    /** The geometry whose forward pass is the backward-data pass of {@code g}: dy in, dx out, flipped weights. */
    static ConvGeometry transposed(ConvGeometry g) {
        return new ConvGeometry(g.n(), g.k(), g.outH(), g.outW(), g.c(), g.r(), g.s(), 1, 1,
                g.r() - 1 - g.padH(), g.s() - 1 - g.padW(), 1);
    }

    // ------------------------------------------------------------------------------------------ layout

    /**
     * One unit's buffers, with the images of the unit side by side in every row so that each transform runs over
     * one long contiguous stretch ({@code imgs * wp} floats) instead of many short image rows:
     * <ul>
     *   <li>P[c][row][img][col]: padded row {@code row}, padded column {@code col} of image img (zero borders); only
     *       for images whose rows are not whole vectors ({@link #transformsRowsInPlace}), the rest transform straight
     *       from x;</li>
     *   <li>V[a][c][q], q = (t*imgs + img)*wp + x: the row transform of tile row t; each channel's q range is
     *       followed by zeros, so the GEMM may read {@code s - 1} past the last row;</li>
     *   <li>M[a][k][q]: the GEMM output, rows of {@code qRound}.</li>
     * </ul>
     * A read past a row's end still lands on the left padding of the next image or tile row (transformed zeros).
     */
    static final class Layout {
        final int imgs, tiles, hp, wp, rs, span, pChannel, qCount, qRound, vChannel, vPlane;

        Layout(ConvGeometry g, int imgs, int nr) {
            this.imgs = imgs;
            tiles = ceilDiv(g.outH(), M);
            hp = M * tiles + 2;
            // wp >= w + padW makes a read past a row's end land on the next row's left padding (see Conv2dKernels).
            wp = Math.max(g.outW(), g.w() + g.padW());
            rs = imgs * wp;
            // Transforms run over whole vectors: up to nr - 1 floats past a tile row, into the next tile row's range
            // (rewritten afterwards, tile rows go in order) or into the zeroed tail.
            span = roundUp(rs, nr);
            pChannel = hp * rs + nr;
            qCount = tiles * rs;
            qRound = roundUp(qCount, nr);
            vChannel = qRound + g.s() + nr;
            vPlane = g.c() * vChannel;
        }

        /** Floats of one unit's P, V and M (forward) with {@code kPad} GEMM rows. */
        static int floatsPerImage(ConvGeometry g, int kPad) {
            Layout one = new Layout(g, 1, 1);
            return g.c() * one.pChannel + ALPHA * one.vPlane + ALPHA * kPad * one.qRound;
        }
    }

    /** Output positions a unit should reach: below this, per-unit costs (tails, transforms' set-up) dominate. */
    private static final int UNIT_MIN_Q = 256;

    /**
     * The batch's units ({@link ImageUnits}, from the geometry only): enough images for {@link #UNIT_MIN_Q} output
     * positions (small images need several) and up to 16 units on large batches, at most a working set of
     * {@link #UNIT_FLOATS}.
     */
    static ImageUnits units(ConvGeometry g, int kPad) {
        Layout one = new Layout(g, 1, 1);
        int byMemory = Math.max(1, UNIT_FLOATS / Math.max(1, Layout.floatsPerImage(g, kPad)));
        int byQ = ceilDiv(UNIT_MIN_Q, one.qCount);
        return ImageUnits.of(g.n(), Math.max(byQ, ceilDiv(g.n(), 16)), byMemory);
    }

    /**
     * Copies images [n0, n0+imgs) of an (n, xChannels, h, w) array into {@code rows} padded rows ({@code top} zero
     * rows first, zeros past the image) of {@code imgs * wp} floats, image-interleaved as in {@link Layout}: staged
     * channel ch (of {@code count}) is x channel {@code channels[ch]} ({@code channels} null: the identity) and
     * starts at {@code ch * chStride}.
     */
    private static void stageRows(float[] x, int xChannels, int[] channels, int count, int h, int w, int n0, int imgs,
                                  int top, int left, int rows, int wp, float[] p, int chStride) {
        int rs = imgs * wp, colEnd = left + w;
        for (int ch = 0; ch < count; ch++) {
            int pc = ch * chStride, xc = channels == null ? ch : channels[ch];
            for (int row = 0; row < rows; row++) {
                int dst = pc + row * rs, hi = row - top;
                if (hi < 0 || hi >= h) {
                    zero(p, dst, dst + rs);
                    continue;
                }
                for (int img = 0; img < imgs; img++) {
                    int d = dst + img * wp;
                    zero(p, d, d + left);
                    System.arraycopy(x, (((n0 + img) * xChannels + xc) * h + hi) * w, p, d + left, w);
                    zero(p, d + colEnd, d + wp);
                }
            }
        }
    }

    /** Writes V, the row transform of every tile row, for images [n0, n0+imgs) of x. */
    private static void stageAndTransform(ConvMicroKernels kern, ConvGeometry g, float[] x, int n0, Layout lay,
                                          float[] v) {
        stageAndTransform(kern, g, x, g.c(), null, n0, lay, v);
    }

    /**
     * As above with a channel gather folded in: staged channel c (of {@code g.c()}) is channel {@code channels[c]}
     * of an x with {@code xChannels} channels. The multi-branch convolution transforms only the channels its
     * branches read, once for all branches.
     */
    static void stageAndTransform(ConvMicroKernels kern, ConvGeometry g, float[] x, int xChannels, int[] channels,
                                  int n0, Layout lay, float[] v) {
        stageAndTransform(kern, g, x, xChannels, channels, n0, lay, v, transformsRowsInPlace(kern, g));
    }

    /**
     * Whether V is transformed straight from the image rows: when every image row is whole vectors of the kernels
     * (CIFAR's 32 and 16 columns). Narrower or ragged rows would run much of the transform in its scalar tail, so
     * they are first copied, zero-padded and side by side, into P, whose long rows the transform runs over in
     * whole vectors. Both give the same V, bit for bit (the transform sees the same values either way).
     */
    static boolean transformsRowsInPlace(ConvMicroKernels kern, ConvGeometry g) {
        int lanes = kern.nr() / 2; // nr is two vectors wide in every kernel
        return g.w() % lanes == 0;
    }

    /** {@link #stageAndTransform} by the given route; package-private so tests can run both on one geometry. */
    static void stageAndTransform(ConvMicroKernels kern, ConvGeometry g, float[] x, int xChannels, int[] channels,
                                  int n0, Layout lay, float[] v, boolean inPlace) {
        if (inPlace) {
            transformImageRows(kern, g, x, xChannels, channels, n0, lay, v);
        } else {
            float[] p = ScratchBuffers.get(ScratchBuffers.CONV_GRAD, g.c() * lay.pChannel);
            stageRows(x, xChannels, channels, g.c(), g.h(), g.w(), n0, lay.imgs, g.padH(), g.padW(), lay.hp, lay.wp, p,
                    lay.pChannel);
            for (int c = 0; c < g.c(); c++) {
                for (int t = 0; t < lay.tiles; t++) {
                    kern.winogradInput(p, c * lay.pChannel + M * t * lay.rs, lay.rs, 0, ALPHA, lay.span,
                            v, c * lay.vChannel + t * lay.rs, lay.vPlane);
                }
            }
        }
        // The GEMM reads up to qRound + s - 2 of a channel; what lies past that (transform spill) is never read.
        for (int c = 0; c < g.c(); c++) {
            for (int a = 0; a < ALPHA; a++) {
                int vc = a * lay.vPlane + c * lay.vChannel;
                zero(v, vc + lay.qCount, vc + lay.qRound + g.s());
            }
        }
    }

    /**
     * V from the image rows in place, image by image: tile row t of an image reads its rows {@code 4t - padH ..}
     * straight from x, those above or below the image counting as zero, and the padding columns of V (the
     * transform of zero columns) are written as zeros. This saves the copy into P, a pass over the input in all three
     * of forward, data and weight gradients: ResNet-20 training steps, alternated with the copy in one JVM, were 1-5 %
     * faster (per-pair medians 0.99, 0.95, 0.99 over three runs of 16 pairs). Timed alone, one convolution at a time
     * in separate JVMs, the two were within the noise.
     */
    private static void transformImageRows(ConvMicroKernels kern, ConvGeometry g, float[] x, int xChannels,
                                           int[] channels, int n0, Layout lay, float[] v) {
        int h = g.h(), w = g.w(), pw = g.padW(), wp = lay.wp;
        for (int c = 0; c < g.c(); c++) {
            int xc = channels == null ? c : channels[c];
            for (int t = 0; t < lay.tiles; t++) {
                int top = M * t - g.padH();                     // image row of the tile row's first padded row
                int lo = Math.max(0, -top), hi = Math.max(lo, Math.min(ALPHA, h - top));
                // Rows below lo are never read, so the offset may point before the image.
                int xTop = (n0 * xChannels + xc) * h * w + top * w;
                kern.winogradInputImages(x, xTop, xChannels * h * w, w, lo, hi, lay.imgs, v,
                        c * lay.vChannel + t * lay.rs, wp, pw, lay.vPlane);
            }
        }
    }

    /** off[(c, s)] = c * vChannel + s: where tap column s of channel c sits relative to output position q in V. */
    private static int[] offsets(ConvGeometry g, Layout lay, int length) {
        int[] off = new int[length]; // entries past c*s (padding) read offset 0: finite, discarded
        for (int c = 0; c < g.c(); c++) for (int s = 0; s < g.s(); s++) off[c * g.s() + s] = c * lay.vChannel + s;
        return off;
    }

    // ------------------------------------------------------------------------------------------ forward

    /** y = conv(x, w) + bias for a geometry that {@link #applies}. */
    static void forward(ConvMicroKernels kern, ConvGeometry g, float[] x, float[] w, float[] bias, float[] y) {
        forward(kern, g, x, w, bias, y, false);
    }

    /** As above, or with {@code accumulate} y += conv(x, w) + bias (each output row added where it is written). */
    private static void forward(ConvMicroKernels kern, ConvGeometry g, float[] x, float[] w, float[] bias, float[] y,
                                boolean accumulate) {
        forward(kern, g, x, w, bias, y, accumulate, writesOutputInPlace(kern, g));
    }

    /**
     * Whether the output transform writes y's rows itself: when every output row is whole vectors of the kernels
     * (CIFAR's 32 and 16 columns). Otherwise it runs over the whole unit's rows into a scratch buffer, in long
     * vectors, and the rows are copied into y: at 8 columns the transform straight into y would run in its scalar
     * tail. Both give the same bits.
     */
    static boolean writesOutputInPlace(ConvMicroKernels kern, ConvGeometry g) {
        return g.outW() % (kern.nr() / 2) == 0;
    }

    /** {@link #forward} by the given output route; package-private so tests can run both on one geometry. */
    static void forward(ConvMicroKernels kern, ConvGeometry g, float[] x, float[] w, float[] bias, float[] y,
                        boolean accumulate, boolean outputInPlace) {
        int mr = kern.mr(), nr = kern.nr();
        int k = g.k(), np = g.c() * g.s();
        int mBlocks = ceilDiv(k, mr), kPad = mBlocks * mr;
        float[] a = packTransformedWeights(g, w, mr, mBlocks);
        ImageUnits units = units(g, kPad);
        int slices = units.count() >= Parallel.threads() ? 1 : Parallel.threads();
        int oh = g.outH(), ow = g.outW();
        Parallel.forEach(units.count(), u -> {
            int n0 = units.start(u);
            Layout lay = new Layout(g, units.size(u), nr);
            float[] v = ScratchBuffers.get(ScratchBuffers.CONV_SRC, ALPHA * lay.vPlane);
            stageAndTransform(kern, g, x, n0, lay, v);
            int qRound = lay.qRound;
            float[] m = ScratchBuffers.get(ScratchBuffers.CONV_OUT, ALPHA * kPad * qRound);
            Conv2dKernels.shiftGemm(kern, ALPHA, mBlocks, np, a, v, lay.vPlane, offsets(g, lay, np), m, qRound, slices);
            // Each image's plane of y is written front to back, image by image. Going tile row by tile row across
            // the images instead (the order of M) spread the stores over every image's plane at once, and made the
            // forward pass 10-30 % slower on ResNet-20's 32 and 16 pixel layers (alternated runs). Writing y's rows
            // straight from the transform, not through a scratch row and System.arraycopy (65,000 copies of 32 or 16
            // floats per 16-filter layer), made the 16-filter layer's forward pass 13-17 % and its adding data
            // gradient 11-12 % faster, the 32-filter layer's 3-5 % and 5-6 % (alternated in one JVM).
            if (outputInPlace) {
                for (int kk = 0; kk < k; kk++) {
                    kern.winogradOutputImages(m, kk * qRound, kPad * qRound, lay.rs, lay.wp, lay.imgs, lay.tiles, oh, ow,
                            bias == null ? 0f : bias[kk], y, (n0 * k + kk) * oh * ow, k * oh * ow, accumulate);
                }
                return;
            }
            // Output transform over the whole unit per filter (long vectors), then plain row copies into y.
            float[] rowsOut = ScratchBuffers.get(ScratchBuffers.CONV_TMP, M * qRound);
            for (int kk = 0; kk < k; kk++) {
                kern.winogradOutput(m, kk * qRound, kPad * qRound, qRound, bias == null ? 0f : bias[kk],
                        rowsOut, 0, qRound, M);
                for (int img = 0; img < lay.imgs; img++) {
                    int yPlane = ((n0 + img) * k + kk) * oh * ow;
                    for (int t = 0; t < lay.tiles; t++) {
                        for (int i = 0; i < Math.min(M, oh - M * t); i++) {
                            Conv2dKernels.writeRow(kern, rowsOut, i * qRound + t * lay.rs + img * lay.wp, y, yPlane + (M * t + i) * ow,
                                    ow, accumulate);
                        }
                    }
                }
            }
        });
    }

    /** A[a][mb][p][i] = U[a][mb*mr + i][p] with p = (c, s) and U = G w along r; rows past k are zero. */
    private static float[] packTransformedWeights(ConvGeometry g, float[] w, int mr, int mBlocks) {
        return packTransformedWeights(g.k(), g.c(), g.s(), w, mr, mBlocks);
    }

    /** As above for k filters of shape (c, 3, s). */
    static float[] packTransformedWeights(int k, int c, int s, float[] w, int mr, int mBlocks) {
        int np = c * s;
        float[] a = new float[ALPHA * mBlocks * np * mr];
        int aStride = mBlocks * np * mr;
        // The rows of G spelled out (in double, then rounded once); filters split over threads, disjoint writes.
        Parallel.forRange(k, 8, (from, to) -> {
            for (int kk = from; kk < to; kk++) {
                int base = (kk / mr) * np * mr + kk % mr;
                for (int ch = 0; ch < c; ch++) {
                    int wb = (kk * c + ch) * 3 * s;
                    for (int ss = 0; ss < s; ss++) {
                        double w0 = w[wb + ss], w1 = w[wb + s + ss], w2 = w[wb + 2 * s + ss];
                        double even = w0 / 24 + w2 / 6, odd = w1 / 12;
                        int o = base + (ch * s + ss) * mr;
                        a[o] = (float) (w0 / 4);
                        a[aStride + o] = (float) (-(w0 + w1 + w2) / 6);
                        a[2 * aStride + o] = (float) (-(w0 - w1 + w2) / 6);
                        a[3 * aStride + o] = (float) (even + odd);
                        a[4 * aStride + o] = (float) (even - odd);
                        a[5 * aStride + o] = (float) w2;
                    }
                }
            }
        });
        return a;
    }

    // ------------------------------------------------------------------------------------------ backwardData

    /**
     * dx = conv_transpose(dy, w) (with {@code accumulate}: dx +=), as the forward pass of {@link #transposed}(g) with w
     * flipped and transposed.
     */
    static void backwardData(ConvMicroKernels kern, ConvGeometry g, float[] dy, float[] w, float[] dx, boolean accumulate) {
        int k = g.k(), c = g.c(), r = g.r(), s = g.s();
        float[] wt = new float[w.length];
        for (int kk = 0; kk < k; kk++) {
            for (int ch = 0; ch < c; ch++) {
                for (int rr = 0; rr < r; rr++) {
                    for (int ss = 0; ss < s; ss++) {
                        wt[((ch * k + kk) * r + (r - 1 - rr)) * s + (s - 1 - ss)] = w[((kk * c + ch) * r + rr) * s + ss];
                    }
                }
            }
        }
        forward(kern, transposed(g), dy, wt, null, dx, accumulate);
    }

    // ------------------------------------------------------------------------------------------ backwardWeight

    /**
     * dw = correlation of x with dy summed over the batch, for a geometry that {@link #applies}. As
     * in Conv2dKernels, two formulations without cross-lane reductions in the inner loop: with at least a tile's
     * width of output channels, transposed GEMM tiles over (p, k); with fewer, dot-product tiles over q.
     */
    static void backwardWeight(ConvMicroKernels kern, ConvGeometry g, float[] x, float[] dy, float[] dw) {
        if (g.k() >= kern.gradNr()) {
            backwardWeightByChannels(kern, g, x, dy, dw);
        } else {
            backwardWeightByPixels(kern, g, x, dy, dw);
        }
    }

    /** One unit of a weight gradient, its input staged and transformed into v, writing at pOff of the partials. */
    private interface GradientUnit {
        void run(int n0, Layout lay, float[] v, float[] partials, int pOff, int slices);
    }

    /**
     * The unit loop both weight-gradient formulations share: units are dealt, in order, to at most
     * {@link #REDUCE_GROUPS} partials of {@code partLen} (a group adds its units one after another); each unit's
     * input is staged and row-transformed before {@code body} runs on it ({@code slices}: how many tasks the body
     * may split into). Returns the partials reduced in a fixed order into their first {@code partLen} entries, so
     * the sums do not depend on the thread count.
     */
    private static float[] accumulateUnits(ConvMicroKernels kern, ConvGeometry g, float[] x, int kPad, int partLen,
                                           GradientUnit body) {
        ImageUnits units = units(g, kPad);
        int nGroups = units.groups(REDUCE_GROUPS);
        float[] partials = Conv2dKernels.partials(nGroups, partLen);
        int slices = nGroups >= Parallel.threads() ? 1 : Parallel.threads();
        Parallel.forEach(nGroups, grpIdx -> {
            Conv2dKernels.zeroPartial(partials, grpIdx, partLen);
            for (int u = units.groupStart(grpIdx, nGroups); u < units.groupStart(grpIdx + 1, nGroups); u++) {
                int n0 = units.start(u);
                Layout lay = new Layout(g, units.size(u), kern.nr());
                float[] v = ScratchBuffers.get(ScratchBuffers.CONV_SRC, ALPHA * lay.vPlane);
                stageAndTransform(kern, g, x, n0, lay, v);
                body.run(n0, lay, v, partials, grpIdx * partLen, slices);
            }
        });
        Conv2dKernels.reducePartials(partials, nGroups, partLen);
        return partials;
    }

    /** dU^T = V x D^T as transposed gradient tiles over (p, k), D packed q-major. */
    private static void backwardWeightByChannels(ConvMicroKernels kern, ConvGeometry g, float[] x, float[] dy, float[] dw) {
        int gmr = kern.gradMr(), gnr = kern.gradNr();
        int k = g.k(), c = g.c(), s = g.s(), np = c * s;
        int kTiles = ceilDiv(k, gnr), kPad = kTiles * gnr, npPad = roundUp(np, gmr);
        int partLen = ALPHA * npPad * kPad;
        int oh = g.outH(), ow = g.outW();
        float[] partials = accumulateUnits(kern, g, x, kPad, partLen, (n0, lay, v, parts, pOff, slices) -> {
            int[] off = offsets(g, lay, npPad);
            // dy staged q-major, gnr channels per q: gs[kt][row][q'][j] = dy(img, kt*gnr + j, row, x) with
            // q' = img*wp + x, zero past the last output row and column and past k. The adjoint transform is
            // element-wise, so it runs on this layout as is and leaves D q-major: D[a][kt][q][j].
            int rowLen = lay.rs * gnr, rowsPerTile = M * lay.tiles;
            int gsTile = rowsPerTile * rowLen;
            float[] gs = ScratchBuffers.get(ScratchBuffers.CONV_TMP, kTiles * gsTile);
            for (int kt = 0; kt < kTiles; kt++) {
                for (int row = 0; row < rowsPerTile; row++) {
                    int dst = kt * gsTile + row * rowLen;
                    if (row >= oh) {
                        zero(gs, dst, dst + rowLen);
                        continue;
                    }
                    int kn = Math.min(gnr, k - kt * gnr);
                    for (int img = 0; img < lay.imgs; img++) {
                        int d0 = dst + img * lay.wp * gnr;
                        int src = (((n0 + img) * k + kt * gnr) * oh + row) * ow, plane = oh * ow;
                        Conv2dKernels.transposeChannels(dy, src, plane, kn, ow, gs, d0, gnr);
                        zero(gs, d0 + ow * gnr, d0 + lay.wp * gnr);
                    }
                }
            }
            int dTile = lay.qRound * gnr, dPlane = kTiles * dTile;
            float[] d = ScratchBuffers.get(ScratchBuffers.CONV_OUT, ALPHA * dPlane);
            for (int kt = 0; kt < kTiles; kt++) {
                for (int t = 0; t < lay.tiles; t++) {
                    kern.winogradOutputAdjoint(gs, kt * gsTile + M * t * rowLen, rowLen, M, rowLen,
                            d, kt * dTile + t * rowLen, dPlane);
                }
                for (int al = 0; al < ALPHA; al++) {
                    int base = al * dPlane + kt * dTile;
                    zero(d, base + lay.qCount * gnr, base + dTile);
                }
            }
            // (a, p tile) pairs own disjoint partial entries, so splitting them over tasks keeps every sum's order.
            int pTiles = npPad / gmr, jobs = ALPHA * pTiles, per = ceilDiv(jobs, Math.min(slices, jobs));
            Parallel.forEach(ceilDiv(jobs, per), task -> {
                int j0 = task * per, j1 = Math.min(jobs, (task + 1) * per);
                for (int q0 = 0; q0 < lay.qRound; q0 += GRAD_T_CHUNK) {
                    int nq = Math.min(GRAD_T_CHUNK, lay.qRound - q0);
                    for (int job = j0; job < j1; job++) {
                        int al = job / pTiles, pt = (job % pTiles) * gmr;
                        for (int kt = 0; kt < kTiles; kt++) {
                            int vOff = al * lay.vPlane + q0, dOff = al * dPlane + kt * dTile + q0 * gnr;
                            int partOff = pOff + (al * npPad + pt) * kPad + kt * gnr;
                            kern.gradShiftTile(nq, v, vOff, off, pt, d, dOff, parts, partOff, kPad);
                        }
                    }
                }
            });
        });
        // dw = G^T dU along r, walking dU^T in memory order: row (a, p) holds every filter's entry, so all filters
        // advance together (the per-filter gather read 6 * np entries kPad apart: 5 % of a 64-filter pass in JFR).
        // Each entry sums over a in the same order as transformWeightGradient, so the bits are the same.
        Parallel.forRange(np, 1, (from, to) -> {
            double[] acc = new double[k];
            for (int pp = from; pp < to; pp++) {
                int ch = pp / s, ss = pp % s;
                for (int rr = 0; rr < 3; rr++) {
                    Arrays.fill(acc, 0.0);
                    for (int al = 0; al < ALPHA; al++) {
                        double gar = G[al][rr];
                        int row = (al * npPad + pp) * kPad;
                        for (int kk = 0; kk < k; kk++) acc[kk] += gar * partials[row + kk];
                    }
                    for (int kk = 0; kk < k; kk++) dw[((kk * c + ch) * 3 + rr) * s + ss] = (float) acc[kk];
                }
            }
        });
    }

    /**
     * dU = D x V^T as dot-product tiles over q, for layers narrower than a transposed tile: D keeps the row layout
     * of V, and each tile walks a whole unit's q (long enough to amortise its lane sums).
     */
    private static void backwardWeightByPixels(ConvMicroKernels kern, ConvGeometry g, float[] x, float[] dy, float[] dw) {
        final int gr = ConvMicroKernels.GRAD_ROWS, gc = ConvMicroKernels.GRAD_COLS;
        int nr = kern.nr();
        int k = g.k(), c = g.c(), s = g.s(), np = c * s;
        int kPad = roundUp(k, gr), npPad = roundUp(np, gc), pBlocks = npPad / gc;
        int partLen = ALPHA * kPad * npPad;
        int oh = g.outH(), ow = g.outW();
        float[] partials = accumulateUnits(kern, g, x, kPad, partLen, (n0, lay, v, parts, pOff, slices) -> {
            int[] off = offsets(g, lay, npPad);
            // dy staged like P (4 rows per tile row, zero past the last output row and column), then
            // D[a][kk][q] = sum_i AT[i][a] dy[4t + i], the adjoint of the output transform.
            int dyChannel = M * lay.tiles * lay.rs + nr;
            float[] gs = ScratchBuffers.get(ScratchBuffers.CONV_TMP, k * dyChannel);
            stageRows(dy, k, null, k, oh, ow, n0, lay.imgs, 0, 0, M * lay.tiles, lay.wp, gs, dyChannel);
            int ld = lay.qRound + nr, dPlane = kPad * ld;
            float[] d = ScratchBuffers.get(ScratchBuffers.CONV_OUT, ALPHA * dPlane);
            for (int kk = 0; kk < kPad; kk++) {
                if (kk < k) {
                    for (int t = 0; t < lay.tiles; t++) {
                        kern.winogradOutputAdjoint(gs, kk * dyChannel + M * t * lay.rs, lay.rs, M, lay.span,
                                d, kk * ld + t * lay.rs, dPlane);
                    }
                }
                int from = kk < k ? lay.qCount : 0;
                for (int al = 0; al < ALPHA; al++) zero(d, al * dPlane + kk * ld + from, al * dPlane + (kk + 1) * ld);
            }
            // (a, p block) pairs own disjoint partial entries, so splitting them over tasks keeps every sum's order.
            int jobs = ALPHA * pBlocks, per = ceilDiv(jobs, Math.min(slices, jobs));
            Parallel.forEach(ceilDiv(jobs, per), task -> {
                for (int job = task * per; job < Math.min(jobs, (task + 1) * per); job++) {
                    int al = job / pBlocks, pb = (job % pBlocks) * gc;
                    for (int kb = 0; kb < kPad; kb += gr) {
                        kern.gradTile(lay.qRound, d, al * dPlane + kb * ld, ld, v, al * lay.vPlane, off, pb,
                                parts, pOff + (al * kPad + kb) * npPad + pb, npPad);
                    }
                }
            });
        });
        Parallel.forRange(k, 1, (from, to) -> {
            float[] du = new float[ALPHA * np];
            for (int kk = from; kk < to; kk++) {
                for (int al = 0; al < ALPHA; al++) {
                    System.arraycopy(partials, (al * kPad + kk) * npPad, du, al * np, np);
                }
                transformWeightGradient(g, du, np, kk, dw);
            }
        });
    }

    /**
     * dw[kk][c][r][s] = sum_a G[a][r] * du[a][(c, s)], for the dot-product formulation, whose partials hold each
     * filter's du[a] as contiguous rows (the transposed formulation walks its own layout in place).
     */
    private static void transformWeightGradient(ConvGeometry g, float[] du, int np, int kk, float[] dw) {
        int c = g.c(), s = g.s();
        for (int ch = 0; ch < c; ch++) {
            for (int rr = 0; rr < 3; rr++) {
                for (int ss = 0; ss < s; ss++) {
                    double sum = 0;
                    for (int al = 0; al < ALPHA; al++) sum += G[al][rr] * du[al * np + ch * s + ss];
                    dw[((kk * c + ch) * 3 + rr) * s + ss] = (float) sum;
                }
            }
        }
    }
}
