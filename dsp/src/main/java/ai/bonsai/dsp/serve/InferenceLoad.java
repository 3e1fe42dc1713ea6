package ai.bonsai.dsp.serve;

import ai.bonsai.autograd.GradMode;
import ai.bonsai.nn.Module;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;

import java.lang.management.ManagementFactory;
import java.lang.management.MemoryMXBean;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;

/**
 * A load test of concurrent inference on one shared model: {@code threads} threads each send {@code requests}
 * forwards of a random batch (1 to {@code maxBatch} images, drawn from a fixed pool) and compare every output bit
 * for bit with the same batch run on one thread beforehand. Counts mismatches and exceptions, and the heap after a
 * full GC before and after, so that a leak per request shows.
 *
 * <p>The thread-safety contract it checks (README, "Reliability"): once built, a dense model in eval mode, a
 * {@link ai.bonsai.dsp.pack.PackedModel}, and a published model loaded by
 * {@link ai.bonsai.dsp.imports.PackedResNetConverter#load} may be shared by any number of threads that only call
 * {@code forward}; each call's output depends only on its input. Dense models must run their forwards with
 * gradients off ({@link GradMode#noGrad}, which is per thread), as {@link #forward} does, and nothing may train,
 * load weights into or switch the mode of a model while others use it.
 */
public final class InferenceLoad {
    /** What a load test found; {@code heapGrowthBytes} = heap after GC at the end minus at the start. */
    public record Report(String model, int threads, int requests, long images, int mismatches, List<String> failures,
                         long heapBeforeBytes, long heapAfterBytes, int threadsBefore, int threadsAfter, double seconds) {
        public long heapGrowthBytes() { return heapAfterBytes - heapBeforeBytes; }

        @Override public String toString() {
            return String.format("%s: %d threads x %d requests (%d images) in %.1f s: %d mismatches, %d exceptions, heap after GC %.1f -> %.1f MiB, live threads %d -> %d",
                    model, threads, requests / Math.max(1, threads), images, seconds, mismatches, failures.size(),
                    heapBeforeBytes / 1048576.0, heapAfterBytes / 1048576.0, threadsBefore, threadsAfter);
        }
    }

    private InferenceLoad() {}

    /** The model's logits for {@code x}, with gradients off on this thread. */
    public static float[] forward(Module model, Tensor x) {
        try (GradMode.Scope s = GradMode.noGrad()) {
            return model.forward(x).toFloatArray();
        }
    }

    /** Heap in use after a full GC (several, until it settles), in bytes. */
    public static long heapAfterGc() {
        MemoryMXBean mem = ManagementFactory.getMemoryMXBean();
        long best = Long.MAX_VALUE;
        for (int i = 0; i < 3; i++) {
            System.gc();
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            best = Math.min(best, mem.getHeapMemoryUsage().getUsed());
        }
        return best;
    }

    /**
     * Runs the load test: {@code pool} images (C, H, W each) generated from {@code seed}; every request takes a random
     * batch of 1..{@code maxBatch} consecutive pool images starting at a random offset.
     */
    public static Report run(String name, Module model, int channels, int size, int threads, int requestsPerThread, int maxBatch, long seed) {
        int pool = maxBatch * 2, per = channels * size * size;
        float[] images = Tensor.randn(new Generator(seed), pool * per).toFloatArray();
        Function<int[], Tensor> batch = r -> Tensor.of(Arrays.copyOfRange(images, r[0] * per, (r[0] + r[1]) * per), r[1], channels, size, size);
        // Single-threaded references: for each start offset, the logits of the largest batch there are not enough,
        // since a batch's output may depend on its size (kernels pick blocking by size); so key by (start, n).
        Random plan = new Random(seed);
        int[][][] work = new int[threads][requestsPerThread][];
        java.util.Map<Long, float[]> expected = new java.util.HashMap<>();
        for (int t = 0; t < threads; t++) {
            for (int i = 0; i < requestsPerThread; i++) {
                int n = 1 + plan.nextInt(maxBatch), start = plan.nextInt(pool - n + 1);
                work[t][i] = new int[] {start, n};
                expected.computeIfAbsent(((long) start << 32) | n, k -> forward(model, batch.apply(new int[] {start, n})));
            }
        }
        long heapBefore = heapAfterGc();
        int threadsBefore = ManagementFactory.getThreadMXBean().getThreadCount();
        AtomicInteger mismatches = new AtomicInteger();
        List<String> failures = Collections.synchronizedList(new ArrayList<>());
        long[] imagesDone = new long[threads];
        CountDownLatch go = new CountDownLatch(1);
        List<Thread> workers = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            int id = t;
            Thread w = new Thread(() -> {
                try {
                    go.await();
                    for (int[] r : work[id]) {
                        float[] got = forward(model, batch.apply(r));
                        if (!Arrays.equals(expected.get(((long) r[0] << 32) | r[1]), got)) mismatches.incrementAndGet();
                        imagesDone[id] += r[1];
                    }
                } catch (Throwable e) {
                    failures.add("thread " + id + ": " + e);
                }
            }, "inference-load-" + t);
            workers.add(w);
            w.start();
        }
        long t0 = System.nanoTime();
        go.countDown();
        for (Thread w : workers) {
            try {
                w.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted", e);
            }
        }
        double secs = (System.nanoTime() - t0) / 1e9;
        long heapAfter = heapAfterGc();
        int threadsAfter = ManagementFactory.getThreadMXBean().getThreadCount();
        return new Report(name, threads, threads * requestsPerThread, Arrays.stream(imagesDone).sum(), mismatches.get(), List.copyOf(failures),
                heapBefore, heapAfter, threadsBefore, threadsAfter, secs);
    }
}
