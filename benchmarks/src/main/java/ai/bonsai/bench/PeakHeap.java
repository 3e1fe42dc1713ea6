package ai.bonsai.bench;

import ai.bonsai.backend.cpu.Parallel;
import ai.bonsai.tensor.Tensor;
import java.io.IOException;
import java.lang.management.GarbageCollectorMXBean;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Heap use of one Bonsai ResNet-20 training step at batch 128 (forward, cross-entropy, backward, SGD), in two
 * complementary ways:
 * <ol>
 *   <li>in this JVM, after a warm-up: the sum of the heap pools' peak usage over one step (after
 *       {@link MemoryPoolMXBean#resetPeakUsage()}), the live sets after a full GC (model and optimiser alone, with
 *       the autograd graph of a forward pass alive, after the step), and the bytes all threads allocated in one step.
 *       The peak includes garbage that the collector had not reclaimed yet, so it depends on the heap size and the
 *       GC; the sum of per-pool peaks can also exceed the true simultaneous peak a little.</li>
 *   <li>the smallest {@code -Xmx}, on a 64 MiB grid, at which a fresh JVM completes 3 steps without
 *       OutOfMemoryError: a binary search over child JVMs ({@code --steps 3} mode, run with
 *       {@code -XX:+ExitOnOutOfMemoryError}), assuming that more heap never hurts. This is what a user must give.</li>
 * </ol>
 * Run: {@code benchmarks/peak-heap} (or {@code java --add-modules jdk.incubator.vector -cp benchmarks/target/benchmarks.jar
 * ai.bonsai.bench.PeakHeap [--no-search]}). Threads: {@code -Dbonsai.threads} (default: all cores), passed on to the children.
 */
public final class PeakHeap {
    private static final long MIB = 1L << 20;
    /** The -Xmx search grid. */
    private static final int STEP_MIB = 64;
    /** A child that needs longer than this is thrashing in GC; it counts as a failure. */
    private static final long CHILD_TIMEOUT_S = 300;

    private PeakHeap() {}

    public static void main(String[] args) throws Exception {
        if (args.length == 2 && args[0].equals("--steps")) {
            runSteps(Integer.parseInt(args[1]));
            return;
        }
        boolean search = true;
        for (String a : args) {
            if (a.equals("--no-search")) search = false;
            else throw new IllegalArgumentException("PeakHeap: unknown argument '" + a + "'; usage: PeakHeap [--no-search] | --steps N");
        }
        measureInProcess();
        if (search) searchMinimumXmx(3);
    }

    /** Child mode: build the model and run {@code steps} steps; exit status 0 when they all finish with a finite loss. */
    private static void runSteps(int steps) {
        BonsaiTrainStep s = new BonsaiTrainStep(TrainBatch.random(42), 7);
        for (int i = 0; i < steps; i++) {
            float loss = s.step();
            if (!Float.isFinite(loss)) throw new IllegalStateException("PeakHeap: step " + i + " gave loss " + loss);
        }
    }

    private static void measureInProcess() {
        Runtime rt = Runtime.getRuntime();
        List<String> gcs = new ArrayList<>();
        for (GarbageCollectorMXBean gc : ManagementFactory.getGarbageCollectorMXBeans()) gcs.add(gc.getName());
        System.out.printf("JVM %s %s, -Xmx %d MiB, GC %s, bonsai threads %d%n", System.getProperty("java.vm.name"),
                Runtime.version(), rt.maxMemory() / MIB, gcs, Parallel.threads());

        BonsaiTrainStep s = new BonsaiTrainStep(TrainBatch.random(42), 7);
        s.checkLearns();                                  // also the warm-up: JIT, scratch buffers, momentum buffers
        for (int i = 0; i < 3; i++) s.step();

        // 1. Peak of the heap pools over one full step.
        fullGc();
        List<MemoryPoolMXBean> pools = heapPools();
        for (MemoryPoolMXBean p : pools) p.resetPeakUsage();
        long allocatedBefore = allocatedBytes();
        s.step();
        long allocated = allocatedBytes() - allocatedBefore;
        long peak = 0;
        StringBuilder perPool = new StringBuilder();
        for (MemoryPoolMXBean p : pools) {
            long used = p.getPeakUsage().getUsed();
            peak += used;
            perPool.append(perPool.length() == 0 ? "" : ", ").append(p.getName()).append(' ').append(used / MIB).append(" MiB");
        }

        // 2. Live sets: the model and optimiser alone, with a forward pass's graph alive, and after the step.
        long base = liveHeap();
        long[] graphAndAfter = graphAndAfterStep(s);
        long withGraph = graphAndAfter[0], after = graphAndAfter[1];

        System.out.printf("peak heap over one step (sum of heap pools' peaks): %d MiB (%s)%n", peak / MIB, perPool);
        System.out.printf("allocated by all threads in one step: %d MiB%n", allocated / MIB);
        System.out.printf("live set after GC: model + optimiser %d MiB; with the graph of a forward pass %d MiB"
                + " (activations kept for backward: %d MiB); after the step %d MiB%n",
                base / MIB, withGraph / MIB, (withGraph - base) / MIB, after / MIB);
    }

