package ai.bonsai.backend.cpu.simd;

import ai.bonsai.backend.cpu.ElementwiseKernels;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector API {@link ElementwiseKernels}. Sums keep one vector of float partial sums per 16-element block
 * (AVX-512) and fold them into a double per block, which keeps the error close to the scalar double sum
 * while running at memory speed; the block order is fixed, so results are deterministic.
 */
public final class VectorElementwise implements ElementwiseKernels {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    /** Elements folded into the double total at a time: short enough that float partials stay accurate. */
    private static final int BLOCK = 64 * L;

    @Override public void reluBackward(float[] g, float[] x, float[] out, int from, int to) {
        int i = from;
        FloatVector zero = FloatVector.zero(S);
        for (; i <= to - L; i += L) {
            FloatVector xv = FloatVector.fromArray(S, x, i);
            VectorMask<Float> pos = xv.compare(VectorOperators.GT, 0f);
            zero.blend(FloatVector.fromArray(S, g, i), pos).intoArray(out, i);
        }
        for (; i < to; i++) out[i] = x[i] > 0f ? g[i] : 0f;
    }

    /**
     * Each row is reduced in BLOCK-sized pieces, each piece's vector partial sums folded into the row's double.
     * (Keeping the vector partial sums live across rows was 3-30x slower on JDK 17, whose C2 then fails to keep the
     * vectors in registers: measured again for short rows, where the per-row fold costs most.) The lanes of a piece
     * are summed in lane order, not by reduceLanes: its JIT intrinsic and its interpreted fallback add the lanes in
     * different orders, which on JDK 25 made a training run's bits depend on how far the JIT had got
     * (CliTest.resumeContinuesBitExactly).
     *
     * <p>Rows of at most one piece (every CIFAR shape: 64, 256 and 1024 floats) are taken {@link #CHUNK} at a time:
     * their pieces' vectors are stored, then {@link #fold} sums the lanes of four at once. Summed one row at a time,
     * the lane sums are one chain of dependent float adds each, which on the 8x8 stage's 64-float rows took longer
     * than reading the row. Every row's arithmetic is unchanged, so are its bits.
     */
    @Override public void rowMoments(float[] a, int off, int rows, int len, float[] shifts, double[] out, int o) {
        float[] parts = PARTS.get();
        int vecEnd = len - len % L, chunk = vecEnd <= BLOCK ? CHUNK : 1;
        for (int r0 = 0; r0 < rows; r0 += chunk) {
            int cr = Math.min(chunk, rows - r0);
            java.util.Arrays.fill(out, o + 2 * r0, o + 2 * (r0 + cr), 0.0);
            for (int b = 0; b < vecEnd; b += BLOCK) {
                int bEnd = Math.min(vecEnd, b + BLOCK);
                for (int j = 0; j < cr; j++) {
                    int r = r0 + j, row = off + r * len;
                    FloatVector k = FloatVector.broadcast(S, shifts == null ? 0f : shifts[r]);
                    FloatVector acc1 = FloatVector.zero(S), acc2 = FloatVector.zero(S);
                    for (int i = row + b, stop = row + bEnd - L; i <= stop; i += L) {
                        FloatVector d = FloatVector.fromArray(S, a, i).sub(k);
                        acc1 = acc1.add(d);
                        acc2 = d.fma(d, acc2);
                    }
                    acc1.intoArray(parts, 2 * j * L);
                    acc2.intoArray(parts, (2 * j + 1) * L);
                }
                fold(parts, 2 * cr, out, o + 2 * r0);
            }
            if (vecEnd == len) continue;
            for (int j = 0; j < cr; j++) {
                int r = r0 + j, row = off + r * len;
                float shift = shifts == null ? 0f : shifts[r];
                double r1 = out[o + 2 * r], r2 = out[o + 2 * r + 1];
                for (int i = row + vecEnd; i < row + len; i++) {
                    double d = a[i] - shift;
                    r1 += d;
                    r2 += d * d;
                }
                out[o + 2 * r] = r1;
                out[o + 2 * r + 1] = r2;
            }
        }
    }

    /** Rows taken at a time by the row reductions when a row is one piece. */
    private static final int CHUNK = 16;
    /** The row reductions' stored partial-sum vectors, per thread: two per row of a chunk. */
    private static final ThreadLocal<float[]> PARTS = ThreadLocal.withInitial(() -> new float[2 * CHUNK * L]);

