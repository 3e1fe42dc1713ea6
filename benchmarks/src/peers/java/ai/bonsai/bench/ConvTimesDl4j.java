package ai.bonsai.bench;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.DynamicCustomOp;
import org.nd4j.linalg.factory.Nd4j;

import java.util.Arrays;
import java.io.IOException;
import java.io.InputStream;
import java.util.Locale;
import java.util.Properties;
import java.util.StringJoiner;

/**
 * DL4J peer of {@link ConvTimes} (issue 17 names "DL4J with oneDNN" as the convolution peer): ResNet-20's 3x3
 * convolutions at batch 128 through ND4J's {@code conv2d} and {@code conv2d_bp} ops, the ops DL4J's
 * {@code ConvolutionLayer} runs, on the oneDNN build of ND4J's native library ({@code nd4j-native}, classifier
 * {@code linux-x86_64-onednn-avx512}: oneDNN 2.3 picks and JIT-compiles its kernels for the CPU at hand). Forward and
 * forward + both gradients ("train"), the shapes in turn in each round, inputs filled by {@link ConvTimes#pattern}.
 * Each measure is timed in DL4J's default NCHW layout, where oneDNN reorders the activations to and from its own
 * layouts on every call, and in NHWC, where it needs no reorder of the activations; the JSON line reports both, and
 * the faster as {@code forward}/{@code train}, in the fields of {@code ConvTimes} and {@code peers/torch_conv.py}.
 *
 * <p>Arguments: ROUNDS (timed, default 30), WARMUP (default 10), THREADS (default 2; ND4J's OpenMP threads).
 * Runs from the {@code peers} profile's jar; {@code benchmarks/conv-vs-peers} runs it beside the other engines.
 */
public final class ConvTimesDl4j {
    private ConvTimesDl4j() {}

    /** The binding JavaCPP loads for ND4J: the oneDNN build (the plain build's convolutions are ND4J's own loops). */
    private static final String ND4J_BUILD = "-onednn-avx512";

