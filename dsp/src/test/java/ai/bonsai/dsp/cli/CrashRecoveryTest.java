package ai.bonsai.dsp.cli;

import ai.bonsai.io.Checkpoint;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Crash recovery under fire: {@code bonsai pretrain} in a child JVM is killed with SIGKILL inside a training step, a
 * checkpoint write, a metrics append and a plot write, in turn (its crash points announce each and pause 25 ms, and
 * the kill lands at a random moment of the pause), then restarted with {@code --resume}. Meanwhile a thread loads
 * every checkpoint in the folder again and again. Checked: every load succeeded, each restart after a kill inside a
 * metrics append repaired the torn line, the metrics log ends with each epoch exactly once, and the final state
 * equals an uninterrupted run's bit for bit.
 *
 * <p>{@code mvn verify} kills 3 times; {@code scripts/crash-test [KILLS]} (BONSAI_KILLS, default 20) runs the full
 * version. BONSAI_KILL_SEED fixes the random moments.
 */
class CrashRecoveryTest {
    static final String[] PHASES = {"step", "checkpoint", "metrics", "plot"};

    @AfterEach
    void endChildren() { ChildRun.killAll(); }

    /** How long the child pauses at each crash point (-Dbonsai.crashpoints.pauseMs). */
    private static final int PAUSE_MS = 25;

    @Test
    void killedAtRandomMomentsLosesNothing(@TempDir Path tmp) throws Exception {
        int kills = Integer.parseInt(System.getenv().getOrDefault("BONSAI_KILLS", "3"));
        long seed = Long.parseLong(System.getenv().getOrDefault("BONSAI_KILL_SEED", Long.toString(System.nanoTime())));
        int epochs = kills <= 3 ? 5 : kills + 3;   // long enough that the kills come before the end
        Path straight = tmp.resolve("straight"), dir = tmp.resolve("killed");
        CliTest.Run ref = CliTest.run(new CifarPretrain(), GracefulStopTest.args(straight, epochs).toArray(String[]::new));
        assertEquals(0, ref.code(), ref.err());
        Files.createDirectories(dir);

        AtomicBoolean done = new AtomicBoolean();
        AtomicInteger loads = new AtomicInteger();
        List<String> loadFailures = java.util.Collections.synchronizedList(new ArrayList<>());
        Thread reader = new Thread(() -> {
            while (!done.get()) {
                try {
                    loadEvery(dir, loads, loadFailures);
                    Thread.sleep(20);
                } catch (InterruptedException e) {
                    return;
                }
            }
        }, "checkpoint-reader");
        reader.setDaemon(true);
        reader.start();

        Random rnd = new Random(seed);
        Map<String, Integer> byPhase = new LinkedHashMap<>();
        int done_ = 0, repairs = 0, restarts = 0;
        boolean expectRepair = false;
        while (done_ < kills) {
            boolean resume = Files.exists(dir.resolve("resnet8.last.safetensors"));
            List<String> a = GracefulStopTest.args(dir, epochs);
            if (resume) a.add("--resume");
            ChildRun c = ChildRun.start(PAUSE_MS, GracefulStopTest.MAIN, a);
            restarts++;
            String phase = PHASES[done_ % PHASES.length];
            int nth = 1 + rnd.nextInt(phase.equals("step") ? 10 : 2);
            String hit = "";
            // A kill before the first resume checkpoint would only test a fresh start: let the first epoch finish.
            if (!resume) hit = c.awaitLine("bonsai-crashpoint plot ", 300_000);
            for (int i = 0; hit != null && i < nth; i++) {
                hit = c.awaitLine("bonsai-crashpoint " + phase + " ", 300_000);
                if (hit == null) break;
            }
            if (hit == null) throw new AssertionError("the run ended before kill " + (done_ + 1) + " (" + phase + " #" + nth + "); stderr:\n" + c.err);
            // Jitter well inside the child's pause: with up to the whole pause plus the time to see the line, a kill
            // meant for the middle of a metrics append could land after it (no torn line to repair) on a busy machine.
            Thread.sleep(rnd.nextInt(PAUSE_MS / 5));
            c.process.destroyForcibly();   // SIGKILL
            assertEquals(137, c.waitFor(60), c.err.toString());
            if (expectRepair && resume) {
                assertTrue(c.out.toString().contains("dropped a torn last line"), "a resume after a kill in a metrics append did not repair it:\n" + c.out);
            }
            if (c.out.toString().contains("repaired ")) repairs++;
            expectRepair = phase.equals("metrics");
            done_++;
            byPhase.merge(phase, 1, Integer::sum);
            loadEvery(dir, loads, loadFailures);
        }
        CliTest.Run end = CliTest.run(new CifarPretrain(), GracefulStopTest.args(dir, epochs, "--resume").toArray(String[]::new));
        done.set(true);
        reader.join(10_000);
        assertEquals(0, end.code(), end.err());
        if (expectRepair) assertTrue(end.out().contains("dropped a torn last line"), end.out());
        if (end.out().contains("repaired ")) repairs++;
        assertEquals(List.of(), loadFailures, "checkpoints that did not load");
        GracefulStopTest.assertSameState(straight.resolve("resnet8.last.safetensors"), dir.resolve("resnet8.last.safetensors"));
        GracefulStopTest.assertSameState(straight.resolve("resnet8.safetensors"), dir.resolve("resnet8.safetensors"));
        assertEquals(IntStream.rangeClosed(1, epochs).boxed().toList(), GracefulStopTest.epochLines(dir.resolve("resnet8.metrics.jsonl")));
        try (var files = Files.list(dir)) {
            List<String> tmps = files.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".tmp")).toList();
            assertEquals(List.of(), tmps, "temporary files left behind");
        }
        System.out.printf("crash recovery: %d kills %s, %d restarts, 0 lost: final weights, momentum and best model bit-exact; "
                + "%d checkpoint loads during the run, all whole; metrics log repaired %d times, each of %d epochs logged once (seed %d)%n",
                kills, byPhase, restarts + 1, loads.get(), repairs, epochs, seed);
    }

    private static void loadEvery(Path dir, AtomicInteger loads, List<String> failures) {
        try (var files = Files.list(dir)) {
            for (Path p : files.filter(p -> p.getFileName().toString().endsWith(".safetensors") && !p.getFileName().toString().startsWith("."))
                    .toList()) {
                try {
                    Checkpoint.load(p);
                    loads.incrementAndGet();
                } catch (RuntimeException e) {
                    failures.add(p + ": " + e.getMessage());
                }
            }
        } catch (java.io.IOException e) {
            failures.add(dir + ": " + e);
        }
    }
}