    /**
     * out[o + m] += the lanes of parts' vector m, added in lane order in float, for m in [0, count): four vectors at a
     * time, so that four independent chains of adds overlap.
     */
    private static void fold(float[] parts, int count, double[] out, int o) {
        int m = 0;
        for (; m + 4 <= count; m += 4) {
            int p = m * L;
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (int l = 0; l < L; l++) {
                s0 += parts[p + l];
                s1 += parts[p + L + l];
                s2 += parts[p + 2 * L + l];
                s3 += parts[p + 3 * L + l];
            }
            out[o + m] += s0;
            out[o + m + 1] += s1;
            out[o + m + 2] += s2;
            out[o + m + 3] += s3;
        }
        for (; m < count; m++) {
            float s = 0;
            for (int l = 0; l < L; l++) s += parts[m * L + l];
            out[o + m] += s;
        }
    }

    @Override public void affine(float[] x, float[] y, int off, int len, float scale, float shift) {
        affineAct(x, null, false, y, off, len, scale, shift);
    }

    @Override public void batchNormInputGrad(float[] dy, float[] x, float[] dx, int off, int len, float k1, float meanDy, float mean, float k2) {
        maskedBatchNormInputGrad(dy, null, x, dx, off, len, k1, meanDy, mean, k2);
    }

    @Override public void affineAct(float[] x, float[] residual, boolean relu, float[] y, int off, int len, float scale, float shift) {
        int end = off + len, i = off;
        FloatVector sc = FloatVector.broadcast(S, scale), sh = FloatVector.broadcast(S, shift), zero = FloatVector.zero(S);
        for (; i <= end - L; i += L) {
            FloatVector v = FloatVector.fromArray(S, x, i).fma(sc, sh);
            if (residual != null) v = FloatVector.fromArray(S, residual, i).add(v);
            if (relu) v = v.max(zero);
            v.intoArray(y, i);
        }
        for (; i < end; i++) {
            float v = x[i] * scale + shift;
            if (residual != null) v = residual[i] + v;
            y[i] = relu ? Math.max(v, 0f) : v;
        }
    }

    /** Chunked and folded like {@link #rowMoments}; the mask (if any) applied as {@link #reluBackward} applies it. */
    @Override public void rowGradMoments(float[] g, float[] mask, float[] gOut, float[] x, int off, int rows, int len,
                                         float[] means, double[] out, int o) {
        FloatVector zero = FloatVector.zero(S);
        float[] parts = PARTS.get();
        int vecEnd = len - len % L, chunk = vecEnd <= BLOCK ? CHUNK : 1;
        for (int r0 = 0; r0 < rows; r0 += chunk) {
            int cr = Math.min(chunk, rows - r0);
            java.util.Arrays.fill(out, o + 2 * r0, o + 2 * (r0 + cr), 0.0);
            for (int b = 0; b < vecEnd; b += BLOCK) {
                int bEnd = Math.min(vecEnd, b + BLOCK);
                for (int j = 0; j < cr; j++) {
                    int r = r0 + j, row = off + r * len;
                    FloatVector m = FloatVector.broadcast(S, means[r]);
                    FloatVector acc = FloatVector.zero(S), accP = FloatVector.zero(S);
                    for (int i = row + b, stop = row + bEnd - L; i <= stop; i += L) {
                        FloatVector gv = FloatVector.fromArray(S, g, i);
                        if (mask != null) gv = zero.blend(gv, FloatVector.fromArray(S, mask, i).compare(VectorOperators.GT, 0f));
                        if (gOut != null) gv.intoArray(gOut, i);
                        acc = acc.add(gv);
                        accP = FloatVector.fromArray(S, x, i).sub(m).fma(gv, accP);
                    }
                    acc.intoArray(parts, 2 * j * L);
                    accP.intoArray(parts, (2 * j + 1) * L);
                }
                fold(parts, 2 * cr, out, o + 2 * r0);
            }
            if (vecEnd == len) continue;
            for (int j = 0; j < cr; j++) {
                int r = r0 + j, row = off + r * len;
                float mean = means[r];
                double rs = out[o + 2 * r], rp = out[o + 2 * r + 1];
                for (int i = row + vecEnd; i < row + len; i++) {
                    float gm = mask == null || mask[i] > 0f ? g[i] : 0f;
                    if (gOut != null) gOut[i] = gm;
                    rs += gm;
                    rp += (double) gm * (x[i] - mean);
                }
                out[o + 2 * r] = rs;
                out[o + 2 * r + 1] = rp;
            }
        }
    }

