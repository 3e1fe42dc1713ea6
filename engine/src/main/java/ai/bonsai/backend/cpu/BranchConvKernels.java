package ai.bonsai.backend.cpu;

import ai.bonsai.backend.ConvGeometry;

import ai.bonsai.backend.BranchConv;

import java.util.List;

/**
 * The CPU multi-branch convolution ({@link ai.bonsai.backend.Backend#branchConv2d}): the implicit GEMM of
 * {@link Conv2dKernels} with the channel gather folded into its staging and its shift tables, and batch norm,
 * ReLU and the concatenation or residual scatter-add folded into the copy-out.
 *
 * <p>Per unit of images (the unit size rule of the method's own kernels, so threads take whole images and results
 * do not depend on the thread count):
 * <ol>
 *   <li>stage the union of the channels any branch reads, straight from x, once (overlapping branches share it);</li>
 *   <li>per branch, build a shift table whose channel part points at each input channel's staged plane: that
 *       table <i>is</i> the gather, so no gathered copy of x exists;</li>
 *   <li>per block of {@code mr} filters, run the register tiles over the unit's output columns (a partial block
 *       takes a half tile and a 1-3 row tile, {@link #blockTiles}: packed branches are often 1-7 filters wide),
 *       then apply {@code act(scale * acc + shift)} to each filter's unit row and write or add it into y at the
 *       branch's output channels while the block is still in cache.</li>
 * </ol>
 * A plan runs each unit by the direct method or by Winograd ({@link #unitWinograd}), chosen per plan
 * ({@link #WINOGRAD_MIN_INPUT_WIDTH}). {@link #runPair} runs two plans (a block's conv_a, then conv_b) unit by unit,
 * so the intermediate exists only one unit of images at a time.
 * The packed weights of a plan are built once by {@link #prepare} and cached by the backend.
 * Reference: {@code BranchConvKernelsTest} (naive loops). Benchmark: {@code benchmarks/run PackedInferenceBench}.
 */
final class BranchConvKernels {
    private BranchConvKernels() {}

    /** A plan's weights in register-tile order for one micro-kernel shape, and its staged channel set. */
    static final class Prepared {
        final int mr;
        /** x channels that some branch reads, ascending; staged channel i is x channel staged[i]. */
        final int[] staged;
        final PreparedBranch[] branches;
        /** The plan's output stage: per-channel constant (null: none) and ReLU. */
        final float[] outputShift;
        final boolean outputRelu;

        Prepared(int mr, int[] staged, PreparedBranch[] branches, float[] outputShift, boolean outputRelu) {
            this.mr = mr;
            this.staged = staged;
            this.branches = branches;
            this.outputShift = outputShift;
            this.outputRelu = outputRelu;
        }

        boolean hasOutputStage() { return outputShift != null || outputRelu; }

        /** Input channels per filter, averaged over the plan's filters (what decides Winograd's worth, see run). */
        double meanInputWidth() {
            long filters = 0, inputs = 0;
            for (PreparedBranch b : branches) {
                filters += b.out.length;
                inputs += (long) b.out.length * b.inPos.length;
            }
            return filters == 0 ? 0 : (double) inputs / filters;
        }
    }

    /**
     * Under {@link ConvMethod#AUTO} a plan takes the Winograd path only if its filters read at least this many input
     * channels on average. Winograd halves the multiply-adds per input channel but adds a fixed cost per filter (the
     * output transform) and per staged channel (the input transform); narrow branches do not earn it back. Measured
     * in place on the packed ResNet-56 stand-in (one JVM, the two methods alternating, benchmarks/RESULTS-packed.md):
     * direct was 15 % faster on stage 1 (about 8 inputs per filter), 10 % on stage 2 (about 16), and Winograd 20 %
     * faster on stage 3 (about 32).
     */
    static final int WINOGRAD_MIN_INPUT_WIDTH = 24;

