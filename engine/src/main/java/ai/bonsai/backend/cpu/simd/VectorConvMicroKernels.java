package ai.bonsai.backend.cpu.simd;

import ai.bonsai.backend.cpu.ConvMicroKernels;
import ai.bonsai.backend.cpu.ScalarConvMicroKernels;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.LongVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector API {@link ConvMicroKernels}. {@link #shiftTile} is the 8 x (2 vectors) register tile of the GEMM
 * microkernel with B read through the shift table instead of a packed panel (unaligned loads are cheap on
 * AVX-512 hardware). {@link #shiftTileHalf} is
 * 4 x (4 vectors): the same multiply-adds per load for narrow row blocks. {@link #gradTile} keeps 16 lane-wise partial dot products and reduces them once at the end.
 * Loaded only through {@code VectorizationProvider.load}.
 */
public final class VectorConvMicroKernels implements ConvMicroKernels {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    private static final int MR = 8, NR = 2 * L;
    /** Ints of the same shape as S (deinterleave narrows pairs of floats into them). */
    private static final VectorSpecies<Integer> INTS = VectorSpecies.of(int.class, S.vectorShape());
    /**
     * gradTile's lanes, per thread: a new array per call was a third of what a training step still allocated once
     * its buffers came from a StepArena (about 30,000 calls, 30 MiB a ResNet-20 step), and the young collections
     * it caused are what made the JVM grow the heap.
     */
    private static final ThreadLocal<float[]> LANES = ThreadLocal.withInitial(() -> new float[16 * L]);
    @Override public int mr() { return MR; }

    @Override public int nr() { return NR; }

    @Override
    public void shiftTile(int np, float[] a, int aOff, float[] src, int srcOff, int[] off, float[] out, int outOff, int ldo) {
        FloatVector z = FloatVector.zero(S);
        FloatVector c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z;
        FloatVector c40 = z, c41 = z, c50 = z, c51 = z, c60 = z, c61 = z, c70 = z, c71 = z;
        int ai = aOff;
        for (int p = 0; p < np; p++, ai += MR) {
            int s = srcOff + off[p];
            FloatVector b0 = FloatVector.fromArray(S, src, s), b1 = FloatVector.fromArray(S, src, s + L);
            FloatVector x = FloatVector.broadcast(S, a[ai]);
            c00 = x.fma(b0, c00); c01 = x.fma(b1, c01);
            x = FloatVector.broadcast(S, a[ai + 1]);
            c10 = x.fma(b0, c10); c11 = x.fma(b1, c11);
            x = FloatVector.broadcast(S, a[ai + 2]);
            c20 = x.fma(b0, c20); c21 = x.fma(b1, c21);
            x = FloatVector.broadcast(S, a[ai + 3]);
            c30 = x.fma(b0, c30); c31 = x.fma(b1, c31);
            x = FloatVector.broadcast(S, a[ai + 4]);
            c40 = x.fma(b0, c40); c41 = x.fma(b1, c41);
            x = FloatVector.broadcast(S, a[ai + 5]);
            c50 = x.fma(b0, c50); c51 = x.fma(b1, c51);
            x = FloatVector.broadcast(S, a[ai + 6]);
            c60 = x.fma(b0, c60); c61 = x.fma(b1, c61);
            x = FloatVector.broadcast(S, a[ai + 7]);
            c70 = x.fma(b0, c70); c71 = x.fma(b1, c71);
        }
        // Stores spelled out: a helper taking vectors may not be inlined by C2 and would box them.
        int o = outOff;
        c00.intoArray(out, o); c01.intoArray(out, o + L); o += ldo;
        c10.intoArray(out, o); c11.intoArray(out, o + L); o += ldo;
        c20.intoArray(out, o); c21.intoArray(out, o + L); o += ldo;
        c30.intoArray(out, o); c31.intoArray(out, o + L); o += ldo;
        c40.intoArray(out, o); c41.intoArray(out, o + L); o += ldo;
        c50.intoArray(out, o); c51.intoArray(out, o + L); o += ldo;
        c60.intoArray(out, o); c61.intoArray(out, o + L); o += ldo;
        c70.intoArray(out, o); c71.intoArray(out, o + L);
    }

    @Override
    public void shiftTileHalf(int np, float[] a, int aOff, float[] src, int srcOff, int[] off, float[] out, int outOff, int ldo) {
        FloatVector z = FloatVector.zero(S);
        FloatVector c00 = z, c01 = z, c02 = z, c03 = z, c10 = z, c11 = z, c12 = z, c13 = z;
        FloatVector c20 = z, c21 = z, c22 = z, c23 = z, c30 = z, c31 = z, c32 = z, c33 = z;
        int ai = aOff;
        for (int p = 0; p < np; p++, ai += MR) {
            int s = srcOff + off[p];
            FloatVector b0 = FloatVector.fromArray(S, src, s), b1 = FloatVector.fromArray(S, src, s + L);
            FloatVector b2 = FloatVector.fromArray(S, src, s + 2 * L), b3 = FloatVector.fromArray(S, src, s + 3 * L);
            FloatVector x = FloatVector.broadcast(S, a[ai]);
            c00 = x.fma(b0, c00); c01 = x.fma(b1, c01); c02 = x.fma(b2, c02); c03 = x.fma(b3, c03);
            x = FloatVector.broadcast(S, a[ai + 1]);
            c10 = x.fma(b0, c10); c11 = x.fma(b1, c11); c12 = x.fma(b2, c12); c13 = x.fma(b3, c13);
            x = FloatVector.broadcast(S, a[ai + 2]);
            c20 = x.fma(b0, c20); c21 = x.fma(b1, c21); c22 = x.fma(b2, c22); c23 = x.fma(b3, c23);
            x = FloatVector.broadcast(S, a[ai + 3]);
            c30 = x.fma(b0, c30); c31 = x.fma(b1, c31); c32 = x.fma(b2, c32); c33 = x.fma(b3, c33);
        }
        int o = outOff;
        c00.intoArray(out, o); c01.intoArray(out, o + L); c02.intoArray(out, o + 2 * L); c03.intoArray(out, o + 3 * L); o += ldo;
        c10.intoArray(out, o); c11.intoArray(out, o + L); c12.intoArray(out, o + 2 * L); c13.intoArray(out, o + 3 * L); o += ldo;
        c20.intoArray(out, o); c21.intoArray(out, o + L); c22.intoArray(out, o + 2 * L); c23.intoArray(out, o + 3 * L); o += ldo;
        c30.intoArray(out, o); c31.intoArray(out, o + L); c32.intoArray(out, o + 2 * L); c33.intoArray(out, o + 3 * L);
    }

    @Override
    public void shiftTileRows(int rows, int np, float[] a, int aOff, float[] src, int srcOff, int[] off, float[] out,
                              int outOff, int ldo) {
        // One method per height so that every accumulator is a local C2 keeps in a register.
        switch (rows) {
            case 1 -> shiftTile1(np, a, aOff, src, srcOff, off, out, outOff);
            case 2 -> shiftTile2(np, a, aOff, src, srcOff, off, out, outOff, ldo);
            case 3 -> shiftTile3(np, a, aOff, src, srcOff, off, out, outOff, ldo);
            default -> throw new IllegalArgumentException("shiftTileRows: rows must be in [1, " + MR / 2 + "), got " + rows);
        }
    }

    private static void shiftTile1(int np, float[] a, int aOff, float[] src, int srcOff, int[] off, float[] out, int outOff) {
        FloatVector z = FloatVector.zero(S);
        FloatVector c00 = z, c01 = z, c02 = z, c03 = z;
        int ai = aOff;
        for (int p = 0; p < np; p++, ai += MR) {
            int s = srcOff + off[p];
            FloatVector x = FloatVector.broadcast(S, a[ai]);
            c00 = x.fma(FloatVector.fromArray(S, src, s), c00);
            c01 = x.fma(FloatVector.fromArray(S, src, s + L), c01);
            c02 = x.fma(FloatVector.fromArray(S, src, s + 2 * L), c02);
            c03 = x.fma(FloatVector.fromArray(S, src, s + 3 * L), c03);
        }
        c00.intoArray(out, outOff); c01.intoArray(out, outOff + L); c02.intoArray(out, outOff + 2 * L); c03.intoArray(out, outOff + 3 * L);
    }

    private static void shiftTile2(int np, float[] a, int aOff, float[] src, int srcOff, int[] off, float[] out, int outOff, int ldo) {
        FloatVector z = FloatVector.zero(S);
        FloatVector c00 = z, c01 = z, c02 = z, c03 = z, c10 = z, c11 = z, c12 = z, c13 = z;
        int ai = aOff;
        for (int p = 0; p < np; p++, ai += MR) {
            int s = srcOff + off[p];
            FloatVector b0 = FloatVector.fromArray(S, src, s), b1 = FloatVector.fromArray(S, src, s + L);
            FloatVector b2 = FloatVector.fromArray(S, src, s + 2 * L), b3 = FloatVector.fromArray(S, src, s + 3 * L);
            FloatVector x = FloatVector.broadcast(S, a[ai]);
            c00 = x.fma(b0, c00); c01 = x.fma(b1, c01); c02 = x.fma(b2, c02); c03 = x.fma(b3, c03);
            x = FloatVector.broadcast(S, a[ai + 1]);
            c10 = x.fma(b0, c10); c11 = x.fma(b1, c11); c12 = x.fma(b2, c12); c13 = x.fma(b3, c13);
        }
        int o = outOff;
        c00.intoArray(out, o); c01.intoArray(out, o + L); c02.intoArray(out, o + 2 * L); c03.intoArray(out, o + 3 * L); o += ldo;
        c10.intoArray(out, o); c11.intoArray(out, o + L); c12.intoArray(out, o + 2 * L); c13.intoArray(out, o + 3 * L);
    }

    private static void shiftTile3(int np, float[] a, int aOff, float[] src, int srcOff, int[] off, float[] out, int outOff, int ldo) {
        FloatVector z = FloatVector.zero(S);
        FloatVector c00 = z, c01 = z, c02 = z, c03 = z, c10 = z, c11 = z, c12 = z, c13 = z;
        FloatVector c20 = z, c21 = z, c22 = z, c23 = z;
        int ai = aOff;
        for (int p = 0; p < np; p++, ai += MR) {
            int s = srcOff + off[p];
            FloatVector b0 = FloatVector.fromArray(S, src, s), b1 = FloatVector.fromArray(S, src, s + L);
            FloatVector b2 = FloatVector.fromArray(S, src, s + 2 * L), b3 = FloatVector.fromArray(S, src, s + 3 * L);
            FloatVector x = FloatVector.broadcast(S, a[ai]);
            c00 = x.fma(b0, c00); c01 = x.fma(b1, c01); c02 = x.fma(b2, c02); c03 = x.fma(b3, c03);
            x = FloatVector.broadcast(S, a[ai + 1]);
            c10 = x.fma(b0, c10); c11 = x.fma(b1, c11); c12 = x.fma(b2, c12); c13 = x.fma(b3, c13);
            x = FloatVector.broadcast(S, a[ai + 2]);
            c20 = x.fma(b0, c20); c21 = x.fma(b1, c21); c22 = x.fma(b2, c22); c23 = x.fma(b3, c23);
        }
        int o = outOff;
        c00.intoArray(out, o); c01.intoArray(out, o + L); c02.intoArray(out, o + 2 * L); c03.intoArray(out, o + 3 * L); o += ldo;
        c10.intoArray(out, o); c11.intoArray(out, o + L); c12.intoArray(out, o + 2 * L); c13.intoArray(out, o + 3 * L); o += ldo;
        c20.intoArray(out, o); c21.intoArray(out, o + L); c22.intoArray(out, o + 2 * L); c23.intoArray(out, o + 3 * L);
    }

    @Override
    public void gradTile(int nq, float[] g, int gOff, int ldg, float[] src, int srcOff, int[] off, int offIdx,
                         float[] dw, int dwOff, int ldw) {
        FloatVector z = FloatVector.zero(S);
        FloatVector a00 = z, a01 = z, a02 = z, a03 = z, a10 = z, a11 = z, a12 = z, a13 = z;
        FloatVector a20 = z, a21 = z, a22 = z, a23 = z, a30 = z, a31 = z, a32 = z, a33 = z;
        int g0 = gOff, g1 = gOff + ldg, g2 = gOff + 2 * ldg, g3 = gOff + 3 * ldg;
        int s0 = srcOff + off[offIdx], s1 = srcOff + off[offIdx + 1];
        int s2 = srcOff + off[offIdx + 2], s3 = srcOff + off[offIdx + 3];
        for (int q = 0; q < nq; q += L) {
            FloatVector x0 = FloatVector.fromArray(S, src, s0 + q), x1 = FloatVector.fromArray(S, src, s1 + q);
            FloatVector x2 = FloatVector.fromArray(S, src, s2 + q), x3 = FloatVector.fromArray(S, src, s3 + q);
            FloatVector d = FloatVector.fromArray(S, g, g0 + q);
            a00 = d.fma(x0, a00); a01 = d.fma(x1, a01); a02 = d.fma(x2, a02); a03 = d.fma(x3, a03);
            d = FloatVector.fromArray(S, g, g1 + q);
            a10 = d.fma(x0, a10); a11 = d.fma(x1, a11); a12 = d.fma(x2, a12); a13 = d.fma(x3, a13);
            d = FloatVector.fromArray(S, g, g2 + q);
            a20 = d.fma(x0, a20); a21 = d.fma(x1, a21); a22 = d.fma(x2, a22); a23 = d.fma(x3, a23);
            d = FloatVector.fromArray(S, g, g3 + q);
            a30 = d.fma(x0, a30); a31 = d.fma(x1, a31); a32 = d.fma(x2, a32); a33 = d.fma(x3, a33);
        }
        // Lane sums in a fixed order, in scalar code. Not reduceLanes: its JIT intrinsic and its interpreted
        // fallback add the lanes in different orders, so results would depend on whether the code was compiled
        // yet (seen on JDK 25 as 1-thread vs 3-thread differences in backwardWeight).
        float[] t = LANES.get();
        a00.intoArray(t, 0); a01.intoArray(t, L); a02.intoArray(t, 2 * L); a03.intoArray(t, 3 * L);
        a10.intoArray(t, 4 * L); a11.intoArray(t, 5 * L); a12.intoArray(t, 6 * L); a13.intoArray(t, 7 * L);
        a20.intoArray(t, 8 * L); a21.intoArray(t, 9 * L); a22.intoArray(t, 10 * L); a23.intoArray(t, 11 * L);
        a30.intoArray(t, 12 * L); a31.intoArray(t, 13 * L); a32.intoArray(t, 14 * L); a33.intoArray(t, 15 * L);
        for (int i = 0; i < GRAD_ROWS; i++) {
            for (int j = 0; j < GRAD_COLS; j++) {
                int base = (i * GRAD_COLS + j) * L;
                float sum = 0;
                for (int l = 0; l < L; l++) sum += t[base + l];
                dw[dwOff + i * ldw + j] += sum;
            }
        }
    }

    @Override public int gradMr() { return MR; }

    @Override public int gradNr() { return NR; }

    @Override
    public void gradShiftTile(int nq, float[] src, int srcOff, int[] off, int offIdx, float[] gT, int gOff,
                              float[] dwT, int dOff, int ldd) {
        FloatVector z = FloatVector.zero(S);
        FloatVector c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z;
        FloatVector c40 = z, c41 = z, c50 = z, c51 = z, c60 = z, c61 = z, c70 = z, c71 = z;
        int s0 = srcOff + off[offIdx], s1 = srcOff + off[offIdx + 1], s2 = srcOff + off[offIdx + 2];
        int s3 = srcOff + off[offIdx + 3], s4 = srcOff + off[offIdx + 4], s5 = srcOff + off[offIdx + 5];
        int s6 = srcOff + off[offIdx + 6], s7 = srcOff + off[offIdx + 7];
        int gi = gOff;
        for (int q = 0; q < nq; q++, gi += NR) {
            FloatVector b0 = FloatVector.fromArray(S, gT, gi), b1 = FloatVector.fromArray(S, gT, gi + L);
            FloatVector x = FloatVector.broadcast(S, src[s0 + q]);
            c00 = x.fma(b0, c00); c01 = x.fma(b1, c01);
            x = FloatVector.broadcast(S, src[s1 + q]);
            c10 = x.fma(b0, c10); c11 = x.fma(b1, c11);
            x = FloatVector.broadcast(S, src[s2 + q]);
            c20 = x.fma(b0, c20); c21 = x.fma(b1, c21);
            x = FloatVector.broadcast(S, src[s3 + q]);
            c30 = x.fma(b0, c30); c31 = x.fma(b1, c31);
            x = FloatVector.broadcast(S, src[s4 + q]);
            c40 = x.fma(b0, c40); c41 = x.fma(b1, c41);
            x = FloatVector.broadcast(S, src[s5 + q]);
            c50 = x.fma(b0, c50); c51 = x.fma(b1, c51);
            x = FloatVector.broadcast(S, src[s6 + q]);
            c60 = x.fma(b0, c60); c61 = x.fma(b1, c61);
            x = FloatVector.broadcast(S, src[s7 + q]);
            c70 = x.fma(b0, c70); c71 = x.fma(b1, c71);
        }
        // Lane-wise adds into the partial: exact and order-fixed in compiled and interpreted code alike.
        int o = dOff;
        c00.add(FloatVector.fromArray(S, dwT, o)).intoArray(dwT, o);
        c01.add(FloatVector.fromArray(S, dwT, o + L)).intoArray(dwT, o + L); o += ldd;
        c10.add(FloatVector.fromArray(S, dwT, o)).intoArray(dwT, o);
        c11.add(FloatVector.fromArray(S, dwT, o + L)).intoArray(dwT, o + L); o += ldd;
        c20.add(FloatVector.fromArray(S, dwT, o)).intoArray(dwT, o);
        c21.add(FloatVector.fromArray(S, dwT, o + L)).intoArray(dwT, o + L); o += ldd;
        c30.add(FloatVector.fromArray(S, dwT, o)).intoArray(dwT, o);
        c31.add(FloatVector.fromArray(S, dwT, o + L)).intoArray(dwT, o + L); o += ldd;
        c40.add(FloatVector.fromArray(S, dwT, o)).intoArray(dwT, o);
        c41.add(FloatVector.fromArray(S, dwT, o + L)).intoArray(dwT, o + L); o += ldd;
        c50.add(FloatVector.fromArray(S, dwT, o)).intoArray(dwT, o);
        c51.add(FloatVector.fromArray(S, dwT, o + L)).intoArray(dwT, o + L); o += ldd;
        c60.add(FloatVector.fromArray(S, dwT, o)).intoArray(dwT, o);
        c61.add(FloatVector.fromArray(S, dwT, o + L)).intoArray(dwT, o + L); o += ldd;
        c70.add(FloatVector.fromArray(S, dwT, o)).intoArray(dwT, o);
        c71.add(FloatVector.fromArray(S, dwT, o + L)).intoArray(dwT, o + L);
    }

    // Winograd row transforms: the same formulas as ScalarConvMicroKernels, lane-wise, which also does the tail (the
    // operations match one for one, so every element gets the same bits either way).
    private static final ScalarConvMicroKernels TAIL = new ScalarConvMicroKernels();

    @Override
    public void winogradInput(float[] p, int pOff, int ld, int lo, int hi, int len, float[] v, int vOff, int vStride) {
        // Rows outside [lo, hi) are zero vectors, the same +0 a zero-padded copy would hold.
        boolean r0 = lo <= 0 && hi > 0, r1 = lo <= 1 && hi > 1, r2 = lo <= 2 && hi > 2;
        boolean r3 = lo <= 3 && hi > 3, r4 = lo <= 4 && hi > 4, r5 = lo <= 5 && hi > 5;
        FloatVector z = FloatVector.zero(S);
        int t = 0;
        for (; t <= len - L; t += L) {
            int o = pOff + t;
            FloatVector d0 = r0 ? FloatVector.fromArray(S, p, o) : z, d1 = r1 ? FloatVector.fromArray(S, p, o + ld) : z;
            FloatVector d2 = r2 ? FloatVector.fromArray(S, p, o + 2 * ld) : z, d3 = r3 ? FloatVector.fromArray(S, p, o + 3 * ld) : z;
            FloatVector d4 = r4 ? FloatVector.fromArray(S, p, o + 4 * ld) : z, d5 = r5 ? FloatVector.fromArray(S, p, o + 5 * ld) : z;
            int w = vOff + t;
            d0.mul(4f).sub(d2.mul(5f)).add(d4).intoArray(v, w);
            d4.add(d3).sub(d1.add(d2).mul(4f)).intoArray(v, w + vStride);
            d4.sub(d3).add(d1.sub(d2).mul(4f)).intoArray(v, w + 2 * vStride);
            FloatVector e = d4.sub(d2), f = d3.sub(d1).mul(2f);
            e.add(f).intoArray(v, w + 3 * vStride);
            e.sub(f).intoArray(v, w + 4 * vStride);
            d1.mul(4f).sub(d3.mul(5f)).add(d5).intoArray(v, w + 5 * vStride);
        }
        TAIL.winogradInput(p, pOff + t, ld, lo, hi, len - t, v, vOff + t, vStride);
    }

    // winogradInputImages and winogradOutputImages spell out winogradInput's and winogradOutput's formulas rather
    // than call them per row: a small per-row caller is what C2 inlined into the convolution's unit loop, where some
    // JVMs boxed its vectors (see ConvMicroKernels#winogradOutputImages).
    @Override
    public void winogradInputImages(float[] x, int xOff, int xImg, int w, int lo, int hi, int imgs, float[] v, int vOff,
                                    int wp, int pw, int vStride) {
        boolean r0 = lo <= 0 && hi > 0, r1 = lo <= 1 && hi > 1, r2 = lo <= 2 && hi > 2;
        boolean r3 = lo <= 3 && hi > 3, r4 = lo <= 4 && hi > 4, r5 = lo <= 5 && hi > 5;
        FloatVector z = FloatVector.zero(S);
        for (int img = 0; img < imgs; img++) {
            int src = xOff + img * xImg, dst = vOff + img * wp + pw;
            int t = 0;
            for (; t <= w - L; t += L) {
                int o = src + t;
                FloatVector d0 = r0 ? FloatVector.fromArray(S, x, o) : z, d1 = r1 ? FloatVector.fromArray(S, x, o + w) : z;
                FloatVector d2 = r2 ? FloatVector.fromArray(S, x, o + 2 * w) : z, d3 = r3 ? FloatVector.fromArray(S, x, o + 3 * w) : z;
                FloatVector d4 = r4 ? FloatVector.fromArray(S, x, o + 4 * w) : z, d5 = r5 ? FloatVector.fromArray(S, x, o + 5 * w) : z;
                int q = dst + t;
                d0.mul(4f).sub(d2.mul(5f)).add(d4).intoArray(v, q);
                d4.add(d3).sub(d1.add(d2).mul(4f)).intoArray(v, q + vStride);
                d4.sub(d3).add(d1.sub(d2).mul(4f)).intoArray(v, q + 2 * vStride);
                FloatVector e = d4.sub(d2), f = d3.sub(d1).mul(2f);
                e.add(f).intoArray(v, q + 3 * vStride);
                e.sub(f).intoArray(v, q + 4 * vStride);
                d1.mul(4f).sub(d3.mul(5f)).add(d5).intoArray(v, q + 5 * vStride);
            }
            TAIL.winogradInput(x, src + t, w, lo, hi, w - t, v, dst + t, vStride);
            ScalarConvMicroKernels.zeroPadding(v, dst - pw, w, wp, pw, vStride);
        }
    }

    @Override
    public void winogradOutput(float[] m, int mOff, int mStride, int len, float bias, float[] y, int yOff, int ldy, int rows) {
        int t = 0;
        for (; t <= len - L; t += L) {
            int o = mOff + t;
            FloatVector m0 = FloatVector.fromArray(S, m, o), m1 = FloatVector.fromArray(S, m, o + mStride);
            FloatVector m2 = FloatVector.fromArray(S, m, o + 2 * mStride), m3 = FloatVector.fromArray(S, m, o + 3 * mStride);
            FloatVector m4 = FloatVector.fromArray(S, m, o + 4 * mStride);
            FloatVector s12 = m1.add(m2), d12 = m1.sub(m2), s34 = m3.add(m4), d34 = m3.sub(m4);
            int w = yOff + t;
            m0.add(s12).add(s34).add(bias).intoArray(y, w);
            if (rows > 1) d12.add(d34.mul(2f)).add(bias).intoArray(y, w + ldy);
            if (rows > 2) s12.add(s34.mul(4f)).add(bias).intoArray(y, w + 2 * ldy);
            if (rows > 3) {
                FloatVector m5 = FloatVector.fromArray(S, m, o + 5 * mStride);
                d12.add(d34.mul(8f)).add(m5).add(bias).intoArray(y, w + 3 * ldy);
            }
        }
        TAIL.winogradOutput(m, mOff + t, mStride, len - t, bias, y, yOff + t, ldy, rows);
    }

    @Override
    public void winogradOutputImages(float[] m, int mOff, int mStride, int rs, int wp, int imgs, int tiles, int oh, int ow,
                                     float bias, float[] y, int yOff, int yImg, boolean add) {
        for (int img = 0; img < imgs; img++) {
            for (int t = 0; t < tiles; t++) {
                int rows = Math.min(4, oh - 4 * t), mRow = mOff + t * rs + img * wp, yRow = yOff + img * yImg + 4 * t * ow;
                int x = 0;
                for (; x <= ow - L; x += L) {
                    int o = mRow + x, w = yRow + x;
                    FloatVector m0 = FloatVector.fromArray(S, m, o), m1 = FloatVector.fromArray(S, m, o + mStride);
                    FloatVector m2 = FloatVector.fromArray(S, m, o + 2 * mStride), m3 = FloatVector.fromArray(S, m, o + 3 * mStride);
                    FloatVector m4 = FloatVector.fromArray(S, m, o + 4 * mStride), m5 = FloatVector.fromArray(S, m, o + 5 * mStride);
                    FloatVector s12 = m1.add(m2), d12 = m1.sub(m2), s34 = m3.add(m4), d34 = m3.sub(m4);
                    FloatVector y0 = m0.add(s12).add(s34).add(bias), y1 = d12.add(d34.mul(2f)).add(bias);
                    FloatVector y2 = s12.add(s34.mul(4f)).add(bias), y3 = d12.add(d34.mul(8f)).add(m5).add(bias);
                    if (add) {
                        FloatVector.fromArray(S, y, w).add(y0).intoArray(y, w);
                        if (rows > 1) FloatVector.fromArray(S, y, w + ow).add(y1).intoArray(y, w + ow);
                        if (rows > 2) FloatVector.fromArray(S, y, w + 2 * ow).add(y2).intoArray(y, w + 2 * ow);
                        if (rows > 3) FloatVector.fromArray(S, y, w + 3 * ow).add(y3).intoArray(y, w + 3 * ow);
                    } else {
                        y0.intoArray(y, w);
                        if (rows > 1) y1.intoArray(y, w + ow);
                        if (rows > 2) y2.intoArray(y, w + 2 * ow);
                        if (rows > 3) y3.intoArray(y, w + 3 * ow);
                    }
                }
                ScalarConvMicroKernels.outputRows(m, mRow + x, mStride, ow - x, bias, y, yRow + x, ow, rows, add);
            }
        }
    }

    @Override
    public void winogradOutputAdjoint(float[] g, int gOff, int ld, int rows, int len, float[] d, int dOff, int dStride) {
        FloatVector z = FloatVector.zero(S);
        int t = 0;
        for (; t <= len - L; t += L) {
            int o = gOff + t;
            FloatVector g0 = FloatVector.fromArray(S, g, o);
            FloatVector g1 = rows > 1 ? FloatVector.fromArray(S, g, o + ld) : z;
            FloatVector g2 = rows > 2 ? FloatVector.fromArray(S, g, o + 2 * ld) : z;
            FloatVector g3 = rows > 3 ? FloatVector.fromArray(S, g, o + 3 * ld) : z;
            FloatVector s02 = g0.add(g2), s13 = g1.add(g3), q02 = g0.add(g2.mul(4f)), q13 = g1.mul(2f).add(g3.mul(8f));
            int w = dOff + t;
            g0.intoArray(d, w);
            s02.add(s13).intoArray(d, w + dStride);
            s02.sub(s13).intoArray(d, w + 2 * dStride);
            q02.add(q13).intoArray(d, w + 3 * dStride);
            q02.sub(q13).intoArray(d, w + 4 * dStride);
            g3.intoArray(d, w + 5 * dStride);
        }
        TAIL.winogradOutputAdjoint(g, gOff + t, ld, rows, len - t, d, dOff + t, dStride);
    }

    /**
     * Each pair of floats is read as one long; narrowing the longs to ints keeps the low halves (the even columns,
     * x86 being little-endian), and shifting them right by 32 first keeps the high halves (the odd ones). Two vectors
     * of pairs narrow into the lower and upper halves of one full vector (conversion parts 0 and -1). Narrowing and
     * shifts compile to single instructions, where the Vector API's shuffles and gathers did not on JDK 17.
     *
     * <p>Every vector here is of the preferred shape, on purpose. An earlier version narrowed into half-width vectors
     * and stored those: on JDK 17 that made the JIT's type profile of the shared {@code FloatVector.intoArray} see two
     * vector classes, after which it no longer compiled the stores of other kernels (gradShiftTile's) to intrinsics,
     * and boxed their vectors: 40 MiB of garbage per ResNet-20 step. {@code StepTimes} reports the allocation.
     */
    @Override public void deinterleave(float[] x, int xOff, int pairs, float[] even, int eOff, float[] odd, int oOff) {
        int m = 0;
        for (; m + L <= pairs; m += L) {
            LongVector v0 = FloatVector.fromArray(S, x, xOff + 2 * m).reinterpretAsLongs();
            LongVector v1 = FloatVector.fromArray(S, x, xOff + 2 * m + L).reinterpretAsLongs();
            ((IntVector) v0.convertShape(VectorOperators.L2I, INTS, 0)).or((IntVector) v1.convertShape(VectorOperators.L2I, INTS, -1))
                    .reinterpretAsFloats().intoArray(even, eOff + m);
            ((IntVector) v0.lanewise(VectorOperators.LSHR, 32).convertShape(VectorOperators.L2I, INTS, 0))
                    .or((IntVector) v1.lanewise(VectorOperators.LSHR, 32).convertShape(VectorOperators.L2I, INTS, -1))
                    .reinterpretAsFloats().intoArray(odd, oOff + m);
        }
        TAIL.deinterleave(x, xOff + 2 * m, pairs - m, even, eOff + m, odd, oOff + m);
    }

    @Override public void deinterleaveSpilling(float[] x, int xOff, int pairs, float[] even, int eOff, float[] odd, int oOff) {
        if (2 * pairs != L) {
            deinterleave(x, xOff, pairs, even, eOff, odd, oOff);
            return;
        }
        // One vector of pairs narrowed alone: the upper half of each result is zeros, stored past the row (the spill).
        LongVector v = FloatVector.fromArray(S, x, xOff).reinterpretAsLongs();
        ((IntVector) v.convertShape(VectorOperators.L2I, INTS, 0)).reinterpretAsFloats().intoArray(even, eOff);
        ((IntVector) v.lanewise(VectorOperators.LSHR, 32).convertShape(VectorOperators.L2I, INTS, 0))
                .reinterpretAsFloats().intoArray(odd, oOff);
    }

    @Override public void addRow(float[] src, int sOff, float[] dst, int dOff, int len) {
        int i = 0;
        for (; i + L <= len; i += L) {
            FloatVector.fromArray(S, dst, dOff + i).add(FloatVector.fromArray(S, src, sOff + i)).intoArray(dst, dOff + i);
        }
        TAIL.addRow(src, sOff + i, dst, dOff + i, len - i);
    }
}
