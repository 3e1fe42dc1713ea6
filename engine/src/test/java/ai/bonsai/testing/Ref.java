package ai.bonsai.testing;

import java.util.function.DoubleBinaryOperator;

/**
 * Naive double-precision reference implementations of the engine's ops: plain loops over row-major arrays,
 * written independently of the engine so that tests compare two implementations.
 */
public final class Ref {
    private Ref() {}

    /** The element count of a shape. */
    public static int numelOf(int[] d) { return numel(d); }

    static int numel(int[] d) {
        int n = 1;
        for (int x : d) n *= x;
        return n;
    }

    static int[] strides(int[] d) {
        int[] s = new int[d.length];
        int acc = 1;
        for (int i = d.length - 1; i >= 0; i--) { s[i] = acc; acc *= d[i]; }
        return s;
    }

    /** NumPy-broadcast binary op. */
    public static double[] binary(double[] a, int[] ad, double[] b, int[] bd, DoubleBinaryOperator f) {
        int r = Math.max(ad.length, bd.length);
        int[] A = pad(ad, r), B = pad(bd, r), O = new int[r];
        for (int i = 0; i < r; i++) O[i] = Math.max(A[i], B[i]);
        int[] as = strides(A), bs = strides(B);
        double[] out = new double[numel(O)];
        int[] idx = new int[r];
        for (int i = 0; i < out.length; i++) {
            int ai = 0, bi = 0;
            for (int d = 0; d < r; d++) {
                ai += (A[d] == 1 ? 0 : idx[d]) * as[d];
                bi += (B[d] == 1 ? 0 : idx[d]) * bs[d];
            }
            out[i] = f.applyAsDouble(a[ai], b[bi]);
            inc(idx, O);
        }
        return out;
    }

    static int[] pad(int[] d, int r) {
        int[] o = new int[r];
        java.util.Arrays.fill(o, 1);
        System.arraycopy(d, 0, o, r - d.length, d.length);
        return o;
    }

    static void inc(int[] idx, int[] dims) {
        for (int d = dims.length - 1; d >= 0; d--) {
            if (++idx[d] < dims[d]) return;
            idx[d] = 0;
        }
    }

    /** kind: 0 sum, 1 mean, 2 max; keeps reduced axes as size 1. */
    public static double[] reduce(double[] x, int[] d, boolean[] red, int kind) {
        int[] od = d.clone();
        int count = 1;
        for (int i = 0; i < d.length; i++) if (red[i]) { od[i] = 1; count *= d[i]; }
        double[] out = new double[numel(od)];
        if (kind == 2) java.util.Arrays.fill(out, Double.NEGATIVE_INFINITY);
        int[] os = strides(od), idx = new int[d.length];
        for (int i = 0; i < x.length; i++) {
            int o = 0;
            for (int k = 0; k < d.length; k++) o += (red[k] ? 0 : idx[k]) * os[k];
            out[o] = kind == 2 ? Math.max(out[o], x[i]) : out[o] + x[i];
            inc(idx, d);
        }
        if (kind == 1) for (int i = 0; i < out.length; i++) out[i] /= count;
        return out;
    }

    public static double[] permute(double[] x, int[] d, int[] perm) {
        int[] od = new int[d.length];
        for (int i = 0; i < d.length; i++) od[i] = d[perm[i]];
        int[] xs = strides(d);
        double[] out = new double[x.length];
        int[] idx = new int[d.length];
        for (int i = 0; i < out.length; i++) {
            int src = 0;
            for (int k = 0; k < d.length; k++) src += idx[k] * xs[perm[k]];
            out[i] = x[src];
            inc(idx, od);
        }
        return out;
    }