    static final class PreparedBranch {
        /** Staged position of each input channel, in the branch's order. */
        final int[] inPos;
        final int[] out;
        final float[] a, scale, shift;
        /** For 3x3 plans: the Winograd-transformed weights in the same tile order (Conv2dWinograd); else null. */
        final float[] aWinograd;
        final boolean relu;
        final int mBlocks, np;

        PreparedBranch(int[] inPos, int[] out, float[] a, float[] aWinograd, float[] scale, float[] shift, boolean relu,
                       int mBlocks, int np) {
            this.inPos = inPos;
            this.out = out;
            this.a = a;
            this.aWinograd = aWinograd;
            this.scale = scale;
            this.shift = shift;
            this.relu = relu;
            this.mBlocks = mBlocks;
            this.np = np;
        }
    }

    /** Packs a plan's weights for tiles of {@code mr} rows: A[mb][p][i] = W[mb*mr + i][p], rows past the branch zero. */
    static Prepared prepare(BranchConv plan, int mr, CpuBackend be) {
        boolean[] used = new boolean[plan.inChannels()];
        for (BranchConv.Branch b : plan.branches()) for (int c : b.inChannels()) used[c] = true;
        int count = 0;
        for (boolean u : used) if (u) count++;
        int[] staged = new int[count], pos = new int[plan.inChannels()];
        count = 0;
        for (int c = 0; c < used.length; c++) {
            if (used[c]) {
                pos[c] = count;
                staged[count++] = c;
            }
        }
        int kk = plan.kernel() * plan.kernel();
        List<BranchConv.Branch> list = plan.branches();
        PreparedBranch[] out = new PreparedBranch[list.size()];
        for (int bi = 0; bi < out.length; bi++) {
            BranchConv.Branch b = list.get(bi);
            int[] in = b.inChannels();
            int[] inPos = new int[in.length];
            for (int i = 0; i < in.length; i++) inPos[i] = pos[in[i]];
            float[] w = be.toFloats(b.weight());
            int kb = b.outWidth(), np = in.length * kk;
            int mBlocks = Conv2dKernels.ceilDiv(kb, mr);
            float[] a = new float[mBlocks * np * mr];
            for (int k = 0; k < kb; k++) {
                int base = (k / mr) * np * mr + k % mr;
                for (int p = 0; p < np; p++) a[base + p * mr] = w[k * np + p];
            }
            float[] aw = plan.kernel() == 3
                    ? Conv2dWinograd.packTransformedWeights(kb, in.length, 3, w, mr, mBlocks) : null;
            out[bi] = new PreparedBranch(inPos, b.outChannels(), a, aw, be.toFloats(b.scale()), be.toFloats(b.shift()),
                    b.relu(), mBlocks, np);
        }
        return new Prepared(mr, staged, out, plan.outputShift() == null ? null : be.toFloats(plan.outputShift()),
                plan.outputRelu());
    }

    /** Runs the plan; see {@link ai.bonsai.backend.Backend#branchConv2d} for the semantics. */
    static void run(ConvMicroKernels kern, BranchConv plan, Prepared prep, float[] x, int n, int h, int w, float[] y,
                    boolean accumulate) {
        run(kern, plan, prep, x, n, h, w, y, accumulate, ConvMethod.AUTO);
    }

    /** As above with the convolution method chosen by the caller (tests run both on every plan). */
    static void run(ConvMicroKernels kern, BranchConv plan, Prepared prep, float[] x, int n, int h, int w, float[] y,
                    boolean accumulate, ConvMethod method) {
        assert prep.mr == kern.mr();
        Step s = new Step(plan, prep, n, h, w, method);
        ImageUnits units = s.units(kern.mr(), n);
        Parallel.forEach(units.count(), u -> s.unit(kern, x, units.start(u), units.size(u), y, units.start(u), accumulate));
    }