    /**
     * Live heap with a forward pass's graph alive, then after backward and the update once the loss is dropped
     * (a holder array, because an interpreted frame keeps a dead local reachable until the method returns).
     */
    private static long[] graphAndAfterStep(BonsaiTrainStep s) {
        Tensor[] loss = {s.forwardLoss()};
        long withGraph = liveHeap();
        s.backwardAndStep(loss[0]);
        loss[0] = null;
        return new long[] {withGraph, liveHeap()};
    }

    private static List<MemoryPoolMXBean> heapPools() {
        List<MemoryPoolMXBean> out = new ArrayList<>();
        for (MemoryPoolMXBean p : ManagementFactory.getMemoryPoolMXBeans()) if (p.getType() == MemoryType.HEAP) out.add(p);
        return out;
    }

    /** Used heap after a full collection: System.gc() twice, as one cycle may leave finalizable or soft garbage behind. */
    private static long liveHeap() {
        fullGc();
        Runtime rt = Runtime.getRuntime();
        return rt.totalMemory() - rt.freeMemory();
    }

    private static void fullGc() {
        System.gc();
        System.gc();
    }

    /** Bytes allocated so far by all live threads (the CPU backend's pool threads allocate too); -1 if unsupported. */
    static long allocatedBytes() {
        if (!(ManagementFactory.getThreadMXBean() instanceof com.sun.management.ThreadMXBean t) || !t.isThreadAllocatedMemorySupported()) return -1;
        long sum = 0;
        for (long v : t.getThreadAllocatedBytes(t.getAllThreadIds())) if (v > 0) sum += v;
        return sum;
    }

    /** Binary search on the 64 MiB grid for the smallest -Xmx at which a child JVM completes {@code steps} steps. */
    private static void searchMinimumXmx(int steps) throws IOException, InterruptedException {
        System.out.printf("searching the smallest -Xmx (multiple of %d MiB) for %d steps in a fresh JVM:%n", STEP_MIB, steps);
        int hi = 4096 / STEP_MIB;
        while (!childSucceeds(hi, steps)) {
            if (hi >= 32768 / STEP_MIB) throw new IllegalStateException("PeakHeap: " + steps + " steps fail even with -Xmx" + hi * STEP_MIB + "m");
            hi *= 2;
        }
        int lo = 0;                                       // lo fails (or is 0), hi succeeds
        while (hi - lo > 1) {
            int mid = (lo + hi) >>> 1;
            if (childSucceeds(mid, steps)) hi = mid;
            else lo = mid;
        }
        System.out.printf("smallest -Xmx for %d steps: %d MiB (fails at %d MiB)%n", steps, hi * STEP_MIB, lo * STEP_MIB);
    }

    private static boolean childSucceeds(int units, int steps) throws IOException, InterruptedException {
        int mib = units * STEP_MIB;
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules", "jdk.incubator.vector", "-Xss4m", "-Xmx" + mib + "m", "-XX:+ExitOnOutOfMemoryError",
                "-Dbonsai.threads=" + Parallel.threads(), "-cp", System.getProperty("java.class.path"),
                PeakHeap.class.getName(), "--steps", Integer.toString(steps)));
        Path log = Files.createTempFile("peakheap", ".log");
        try {
            long start = System.nanoTime();
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
            boolean done = p.waitFor(CHILD_TIMEOUT_S, TimeUnit.SECONDS);
            if (!done) {
                p.destroyForcibly().waitFor();
                System.out.printf("  -Xmx%5dm: timed out after %d s (GC thrashing)%n", mib, CHILD_TIMEOUT_S);
                return false;
            }
            double secs = (System.nanoTime() - start) / 1e9;
            String out = Files.readString(log, StandardCharsets.UTF_8);
            boolean ok = p.exitValue() == 0;
            String why = ok ? "ok" : out.contains("OutOfMemoryError") ? "OutOfMemoryError" : "exit " + p.exitValue() + ": " + lastLine(out);
            System.out.printf("  -Xmx%5dm: %s (%.1f s)%n", mib, why, secs);
            return ok;
        } finally {
            Files.deleteIfExists(log);
        }
    }

    private static String lastLine(String s) {
        String[] lines = s.strip().split("\n");
        return lines.length == 0 ? "" : lines[lines.length - 1];
    }
}