    public static double[] matmul(double[] a, double[] b, int batch, int m, int k, int n, boolean sharedB) {
        double[] c = new double[batch * m * n];
        for (int t = 0; t < batch; t++)
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    double s = 0;
                    for (int p = 0; p < k; p++) s += a[t * m * k + i * k + p] * b[(sharedB ? 0 : t * k * n) + p * n + j];
                    c[t * m * n + i * n + j] = s;
                }
        return c;
    }

    public static double[] conv2d(double[] x, double[] w, double[] bias, int n, int c, int h, int wd, int k, int r, int s,
                                  int stride, int pad, int groups) {
        int oh = (h + 2 * pad - r) / stride + 1, ow = (wd + 2 * pad - s) / stride + 1, cg = c / groups, kg = k / groups;
        double[] y = new double[n * k * oh * ow];
        for (int b = 0; b < n; b++)
            for (int o = 0; o < k; o++)
                for (int i = 0; i < oh; i++)
                    for (int j = 0; j < ow; j++) {
                        double acc = bias == null ? 0 : bias[o];
                        for (int ci = 0; ci < cg; ci++)
                            for (int p = 0; p < r; p++)
                                for (int q = 0; q < s; q++) {
                                    int hi = i * stride - pad + p, wi = j * stride - pad + q;
                                    if (hi < 0 || hi >= h || wi < 0 || wi >= wd) continue;
                                    acc += x[((b * c + (o / kg) * cg + ci) * h + hi) * wd + wi] * w[((o * cg + ci) * r + p) * s + q];
                                }
                        y[((b * k + o) * oh + i) * ow + j] = acc;
                    }
        return y;
    }

    /** Training-mode batch norm output (biased batch variance). */
    public static double[] batchNorm(double[] x, int n, int c, int hw, double[] gamma, double[] beta, double eps) {
        double[] y = new double[x.length];
        for (int ch = 0; ch < c; ch++) {
            double m = 0, v = 0;
            for (int b = 0; b < n; b++) for (int j = 0; j < hw; j++) m += x[(b * c + ch) * hw + j];
            m /= n * hw;
            for (int b = 0; b < n; b++) for (int j = 0; j < hw; j++) { double d = x[(b * c + ch) * hw + j] - m; v += d * d; }
            v /= n * hw;
            for (int b = 0; b < n; b++)
                for (int j = 0; j < hw; j++) {
                    int i = (b * c + ch) * hw + j;
                    y[i] = (x[i] - m) / Math.sqrt(v + eps) * gamma[ch] + beta[ch];
                }
        }
        return y;
    }

    public static double[] maxPool(double[] x, int planes, int h, int w, int k, int stride, int pad) {
        int oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
        double[] y = new double[planes * oh * ow];
        for (int p = 0; p < planes; p++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++) {
                    double m = Double.NEGATIVE_INFINITY;
                    for (int a = 0; a < k; a++)
                        for (int b = 0; b < k; b++) {
                            int hi = i * stride - pad + a, wi = j * stride - pad + b;
                            if (hi >= 0 && hi < h && wi >= 0 && wi < w) m = Math.max(m, x[(p * h + hi) * w + wi]);
                        }
                    y[(p * oh + i) * ow + j] = m;
                }
        return y;
    }

    public static double[] adaptiveAvgPool(double[] x, int planes, int h, int w, int oh, int ow) {
        double[] y = new double[planes * oh * ow];
        for (int p = 0; p < planes; p++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++) {
                    int h0 = (int) Math.floor((double) i * h / oh), h1 = (int) Math.ceil((double) (i + 1) * h / oh);
                    int w0 = (int) Math.floor((double) j * w / ow), w1 = (int) Math.ceil((double) (j + 1) * w / ow);
                    double s = 0;
                    for (int a = h0; a < h1; a++) for (int b = w0; b < w1; b++) s += x[(p * h + a) * w + b];
                    y[(p * oh + i) * ow + j] = s / ((h1 - h0) * (w1 - w0));
                }
        return y;
    }

    public static double[] softmaxRows(double[] x, int rows, int cols, boolean log) {
        double[] y = new double[x.length];
        for (int r = 0; r < rows; r++) {
            double m = Double.NEGATIVE_INFINITY, s = 0;
            for (int j = 0; j < cols; j++) m = Math.max(m, x[r * cols + j]);
            for (int j = 0; j < cols; j++) s += Math.exp(x[r * cols + j] - m);
            for (int j = 0; j < cols; j++) {
                double v = x[r * cols + j] - m - Math.log(s);
                y[r * cols + j] = log ? v : Math.exp(v);
            }
        }
        return y;
    }

    public static double crossEntropy(double[] logits, int rows, int cols, long[] target, double eps) {
        double[] lp = softmaxRows(logits, rows, cols, true);
        double loss = 0;
        for (int r = 0; r < rows; r++) {
            double smooth = 0;
            for (int j = 0; j < cols; j++) smooth -= lp[r * cols + j] / cols;
            loss += (1 - eps) * -lp[r * cols + (int) target[r]] + eps * smooth;
        }
        return loss / rows;
    }
}