    /**
     * Runs {@code first} then {@code second} per unit of images, the intermediate t held in a per-thread scratch
     * array of one unit's images instead of a whole-batch tensor: t goes from conv_a's copy-out to conv_b's
     * staging while it is in cache. See {@link ai.bonsai.backend.Backend#branchConv2dPair} for the semantics.
     */
    static void runPair(ConvMicroKernels kern, BranchConv first, Prepared prepFirst, BranchConv second, Prepared prepSecond,
                        float[] x, int n, int h, int w, float[] y, boolean accumulate, ConvMethod method) {
        Step a = new Step(first, prepFirst, n, h, w, method);
        Step b = new Step(second, prepSecond, n, first.outSize(h), first.outSize(w), method);
        // The finer of the two cuts, so that each unit fits both working sets.
        ImageUnits ua = a.units(kern.mr(), n), ub = b.units(kern.mr(), n), units = ua.count() >= ub.count() ? ua : ub;
        int tImage = first.outChannels() * b.h * b.w;
        Parallel.forEach(units.count(), u -> {
            int n0 = units.start(u), imgs = units.size(u);
            float[] t = ScratchBuffers.get(ScratchBuffers.BRANCH_PAIR, imgs * tImage);
            a.unit(kern, x, n0, imgs, t, 0, false);
            b.unit(kern, t, 0, imgs, y, n0, accumulate);
        });
    }

    /** One plan on one input size: the staged geometry and the method, fixed for every unit of a call. */
    private static final class Step {
        final BranchConv plan;
        final Prepared prep;
        final int h, w;
        /** Geometry of the staged input (only the channels some branch reads); null when no branch reads any. */
        final ConvGeometry g;
        final boolean winograd;

        Step(BranchConv plan, Prepared prep, int n, int h, int w, ConvMethod method) {
            this.plan = plan;
            this.prep = prep;
            this.h = h;
            this.w = w;
            int k = plan.kernel(), st = plan.stride(), pad = plan.padding();
            g = prep.staged.length == 0 ? null : new ConvGeometry(n, prep.staged.length, h, w, 1, k, k, st, st, pad, pad, 1);
            winograd = g != null && (method == ConvMethod.AUTO
                    ? prep.meanInputWidth() >= WINOGRAD_MIN_INPUT_WIDTH && method.winograd(g) : method.winograd(g));
        }

        /** The units of the method's own kernels (from the geometry only, so bits do not depend on threads). */
        ImageUnits units(int mr, int n) {
            if (g == null) return new ImageUnits(n, n);
            return winograd ? Conv2dWinograd.units(g, mr) : Conv2dKernels.units(g);
        }

        /** Images [n0, n0+imgs) of x to images [yImg0, yImg0+imgs) of y, then the output stage on those. */
        void unit(ConvMicroKernels kern, float[] x, int n0, int imgs, float[] y, int yImg0, boolean accumulate) {
            if (g != null) {
                if (winograd) unitWinograd(kern, this, x, n0, imgs, y, yImg0, accumulate);
                else unitDirect(kern, this, x, n0, imgs, y, yImg0, accumulate);
            }
            if (prep.hasOutputStage()) outputStage(prep, y, yImg0, imgs, plan.outChannels(), plan.outSize(h) * plan.outSize(w));
        }
    }

