package ai.bonsai.backend.cpu.simd;

import ai.bonsai.backend.cpu.GemmMicroKernel;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector API {@link GemmMicroKernel}: an 8 x (2 vectors) tile, i.e. 8x32 with AVX-512. Sixteen accumulators
 * plus two B vectors and one broadcast leave registers to spare. In a cache-resident loop this shape reaches the
 * FMA ceiling of one core (about 265 GFLOP/s on the reference machine) on JDK 17 and 25; 8x48 and 12x32 tiles
 * did as well on JDK 17, but 8x48 dropped to about 200 on JDK 25. Loaded only through
 * {@code VectorizationProvider.load}.
 */
public final class VectorGemmMicroKernel implements GemmMicroKernel {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    private static final int MR = 8, NR = 2 * L;

    @Override public int mr() { return MR; }

    @Override public int nr() { return NR; }

    @Override
    public void tile(int kc, float[] ap, int apOff, float[] bp, int bpOff, float alpha, float beta,
                     float[] c, int cOff, int ldc) {
        FloatVector z = FloatVector.zero(S);
        FloatVector c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z;
        FloatVector c40 = z, c41 = z, c50 = z, c51 = z, c60 = z, c61 = z, c70 = z, c71 = z;
        int ai = apOff, bi = bpOff;
        for (int p = 0; p < kc; p++, ai += MR, bi += NR) {
            FloatVector b0 = FloatVector.fromArray(S, bp, bi), b1 = FloatVector.fromArray(S, bp, bi + L);
            FloatVector x = FloatVector.broadcast(S, ap[ai]);
            c00 = x.fma(b0, c00); c01 = x.fma(b1, c01);
            x = FloatVector.broadcast(S, ap[ai + 1]);
            c10 = x.fma(b0, c10); c11 = x.fma(b1, c11);
            x = FloatVector.broadcast(S, ap[ai + 2]);
            c20 = x.fma(b0, c20); c21 = x.fma(b1, c21);
            x = FloatVector.broadcast(S, ap[ai + 3]);
            c30 = x.fma(b0, c30); c31 = x.fma(b1, c31);
            x = FloatVector.broadcast(S, ap[ai + 4]);
            c40 = x.fma(b0, c40); c41 = x.fma(b1, c41);
            x = FloatVector.broadcast(S, ap[ai + 5]);
            c50 = x.fma(b0, c50); c51 = x.fma(b1, c51);
            x = FloatVector.broadcast(S, ap[ai + 6]);
            c60 = x.fma(b0, c60); c61 = x.fma(b1, c61);
            x = FloatVector.broadcast(S, ap[ai + 7]);
            c70 = x.fma(b0, c70); c71 = x.fma(b1, c71);
        }
        // Spelled out rather than a helper taking vectors: a helper call that C2 declines to inline (it
        // hits NodeCountInliningCutoff here) boxes the vectors and costs 10x. Same rounding as the scalar
        // contract: t = alpha * acc, then t + beta * c (no fused multiply-add).
        int o = cOff;
        if (beta == 0) {
            c00.mul(alpha).intoArray(c, o); c01.mul(alpha).intoArray(c, o + L); o += ldc;
            c10.mul(alpha).intoArray(c, o); c11.mul(alpha).intoArray(c, o + L); o += ldc;
            c20.mul(alpha).intoArray(c, o); c21.mul(alpha).intoArray(c, o + L); o += ldc;
            c30.mul(alpha).intoArray(c, o); c31.mul(alpha).intoArray(c, o + L); o += ldc;
            c40.mul(alpha).intoArray(c, o); c41.mul(alpha).intoArray(c, o + L); o += ldc;
            c50.mul(alpha).intoArray(c, o); c51.mul(alpha).intoArray(c, o + L); o += ldc;
            c60.mul(alpha).intoArray(c, o); c61.mul(alpha).intoArray(c, o + L); o += ldc;
            c70.mul(alpha).intoArray(c, o); c71.mul(alpha).intoArray(c, o + L);
        } else {
            c00.mul(alpha).add(FloatVector.fromArray(S, c, o).mul(beta)).intoArray(c, o);
            c01.mul(alpha).add(FloatVector.fromArray(S, c, o + L).mul(beta)).intoArray(c, o + L); o += ldc;
            c10.mul(alpha).add(FloatVector.fromArray(S, c, o).mul(beta)).intoArray(c, o);
            c11.mul(alpha).add(FloatVector.fromArray(S, c, o + L).mul(beta)).intoArray(c, o + L); o += ldc;
            c20.mul(alpha).add(FloatVector.fromArray(S, c, o).mul(beta)).intoArray(c, o);
            c21.mul(alpha).add(FloatVector.fromArray(S, c, o + L).mul(beta)).intoArray(c, o + L); o += ldc;
            c30.mul(alpha).add(FloatVector.fromArray(S, c, o).mul(beta)).intoArray(c, o);
            c31.mul(alpha).add(FloatVector.fromArray(S, c, o + L).mul(beta)).intoArray(c, o + L); o += ldc;
            c40.mul(alpha).add(FloatVector.fromArray(S, c, o).mul(beta)).intoArray(c, o);
            c41.mul(alpha).add(FloatVector.fromArray(S, c, o + L).mul(beta)).intoArray(c, o + L); o += ldc;
            c50.mul(alpha).add(FloatVector.fromArray(S, c, o).mul(beta)).intoArray(c, o);
            c51.mul(alpha).add(FloatVector.fromArray(S, c, o + L).mul(beta)).intoArray(c, o + L); o += ldc;
            c60.mul(alpha).add(FloatVector.fromArray(S, c, o).mul(beta)).intoArray(c, o);
            c61.mul(alpha).add(FloatVector.fromArray(S, c, o + L).mul(beta)).intoArray(c, o + L); o += ldc;
            c70.mul(alpha).add(FloatVector.fromArray(S, c, o).mul(beta)).intoArray(c, o);
            c71.mul(alpha).add(FloatVector.fromArray(S, c, o + L).mul(beta)).intoArray(c, o + L);
        }
    }
}
