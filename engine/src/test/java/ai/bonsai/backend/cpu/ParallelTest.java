package ai.bonsai.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** The thread pool: every task runs exactly once, from one caller or several at once, nested, failing or not. */
class ParallelTest {
    private final int saved = Parallel.threads();

    @AfterEach
    void restore() { Parallel.setThreads(saved); }

    /** Runs a region of {@code tasks} tasks and checks that each ran exactly once. */
    private static void runAndCount(int tasks) {
        AtomicIntegerArray runs = new AtomicIntegerArray(tasks);
        Parallel.forEach(tasks, runs::incrementAndGet);
        for (int i = 0; i < tasks; i++) assertEquals(1, runs.get(i), "task " + i + " of " + tasks);
    }

    @Test
    void everyTaskRunsExactlyOnceForAnyThreadCount() {
        SplittableRandom rnd = new SplittableRandom(5);
        for (int threads : new int[] {1, 2, 3, 4}) {
            Parallel.setThreads(threads);
            for (int r = 0; r < 2000; r++) runAndCount(1 + rnd.nextInt(40));
        }
    }

    /**
     * Regions started by several threads at once (concurrent inference does this): one has the helpers, the others
     * run inline, and every task of every region runs exactly once.
     */
    @Test
    void concurrentCallersEachGetEveryTaskRun() throws Exception {
        Parallel.setThreads(3);
        List<Thread> callers = new ArrayList<>();
        List<Throwable> failures = java.util.Collections.synchronizedList(new ArrayList<>());
        for (int t = 0; t < 4; t++) {
            long seed = t;
            Thread th = new Thread(() -> {
                SplittableRandom rnd = new SplittableRandom(seed);
                try {
                    for (int r = 0; r < 2000; r++) runAndCount(1 + rnd.nextInt(30));
                } catch (Throwable e) {
                    failures.add(e);
                }
            });
            callers.add(th);
            th.start();
        }
        for (Thread th : callers) th.join(120_000);
        assertTrue(failures.isEmpty(), () -> "failures: " + failures);
        for (Thread th : callers) assertTrue(!th.isAlive(), "a caller is stuck");
    }

    @Test
    void nestedRegionsRunInlineAndComplete() {
        Parallel.setThreads(2);
        AtomicIntegerArray runs = new AtomicIntegerArray(8 * 16);
        Parallel.forEach(8, i -> Parallel.forEach(16, j -> runs.incrementAndGet(i * 16 + j)));
        for (int i = 0; i < runs.length(); i++) assertEquals(1, runs.get(i), "inner task " + i);
    }

    @Test
    void theLowestNumberedFailureIsRethrownAfterAllTasksRan() {
        Parallel.setThreads(2);
        AtomicIntegerArray runs = new AtomicIntegerArray(20);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> Parallel.forEach(20, i -> {
            runs.incrementAndGet(i);
            if (i == 7 || i == 13) throw new IllegalStateException("task " + i);
        }));
        assertEquals("task 7", e.getMessage());
        for (int i = 0; i < 20; i++) assertEquals(1, runs.get(i), "task " + i);
        Error err = new AssertionError("boom");
        assertSame(err, assertThrows(AssertionError.class, () -> Parallel.forEach(4, i -> { if (i == 2) throw err; })));
        runAndCount(10);                                  // the pool still works after failures
    }

    /** Changing the thread count stops the old helpers (they are daemons, but should not pile up either). */
    @Test
    void changingTheThreadCountStopsTheOldHelpers() throws Exception {
        Parallel.setThreads(4);
        runAndCount(12);
        assertTrue(helpers() >= 3, helpers() + " helpers for 4 threads");
        Parallel.setThreads(1);
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (helpers() > 0 && System.nanoTime() < deadline) Thread.sleep(10);
        assertEquals(0, helpers(), "helpers left running after setThreads(1)");
        runAndCount(5);
    }

    private static long helpers() {
        return Thread.getAllStackTraces().keySet().stream().filter(t -> t.getName().startsWith("bonsai-cpu-") && t.isAlive()).count();
    }
}