    public static void main(String[] args) {
        int rounds = args.length > 0 ? Integer.parseInt(args[0]) : 30;
        int warmup = args.length > 1 ? Integer.parseInt(args[1]) : 10;
        int threads = args.length > 2 ? Integer.parseInt(args[2]) : 2;
        // Read by JavaCPP's Loader when ND4J's backend first loads; an explicit -D wins.
        if (System.getProperty("org.bytedeco.javacpp.platform.extension") == null) {
            System.setProperty("org.bytedeco.javacpp.platform.extension", ND4J_BUILD);
        }
        Nd4j.getEnvironment().setMaxThreads(threads);
        Nd4j.getEnvironment().setMaxMasterThreads(threads);
        int s = ConvTimes.SHAPES.length;
        String[] layouts = {"nchw", "nhwc"};
        double[] checksum = new double[s];
        long[][][][] nanos = new long[layouts.length][s][2][rounds];
        for (int lay = 0; lay < layouts.length; lay++) {
            boolean nhwc = lay == 1;
            INDArray[][] arrays = new INDArray[s][];
            DynamicCustomOp[][] ops = new DynamicCustomOp[s][];
            for (int q = 0; q < s; q++) {
                int[] d = ConvTimes.SHAPES[q];
                int n = d[0], c = d[1], h = d[2], w = d[3], k = d[4], st = d[5], oh = (h + 2 - 3) / st + 1, ow = (w + 2 - 3) / st + 1;
                INDArray x = filled(new long[] {n, c, h, w}, 7919, 1f, nhwc);
                INDArray wt = filled(new long[] {k, c, 3, 3}, 104729, 0.1f, false);
                INDArray gy = filled(new long[] {n, k, oh, ow}, 15485863, 1f, nhwc);
                INDArray y = Nd4j.create(DataType.FLOAT, nhwc ? new long[] {n, oh, ow, k} : new long[] {n, k, oh, ow});
                INDArray dx = x.ulike(), dw = wt.ulike();
                // kH, kW, sH, sW, pH, pW, dH, dW, explicit padding, data format (0 NCHW, 1 NHWC), weights [k][c][r][s].
                int[] iArgs = {3, 3, st, st, 1, 1, 1, 1, 0, nhwc ? 1 : 0, 1};
                ops[q] = new DynamicCustomOp[] {
                        DynamicCustomOp.builder("conv2d").addInputs(x, wt).addOutputs(y).addIntegerArguments(iArgs).build(),
                        DynamicCustomOp.builder("conv2d_bp").addInputs(x, wt, gy).addOutputs(dx, dw).addIntegerArguments(iArgs).build()};
                arrays[q] = new INDArray[] {y};
            }
            for (int r = 0; r < warmup + rounds; r++) {
                for (int q = 0; q < s; q++) {
                    long t0 = System.nanoTime();
                    Nd4j.exec(ops[q][0]);
                    long t1 = System.nanoTime();
                    Nd4j.exec(ops[q][1]);
                    long t2 = System.nanoTime();
                    if (r >= warmup) {
                        nanos[lay][q][0][r - warmup] = t1 - t0;
                        nanos[lay][q][1][r - warmup] = t2 - t0;   // train = forward + conv2d_bp, as ConvTimes times it
                    }
                    if (r == 0 && !nhwc) checksum[q] = arrays[q][0].castTo(DataType.DOUBLE).sumNumber().doubleValue();
                }
            }
        }
        StringJoiner shapes = new StringJoiner(", ", "{", "}");
        for (int q = 0; q < s; q++) {
            int[] d = ConvTimes.SHAPES[q];
            String name = d[0] + "x" + d[1] + "x" + d[2] + "x" + d[3] + "-" + d[4] + (d[5] == 2 ? "s2" : "");
            StringJoiner f = new StringJoiner(", ", "{", "}");
            for (int m = 0; m < 2; m++) {
                String measure = m == 0 ? "forward" : "train";
                double[] nchw = stats(nanos[0][q][m]), nhwc = stats(nanos[1][q][m]);
                double[] best = nhwc[0] < nchw[0] ? nhwc : nchw;
                f.add(String.format(Locale.ROOT, "\"%s\": %s", measure, json(best)));
                f.add(String.format(Locale.ROOT, "\"%s_layout\": \"%s\"", measure, best == nhwc ? "nhwc" : "nchw"));
                f.add(String.format(Locale.ROOT, "\"nchw_%s\": %s, \"nhwc_%s\": %s", measure, json(nchw), measure, json(nhwc)));
            }
            f.add(String.format(Locale.ROOT, "\"checksum\": %.6e", checksum[q]));
            shapes.add("\"" + name + "\": " + f);
        }
        String version = "ND4J " + nd4jVersion() + " (nd4j-native" + ND4J_BUILD + ")";
        System.out.printf(Locale.ROOT, "{\"engine\": \"dl4j\", \"version\": \"%s\", \"threads\": %d, \"rounds\": %d, \"shapes\": %s}%n",
                version, threads, rounds, shapes);
    }

    /** An array of {@code nchwShape} filled by ConvTimes.pattern in NCHW order, times {@code scale}; laid out NHWC if asked. */
    private static INDArray filled(long[] nchwShape, long mul, float scale, boolean nhwc) {
        long len = Arrays.stream(nchwShape).reduce(1, (a, b) -> a * b);
        float[] v = new float[Math.toIntExact(len)];
        for (int i = 0; i < v.length; i++) v[i] = scale * ConvTimes.pattern(i, mul);
        INDArray a = Nd4j.create(v, nchwShape, 'c');
        return nhwc ? a.permute(0, 2, 3, 1).dup('c') : a;
    }

    /** ND4J's version from the Maven metadata its jar carries (kept by the shaded jar). */
    private static String nd4jVersion() {
        try (InputStream in = Nd4j.class.getResourceAsStream("/META-INF/maven/org.nd4j/nd4j-api/pom.properties")) {
            if (in == null) return "(version unknown)";
            Properties p = new Properties();
            p.load(in);
            return p.getProperty("version", "(version unknown)");
        } catch (IOException e) {
            return "(version unknown)";
        }
    }

    /** {median, fastest} in ms. */
    private static double[] stats(long[] nanos) {
        long[] sorted = nanos.clone();
        Arrays.sort(sorted);
        int n = sorted.length;
        double median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0;
        return new double[] {median / 1e6, sorted[0] / 1e6};
    }

    private static String json(double[] st) {
        return String.format(Locale.ROOT, "{\"median_ms\": %.3f, \"fastest_ms\": %.3f}", st[0], st[1]);
    }
}
