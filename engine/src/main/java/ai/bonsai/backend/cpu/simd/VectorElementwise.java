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

    @Override public double sum(float[] a, int off, int len) {
        double total = 0;
        int end = off + len, i = off;
        while (i <= end - L) {
            int stop = Math.min(end - L, i + BLOCK - L);
            FloatVector acc = FloatVector.zero(S);
            for (; i <= stop; i += L) acc = acc.add(FloatVector.fromArray(S, a, i));
            total += acc.reduceLanes(VectorOperators.ADD);
        }
        for (; i < end; i++) total += a[i];
        return total;
    }

    @Override public double sumSquaredDeviation(float[] a, int off, int len, float mean) {
        double total = 0;
        int end = off + len, i = off;
        FloatVector m = FloatVector.broadcast(S, mean);
        while (i <= end - L) {
            int stop = Math.min(end - L, i + BLOCK - L);
            FloatVector acc = FloatVector.zero(S);
            for (; i <= stop; i += L) {
                FloatVector d = FloatVector.fromArray(S, a, i).sub(m);
                acc = d.fma(d, acc);
            }
            total += acc.reduceLanes(VectorOperators.ADD);
        }
        for (; i < end; i++) {
            double d = a[i] - mean;
            total += d * d;
        }
        return total;
    }

    @Override public double sumProductCentered(float[] g, float[] x, int off, int len, float mean) {
        double total = 0;
        int end = off + len, i = off;
        FloatVector m = FloatVector.broadcast(S, mean);
        while (i <= end - L) {
            int stop = Math.min(end - L, i + BLOCK - L);
            FloatVector acc = FloatVector.zero(S);
            for (; i <= stop; i += L) acc = FloatVector.fromArray(S, x, i).sub(m).fma(FloatVector.fromArray(S, g, i), acc);
            total += acc.reduceLanes(VectorOperators.ADD);
        }
        for (; i < end; i++) total += (double) g[i] * (x[i] - mean);
        return total;
    }

    @Override public void affine(float[] x, float[] y, int off, int len, float scale, float shift) {
        int end = off + len, i = off;
        FloatVector sc = FloatVector.broadcast(S, scale), sh = FloatVector.broadcast(S, shift);
        for (; i <= end - L; i += L) FloatVector.fromArray(S, x, i).fma(sc, sh).intoArray(y, i);
        for (; i < end; i++) y[i] = x[i] * scale + shift;
    }

    @Override public void batchNormInputGrad(float[] dy, float[] x, float[] dx, int off, int len, float k1, float meanDy, float mean, float k2) {
        int end = off + len, i = off;
        FloatVector vk1 = FloatVector.broadcast(S, k1), vmd = FloatVector.broadcast(S, meanDy),
                vm = FloatVector.broadcast(S, mean), vk2 = FloatVector.broadcast(S, k2);
        for (; i <= end - L; i += L) {
            FloatVector xc = FloatVector.fromArray(S, x, i).sub(vm);
            FloatVector d = FloatVector.fromArray(S, dy, i).sub(vmd).sub(xc.mul(vk2));
            d.mul(vk1).intoArray(dx, i);
        }
        for (; i < end; i++) dx[i] = k1 * (dy[i] - meanDy - (x[i] - mean) * k2);
    }
}
