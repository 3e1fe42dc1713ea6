package ai.bonsai.backend.cpu;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
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
                if (p == null) pool = p = new ForkJoinPool(Math.max(1, threads - 1));
            }
        }
        return p;
    }

    /**
     * Runs {@code body.accept(i)} for i in [0, tasks). Runs inline when there is one task, one thread, or when
     * called from inside a parallel region (nested parallelism would only add overhead on a few cores).
     *
     * <p>The calling thread takes part: it and up to {@code threads() - 1} pool workers claim task indices from a
     * shared counter until none are left, and the caller returns once every claimed task has finished. So a region
     * keeps exactly {@code threads()} threads busy (the pool has {@code threads() - 1} workers), the caller starts
     * working at once instead of waiting for a parked worker to wake up, and a region costs one submission per
     * helper, not one per task. Which thread runs a task does not change what it computes (tasks write disjoint
     * outputs), so results stay independent of scheduling. If tasks throw, all tasks still run and the exception
     * of the lowest-numbered failing task is rethrown.
     */
    public static void forEach(int tasks, IntConsumer body) {
        if (tasks <= 0) return;
        int n = threads;
        if (tasks == 1 || n == 1 || ForkJoinTask.inForkJoinPool() || IN_REGION.get()[0]) {
            for (int i = 0; i < tasks; i++) body.accept(i);
            return;
        }
        Region r = new Region(tasks, body, Thread.currentThread());
        ForkJoinPool p = pool();
        int helpers = Math.min(tasks, n) - 1;
        for (int h = 0; h < helpers; h++) p.execute(r::work);
        boolean[] inRegion = IN_REGION.get();
        inRegion[0] = true;
        try {
            r.work();
        } finally {
            inRegion[0] = false;
        }
        while (r.remaining.get() != 0) LockSupport.park(r);
        Throwable f = r.failure;
        if (f instanceof RuntimeException e) throw e;
        if (f instanceof Error e) throw e;
        if (f != null) throw new RuntimeException(f);
    }

    /** Set while the calling (non-pool) thread runs tasks of a region, so that nested regions run inline. */
    private static final ThreadLocal<boolean[]> IN_REGION = ThreadLocal.withInitial(() -> new boolean[1]);

    /** One parallel region: the next unclaimed task, the count of unfinished tasks and the first failure. */
    private static final class Region {
        final int tasks;
        final IntConsumer body;
        final Thread caller;
        final AtomicInteger next = new AtomicInteger();
        final AtomicInteger remaining;
        private int failedTask = Integer.MAX_VALUE;
        volatile Throwable failure;

        Region(int tasks, IntConsumer body, Thread caller) {
            this.tasks = tasks;
            this.body = body;
            this.caller = caller;
            this.remaining = new AtomicInteger(tasks);
        }

        void work() {
            for (int i; (i = next.getAndIncrement()) < tasks; ) {
                try {
                    body.accept(i);
                } catch (Throwable e) {
                    fail(i, e);
                }
                if (remaining.decrementAndGet() == 0) LockSupport.unpark(caller);
            }
        }

        private synchronized void fail(int task, Throwable e) {
            if (task < failedTask) {
                failedTask = task;
                failure = e;
            }
        }
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
