package ai.bonsai.data;

/**
 * Antialiased bilinear resizing of float images, as torchvision resizes tensors
 * ({@code interpolate(mode="bilinear", antialias=True, align_corners=False)}) and as Pillow's
 * {@code Image.resize(..., BILINEAR)} does: a triangle filter whose support is scaled by the downscale factor,
 * weights normalised over the part of the window inside the image. When upscaling the support is 1, which is
 * plain bilinear interpolation with align_corners=False and clamped edges.
 *
 * <p>Separable: a horizontal pass over the rows the output needs, then a vertical pass. Only an output window is
 * computed, so "resize then center crop" costs only the cropped pixels; each output pixel depends on its own
 * coordinates alone, so the window's pixels equal those of the full resize.
 */
final class Resample {
    private Resample() {}

    /** Per output index k: input start, count, and weights at w[k * ksize ..]. */
    record Coefficients(int[] start, int[] count, double[] w, int ksize) {}

    /**
     * Weights for resampling {@code inSize} input pixels to {@code outSize}, for the outputs
     * [{@code from}, {@code from + n}) (Pillow's precompute_coeffs, torch's _compute_indices_weights_aa).
     */
    static Coefficients coefficients(int inSize, int outSize, int from, int n) {
        double scale = (double) inSize / outSize;
        double filterScale = Math.max(scale, 1.0);
        double support = filterScale;                 // the triangle filter's support is 1
        double ss = 1.0 / filterScale;
        int ksize = (int) Math.ceil(support) * 2 + 1;
        int[] start = new int[n];
        int[] count = new int[n];
        double[] w = new double[n * ksize];
        for (int k = 0; k < n; k++) {
            double center = (from + k + 0.5) * scale;
            int xmin = Math.max((int) (center - support + 0.5), 0);   // (int) truncates toward zero, as C does
            int xmax = Math.min((int) (center + support + 0.5), inSize);
            int cnt = Math.max(0, Math.min(xmax - xmin, ksize));
            double total = 0;
            for (int j = 0; j < cnt; j++) {
                double x = Math.abs((j + xmin - center + 0.5) * ss);
                double v = x < 1 ? 1 - x : 0;
                w[k * ksize + j] = v;
                total += v;
            }
            if (total != 0) for (int j = 0; j < cnt; j++) w[k * ksize + j] /= total;
            start[k] = xmin;
            count[k] = cnt;
        }
        return new Coefficients(start, count, w, ksize);
    }

    /**
     * Resizes the box (bx, by, bw, bh) of the (c, srcH, srcW) image {@code src} to outW x outH and writes the output
     * window (ox, oy, ow, oh) into {@code dst} at {@code dstOff} as (c, oh, ow). The box is cropped first: pixels
     * outside it are never read (torchvision's crop-then-resize, not Pillow's resize(box=...)).
     */
    static void resize(float[] src, int c, int srcH, int srcW, int bx, int by, int bw, int bh,
                       int outW, int outH, int ox, int oy, int ow, int oh, float[] dst, int dstOff) {
        if (bx < 0 || by < 0 || bw < 1 || bh < 1 || bx + bw > srcW || by + bh > srcH) {
            throw new IllegalArgumentException("resize: box (" + bx + ", " + by + ", " + bw + "x" + bh + ") is not within the " + srcW + "x" + srcH + " image");
        }
        if (ox < 0 || oy < 0 || ow < 1 || oh < 1 || ox + ow > outW || oy + oh > outH) {
            throw new IllegalArgumentException("resize: window (" + ox + ", " + oy + ", " + ow + "x" + oh + ") is not within the " + outW + "x" + outH + " output");
        }
        Coefficients cx = coefficients(bw, outW, ox, ow);
        Coefficients cy = coefficients(bh, outH, oy, oh);
        // The box rows the vertical pass reads.
        int r0 = cy.start[0], r1 = r0;
        for (int k = 0; k < oh; k++) {
            r0 = Math.min(r0, cy.start[k]);
            r1 = Math.max(r1, cy.start[k] + cy.count[k]);
        }
        int rows = r1 - r0;
        double[] tmp = new double[rows * ow];
        double[] col = new double[0];
        for (int ch = 0; ch < c; ch++) {
            int plane = ch * srcH * srcW;
            for (int r = 0; r < rows; r++) {
                int rowBase = plane + (by + r0 + r) * srcW + bx;
                for (int k = 0; k < ow; k++) {
                    int s = cx.start[k], base = k * cx.ksize;
                    double acc = 0;
                    for (int j = 0; j < cx.count[k]; j++) acc += src[rowBase + s + j] * cx.w[base + j];
                    tmp[r * ow + k] = acc;
                }
            }
            int out = dstOff + ch * oh * ow;
            for (int k = 0; k < oh; k++) {
                int s = cy.start[k] - r0, base = k * cy.ksize;
                for (int x = 0; x < ow; x++) {
                    double acc = 0;
                    for (int j = 0; j < cy.count[k]; j++) acc += tmp[(s + j) * ow + x] * cy.w[base + j];
                    dst[out + k * ow + x] = (float) acc;
                }
            }
        }
    }
}
