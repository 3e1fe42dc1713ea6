package ai.bonsai.backend.cpu;

import ai.bonsai.backend.ConvGeometry;

import java.util.Arrays;

/**
 * 2-D convolution kernels on NCHW float arrays. All three overwrite their output.
 * x is (n, c, h, w), w is (k, c/groups, r, s), y is (n, k, outH, outW).
 *
 * <p>Method: implicit GEMM over a staged input, no im2col matrix. A unit of a few images is copied into a
 * per-thread staging buffer laid out so that every kernel tap becomes one constant shift:
 * <ul>
 *   <li>Stride is removed by splitting the padded input into stride phases (phase (pr, pc) holds padded pixels
 *       (ii*strideH + pr, jj*strideW + pc)), so tap (r, s) of output (i, j) is element (i + r/strideH,
 *       j + s/strideW) of phase (r % strideH, s % strideW).</li>
 *   <li>Each phase plane is stored with rows of length {@code Wq} and the images of the unit stacked
 *       vertically. The right padding of a row is the left padding of the next row and the bottom padding of
 *       an image is the top padding of the next, so output column {@code q = (img*Hq + i)*Wq + j} reads
 *       {@code src[q + off(c, r, s)]} for every tap. Columns j >= outW and rows i >= outH are computed and
 *       discarded (a few per cent at 32x32, more at 8x8).</li>
 * </ul>
 * The {@link ConvMicroKernels} then compute {@code out[k][q] = sum_p A[k][p] * src[q + off[p]]} in register tiles.
 * backwardData is the same computation per stride phase of dx, on a zero-bordered dy staged once per unit,
 * with the flipped sub-kernel of that phase. backwardWeight pairs shifted staged input rows with dy: as GEMM
 * tiles over (p, k) with dy packed q-major when a group has at least a tile's width of output channels, else as
 * dot products over q. No kernel reduces across vector lanes with reduceLanes (see backwardWeight).
 *
 * <p>Threads take whole units. A unit's size depends only on the geometry, and backwardWeight accumulates units
 * into at most 16 partials, dealt in a fixed order, and adds the partials in order, so all three kernels give
 * bitwise identical results for any thread count. Scratch is per thread and bounded by the unit size, not the
 * batch. Benchmark: {@code benchmarks/run Conv2dBench}.
 */
public final class Conv2dKernels {
    /** Target staged-input size of one unit, in floats (256 KB: fits L2 beside the output tile rows). */
    private static final int UNIT_FLOATS = 1 << 16;
    /**
     * backwardWeight by pixels walks q in chunks this long: long enough to amortise the scalar lane sums at the
     * end of each dot-product tile, short enough for the chunk's rows to stay in L2.
     */
    private static final int GRAD_CHUNK = 4096;
    /** backwardWeight by channels: q chunk whose packed dy tile (256 x 32 floats) stays in L1 across p tiles. */
    private static final int GRAD_T_CHUNK = 256;
    /** backwardWeight keeps at most this many partial dW (plus one pass adding them), however large the batch. */
    private static final int REDUCE_GROUPS = 16;

    private static final ConvMicroKernels KERNELS = VectorizationProvider.load(
            ConvMicroKernels.class, "ai.bonsai.backend.cpu.simd.VectorConvMicroKernels", new ScalarConvMicroKernels());

    private Conv2dKernels() {}

    /** The kernels in use (SIMD or scalar). */
    static ConvMicroKernels kernels() { return KERNELS; }

    /** y = conv(x, w) + bias; bias may be null. */
    public static void forward(ConvGeometry g, float[] x, float[] w, float[] bias, float[] y) {
        validate("conv2d forward", g, x, "x", w, "w", bias, y, "y");
        forward(KERNELS, g, x, w, bias, y);
    }

    /** dx = conv_transpose(dy, w). */
    public static void backwardData(ConvGeometry g, float[] dy, float[] w, float[] dx) {
        backwardData(g, dy, w, dx, false);
    }

    /**
     * dx = conv_transpose(dy, w), or with {@code accumulate} dx += conv_transpose(dy, w): each pixel's gradient is
     * computed as without it and added to dx where it is written, so the result is the bits of a separate add
     * without that add's pass over three arrays.
     */
    public static void backwardData(ConvGeometry g, float[] dy, float[] w, float[] dx, boolean accumulate) {
        validate("conv2d backwardData", g, dx, "dx", w, "w", null, dy, "dy");
        backwardData(KERNELS, g, dy, w, dx, accumulate);
    }

    /** dw = correlation of x with dy, summed over the batch. */
    public static void backwardWeight(ConvGeometry g, float[] x, float[] dy, float[] dw) {
        validate("conv2d backwardWeight", g, x, "x", dw, "dw", null, dy, "dy");
        backwardWeight(KERNELS, g, x, dy, dw);
    }

    // ------------------------------------------------------------------------------------------ forward

    /** Stride-1 3-row convolutions go to {@link Conv2dWinograd} (half the multiply-adds), the rest run here. */
    static void forward(ConvMicroKernels kern, ConvGeometry g, float[] x, float[] w, float[] bias, float[] y) {
        if (Conv2dWinograd.preferred(g)) {
            Conv2dWinograd.forward(kern, g, x, w, bias, y);
        } else {
            forwardDirect(kern, g, x, w, bias, y);
        }
    }

    static void forwardDirect(ConvMicroKernels kern, ConvGeometry g, float[] x, float[] w, float[] bias, float[] y) {
        int mr = kern.mr(), nr = kern.nr();
        int kg = g.kg(), cg = g.cg(), groups = g.groups();
        int np = cg * g.r() * g.s();
        int mBlocks = ceilDiv(kg, mr), kgPad = mBlocks * mr;
        float[] a = packForwardWeights(g, w, mr);
        ImageUnits units = units(g);
        int slices = innerSlices(units.count());
        int oh = g.outH(), ow = g.outW();
        int[][] offs = offsetsBySize(g, units, nr, np, np);
        Parallel.forEach(units.count(), u -> {
            int n0 = units.start(u), imgs = units.size(u);
            InputLayout lay = new InputLayout(g, imgs, nr);
            float[] src = ScratchBuffers.get(ScratchBuffers.CONV_SRC, lay.srcLength);
            stageInput(g, x, n0, imgs, lay, src);
            int[] off = offs[imgs];
            float[] out = ScratchBuffers.get(ScratchBuffers.CONV_OUT, groups * kgPad * lay.qRound);
            shiftGemm(kern, groups, mBlocks, np, a, src, cg * lay.cStride, off, out, lay.qRound, slices);
            for (int img = 0; img < imgs; img++) {
                for (int k = 0; k < g.k(); k++) {
                    int grp = k / kg;
                    int row = (grp * kgPad + k - grp * kg) * lay.qRound + img * lay.hq * lay.wq;
                    int yBase = ((n0 + img) * g.k() + k) * oh * ow;
                    float b = bias == null ? 0f : bias[k];
                    if (bias == null && lay.wq == ow) {
                        // The staged rows are as wide as y's (no padding columns: a 1x1 stride-2 shortcut), so the
                        // image's output rows are contiguous in both: one copy instead of one per row of 16 floats
                        // (the per-row copies were 15 % of that layer's forward pass).
                        System.arraycopy(out, row, y, yBase, oh * ow);
                        continue;
                    }
                    for (int i = 0; i < oh; i++) {
                        int o = row + i * lay.wq, yo = yBase + i * ow;
                        if (bias == null) {
                            System.arraycopy(out, o, y, yo, ow);
                        } else {
                            for (int j = 0; j < ow; j++) y[yo + j] = out[o + j] + b;
                        }
                    }
                }
            }
        });
    }

