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
     * are summed in lane order by {@link #laneSum}, not by reduceLanes: its JIT intrinsic and its interpreted fallback
     * add the lanes in different orders, which on JDK 25 made a training run's bits depend on how far the JIT had got
     * (CliTest.resumeContinuesBitExactly).
     */
    @Override public void rowMoments(float[] a, int off, int rows, int len, float[] shifts, double[] out, int o) {
        float[] lanes = new float[L];
        for (int r = 0; r < rows; r++) {
            float shift = shifts == null ? 0f : shifts[r];
            FloatVector k = FloatVector.broadcast(S, shift);
            int i = off + r * len, end = i + len;
            double r1 = 0, r2 = 0;
            while (i <= end - L) {
                int stop = Math.min(end - L, i + BLOCK - L);
                FloatVector acc1 = FloatVector.zero(S), acc2 = FloatVector.zero(S);
                for (; i <= stop; i += L) {
                    FloatVector d = FloatVector.fromArray(S, a, i).sub(k);
                    acc1 = acc1.add(d);
                    acc2 = d.fma(d, acc2);
                }
                acc1.intoArray(lanes, 0);
                r1 += laneSum(lanes);
                acc2.intoArray(lanes, 0);
                r2 += laneSum(lanes);
            }
            for (; i < end; i++) {
                double d = a[i] - shift;
                r1 += d;
                r2 += d * d;
            }
            out[o + 2 * r] = r1;
            out[o + 2 * r + 1] = r2;
        }
    }

    /** The lanes added in lane order, in float (what reduceLanes computes, in one fixed order). */
    private static float laneSum(float[] lanes) {
        float sum = 0;
        for (float v : lanes) sum += v;
        return sum;
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

    /** Row by row like {@link #rowMoments}; the mask (if any) applied as {@link #reluBackward} applies it. */
    @Override public void rowGradMoments(float[] g, float[] mask, float[] gOut, float[] x, int off, int rows, int len,
                                         float[] means, double[] out, int o) {
        FloatVector zero = FloatVector.zero(S);
        float[] lanes = new float[L];
        for (int r = 0; r < rows; r++) {
            float mean = means[r];
            FloatVector m = FloatVector.broadcast(S, mean);
            int i = off + r * len, end = i + len;
            double rs = 0, rp = 0;
            while (i <= end - L) {
                int stop = Math.min(end - L, i + BLOCK - L);
                FloatVector acc = FloatVector.zero(S), accP = FloatVector.zero(S);
                for (; i <= stop; i += L) {
                    FloatVector gv = FloatVector.fromArray(S, g, i);
                    if (mask != null) gv = zero.blend(gv, FloatVector.fromArray(S, mask, i).compare(VectorOperators.GT, 0f));
                    if (gOut != null) gv.intoArray(gOut, i);
                    acc = acc.add(gv);
                    accP = FloatVector.fromArray(S, x, i).sub(m).fma(gv, accP);
                }
                acc.intoArray(lanes, 0);
                rs += laneSum(lanes);
                accP.intoArray(lanes, 0);
                rp += laneSum(lanes);
            }
            for (; i < end; i++) {
                float gm = mask == null || mask[i] > 0f ? g[i] : 0f;
                if (gOut != null) gOut[i] = gm;
                rs += gm;
                rp += (double) gm * (x[i] - mean);
            }
            out[o + 2 * r] = rs;
            out[o + 2 * r + 1] = rp;
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
        float[] lanes = new float[L];
        for (int r = 0; r < rows; r++) {
            float mean = means[r], scale = scales[r], shift = shifts[r];
            FloatVector m = FloatVector.broadcast(S, mean), sc = FloatVector.broadcast(S, scale), sh = FloatVector.broadcast(S, shift);
            int i = off + r * len, end = i + len;
            double rs = 0, rp = 0;
            while (i <= end - L) {
                int stop = Math.min(end - L, i + BLOCK - L);
                FloatVector acc = FloatVector.zero(S), accP = FloatVector.zero(S);
                for (; i <= stop; i += L) {
                    FloatVector xv = FloatVector.fromArray(S, x, i);
                    FloatVector gv = zero.blend(FloatVector.fromArray(S, g, i), xv.fma(sc, sh).compare(VectorOperators.GT, 0f));
                    acc = acc.add(gv);
                    accP = xv.sub(m).fma(gv, accP);
                }
                acc.intoArray(lanes, 0);
                rs += laneSum(lanes);
                accP.intoArray(lanes, 0);
                rp += laneSum(lanes);
            }
            for (; i < end; i++) {
                float gm = x[i] * scale + shift > 0f ? g[i] : 0f;
                rs += gm;
                rp += (double) gm * (x[i] - mean);
            }
            out[o + 2 * r] = rs;
            out[o + 2 * r + 1] = rp;
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
