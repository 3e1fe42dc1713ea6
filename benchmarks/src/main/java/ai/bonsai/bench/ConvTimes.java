package ai.bonsai.bench;

import ai.bonsai.backend.ConvGeometry;
import ai.bonsai.backend.cpu.CpuBackend;
import ai.bonsai.backend.cpu.Parallel;
import ai.bonsai.tensor.Buffer;
import ai.bonsai.tensor.DType;

import java.util.Arrays;
import java.util.Locale;
import java.util.StringJoiner;

/**
 * Times the 3x3 convolutions of a CIFAR ResNet-20 at batch 128 on the CPU backend, as a training step calls them:
 * the forward pass, and forward + data gradient + weight gradient ("train"). The shapes are run one after another in
 * each round, as the layers of a step follow each other, rather than one shape many times over with warm caches.
 * Prints one JSON line: per shape the median and fastest milliseconds of each measure, and the sum of the forward
 * output as a checksum. Bonsai's part of {@code benchmarks/conv-vs-peers}, whose peers ({@code peers/torch_conv.py},
 * {@code ConvTimesDl4j}) fill their inputs by the same formula and print the same fields, so the outputs can be
 * checked against each other.
 *
 * <p>Arguments: ROUNDS (timed, default 30) and WARMUP (default 10).
 */
public final class ConvTimes {
    private ConvTimes() {}

    /** n, c, h, w, k, stride: ResNet-20's 3x3 convolutions (padding 1). */
    static final int[][] SHAPES = {{128, 16, 32, 32, 16, 1}, {128, 16, 32, 32, 32, 2}, {128, 32, 16, 16, 32, 1},
            {128, 32, 16, 16, 64, 2}, {128, 64, 8, 8, 64, 1}};

    /** Input i of a tensor: a fixed pattern in [-0.5, 0.5) that the PyTorch half computes the same way. */
    static float pattern(long i, long mul) { return (float) ((i * mul) % 1000) / 1000f - 0.5f; }

    public static void main(String[] args) {
        int rounds = args.length > 0 ? Integer.parseInt(args[0]) : 30;
        int warmup = args.length > 1 ? Integer.parseInt(args[1]) : 10;
        CpuBackend be = CpuBackend.get();
        int s = SHAPES.length;
        ConvGeometry[] gs = new ConvGeometry[s];
        Buffer[][] bufs = new Buffer[s][];
        double[] checksum = new double[s];
        for (int q = 0; q < s; q++) {
            int[] d = SHAPES[q];
            ConvGeometry g = new ConvGeometry(d[0], d[1], d[2], d[3], d[4], 3, 3, d[5], d[5], 1, 1, 1);
            float[] x = new float[d[0] * d[1] * d[2] * d[3]], w = new float[d[4] * d[1] * 9], gy = new float[d[0] * d[4] * g.outH() * g.outW()];
            for (int i = 0; i < x.length; i++) x[i] = pattern(i, 7919);
            for (int i = 0; i < w.length; i++) w[i] = 0.1f * pattern(i, 104729);
            for (int i = 0; i < gy.length; i++) gy[i] = pattern(i, 15485863);
            gs[q] = g;
            bufs[q] = new Buffer[] {be.fromFloats(x), be.fromFloats(w), be.allocate(DType.FLOAT32, gy.length), be.fromFloats(gy),
                    be.allocate(DType.FLOAT32, x.length), be.allocate(DType.FLOAT32, w.length)};
        }
        long[][][] nanos = new long[s][2][rounds];
        for (int r = 0; r < warmup + rounds; r++) {
            for (int q = 0; q < s; q++) {
                ConvGeometry g = gs[q];
                Buffer x = bufs[q][0], w = bufs[q][1], y = bufs[q][2], gy = bufs[q][3], dx = bufs[q][4], dw = bufs[q][5];
                long t0 = System.nanoTime();
                be.conv2d(g, x, w, null, y);
                long t1 = System.nanoTime();
                be.conv2dBackwardData(g, gy, w, dx);
                be.conv2dBackwardWeight(g, x, gy, dw);
                long t2 = System.nanoTime();
                if (r >= warmup) {
                    nanos[q][0][r - warmup] = t1 - t0;
                    nanos[q][1][r - warmup] = t2 - t0;
                }
                if (r == 0) {
                    double sum = 0;
                    for (float v : be.toFloats(y)) sum += v;
                    checksum[q] = sum;
                }
            }
        }
        StringJoiner shapes = new StringJoiner(", ", "{", "}");
        for (int q = 0; q < s; q++) {
            int[] d = SHAPES[q];
            String name = d[0] + "x" + d[1] + "x" + d[2] + "x" + d[3] + "-" + d[4] + (d[5] == 2 ? "s2" : "");
            shapes.add(String.format(Locale.ROOT, "\"%s\": {\"forward\": %s, \"train\": %s, \"checksum\": %.6e}", name,
                    stats(nanos[q][0]), stats(nanos[q][1]), checksum[q]));
        }
        System.out.printf(Locale.ROOT, "{\"engine\": \"bonsai\", \"version\": \"JDK %s\", \"threads\": %d, \"rounds\": %d, \"shapes\": %s}%n",
                Runtime.version(), Parallel.threads(), rounds, shapes);
    }

    private static String stats(long[] nanos) {
        long[] sorted = nanos.clone();
        Arrays.sort(sorted);
        double median = sorted.length % 2 == 1 ? sorted[sorted.length / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2.0;
        return String.format(Locale.ROOT, "{\"median_ms\": %.3f, \"fastest_ms\": %.3f}", median / 1e6, sorted[0] / 1e6);
    }
}