    /** A[grp][mb][p][i] = w[grp*kg + mb*mr + i][p] with p = (c, r, s); rows past kg are zero. */
    private static float[] packForwardWeights(ConvGeometry g, float[] w, int mr) {
        int kg = g.kg(), np = g.cg() * g.r() * g.s();
        int mBlocks = ceilDiv(kg, mr);
        float[] a = new float[g.groups() * mBlocks * np * mr];
        for (int grp = 0; grp < g.groups(); grp++) {
            for (int kk = 0; kk < kg; kk++) {
                int mb = kk / mr, i = kk % mr;
                int base = (grp * mBlocks + mb) * np * mr + i;
                int wRow = (grp * kg + kk) * np;
                for (int p = 0; p < np; p++) a[base + p * mr] = w[wRow + p];
            }
        }
        return a;
    }

    /**
     * The shift GEMM of one unit: {@code out[grp*rowsPad + m][q] = sum_p A[grp][m][p] * src[grp*srcGroupStride + q + off[p]]}
     * for every group, mr-row block and nr-wide q tile. With {@code slices > 1} the q tiles are split over that
     * many tasks (disjoint columns of out); each element is computed the same way whatever the split.
     */
    static void shiftGemm(ConvMicroKernels kern, int groups, int mBlocks, int np, float[] a, float[] src,
                                  int srcGroupStride, int[] off, float[] out, int qRound, int slices) {
        int mr = kern.mr(), nr = kern.nr(), rowsPad = mBlocks * mr, tiles = qRound / nr;
        int per = ceilDiv(tiles, Math.max(1, Math.min(slices, tiles)));
        Parallel.forEach(ceilDiv(tiles, per), t -> {
            int q0 = t * per * nr, q1 = Math.min(qRound, (t + 1) * per * nr);
            for (int grp = 0; grp < groups; grp++) {
                int srcOff = grp * srcGroupStride;
                for (int mb = 0; mb < mBlocks; mb++) {
                    int aOff = (grp * mBlocks + mb) * np * mr;
                    int outRow = (grp * rowsPad + mb * mr) * qRound;
                    for (int q = q0; q < q1; q += nr) {
                        kern.shiftTile(np, a, aOff, src, srcOff + q, off, out, outRow + q, qRound);
                    }
                }
            }
        });
    }

    /**
     * Tasks to split one unit into: 1 when there are enough units to keep every thread busy, else the thread
     * count (small batches, e.g. inference on one image). Nested calls from inside a unit task run inline.
     */
    private static int innerSlices(int units) {
        return units >= Parallel.threads() ? 1 : Parallel.threads();
    }

    // ------------------------------------------------------------------------------------------ backwardData

    static void backwardData(ConvMicroKernels kern, ConvGeometry g, float[] dy, float[] w, float[] dx, boolean accumulate) {
        if (Conv2dWinograd.preferred(g) && Conv2dWinograd.applies(Conv2dWinograd.transposed(g))) {
            Conv2dWinograd.backwardData(kern, g, dy, w, dx, accumulate);
        } else {
            backwardDataDirect(kern, g, dy, w, dx, accumulate);
        }
    }

    static void backwardDataDirect(ConvMicroKernels kern, ConvGeometry g, float[] dy, float[] w, float[] dx,
                                   boolean accumulate) {
        int mr = kern.mr(), nr = kern.nr();
        int sh = g.strideH(), sw = g.strideW();
        // One packed, flipped sub-kernel per stride phase of dx that has pixels and taps.
        java.util.List<DataPhase> active = new java.util.ArrayList<>(), idle = new java.util.ArrayList<>();
        for (int pr = 0; pr < sh; pr++) {
            for (int pc = 0; pc < sw; pc++) {
                DataPhase ph = new DataPhase(g, pr, pc, w, mr);
                if (!ph.hasPixels()) continue;
                (ph.taps() == 0 ? idle : active).add(ph);
            }
        }
        DataPhase[] phases = active.toArray(new DataPhase[0]);
        pairColumnPhases(g, phases, idle);
        // Pixels of dx that no kernel tap reaches (stride larger than the kernel) are zero, or keep their value when
        // accumulating. Rows that a phase writes whole (with its column partner, or with zeros for an idle one)
        // need no zeroing first: each row of dx is then written once.
        boolean zeroFirst = !idle.isEmpty() && !accumulate;
        boolean[] wholeRow = new boolean[g.h()];
        for (DataPhase ph : phases) {
            if (ph.writesWholeRows(g)) for (int ai = 0; ai < ph.nI; ai++) wholeRow[ph.hBase + ai * sh] = true;
        }
        ImageUnits units = units(g);
        int slices = innerSlices(units.count());
        int h = g.h(), wd = g.w();
        Parallel.forEach(units.count(), u -> {
            int n0 = units.start(u), imgs = units.size(u);
            if (zeroFirst) {
                for (int plane = n0 * g.c(); plane < (n0 + imgs) * g.c(); plane++) {
                    for (int row = 0; row < h; row++) {
                        int o = (plane * h + row) * wd;
                        if (!wholeRow[row]) zero(dx, o, o + wd);
                    }
                }
            }
            if (phases.length == 0) return;
            DyLayout lay = new DyLayout(g, phases, imgs, nr);
            float[] src = ScratchBuffers.get(ScratchBuffers.CONV_SRC, lay.srcLength);
            lay.stage(g, dy, n0, imgs, src);
            for (DataPhase ph : phases) {
                if (ph.columnPartner == null) {
                    ph.write(kern, g, lay, ph.gemm(kern, g, lay, src, imgs, slices, ScratchBuffers.CONV_OUT), null, dx, n0, imgs,
                            accumulate);
                } else if (ph.wBase == 0) {
                    // The phase of the even columns writes its rows together with its partner's odd columns.
                    float[] even = ph.gemm(kern, g, lay, src, imgs, slices, ScratchBuffers.CONV_OUT);
                    float[] odd = ph.columnPartner.gemm(kern, g, lay, src, imgs, slices, ScratchBuffers.CONV_TMP);
                    ph.write(kern, g, lay, even, odd, dx, n0, imgs, accumulate);
                }
            }
        });
    }

