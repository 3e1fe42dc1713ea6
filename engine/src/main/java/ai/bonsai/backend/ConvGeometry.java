package ai.bonsai.backend;

/**
 * The sizes of one 2-D convolution: input x is (n, c, h, w), weight is (k, c / groups, r, s),
 * output is (n, k, outH, outW). No dilation.
 */
public record ConvGeometry(int n, int c, int h, int w, int k, int r, int s,
                           int strideH, int strideW, int padH, int padW, int groups) {
    public ConvGeometry {
        if (n < 1 || c < 1 || h < 1 || w < 1 || k < 1 || r < 1 || s < 1 || strideH < 1 || strideW < 1 || padH < 0 || padW < 0 || groups < 1) {
            throw new IllegalArgumentException("conv2d: invalid geometry " + describe(n, c, h, w, k, r, s, strideH, strideW, padH, padW, groups));
        }
        if (c % groups != 0 || k % groups != 0) {
            throw new IllegalArgumentException("conv2d: groups=" + groups + " must divide input channels " + c + " and output channels " + k);
        }
        if (h + 2 * padH < r || w + 2 * padW < s) {
            throw new IllegalArgumentException("conv2d: kernel " + r + "x" + s + " is larger than the padded input " + (h + 2 * padH) + "x" + (w + 2 * padW));
        }
    }

    public int outH() { return (h + 2 * padH - r) / strideH + 1; }

    public int outW() { return (w + 2 * padW - s) / strideW + 1; }

    /** Input channels per group. */
    public int cg() { return c / groups; }

    /** Output channels per group. */
    public int kg() { return k / groups; }

    /** Multiply-adds of the forward pass. */
    public long macs() { return (long) n * k * cg() * r * s * outH() * outW(); }

    private static String describe(int n, int c, int h, int w, int k, int r, int s, int sh, int sw, int ph, int pw, int g) {
        return "x=(" + n + "," + c + "," + h + "," + w + ") w=(" + k + "," + (g > 0 ? c / g : c) + "," + r + "," + s + ") stride=" + sh + "x" + sw + " pad=" + ph + "x" + pw + " groups=" + g;
    }
}
