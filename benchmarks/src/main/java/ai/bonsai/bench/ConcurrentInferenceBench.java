package ai.bonsai.bench;

import ai.bonsai.backend.cpu.Parallel;
import ai.bonsai.dsp.imports.PackedResNetConverter;
import ai.bonsai.dsp.pack.PackedModel;
import ai.bonsai.dsp.serve.InferenceLoad;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;

import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;

/**
 * Concurrent inference of one shared published model (default {@code ../shared/reference/resnet20_g4.pt}, loaded by
 * {@link PackedResNetConverter#load}) at batch 1: requests per second and latency p50 / p99 / p99.9 with 1 caller
 * thread, then with {@code --threads} callers (default 8) on the same model. Every output is checked bit for bit
 * against the single-threaded logits of its image, so a race shows as a mismatch, not as a faster number.
 *
 * <p>A main, not JMH: latency percentiles need every request timed, and the interesting case is many caller threads
 * on one model object. Run: {@code benchmarks/concurrent-inference [MODEL] [--threads N] [--seconds S]}; results
 * in {@code benchmarks/results/concurrent-inference.txt}.
 */
public final class ConcurrentInferenceBench {
    private ConcurrentInferenceBench() {}

    record Phase(int threads, long requests, double seconds, long[] nanos, int mismatches) {
        double perSecond() { return requests / seconds; }

        double percentileMs(double p) {
            long[] s = nanos.clone();
            Arrays.sort(s);
            int i = (int) Math.min(s.length - 1, Math.ceil(p / 100.0 * s.length) - 1);
            return s[Math.max(0, i)] / 1e6;
        }

        @Override public String toString() {
            return String.format("%2d caller thread(s): %7.1f requests/s, latency p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms (%d requests in %.1f s, %d mismatches)",
                    threads, perSecond(), percentileMs(50), percentileMs(99), percentileMs(99.9), requests, seconds, mismatches);
        }
    }

    public static void main(String[] args) throws Exception {
        Path model = Path.of("../shared/reference/resnet20_g4.pt");
        int threads = 8;
        double seconds = 10, warmup = 5;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--threads" -> threads = Integer.parseInt(args[++i]);
                case "--seconds" -> seconds = Double.parseDouble(args[++i]);
                case "--warmup" -> warmup = Double.parseDouble(args[++i]);
                default -> model = Path.of(args[i]);
            }
        }
        if (!Files.exists(model)) {
            System.err.println("ConcurrentInferenceBench: " + model.toAbsolutePath() + " not found (give the path of resnet20_g4.pt)");
            System.exit(2);
        }
        PackedModel net = PackedResNetConverter.load(model);
        int pool = 64;
        Tensor all = Tensor.randn(new Generator(1), pool, 3, 32, 32);
        float[] pixels = all.toFloatArray();
        Tensor[] inputs = new Tensor[pool];
        float[][] expected = new float[pool][];
        for (int i = 0; i < pool; i++) {
            inputs[i] = Tensor.of(Arrays.copyOfRange(pixels, i * 3072, (i + 1) * 3072), 1, 3, 32, 32);
            expected[i] = InferenceLoad.forward(net, inputs[i]);
        }
        System.out.printf("model %s (packed, published), batch 1; %d cores, bonsai.threads %d (kernel threads per call), JDK %s, load average %.2f%n",
                model.getFileName(), Runtime.getRuntime().availableProcessors(), Parallel.threads(), System.getProperty("java.version"),
                ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage());
        run(net, inputs, expected, 1, warmup);   // warm-up, both shapes of use
        run(net, inputs, expected, threads, warmup);
        long heap0 = InferenceLoad.heapAfterGc();
        Phase one = run(net, inputs, expected, 1, seconds);
        System.out.println(one);
        Phase many = run(net, inputs, expected, threads, seconds);
        System.out.println(many);
        long heap1 = InferenceLoad.heapAfterGc();
        System.out.printf("throughput %d threads / 1 thread: %.2fx; heap after GC %.1f -> %.1f MiB; load average %.2f%n", threads,
                many.perSecond() / one.perSecond(), heap0 / 1048576.0, heap1 / 1048576.0,
                ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage());
        if (one.mismatches() + many.mismatches() > 0) {
            System.out.println("FAILED: outputs differ from the single-threaded ones");
            System.exit(1);
        }
    }

    private static Phase run(PackedModel net, Tensor[] inputs, float[][] expected, int threads, double seconds) throws InterruptedException {
        long end = System.nanoTime() + (long) (seconds * 1e9);
        List<long[]> lat = new ArrayList<>();
        int[] bad = new int[threads];
        long[] counts = new long[threads];
        CountDownLatch go = new CountDownLatch(1);
        List<Thread> ws = new ArrayList<>();
        List<long[]> per = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            int id = t;
            long[] buf = new long[1 << 20];
            per.add(buf);
            Thread w = new Thread(() -> {
                try {
                    go.await();
                } catch (InterruptedException e) {
                    return;
                }
                int n = 0;
                for (int i = id; System.nanoTime() < end && n < buf.length; i = (i + 7) % inputs.length) {
                    long t0 = System.nanoTime();
                    float[] out = InferenceLoad.forward(net, inputs[i]);
                    buf[n++] = System.nanoTime() - t0;
                    if (!Arrays.equals(out, expected[i])) bad[id]++;
                }
                counts[id] = n;
            }, "bench-caller-" + t);
            ws.add(w);
            w.start();
        }
        long t0 = System.nanoTime();
        go.countDown();
        for (Thread w : ws) w.join();
        double secs = (System.nanoTime() - t0) / 1e9;
        long total = Arrays.stream(counts).sum();
        long[] all = new long[(int) total];
        int k = 0;
        for (int t = 0; t < threads; t++) {
            System.arraycopy(per.get(t), 0, all, k, (int) counts[t]);
            k += (int) counts[t];
        }
        return new Phase(threads, total, secs, all, Arrays.stream(bad).sum());
    }
}
