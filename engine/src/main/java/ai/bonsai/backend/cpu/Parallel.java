package ai.bonsai.backend.cpu;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;
import java.util.function.IntConsumer;

/**
 * The CPU backend's thread pool. {@code -Dbonsai.threads=N} sets its size (default: the number of cores).
 *
 * <p>Determinism: work is always split into the same tasks for the same problem size and thread count,
 * and every task writes a disjoint part of the output, so results do not depend on scheduling. Kernels
 * that reduce across tasks combine the partial results in task order.
 */
public final class Parallel {
    private static volatile int threads = defaultThreads();
    private static volatile ForkJoinPool pool;

    private Parallel() {}

    private static int defaultThreads() {
        String p = System.getProperty("bonsai.threads");
        if (p == null || p.isBlank()) return Runtime.getRuntime().availableProcessors();
        try {
            int n = Integer.parseInt(p.trim());
            if (n >= 1) return n;
        } catch (NumberFormatException e) { /* reported below */ }
        throw new IllegalArgumentException("-Dbonsai.threads: expected a positive integer, got '" + p + "'");
    }

    public static int threads() { return threads; }

    /** Changes the thread count (the CLI's --threads). Takes effect for the next parallel region. */
    public static synchronized void setThreads(int n) {
        if (n < 1) throw new IllegalArgumentException("threads: expected a positive integer, got " + n);
        if (n != threads) {
            threads = n;
            ForkJoinPool old = pool;
            pool = null;
            if (old != null) old.shutdown();
        }
    }

    private static ForkJoinPool pool() {
        ForkJoinPool p = pool;
        if (p == null) {
            synchronized (Parallel.class) {
                p = pool;
                if (p == null) pool = p = new ForkJoinPool(threads);
            }
        }
        return p;
    }

    /**
     * Runs {@code body.accept(i)} for i in [0, tasks). Runs inline when there is one task, one thread, or when
     * called from inside a parallel region (nested parallelism would only add overhead on a few cores).
     */
    public static void forEach(int tasks, IntConsumer body) {
        if (tasks <= 0) return;
        if (tasks == 1 || threads == 1 || ForkJoinTask.inForkJoinPool()) {
            for (int i = 0; i < tasks; i++) body.accept(i);
            return;
        }
        ForkJoinPool p = pool();
        List<ForkJoinTask<?>> fs = new ArrayList<>(tasks);
        for (int i = 1; i < tasks; i++) {
            final int t = i;
            fs.add(p.submit(() -> body.accept(t)));
        }
        body.accept(0);
        RuntimeException first = null;
        for (ForkJoinTask<?> f : fs) {
            try {
                f.join();
            } catch (RuntimeException e) {
                if (first == null) first = e;
            }
        }
        if (first != null) throw first;
    }

    /** Splits [0, n) into at most {@code threads()} contiguous chunks of at least {@code grain} and runs them. */
    public static void forRange(int n, int grain, RangeBody body) {
        if (n <= 0) return;
        int chunks = Math.max(1, Math.min(threads, (n + Math.max(1, grain) - 1) / Math.max(1, grain)));
        int per = (n + chunks - 1) / chunks;
        int used = (n + per - 1) / per;
        forEach(used, t -> body.run(t * per, Math.min(n, (t + 1) * per)));
    }

    @FunctionalInterface
    public interface RangeBody {
        void run(int from, int to);
    }
}