    @Override public void maskedBatchNormInputGrad(float[] dy, float[] mask, float[] x, float[] dx, int off, int len, float k1,
                                                   float meanDy, float mean, float k2) {
        int end = off + len, i = off;
        FloatVector vk1 = FloatVector.broadcast(S, k1), vmd = FloatVector.broadcast(S, meanDy),
                vm = FloatVector.broadcast(S, mean), vk2 = FloatVector.broadcast(S, k2), zero = FloatVector.zero(S);
        for (; i <= end - L; i += L) {
            FloatVector xc = FloatVector.fromArray(S, x, i).sub(vm);
            FloatVector g = FloatVector.fromArray(S, dy, i);
            if (mask != null) g = zero.blend(g, FloatVector.fromArray(S, mask, i).compare(VectorOperators.GT, 0f));
            FloatVector d = g.sub(vmd).sub(xc.mul(vk2));
            d.mul(vk1).intoArray(dx, i);
        }
        for (; i < end; i++) dx[i] = k1 * ((mask == null || mask[i] > 0f ? dy[i] : 0f) - meanDy - (x[i] - mean) * k2);
    }

    /** {@link #rowGradMoments}'s loop with the mask recomputed as {@link #affineAct} computes its output. */
    @Override public void rowGradMomentsReluOfAffine(float[] g, float[] x, int off, int rows, int len, float[] scales,
                                                     float[] shifts, float[] means, double[] out, int o) {
        FloatVector zero = FloatVector.zero(S);
        float[] parts = PARTS.get();
        int vecEnd = len - len % L, chunk = vecEnd <= BLOCK ? CHUNK : 1;
        for (int r0 = 0; r0 < rows; r0 += chunk) {
            int cr = Math.min(chunk, rows - r0);
            java.util.Arrays.fill(out, o + 2 * r0, o + 2 * (r0 + cr), 0.0);
            for (int b = 0; b < vecEnd; b += BLOCK) {
                int bEnd = Math.min(vecEnd, b + BLOCK);
                for (int j = 0; j < cr; j++) {
                    int r = r0 + j, row = off + r * len;
                    FloatVector m = FloatVector.broadcast(S, means[r]), sc = FloatVector.broadcast(S, scales[r]),
                            sh = FloatVector.broadcast(S, shifts[r]);
                    FloatVector acc = FloatVector.zero(S), accP = FloatVector.zero(S);
                    for (int i = row + b, stop = row + bEnd - L; i <= stop; i += L) {
                        FloatVector xv = FloatVector.fromArray(S, x, i);
                        FloatVector gv = zero.blend(FloatVector.fromArray(S, g, i), xv.fma(sc, sh).compare(VectorOperators.GT, 0f));
                        acc = acc.add(gv);
                        accP = xv.sub(m).fma(gv, accP);
                    }
                    acc.intoArray(parts, 2 * j * L);
                    accP.intoArray(parts, (2 * j + 1) * L);
                }
                fold(parts, 2 * cr, out, o + 2 * r0);
            }
            if (vecEnd == len) continue;
            for (int j = 0; j < cr; j++) {
                int r = r0 + j, row = off + r * len;
                float mean = means[r], scale = scales[r], shift = shifts[r];
                double rs = out[o + 2 * r], rp = out[o + 2 * r + 1];
                for (int i = row + vecEnd; i < row + len; i++) {
                    float gm = x[i] * scale + shift > 0f ? g[i] : 0f;
                    rs += gm;
                    rp += (double) gm * (x[i] - mean);
                }
                out[o + 2 * r] = rs;
                out[o + 2 * r + 1] = rp;
            }
        }
    }

    @Override public void reluOfAffineBatchNormInputGrad(float[] dy, float[] x, float[] dx, int off, int len, float scale,
                                                         float shift, float k1, float meanDy, float mean, float k2) {
        int end = off + len, i = off;
        FloatVector vk1 = FloatVector.broadcast(S, k1), vmd = FloatVector.broadcast(S, meanDy),
                vm = FloatVector.broadcast(S, mean), vk2 = FloatVector.broadcast(S, k2), zero = FloatVector.zero(S),
                sc = FloatVector.broadcast(S, scale), sh = FloatVector.broadcast(S, shift);
        for (; i <= end - L; i += L) {
            FloatVector xv = FloatVector.fromArray(S, x, i);
            FloatVector g = zero.blend(FloatVector.fromArray(S, dy, i), xv.fma(sc, sh).compare(VectorOperators.GT, 0f));
            FloatVector d = g.sub(vmd).sub(xv.sub(vm).mul(vk2));
            d.mul(vk1).intoArray(dx, i);
        }
        for (; i < end; i++) dx[i] = k1 * ((x[i] * scale + shift > 0f ? dy[i] : 0f) - meanDy - (x[i] - mean) * k2);
    }
}