    /**
     * {@code x[xOff + 2m] = even[eOff + m]} and {@code x[xOff + 2m + 1] = odd[oOff + m]} for {@code m < pairs}: a row of
     * dx from its two column phases, the inverse of {@link ConvMicroKernels#deinterleave}. Scalar on purpose: a
     * Vector API version (pairs widened to longs) was faster alone, but its reinterpretations between other vector
     * shapes than deinterleave's polluted the JDK 17 JIT's profile of the shared reinterpret code, so that
     * deinterleave's stopped compiling to intrinsics: its vectors were boxed (2 GB of garbage in 50 steps) and the
     * stride-2 forward pass ran 2x slower.
     */
    static void interleave(float[] even, int eOff, float[] odd, int oOff, int pairs, float[] x, int xOff) {
        for (int m = 0; m < pairs; m++) {
            x[xOff + 2 * m] = even[eOff + m];
            x[xOff + 2 * m + 1] = odd[oOff + m];
        }
    }

    /** {@link #interleave} adding into x. */
    static void interleaveAdd(float[] even, int eOff, float[] odd, int oOff, int pairs, float[] x, int xOff) {
        for (int m = 0; m < pairs; m++) {
            x[xOff + 2 * m] += even[eOff + m];
            x[xOff + 2 * m + 1] += odd[oOff + m];
        }
    }

    /**
     * {@code dst[dOff ..+len) = src[sOff ..+len)}, or with {@code add} {@code dst += src}: how the data gradient writes
     * its rows, once as it stands and once into a gradient that is there.
     */
    static void writeRow(ConvMicroKernels kern, float[] src, int sOff, float[] dst, int dOff, int len, boolean add) {
        if (add) {
            kern.addRow(src, sOff, dst, dOff, len);
        } else {
            System.arraycopy(src, sOff, dst, dOff, len);
        }
    }

    /**
     * With a column stride of 2, the two column phases of a row phase cover the even and the odd columns of the same
     * dx rows. Written one phase after the other, each dx row took two scalar strided passes, and every cache line
     * of dx was fetched twice: 40 % of a stride-2 data gradient (ResNet-20's 16 to 32 filter layer, 0.8 of 1.9 ms).
     * Paired, each row is written once from both ({@link #interleave}). Pairs the phases where both
     * exist; the rest keep the strided write.
     */
    private static void pairColumnPhases(ConvGeometry g, DataPhase[] phases, java.util.List<DataPhase> idle) {
        if (g.strideW() != 2) return;
        for (DataPhase a : phases) {
            for (DataPhase b : phases) {
                if (pairs(g, a, b)) {
                    a.columnPartner = b;
                    b.columnPartner = a;
                }
            }
            // The odd columns of these rows get no taps (a kernel one column wide: the 1x1 stride-2 shortcut): the
            // rows are written whole from the even columns and zeros, instead of zeroed first and then every other
            // column written (two passes over dx: zeroing was 47 % of that data gradient; whole rows made it 8-10 % faster).
            for (DataPhase b : idle) if (pairs(g, a, b)) a.zeroPartner = true;
        }
    }

    /** Same row phase (same rows of dx); wBase 0 and 1: the even and the odd columns, ceil(w/2) and w/2 of them. */
    private static boolean pairs(ConvGeometry g, DataPhase a, DataPhase b) {
        return a.pr == b.pr && a.wBase == 0 && b.wBase == 1 && a.nJ == (g.w() + 1) / 2 && b.nJ == g.w() / 2;
    }

    /**
     * The staged dy of one unit, shared by all stride phases: src[k][img*hd + u][v] holds dy(img, k, u + c0, v + d0),
     * zero outside dy. c0 and d0 leave room above and left for the largest flipped sub-kernel of any phase.
     * Rows and columns wrap into the next row/image, so wd and hd are long enough that every read past a row's or
     * image's end lands on zeros of the next one and every border read before the wrap is zero too.
     */
    private static final class DyLayout {
        final int c0, d0, hd, wd, rowsTot, plane, srcLength;

        DyLayout(ConvGeometry g, DataPhase[] phases, int imgs, int nr) {
            int cMin = Integer.MAX_VALUE, dMin = Integer.MAX_VALUE, rowEnd = 0, colEnd = 0;
            for (DataPhase ph : phases) {
                cMin = Math.min(cMin, ph.iiLo - (ph.rph - 1));
                dMin = Math.min(dMin, ph.jjLo - (ph.sph - 1));
                rowEnd = Math.max(rowEnd, ph.iiLo + ph.nI);
                colEnd = Math.max(colEnd, ph.jjLo + ph.nJ);
            }
            c0 = cMin;
            d0 = dMin;
            hd = Math.max(g.outH() - c0, rowEnd - c0);
            wd = Math.max(g.outW() - d0, colEnd - d0);
            rowsTot = imgs * hd + Math.max(0, -c0) + 2;
            plane = rowsTot * wd;
            srcLength = g.k() * plane + nr + g.s();
        }

        void stage(ConvGeometry g, float[] dy, int n0, int imgs, float[] src) {
            int oh = g.outH(), ow = g.outW();
            int vA = Math.max(0, -d0), vB = Math.min(wd, ow - d0);
            for (int k = 0; k < g.k(); k++) {
                int pBase = k * plane;
                for (int img = 0; img < imgs; img++) {
                    int dyImg = ((n0 + img) * g.k() + k) * oh * ow;
                    for (int u = 0; u < hd; u++) {
                        int dst = pBase + (img * hd + u) * wd, i = u + c0;
                        if (i < 0 || i >= oh || vB <= vA) {
                            zero(src, dst, dst + wd);
                            continue;
                        }
                        zero(src, dst, dst + vA);
                        System.arraycopy(dy, dyImg + i * ow + vA + d0, src, dst + vA, vB - vA);
                        zero(src, dst + vB, dst + wd);
                    }
                }
                zero(src, pBase + imgs * hd * wd, pBase + plane);
            }
            zero(src, g.k() * plane, srcLength);
        }
    }

