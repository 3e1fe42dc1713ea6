package ai.bonsai.backend.cpu;

import java.util.concurrent.atomic.AtomicBoolean;
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
    private static volatile Crew crew;

    /**
     * How long a helper keeps spinning for the next region, and the caller for the helpers' last tasks, before they
     * park ({@code -Dbonsai.spinMicros=N}, default 500). Parking at once was what the ForkJoinPool did: on these
     * 2-core VMs a parked thread took 180-210 us on average to start working after a region was handed to it, in each
     * of the 184 regions a ResNet-20 step then had, so the second core sat idle for 33-38 ms of a 200 ms step. OpenMP runtimes
     * spin likewise before they sleep (GOMP's spin count, Intel's 200 ms KMP_BLOCKTIME).
     *
     * <p>Why 500 us rather than the 100 us of before: a ResNet-20 step (247 regions) has about 60 gaps between regions
     * longer than 100 us (the optimiser, the loss and the classifier, the glue between a batch norm and the next
     * convolution), so at 100 us the helper parked 60 times a step, and some of those wakes took 0.5-3.5 ms on these
     * VMs (timed from a region's publication to the helper's first task), while the caller worked alone. At 500 us it
     * parks 4-8 times a step. Alternated step by step in one JVM, 30 rounds, 3 JVMs: 500 us took 0.970, 0.984 and
     * 0.991 of the 100 us step (per-round medians), 2000 us 0.979, 0.995 and 1.002.
     *
     * <p>The cost shows on a machine whose cores other processes want: a spinning helper takes CPU share from our
     * own caller there (with two busy processes on the two cores, every setting measured 360-520 ms a step, within
     * the noise). Set 0 on a machine shared with other busy work.
     */
    static final long DEFAULT_SPIN_MICROS = 500;
    static final long SPIN_NANOS = spinMicros() * 1000L;

    private Parallel() {}

    private static long spinMicros() {
        String p = System.getProperty("bonsai.spinMicros");
        if (p == null || p.isBlank()) return DEFAULT_SPIN_MICROS;
        try {
            long v = Long.parseLong(p.trim());
            if (v >= 0) return v;
        } catch (NumberFormatException e) { /* reported below */ }
        throw new IllegalArgumentException("-Dbonsai.spinMicros: expected a non-negative integer (microseconds), got '" + p + "'");
    }

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
            Crew old = crew;
            crew = null;
            if (old != null) old.stop();
        }
    }

    private static Crew crew() {
        Crew c = crew;
        if (c == null) {
            synchronized (Parallel.class) {
                c = crew;
                if (c == null) crew = c = new Crew(Math.max(1, threads - 1));
            }
        }
        return c;
    }

    /**
     * Runs {@code body.accept(i)} for i in [0, tasks). Runs inline when there is one task, one thread, when called
     * from inside a parallel region (nested parallelism would only add overhead on a few cores), or when another
     * thread's region has the helpers (concurrent callers, such as concurrent inference, then each use their own
     * thread).
     *
     * <p>The calling thread takes part: it and the {@code threads() - 1} helpers claim task indices from a shared
     * counter until none are left, and the caller returns once every claimed task has finished. So a region keeps
     * exactly {@code threads()} threads busy and the caller starts working at once. Which thread runs a task does not
     * change what it computes (tasks write disjoint outputs), so results stay independent of scheduling. If tasks
     * throw, all tasks still run and the exception of the lowest-numbered failing task is rethrown.
     */
    public static void forEach(int tasks, IntConsumer body) {
        if (tasks <= 0) return;
        int n = threads;
        Crew c;
        if (tasks == 1 || n == 1 || Thread.currentThread() instanceof Helper || IN_REGION.get()[0]
                || !(c = crew()).claim()) {
            for (int i = 0; i < tasks; i++) body.accept(i);
            return;
        }
        Region r = new Region(tasks, body, Thread.currentThread());
        boolean[] inRegion = IN_REGION.get();
        inRegion[0] = true;
        try {
            c.publish(r);
            r.work();
            long spinStart = System.nanoTime();
            while (r.remaining.get() != 0) {
                if (System.nanoTime() - spinStart < SPIN_NANOS) Thread.onSpinWait();
                else LockSupport.park(r);
            }
        } finally {
            inRegion[0] = false;
            c.release();
        }
        Throwable f = r.failure;
        if (f instanceof RuntimeException e) throw e;
        if (f instanceof Error e) throw e;
        if (f != null) throw new RuntimeException(f);
    }

    /** Set while the calling (non-pool) thread runs tasks of a region, so that nested regions run inline. */
    private static final ThreadLocal<boolean[]> IN_REGION = ThreadLocal.withInitial(() -> new boolean[1]);

    /**
     * The helper threads and the region they work on. One caller at a time has them ({@link #claim}); it publishes
     * its region by bumping {@code generation}, which spinning helpers see at once and parked ones are woken for.
     */
    private static final class Crew {
        final Helper[] helpers;
        final AtomicBoolean owned = new AtomicBoolean();
        volatile Region current;
        volatile long generation;
        volatile boolean stopped;

        Crew(int count) {
            helpers = new Helper[count];
            for (int i = 0; i < count; i++) {
                helpers[i] = new Helper(this, i);
                helpers[i].start();
            }
        }

        boolean claim() { return owned.compareAndSet(false, true); }

        void release() {
            current = null;
            owned.set(false);
        }

        void publish(Region r) {
            current = r;
            generation++;               // only the owner writes it; the volatile write publishes r
            for (Helper h : helpers) if (h.parked) LockSupport.unpark(h);
        }

        void stop() {
            stopped = true;
            for (Helper h : helpers) LockSupport.unpark(h);
        }
    }

    /** A helper: works on each region its crew publishes, spins a while after each, then parks until the next. */
    private static final class Helper extends Thread {
        final Crew crew;
        volatile boolean parked;

        Helper(Crew crew, int index) {
            super("bonsai-cpu-" + (index + 1));
            this.crew = crew;
            setDaemon(true);
        }

        @Override public void run() {
            long seen = crew.generation;
            while (true) {
                long g, idleSince = System.nanoTime();
                while ((g = crew.generation) == seen && !crew.stopped) {
                    if (System.nanoTime() - idleSince < SPIN_NANOS) {
                        Thread.onSpinWait();
                    } else {
                        // Announce the park, then look again: either the publisher sees the flag and unparks us, or we
                        // see its new generation here (both fields are volatile).
                        parked = true;
                        if (crew.generation == seen && !crew.stopped) LockSupport.park(this);
                        parked = false;
                    }
                }
                if (crew.stopped) return;
                seen = g;
                Region r = crew.current;
                if (r != null) r.work();   // a region already finished by its caller has no tasks left: a no-op
            }
        }
    }

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
