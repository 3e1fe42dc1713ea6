package ai.bonsai.backend.cpu;

/**
 * 2-D convolution kernels on NCHW float arrays. All three overwrite their output.
 * x is (n, c, h, w), w is (k, c/groups, r, s), y is (n, k, outH, outW).
 */
public final class Conv2dKernels {
    private Conv2dKernels() {}

    /** y = conv(x, w) + bias; bias may be null. */
    public static void forward(ConvGeometry g, float[] x, float[] w, float[] bias, float[] y) {
        int oh = g.outH(), ow = g.outW(), cg = g.cg(), kg = g.kg();
        for (int n = 0; n < g.n(); n++)
            for (int k = 0; k < g.k(); k++) {
                int grp = k / kg;
                for (int i = 0; i < oh; i++)
                    for (int j = 0; j < ow; j++) {
                        float acc = bias == null ? 0 : bias[k];
                        for (int c = 0; c < cg; c++)
                            for (int r = 0; r < g.r(); r++) {
                                int hi = i * g.strideH() - g.padH() + r;
                                if (hi < 0 || hi >= g.h()) continue;
                                for (int s = 0; s < g.s(); s++) {
                                    int wi = j * g.strideW() - g.padW() + s;
                                    if (wi < 0 || wi >= g.w()) continue;
                                    acc += x[((n * g.c() + grp * cg + c) * g.h() + hi) * g.w() + wi]
                                         * w[((k * cg + c) * g.r() + r) * g.s() + s];
                                }
                            }
                        y[((n * g.k() + k) * oh + i) * ow + j] = acc;
                    }
            }
    }

    /** dx = conv_transpose(dy, w). */
    public static void backwardData(ConvGeometry g, float[] dy, float[] w, float[] dx) {
        java.util.Arrays.fill(dx, 0, g.n() * g.c() * g.h() * g.w(), 0f);
        int oh = g.outH(), ow = g.outW(), cg = g.cg(), kg = g.kg();
        for (int n = 0; n < g.n(); n++)
            for (int k = 0; k < g.k(); k++) {
                int grp = k / kg;
                for (int i = 0; i < oh; i++)
                    for (int j = 0; j < ow; j++) {
                        float d = dy[((n * g.k() + k) * oh + i) * ow + j];
                        for (int c = 0; c < cg; c++)
                            for (int r = 0; r < g.r(); r++) {
                                int hi = i * g.strideH() - g.padH() + r;
                                if (hi < 0 || hi >= g.h()) continue;
                                for (int s = 0; s < g.s(); s++) {
                                    int wi = j * g.strideW() - g.padW() + s;
                                    if (wi < 0 || wi >= g.w()) continue;
                                    dx[((n * g.c() + grp * cg + c) * g.h() + hi) * g.w() + wi] += d * w[((k * cg + c) * g.r() + r) * g.s() + s];
                                }
                            }
                    }
            }
    }

    /** dw = correlation of x with dy, summed over the batch. */
    public static void backwardWeight(ConvGeometry g, float[] x, float[] dy, float[] dw) {
        java.util.Arrays.fill(dw, 0, g.k() * g.cg() * g.r() * g.s(), 0f);
        int oh = g.outH(), ow = g.outW(), cg = g.cg(), kg = g.kg();
        for (int n = 0; n < g.n(); n++)
            for (int k = 0; k < g.k(); k++) {
                int grp = k / kg;
                for (int i = 0; i < oh; i++)
                    for (int j = 0; j < ow; j++) {
                        float d = dy[((n * g.k() + k) * oh + i) * ow + j];
                        for (int c = 0; c < cg; c++)
                            for (int r = 0; r < g.r(); r++) {
                                int hi = i * g.strideH() - g.padH() + r;
                                if (hi < 0 || hi >= g.h()) continue;
                                for (int s = 0; s < g.s(); s++) {
                                    int wi = j * g.strideW() - g.padW() + s;
                                    if (wi < 0 || wi >= g.w()) continue;
                                    dw[((k * cg + c) * g.r() + r) * g.s() + s] += d * x[((n * g.c() + grp * cg + c) * g.h() + hi) * g.w() + wi];
                                }
                            }
                    }
            }
    }
}