    /**
     * The part of backwardData for one stride phase (pr, pc) of dx: dx pixels with (h + padH) % strideH == pr and
     * (w + padW) % strideW == pc receive dy(i, j) * w(r, s) only from taps r = pr + strideH*r', s = pc + strideW*s',
     * from dy(ii - r', jj - s') where (ii, jj) is the pixel's position in the phase. That is a stride-1 correlation
     * of the zero-bordered dy with the flipped sub-kernel, computed with the same shift tiles as the forward pass.
     */
    private static final class DataPhase {
        final int pr, pc, rph, sph;
        final int iiLo, nI, jjLo, nJ;
        final int np, mBlocks, cgPad;
        /** The first dx row and column of this phase. */
        final int hBase, wBase;
        final float[] a;
        /** With a column stride of 2: the phase of the same rows and the other columns, when both exist (else null). */
        DataPhase columnPartner;
        /** With a column stride of 2: this phase has the even columns and no tap reaches the odd ones. */
        boolean zeroPartner;

        DataPhase(ConvGeometry g, int pr, int pc, float[] w, int mr) {
            int sh = g.strideH(), sw = g.strideW();
            this.pr = pr;
            this.pc = pc;
            rph = pr < g.r() ? (g.r() - 1 - pr) / sh + 1 : 0;
            sph = pc < g.s() ? (g.s() - 1 - pc) / sw + 1 : 0;
            iiLo = Math.max(0, ceilDiv(g.padH() - pr, sh));
            nI = Math.max(0, Math.floorDiv(g.h() - 1 + g.padH() - pr, sh) - iiLo + 1);
            jjLo = Math.max(0, ceilDiv(g.padW() - pc, sw));
            nJ = Math.max(0, Math.floorDiv(g.w() - 1 + g.padW() - pc, sw) - jjLo + 1);
            hBase = iiLo * sh + pr - g.padH();
            wBase = jjLo * sw + pc - g.padW();
            int kg = g.kg(), cg = g.cg();
            np = kg * rph * sph;
            mBlocks = ceilDiv(cg, mr);
            cgPad = mBlocks * mr;
            a = new float[g.groups() * mBlocks * np * mr];
            int rs = g.r() * g.s();
            for (int grp = 0; grp < g.groups(); grp++) {
                for (int c = 0; c < cg; c++) {
                    int base = (grp * mBlocks + c / mr) * np * mr + c % mr;
                    for (int k = 0; k < kg; k++) {
                        for (int r1 = 0; r1 < rph; r1++) {
                            for (int s1 = 0; s1 < sph; s1++) {
                                int p = (k * rph + r1) * sph + s1;
                                int r = pr + sh * r1, s = pc + sw * s1;
                                a[base + p * mr] = w[((grp * kg + k) * cg + c) * rs + r * g.s() + s];
                            }
                        }
                    }
                }
            }
        }

        boolean hasPixels() { return nI > 0 && nJ > 0; }

        /** Whether {@link #write} (without adding) writes every column of this phase's rows of dx. */
        boolean writesWholeRows(ConvGeometry g) {
            return columnPartner != null || zeroPartner || (g.strideW() == 1 && wBase == 0 && nJ == g.w());
        }

        int taps() { return rph * sph; }

        /** Output columns of this phase's GEMM for a unit of {@code imgs} images, before rounding to the tile width. */
        private int qCount(DyLayout lay, int imgs) { return ((imgs - 1) * lay.hd + nI) * lay.wd; }

        /** Runs this phase's shift GEMM on the unit's staged dy into the per-thread scratch slot {@code slot}. */
        float[] gemm(ConvMicroKernels kern, ConvGeometry g, DyLayout lay, float[] src, int imgs, int slices, int slot) {
            int nr = kern.nr(), wd = lay.wd;
            int qRound = roundUp(qCount(lay, imgs), nr);
            // Output (a, b) of this phase reads staged dy at (iiLo + a - r' - c0, jjLo + b - s' - d0).
            int[] off = new int[np];
            int kg = g.kg();
            for (int k = 0; k < kg; k++) {
                for (int r1 = 0; r1 < rph; r1++) {
                    for (int s1 = 0; s1 < sph; s1++) {
                        off[(k * rph + r1) * sph + s1] = k * lay.plane + (iiLo - lay.c0 - r1) * wd + (jjLo - lay.d0 - s1);
                    }
                }
            }
            float[] out = ScratchBuffers.get(slot, g.groups() * cgPad * qRound);
            shiftGemm(kern, g.groups(), mBlocks, np, a, src, kg * lay.plane, off, out, qRound, slices);
            return out;
        }