    /** The direct method on one unit (see the class comment). */
    private static void unitDirect(ConvMicroKernels kern, Step st, float[] x, int n0, int imgs, float[] y, int yImg0,
                                   boolean accumulate) {
        ConvGeometry g = st.g;
        Prepared prep = st.prep;
        int mr = kern.mr(), nr = kern.nr(), k = g.r();
        int oh = g.outH(), ow = g.outW(), cIn = st.plan.inChannels(), cOut = st.plan.outChannels();
        // Columns rounded to the half tile's width (2 nr), so every tile shape covers [0, qRound) exactly.
        Conv2dKernels.InputLayout lay = new Conv2dKernels.InputLayout(g, imgs, 2 * nr);
        float[] src = ScratchBuffers.get(ScratchBuffers.CONV_SRC, lay.srcLength);
        Conv2dKernels.stageInput(g, x, cIn, prep.staged, n0, imgs, lay, src);
        int ld = lay.qRound;
        float[] out = ScratchBuffers.get(ScratchBuffers.CONV_OUT, mr * ld);
        for (PreparedBranch b : prep.branches) {
            int[] off = new int[b.np];
            for (int i = 0; i < b.inPos.length; i++) {
                for (int r = 0; r < k; r++) {
                    for (int s = 0; s < k; s++) off[(i * k + r) * k + s] = lay.offset(g, b.inPos[i], r, s);
                }
            }
            int kb = b.out.length;
            for (int mb = 0; mb < b.mBlocks; mb++) {
                int rows = Math.min(mr, kb - mb * mr);
                blockTiles(kern, rows, b.np, b.a, mb * b.np * mr, src, 0, off, out, 0, ld);
                for (int i = 0; i < rows; i++) {
                    int j = mb * mr + i;
                    affine(out, i * ld, lay.qCount, b.scale[j], b.shift[j], b.relu);
                    for (int img = 0; img < imgs; img++) {
                        int yBase = ((yImg0 + img) * cOut + b.out[j]) * oh * ow;
                        int row = i * ld + img * lay.hq * lay.wq;
                        for (int oi = 0; oi < oh; oi++) copyRow(out, row + oi * lay.wq, y, yBase + oi * ow, ow, accumulate);
                    }
                }
            }
        }
    }

    /**
     * The register tiles of one block of {@code rows <= mr} filters over columns [0, ld) (a multiple of 2 nr):
     * out[outOff + i*ld + q] = sum_p a[aOff + p*mr + i] * src[srcOff + off[p] + q]. A full block takes full tiles;
     * a partial one a half tile for its first mr/2 rows and a narrow tile for the rest, so no tile computes rows
     * past the branch (a 5-filter branch costs 5 rows, not 8; a 1-filter branch 1, not 4).
     */
    private static void blockTiles(ConvMicroKernels kern, int rows, int np, float[] a, int aOff, float[] src, int srcOff,
                                   int[] off, float[] out, int outOff, int ld) {
        int mr = kern.mr(), nr = kern.nr(), half = mr / 2;
        if (rows == mr) {
            for (int q = 0; q < ld; q += nr) kern.shiftTile(np, a, aOff, src, srcOff + q, off, out, outOff + q, ld);
            return;
        }
        int done = 0;
        if (rows >= half) {
            for (int q = 0; q < ld; q += 2 * nr) kern.shiftTileHalf(np, a, aOff, src, srcOff + q, off, out, outOff + q, ld);
            done = half;
        }
        if (rows > done) {
            int o = outOff + done * ld;
            for (int q = 0; q < ld; q += 2 * nr) {
                kern.shiftTileRows(rows - done, np, a, aOff + done, src, srcOff + q, off, out, o + q, ld);
            }
        }
    }

    /**
     * The plan's output stage on images [n0, n0+imgs), while the unit's output is still in cache:
     * y[:, c] = act(y[:, c] + outputShift[c]) for every channel.
     */
    private static void outputStage(Prepared prep, float[] y, int n0, int imgs, int cOut, int hw) {
        for (int img = n0; img < n0 + imgs; img++) {
            for (int c = 0; c < cOut; c++) {
                int o = (img * cOut + c) * hw;
                float b = prep.outputShift == null ? 0f : prep.outputShift[c];
                if (prep.outputRelu) {
                    for (int j = o; j < o + hw; j++) y[j] = Math.max(y[j] + b, 0f);
                } else {
                    for (int j = o; j < o + hw; j++) y[j] += b;
                }
            }
        }
    }

