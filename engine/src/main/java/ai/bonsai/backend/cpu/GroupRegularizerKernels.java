package ai.bonsai.backend.cpu;

/**
 * CPU kernels of DSP's group-channel regulariser (spec sections 3 and 4, step 8): the fused penalty / dR/dp /
 * pieces pass and the second-order term. The formulas and the overwrite/accumulate contract are in
 * {@link ai.bonsai.backend.Backend#groupRegularizer} and {@link ai.bonsai.backend.Backend#groupSecondOrderAdd};
 * the naive double-precision references they are tested against live in the engine tests
 * ({@code GroupRegularizerKernelsTest}).
 *
 * <p>Structure. Everything that touches every weight (||W[n,c]||^2, &lt;W[n,c], D[n,c]&gt;, the penalty) is
 * independent of the group, so it is done once per layer and split over filter rows; the per-group work is
 * only O(groups * filters * channels). Each parallel task writes its own rows and sums always run in the same
 * order, so results do not depend on the thread count.
 */
final class GroupRegularizerKernels {
    /** The guard the reference adds to every divisor. */
    static final double EPS = 1e-8;
    /** Below about this many weight elements a pass runs on the calling thread. */
    private static final int GRAIN = 1 << 15;

    private GroupRegularizerKernels() {}

    // w is (n, c, kk), p is (g, n), penalty like w, dRdp (g, n), pieces (g, 2 + 2n + c)
    static void regularize(float[] w, float[] p, int groups, int n, int c, int kk, float scale,
                           float[] penalty, float[] dRdp, boolean accumulate, float[] pieces) {
        double[] sq = rowDots(w, w, n, c, kk);
        double[] invL = new double[groups * c];      // 1 / (L_gc + eps)
        double[] sG = new double[groups];
        int row = 2 + 2 * n + c;
        // The group pass is tiny next to the weight passes; parallel over groups only for wide layers.
        Parallel.RangeBody groupPass = (from, to) -> {
            for (int g = from; g < to; g++) groupStats(p, sq, g, n, c, invL, sG, dRdp, accumulate, pieces, row);
        };
        if ((long) groups * n * c >= GRAIN) Parallel.forRange(groups, 1, groupPass);
        else groupPass.run(0, groups);

        // penalty[n,c,:] = scale * sum_g s_g p_gn^2 / (L_gc + eps) * W[n,c,:]
        Parallel.forRange(n, rowGrain(c, kk), (from, to) -> {
            for (int f = from; f < to; f++) {
                for (int ch = 0; ch < c; ch++) {
                    double coef = 0;
                    for (int g = 0; g < groups; g++) {
                        double pg = p[g * n + f];
                        coef += sG[g] * pg * pg * invL[g * c + ch];
                    }
                    float k = (float) (scale * coef);
                    int base = (f * c + ch) * kk;
                    for (int j = 0; j < kk; j++) penalty[base + j] = k * w[base + j];
                }
            }
        });
    }

    /** One group's norms, size term, dR/dp and pieces. */
    private static void groupStats(float[] p, double[] sq, int g, int n, int c, double[] invL, double[] sG,
                                   float[] dRdp, boolean accumulate, float[] pieces, int row) {
        int pOff = g * n;
        double bigS = 0;
        for (int f = 0; f < n; f++) bigS += Math.sqrt(Math.max(0f, p[pOff + f]));
        double s = bigS * bigS;
        sG[g] = s;
        double[] l2 = new double[c];
        for (int f = 0; f < n; f++) {
            double pf = p[pOff + f], w2 = pf * pf;
            if (w2 == 0) continue;
            int base = f * c;
            for (int ch = 0; ch < c; ch++) l2[ch] += w2 * sq[base + ch];
        }
        double sumL = 0;
        for (int ch = 0; ch < c; ch++) {
            double l = Math.sqrt(l2[ch]);
            sumL += l;
            invL[g * c + ch] = 1 / (l + EPS);
            if (pieces != null) pieces[g * row + 2 + 2 * n + ch] = (float) l;
        }
        if (pieces != null) {
            pieces[g * row] = (float) s;
            pieces[g * row + 1] = (float) sumL;
        }
        for (int f = 0; f < n; f++) {
            double pf = p[pOff + f];
            double acc = 0;
            int base = f * c;
            for (int ch = 0; ch < c; ch++) acc += sq[base + ch] * invL[g * c + ch];
            double dLdp = pf * acc;
            double dsdp = Math.sqrt(Math.max(0, pf)) * s / (pf * bigS + EPS);
            if (dRdp != null) {
                float v = (float) (s * dLdp + sumL * dsdp);
                if (accumulate) dRdp[pOff + f] += v;
                else dRdp[pOff + f] = v;
            }
            if (pieces != null) {
                pieces[g * row + 2 + f] = (float) dsdp;
                pieces[g * row + 2 + n + f] = (float) dLdp;
            }
        }
    }

    // w, d (n, c, kk); p, pgrad (g, n); pieces (g, 2 + 2n + c)
    static void secondOrderAdd(float[] w, float[] d, float[] p, float[] pieces, int groups, int n, int c, int kk,
                               float[] pgrad) {
        double[] q = rowDots(w, d, n, c, kk);
        int row = 2 + 2 * n + c;
        // Each (g, n) entry is independent: split over filters so that every task owns whole pgrad columns.
        Parallel.forRange(n, Math.max(1, GRAIN / Math.max(1, groups * c)), (from, to) -> {
            for (int g = 0; g < groups; g++) {
                int pr = g * row;
                double s = pieces[pr];
                for (int f = from; f < to; f++) {
                    double pf = p[g * n + f];
                    double dsdp = pieces[pr + 2 + f], dLdp = pieces[pr + 2 + n + f];
                    double a1 = 0, a3 = 0;              // sum_c q / l and sum_c q / l^2; p factors applied below
                    int base = f * c;
                    for (int ch = 0; ch < c; ch++) {
                        double inv = 1 / (pieces[pr + 2 + 2 * n + ch] + EPS);
                        double t = q[base + ch] * inv;
                        a1 += t;
                        a3 += t * inv;
                    }
                    double a2 = pf * a1;
                    a1 *= pf * pf;
                    a3 *= pf * pf;
                    pgrad[g * n + f] += (float) (dsdp * a1 + s * (2 * a2 - dLdp * a3));
                }
            }
        });
    }

    /** out[n, c] = sum over the kernel of a[n,c,:] * b[n,c,:], in double. */
    private static double[] rowDots(float[] a, float[] b, int n, int c, int kk) {
        double[] out = new double[n * c];
        Parallel.forRange(n, rowGrain(c, kk), (from, to) -> {
            for (int i = from * c; i < to * c; i++) {
                int base = i * kk;
                double acc = 0;
                for (int j = 0; j < kk; j++) acc += (double) a[base + j] * b[base + j];
                out[i] = acc;
            }
        });
        return out;
    }

    private static int rowGrain(int c, int kk) { return Math.max(1, GRAIN / Math.max(1, c * kk)); }
}