        /**
         * Writes this phase's GEMM output {@code out} into its pixels of dx, one row per phase row: strided, or with
         * {@code partnerOut} (the GEMM output of its {@link #columnPartner}; this phase then being the one of the
         * even columns) whole rows from both at once. Both GEMMs ran over the same unit, rows and q layout. With
         * {@code add} the values are added to dx.
         */
        void write(ConvMicroKernels kern, ConvGeometry g, DyLayout lay, float[] out, float[] partnerOut, float[] dx, int n0,
                   int imgs, boolean add) {
            int qRound = roundUp(qCount(lay, imgs), kern.nr()), hd = lay.hd, wd = lay.wd, cg = g.cg();
            int sh = g.strideH(), sw = g.strideW(), h = g.h(), wdt = g.w(), pairs = wdt / 2;
            float[] zeros = zeroPartner && !add ? new float[pairs] : null;
            for (int img = 0; img < imgs; img++) {
                for (int c = 0; c < g.c(); c++) {
                    int grp = c / cg;
                    int row = (grp * cgPad + c - grp * cg) * qRound + img * hd * wd;
                    int dxBase = ((n0 + img) * g.c() + c) * h * wdt;
                    for (int ai = 0; ai < nI; ai++) {
                        int o = row + ai * wd, d = dxBase + (hBase + ai * sh) * wdt + wBase;
                        if (partnerOut != null) {
                            if (add) {
                                interleaveAdd(out, o, partnerOut, o, pairs, dx, d);
                                if ((wdt & 1) != 0) dx[d + 2 * pairs] += out[o + pairs];
                            } else {
                                interleave(out, o, partnerOut, o, pairs, dx, d);
                                if ((wdt & 1) != 0) dx[d + 2 * pairs] = out[o + pairs];
                            }
                        } else if (zeroPartner && !add) {
                            interleave(out, o, zeros, 0, pairs, dx, d);
                            if ((wdt & 1) != 0) dx[d + 2 * pairs] = out[o + pairs];
                        } else if (sw == 1) {
                            writeRow(kern, out, o, dx, d, nJ, add);
                        } else if (add) {
                            for (int b = 0; b < nJ; b++) dx[d + b * sw] += out[o + b];
                        } else {
                            for (int b = 0; b < nJ; b++) dx[d + b * sw] = out[o + b];
                        }
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------------------------------------ backwardWeight

    static void backwardWeight(ConvMicroKernels kern, ConvGeometry g, float[] x, float[] dy, float[] dw) {
        if (Conv2dWinograd.preferred(g)) {
            Conv2dWinograd.backwardWeight(kern, g, x, dy, dw);
        } else {
            backwardWeightDirect(kern, g, x, dy, dw);
        }
    }

    static void backwardWeightDirect(ConvMicroKernels kern, ConvGeometry g, float[] x, float[] dy, float[] dw) {
        // Two formulations, both free of cross-lane reductions (whose order differs between the JIT intrinsic and
        // the interpreter on JDK 25, which would make results depend on compilation state):
        // with at least a tile's width of output channels per group, dW^T = shifted input x dy^T as GEMM tiles over
        // (p, k) with dy packed q-major; with fewer, the dot-product tiles over q with scalar, fixed-order lane sums.
        if (g.kg() >= kern.gradNr()) {
            backwardWeightByChannels(kern, g, x, dy, dw);
        } else {
            backwardWeightByPixels(kern, g, x, dy, dw);
        }
    }

    /** dwT[p][k] += sum_q src[q + off[p]] * dy[k][q], as 8x(2 vectors) GEMM tiles; one partial per unit. */
    private static void backwardWeightByChannels(ConvMicroKernels kern, ConvGeometry g, float[] x, float[] dy, float[] dw) {
        int gmr = kern.gradMr(), gnr = kern.gradNr(), nr = kern.nr();
        int kg = g.kg(), cg = g.cg(), groups = g.groups();
        int np = cg * g.r() * g.s();
        int kTiles = ceilDiv(kg, gnr), kgPad = kTiles * gnr, npPad = roundUp(np, gmr);
        int partLen = groups * npPad * kgPad;
        ImageUnits units = units(g);
        // Units are dealt, in order, to at most REDUCE_GROUPS partials; a group adds its units one after another.
        int nGroups = units.groups(REDUCE_GROUPS);
        float[] partials = partials(nGroups, partLen);
        int slices = innerSlices(nGroups);
        int oh = g.outH(), ow = g.outW();
        int[][] offs = offsetsBySize(g, units, nr, np, npPad); // padding rows read src[q]: finite, discarded
        Parallel.forEach(nGroups, grpIdx -> {
            zeroPartial(partials, grpIdx, partLen);
            for (int u = units.groupStart(grpIdx, nGroups); u < units.groupStart(grpIdx + 1, nGroups); u++) {
                int n0 = units.start(u), imgs = units.size(u);
                InputLayout lay = new InputLayout(g, imgs, nr);
                float[] src = ScratchBuffers.get(ScratchBuffers.CONV_SRC, lay.srcLength);
                stageInput(g, x, n0, imgs, lay, src);
                int[] off = offs[imgs];
                // gT[grp][kTile][q][gnr]: dy at output position q, zero where the forward output is discarded.
                int qLen = lay.qCount;
                float[] gT = ScratchBuffers.get(ScratchBuffers.CONV_GRAD, groups * kTiles * qLen * gnr);
                for (int grp = 0; grp < groups; grp++) {
                    for (int kt = 0; kt < kTiles; kt++) {
                        int base = (grp * kTiles + kt) * qLen * gnr;
                        int k0 = grp * kg + kt * gnr, kn = Math.min(gnr, kg - kt * gnr);
                        for (int img = 0; img < imgs; img++) {
                            for (int i = 0; i < lay.hq; i++) {
                                int q = (img * lay.hq + i) * lay.wq;
                                if (q >= qLen) break;
                                int d = base + q * gnr;
                                if (i >= oh) {
                                    zero(gT, d, d + lay.wq * gnr);
                                    continue;
                                }
                                int dyRow = ((n0 + img) * g.k() + k0) * oh * ow + i * ow;
                                transposeChannels(dy, dyRow, oh * ow, kn, ow, gT, d, gnr);
                                zero(gT, d + ow * gnr, base + (q + lay.wq) * gnr);
                            }
                        }
                    }
                }
                int pOff = grpIdx * partLen;
                // p tiles own disjoint partial entries, so splitting them over tasks keeps every sum's order.
                int pTiles = npPad / gmr, per = ceilDiv(pTiles, Math.min(slices, pTiles));
                Parallel.forEach(ceilDiv(pTiles, per), t -> {
                    int pt0 = t * per * gmr, pt1 = Math.min(npPad, (t + 1) * per * gmr);
                    for (int q0 = 0; q0 < qLen; q0 += GRAD_T_CHUNK) {
                        int nq = Math.min(GRAD_T_CHUNK, qLen - q0);
                        for (int grp = 0; grp < groups; grp++) {
                            int srcOff = grp * cg * lay.cStride + q0;
                            for (int kt = 0; kt < kTiles; kt++) {
                                int gOff = ((grp * kTiles + kt) * qLen + q0) * gnr;
                                for (int pt = pt0; pt < pt1; pt += gmr) {
                                    int dOff = pOff + (grp * npPad + pt) * kgPad + kt * gnr;
                                    kern.gradShiftTile(nq, src, srcOff, off, pt, gT, gOff, partials, dOff, kgPad);
                                }
                            }
                        }
                    }
                });
            }
        });
        reducePartials(partials, nGroups, partLen);
        Parallel.forRange(groups * kg, 1, (from, to) -> {
            for (int row = from; row < to; row++) {
                int grp = row / kg, kk = row % kg;
                int dRow = row * np;
                for (int p = 0; p < np; p++) dw[dRow + p] = partials[(grp * npPad + p) * kgPad + kk];
            }
        });
    }

    /** dw[k][p] += sum_q dy[k][q] * src[q + off[p]] as 4x4 blocks of dot products; one partial per unit. */
    private static void backwardWeightByPixels(ConvMicroKernels kern, ConvGeometry g, float[] x, float[] dy, float[] dw) {
        final int gr = ConvMicroKernels.GRAD_ROWS, gc = ConvMicroKernels.GRAD_COLS;
        int nr = kern.nr();
        int kg = g.kg(), cg = g.cg(), groups = g.groups();
        int np = cg * g.r() * g.s();
        int kgPad = roundUp(kg, gr), npPad = roundUp(np, gc);
        int partLen = groups * kgPad * npPad;
        ImageUnits units = units(g);
        // Units are dealt, in order, to at most REDUCE_GROUPS partials; a group adds its units one after another.
        int nGroups = units.groups(REDUCE_GROUPS);
        float[] partials = partials(nGroups, partLen);
        int slices = innerSlices(nGroups);
        int oh = g.outH(), ow = g.outW();
        int[][] offs = offsetsBySize(g, units, nr, np, npPad); // padding columns read src[q]: finite, discarded
        Parallel.forEach(nGroups, grpIdx -> {
            zeroPartial(partials, grpIdx, partLen);
            for (int u = units.groupStart(grpIdx, nGroups); u < units.groupStart(grpIdx + 1, nGroups); u++) {
                int n0 = units.start(u), imgs = units.size(u);
                InputLayout lay = new InputLayout(g, imgs, nr);
                float[] src = ScratchBuffers.get(ScratchBuffers.CONV_SRC, lay.srcLength);
                stageInput(g, x, n0, imgs, lay, src);
                int[] off = offs[imgs];
                // Stage dy in the same q layout as the forward output, zero where the forward output is discarded.
                int ld = lay.qRound;
                float[] gy = ScratchBuffers.get(ScratchBuffers.CONV_GRAD, groups * kgPad * ld);
                for (int grp = 0; grp < groups; grp++) {
                    for (int kk = 0; kk < kgPad; kk++) {
                        int row = (grp * kgPad + kk) * ld;
                        if (kk >= kg) {
                            zero(gy, row, row + ld);
                            continue;
                        }
                        int k = grp * kg + kk;
                        for (int img = 0; img < imgs; img++) {
                            int dyImg = ((n0 + img) * g.k() + k) * oh * ow;
                            for (int i = 0; i < lay.hq; i++) {
                                int d = row + (img * lay.hq + i) * lay.wq;
                                if (d >= row + lay.qCount) break;
                                if (i >= oh) {
                                    zero(gy, d, d + lay.wq);
                                    continue;
                                }
                                System.arraycopy(dy, dyImg + i * ow, gy, d, ow);
                                zero(gy, d + ow, d + lay.wq);
                            }
                        }
                        zero(gy, row + lay.qCount, row + ld);
                    }
                }
                int pOff = grpIdx * partLen;
                // p blocks own disjoint partial entries, so splitting them over tasks keeps every sum's order.
                int pBlocks = npPad / gc, per = ceilDiv(pBlocks, Math.min(slices, pBlocks));
                Parallel.forEach(ceilDiv(pBlocks, per), t -> {
                    int pb0 = t * per * gc, pb1 = Math.min(npPad, (t + 1) * per * gc);
                    for (int q0 = 0; q0 < ld; q0 += GRAD_CHUNK) {
                        int nq = Math.min(GRAD_CHUNK, ld - q0);
                        for (int grp = 0; grp < groups; grp++) {
                            int srcOff = grp * cg * lay.cStride + q0;
                            for (int kb = 0; kb < kgPad; kb += gr) {
                                int gOff = (grp * kgPad + kb) * ld + q0;
                                int dOff = pOff + (grp * kgPad + kb) * npPad;
                                for (int pb = pb0; pb < pb1; pb += gc) {
                                    kern.gradTile(nq, gy, gOff, ld, src, srcOff, off, pb, partials, dOff + pb, npPad);
                                }
                            }
                        }
                    }
                });
            }
        });
        reducePartials(partials, nGroups, partLen);
        Parallel.forRange(groups * kg, 1, (from, to) -> {
            for (int row = from; row < to; row++) {
                int grp = row / kg, kk = row % kg;
                System.arraycopy(partials, (grp * kgPad + kk) * npPad, dw, row * np, np);
            }
        });
    }

    /**
     * The calling thread's array for {@code count} partial weight gradients of {@code partLen} floats, shared with the
     * tasks it starts; each task zeroes its own partial ({@link #zeroPartial}) before adding into it.
     */
    static float[] partials(int count, int partLen) {
        return ScratchBuffers.get(ScratchBuffers.CONV_PARTIALS, count * partLen);
    }

    /**
     * Zeroes partial {@code idx}, from the task that then adds into it: in parallel, and just before use, so that the
     * partial is in cache. Zeroing all of them up front on the calling thread (up to 16 of 196 KB for a 64-filter
     * Winograd weight gradient) was 13 % of that pass's JFR samples.
     */
    static void zeroPartial(float[] partials, int idx, int partLen) {
        Arrays.fill(partials, idx * partLen, (idx + 1) * partLen, 0f);
    }

    /**
     * partials[i] = partials[i] + partials[partLen + i] + ... over {@code count} consecutive partials of
     * {@code partLen}, added in that fixed order whatever the thread count, and in memory order (a strided walk per
     * output row misses cache on nearly every read once the partials outgrow L2).
     */
    static void reducePartials(float[] partials, int count, int partLen) {
        Parallel.forRange(partLen, 4096, (from, to) -> {
            for (int gi = 1; gi < count; gi++) {
                int o = gi * partLen;
                for (int i = from; i < to; i++) partials[i] += partials[o + i];
            }
        });
    }

    /**
     * {@code dst[d + x*gnr + j] = src[s + j*plane + x]} for {@code x < cols}, {@code j < kn}, and zero for
     * {@code kn <= j < gnr}: {@code cols} pixels of {@code kn} channel rows ({@code plane} apart) laid out q-major,
     * {@code gnr} floats per pixel, as the transposed weight-gradient tiles read dy. Eight channel rows at a time:
     * reading all of a pixel's channels before the next pixel read every channel row at once, and rows a multiple of
     * 4 KB apart (32x32 planes) share one set of the L1 cache, so 32 of them evicted each other (3.7 ms against 0.8 ms
     * for 64 images of 32 channels at 32x32, one thread's half of a batch, in a probe; 1.3x at 16x16, 1.1x at 8x8).
     */
    static void transposeChannels(float[] src, int s, int plane, int kn, int cols, float[] dst, int d, int gnr) {
        int j = 0;
        for (; j + 8 <= kn; j += 8) {
            int r = s + j * plane;
            for (int x = 0; x < cols; x++, r++) {
                int o = d + x * gnr + j;
                dst[o] = src[r];
                dst[o + 1] = src[r + plane];
                dst[o + 2] = src[r + 2 * plane];
                dst[o + 3] = src[r + 3 * plane];
                dst[o + 4] = src[r + 4 * plane];
                dst[o + 5] = src[r + 5 * plane];
                dst[o + 6] = src[r + 6 * plane];
                dst[o + 7] = src[r + 7 * plane];
            }
        }
        for (; j < kn; j++) {
            int r = s + j * plane;
            for (int x = 0; x < cols; x++) dst[d + x * gnr + j] = src[r + x];
        }
        if (kn < gnr) {
            for (int x = 0; x < cols; x++) zero(dst, d + x * gnr + kn, d + (x + 1) * gnr);
        }
    }

    // ------------------------------------------------------------------------------------------ staging

    /**
     * The tap offsets ({@link InputLayout#offsets}) of each unit size of {@code units} (one or two sizes), indexed by
     * size and padded with zeros to {@code len}: computed per unit, their divisions took 4 % of a stride-2 forward pass.
     */
    private static int[][] offsetsBySize(ConvGeometry g, ImageUnits units, int nr, int np, int len) {
        int[][] offs = new int[units.maxSize() + 1][];
        for (int u = 0; u < units.count(); u++) {
            int size = units.size(u);
            if (offs[size] == null) offs[size] = Arrays.copyOf(new InputLayout(g, size, nr).offsets(g, np), len);
        }
        return offs;
    }

    /** The batch's units ({@link ImageUnits}): a staged input near {@link #UNIT_FLOATS}, up to 16 units. */
    static ImageUnits units(ConvGeometry g) {
        InputLayout one = new InputLayout(g, 1, 1);
        int perImage = Math.max(1, one.srcLength);
        int byMemory = Math.max(1, UNIT_FLOATS / perImage);
        return ImageUnits.of(g.n(), ceilDiv(g.n(), 16), byMemory);
    }

    /**
     * Where the staged input of one unit lives: src[c][phase][row][col] with phase = (pr, pc) of the stride, rows
     * {@code img*hq + ii} and columns {@code jj} holding padded pixel (ii*strideH + pr, jj*strideW + pc) of image img.
     */
    static final class InputLayout {
        final int nPh, nPw, hq, wq, rowsTot, plane, cStride, qCount, qRound, srcLength;
        /**
         * Whether staging may split rows with {@link ConvMicroKernels#deinterleaveSpilling}: rows are written in memory
         * order, each whole, and a plane's tail (the rows past the images) is zeroed last, so a spill past a row only
         * touches memory written after it, as long as the tail covers the last row's spill.
         */
        final boolean spillFits;

        InputLayout(ConvGeometry g, int imgs, int nr) {
            int sh = g.strideH(), sw = g.strideW();
            nPh = Math.min(sh, g.r());
            nPw = Math.min(sw, g.s());
            // wq * strideW >= w + padW makes a read past the row end land on the next row's left padding.
            wq = Math.max(g.outW(), ceilDiv(g.w() + g.padW(), sw));
            hq = Math.max(g.outH(), ceilDiv(g.h() + g.padH(), sh));
            rowsTot = imgs * hq + (g.r() - 1) / sh + 2;
            plane = rowsTot * wq;
            cStride = nPh * nPw * plane;
            qCount = ((imgs - 1) * hq + g.outH()) * wq;
            qRound = roundUp(qCount, nr);
            srcLength = g.c() * cStride + nr + g.s();
            spillFits = (rowsTot - imgs * hq) * wq >= ConvMicroKernels.DEINTERLEAVE_SPILL;
        }

        /** off[(c*r + r)*s + s] for the channels of one group. */
        int[] offsets(ConvGeometry g, int np) {
            int[] off = new int[np];
            for (int c = 0; c < g.cg(); c++) {
                for (int r = 0; r < g.r(); r++) {
                    for (int s = 0; s < g.s(); s++) off[(c * g.r() + r) * g.s() + s] = offset(g, c, r, s);
                }
            }
            return off;
        }

        /** Where tap (r, s) of staged channel {@code c} sits relative to the output column q. */
        int offset(ConvGeometry g, int c, int r, int s) {
            int sh = g.strideH(), sw = g.strideW();
            return c * cStride + ((r % sh) * nPw + s % sw) * plane + (r / sh) * wq + s / sw;
        }
    }

    /** Copies images [n0, n0+imgs) of x into {@code src} in {@link InputLayout} order, zeros in every border. */
    private static void stageInput(ConvGeometry g, float[] x, int n0, int imgs, InputLayout lay, float[] src) {
        stageInput(g, x, g.c(), null, n0, imgs, lay, src);
    }

    /**
     * As above with a channel gather folded into the copy: staged channel {@code c} (of {@code g.c()}) is channel
     * {@code channels[c]} of an x that has {@code xChannels} channels per image ({@code channels} null: the identity).
     * The multi-branch convolution stages only the channels its branches read, straight from the source tensor.
     */
    static void stageInput(ConvGeometry g, float[] x, int xChannels, int[] channels, int n0, int imgs, InputLayout lay,
                           float[] src) {
        int h = g.h(), w = g.w(), sh = g.strideH(), sw = g.strideW(), ph = g.padH(), pw = g.padW();
        int hq = lay.hq, wq = lay.wq;
        if (sw == 2 && lay.nPw == 2) {
            stageInputColumnPairs(g, x, xChannels, channels, n0, imgs, lay, src);
            return;
        }
        // The odd columns go to a discard row, with room for a split's spill (InputLayout.spillFits).
        float[] discard = sw == 2 ? ScratchBuffers.get(ScratchBuffers.STAGE_DISCARD, wq + ConvMicroKernels.DEINTERLEAVE_SPILL) : null;
        for (int c = 0; c < g.c(); c++) {
            int xc = channels == null ? c : channels[c];
            for (int pr = 0; pr < lay.nPh; pr++) {
                for (int pc = 0; pc < lay.nPw; pc++) {
                    int plane = c * lay.cStride + (pr * lay.nPw + pc) * lay.plane;
                    // Columns jj in [jA, jB) map to input columns jj*sw + pc - pw inside [0, w).
                    int jA = Math.min(wq, Math.max(0, ceilDiv(pw - pc, sw)));
                    int jB = Math.max(jA, Math.min(wq, Math.floorDiv(w - 1 + pw - pc, sw) + 1));
                    int xCol = jA * sw + pc - pw;
                    for (int img = 0; img < imgs; img++) {
                        int xImg = ((n0 + img) * xChannels + xc) * h * w;
                        for (int ii = 0; ii < hq; ii++) {
                            int dst = plane + (img * hq + ii) * wq;
                            int hi = ii * sh + pr - ph;
                            if (hi < 0 || hi >= h) {
                                zero(src, dst, dst + wq);
                                continue;
                            }
                            int xRow = xImg + hi * w + xCol;
                            zero(src, dst, dst + jA);
                            if (sw == 1) {
                                System.arraycopy(x, xRow, src, dst + jA, jB - jA);
                            } else if (sw == 2) {
                                // Every other column: the SIMD split, its other half dropped (a 1x1 stride-2 shortcut
                                // reads one column phase only; the strided scalar copy was half of its forward pass).
                                int pairs = Math.min(jB - jA, (w - xCol) / 2);
                                if (lay.spillFits) {
                                    KERNELS.deinterleaveSpilling(x, xRow, pairs, src, dst + jA, discard, 0);
                                } else {
                                    KERNELS.deinterleave(x, xRow, pairs, src, dst + jA, discard, 0);
                                }
                                for (int jj = jA + pairs; jj < jB; jj++) src[dst + jj] = x[xRow + (jj - jA) * 2];
                            } else {
                                for (int jj = jA; jj < jB; jj++) src[dst + jj] = x[xRow + (jj - jA) * sw];
                            }
                            zero(src, dst + jB, dst + wq);
                        }
                    }
                    zero(src, plane + imgs * hq * wq, plane + lay.plane);
                }
            }
        }
        zero(src, g.c() * lay.cStride, lay.srcLength);
    }

    /**
     * {@link #stageInput} for a column stride of 2 with both column phases staged: each input row is read once and
     * split into its even and odd columns, one phase row each ({@link ConvMicroKernels#deinterleave}). The generic
     * path's strided copy, once per phase, took half of a stride-2 forward pass (JFR samples). Same values in the
     * same places.
     */
    private static void stageInputColumnPairs(ConvGeometry g, float[] x, int xChannels, int[] channels, int n0, int imgs,
                                              InputLayout lay, float[] src) {
        int h = g.h(), w = g.w(), sh = g.strideH(), ph = g.padH(), pw = g.padW();
        int hq = lay.hq, wq = lay.wq;
        // Input column xc sits in phase (xc + pw) % 2 at column (xc + pw) / 2; per phase, the written columns are
        // [jA, jB) and the rest of the row is border.
        int[] jA = new int[2], jB = new int[2];
        for (int pc = 0; pc < 2; pc++) {
            jA[pc] = Math.min(wq, Math.max(0, ceilDiv(pw - pc, 2)));
            jB[pc] = Math.max(jA[pc], Math.min(wq, Math.floorDiv(w - 1 + pw - pc, 2) + 1));
        }
        int first = pw & 1;               // the phase of input column 0
        int pairs = w / 2;
        for (int c = 0; c < g.c(); c++) {
            int xc = channels == null ? c : channels[c];
            for (int pr = 0; pr < lay.nPh; pr++) {
                int plane0 = c * lay.cStride + (pr * 2) * lay.plane, plane1 = plane0 + lay.plane;
                for (int img = 0; img < imgs; img++) {
                    int xImg = ((n0 + img) * xChannels + xc) * h * w;
                    for (int ii = 0; ii < hq; ii++) {
                        int row = (img * hq + ii) * wq, d0 = plane0 + row, d1 = plane1 + row;
                        int hi = ii * sh + pr - ph;
                        if (hi < 0 || hi >= h) {
                            zero(src, d0, d0 + wq);
                            zero(src, d1, d1 + wq);
                            continue;
                        }
                        zero(src, d0, d0 + jA[0]);
                        zero(src, d0 + jB[0], d0 + wq);
                        zero(src, d1, d1 + jA[1]);
                        zero(src, d1 + jB[1], d1 + wq);
                        int xRow = xImg + hi * w;
                        // Even input columns (2m) go to phase `first` at m + pw/2, odd ones (2m+1) to the other at
                        // m + (pw+1)/2: padded column xc + pw, halved.
                        int dEven = (first == 0 ? d0 : d1) + (pw >> 1), dOdd = (first == 0 ? d1 : d0) + ((pw + 1) >> 1);
                        // The SIMD split whatever kernels the caller runs (it is a copy: the same bits either way).
                        if (lay.spillFits) {
                            KERNELS.deinterleaveSpilling(x, xRow, pairs, src, dEven, src, dOdd);
                        } else {
                            KERNELS.deinterleave(x, xRow, pairs, src, dEven, src, dOdd);
                        }
                        if ((w & 1) != 0) src[dEven + pairs] = x[xRow + w - 1];
                    }
                }
                zero(src, plane0 + imgs * hq * wq, plane0 + lay.plane);
                zero(src, plane1 + imgs * hq * wq, plane1 + lay.plane);
            }
        }
        zero(src, g.c() * lay.cStride, lay.srcLength);
    }

    // ------------------------------------------------------------------------------------------ helpers

    /**
     * Zeroes a[from, to). A plain loop rather than Arrays.fill: most ranges here are a few floats of border, where
     * the call and its checks cost more than the stores, and C2 vectorises this loop for the long ones.
     */
    static void zero(float[] a, int from, int to) {
        for (int i = from; i < to; i++) a[i] = 0f;
    }

    static int ceilDiv(int a, int b) { return -Math.floorDiv(-a, b); }

    static int roundUp(int v, int m) { return ceilDiv(v, m) * m; }

    /**
     * Checks array lengths against the geometry: {@code in} is x or dx (n, c, h, w), {@code wt} the weights
     * (k, c/groups, r, s), {@code out} y or dy (n, k, outH, outW).
     */
    private static void validate(String op, ConvGeometry g, float[] in, String inName, float[] wt, String wtName,
                                 float[] bias, float[] out, String outName) {
        if (g == null) throw new IllegalArgumentException(op + ": geometry is null");
        long inLen = (long) g.n() * g.c() * g.h() * g.w();
        long wLen = (long) g.k() * g.cg() * g.r() * g.s();
        long outLen = (long) g.n() * g.k() * g.outH() * g.outW();
        if (Math.max(inLen, Math.max(wLen, outLen)) > Integer.MAX_VALUE / 2) {
            throw new IllegalArgumentException(op + ": " + g + " is too large for float[] indexing");
        }
        check(op, g, inName, in, inLen, "(" + g.n() + "," + g.c() + "," + g.h() + "," + g.w() + ")");
        check(op, g, wtName, wt, wLen, "(" + g.k() + "," + g.cg() + "," + g.r() + "," + g.s() + ")");
        check(op, g, outName, out, outLen, "(" + g.n() + "," + g.k() + "," + g.outH() + "," + g.outW() + ")");
        if (bias != null) check(op, g, "bias", bias, g.k(), "(" + g.k() + ")");
    }

    private static void check(String op, ConvGeometry g, String name, float[] arr, long need, String shape) {
        if (arr == null) throw new IllegalArgumentException(op + ": " + name + " " + shape + " is null for " + g);
        if (arr.length < need) {
            throw new IllegalArgumentException(op + ": " + name + " must hold " + shape + " = " + need
                    + " floats but has " + arr.length + " for " + g);
        }
    }
}