    /**
     * a[o + j] = act(a[o + j] * sc + sh) over one filter's whole output row of a unit, before its pieces are copied
     * out. One long loop, which C2 vectorises; done per image row (8-32 floats) as before, it ran mostly in C2's
     * scalar pre- and post-loops and took a third of packed inference's thread time (this is 25 % faster, paired in
     * one JVM). A Vector API version of the per-row epilogue was also tried: fast alone, 1.5x slower in place, cause
     * not pinned down.
     */
    private static void affine(float[] a, int o, int len, float sc, float sh, boolean relu) {
        if (relu) for (int j = o; j < o + len; j++) a[j] = Math.max(a[j] * sc + sh, 0f);
        else for (int j = o; j < o + len; j++) a[j] = a[j] * sc + sh;
    }

    /** y[yo, yo+len) = or += a[o, o+len). */
    private static void copyRow(float[] a, int o, float[] y, int yo, int len, boolean add) {
        if (add) {
            for (int j = 0; j < len; j++) y[yo + j] += a[o + j];
        } else {
            System.arraycopy(a, o, y, yo, len);
        }
    }

    /**
     * The Winograd version ({@link Conv2dWinograd}) of {@link #unitDirect}: the staged channels are row-transformed
     * once per unit for all branches; each branch then runs six shift GEMMs over its channels' transformed planes
     * (its shift table is again the gather), one output transform per filter, and the same BN, ReLU and copy-out.
     */
    private static void unitWinograd(ConvMicroKernels kern, Step st, float[] x, int n0, int imgs, float[] y, int yImg0,
                                     boolean accumulate) {
        final int alpha = Conv2dWinograd.ALPHA, m4 = Conv2dWinograd.M;
        ConvGeometry g = st.g;
        Prepared prep = st.prep;
        int mr = kern.mr(), nr = kern.nr();
        int oh = g.outH(), ow = g.outW(), cIn = st.plan.inChannels(), cOut = st.plan.outChannels();
        // Columns rounded to the half tile's width (2 nr), so every tile shape covers [0, qRound) exactly.
        Conv2dWinograd.Layout lay = new Conv2dWinograd.Layout(g, imgs, 2 * nr);
        float[] v = ScratchBuffers.get(ScratchBuffers.CONV_SRC, alpha * lay.vPlane);
        Conv2dWinograd.stageAndTransform(kern, g, x, cIn, prep.staged, n0, lay, v);
        int ld = lay.qRound, mStride = mr * ld;
        float[] m = ScratchBuffers.get(ScratchBuffers.CONV_OUT, alpha * mStride);
        float[] rows = ScratchBuffers.get(ScratchBuffers.CONV_TMP, m4 * ld);
        for (PreparedBranch b : prep.branches) {
            int cb = b.inPos.length, np = cb * 3;
            int[] off = new int[np];
            for (int i = 0; i < cb; i++) {
                for (int s = 0; s < 3; s++) off[i * 3 + s] = b.inPos[i] * lay.vChannel + s;
            }
            int kb = b.out.length;
            for (int mb = 0; mb < b.mBlocks; mb++) {
                int nRows = Math.min(mr, kb - mb * mr);
                for (int al = 0; al < alpha; al++) {
                    blockTiles(kern, nRows, np, b.aWinograd, (al * b.mBlocks + mb) * np * mr, v, al * lay.vPlane, off,
                            m, al * mStride, ld);
                }
                for (int i = 0; i < nRows; i++) {
                    int j = mb * mr + i;
                    kern.winogradOutput(m, i * ld, mStride, ld, 0f, rows, 0, ld, m4);
                    affine(rows, 0, m4 * ld, b.scale[j], b.shift[j], b.relu);
                    int yc = b.out[j];
                    // Image by image, each plane of y front to back, as in Conv2dWinograd.forward.
                    for (int img = 0; img < lay.imgs; img++) {
                        int yPlane = ((yImg0 + img) * cOut + yc) * oh * ow;
                        for (int t = 0; t < lay.tiles; t++) {
                            for (int r = 0; r < Math.min(m4, oh - m4 * t); r++) {
                                copyRow(rows, r * ld + t * lay.rs + img * lay.wp, y, yPlane + (m4 * t + r) * ow, ow, accumulate);
                            }
                        }
                    }
                }
            }
        }
    }
}
