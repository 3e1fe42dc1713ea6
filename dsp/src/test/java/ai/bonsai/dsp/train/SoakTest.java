package ai.bonsai.dsp.train;

import ai.bonsai.data.DataLoader;
import ai.bonsai.data.SyntheticCifar;
import ai.bonsai.data.TrainSplit;
import ai.bonsai.data.Transform;
import ai.bonsai.nn.Flatten;
import ai.bonsai.nn.Linear;
import ai.bonsai.nn.ReLU;
import ai.bonsai.nn.Sequential;
import ai.bonsai.optim.CosineAnnealingLR;
import ai.bonsai.optim.LrScheduler;
import ai.bonsai.optim.SGD;
import ai.bonsai.tensor.Device;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A long run: 2,000 training steps through the whole {@link TrainingRun} machinery (prefetching loader, progress bars,
 * evaluation, checkpoints, metrics, plots and signal handlers every epoch; 20 epochs of 100 steps) on a small model.
 * The heap after a full GC must stay within 5 % from step 200 to step 2,000, and the number of live threads must not
 * grow. {@code mvn verify} runs 600 steps (checked from step 200 to 600); {@code scripts/soak-test} runs the full 2,000
 * (BONSAI_SOAK_STEPS, a multiple of 200).
 */
class SoakTest {
    static long heapAfterGc() {
        long used = Long.MAX_VALUE;
        for (int i = 0; i < 4; i++) {
            System.gc();
            used = Math.min(used, ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed());
        }
        return used;
    }

    /** Live threads, after giving threads that are already finishing (a closed progress bar's timer) a moment to end. */
    static int threadsSettled(int atMost) throws InterruptedException {
        int n = ManagementFactory.getThreadMXBean().getThreadCount();
        for (int i = 0; i < 30 && n > atMost; i++) {
            Thread.sleep(100);
            n = ManagementFactory.getThreadMXBean().getThreadCount();
        }
        return n;
    }

    @Test
    void heapAndThreadsStayFlatOver2000Steps(@TempDir Path tmp) throws Exception {
        int steps = Integer.parseInt(System.getenv().getOrDefault("BONSAI_SOAK_STEPS", "600"));
        int epochs = steps / 100;
        TrainSplit data = SyntheticCifar.forTraining(9, 1600, 64);
        Generator g = new Generator(9);
        Sequential model = new Sequential(new Flatten(), new Linear(3 * 32 * 32, 64, g), new ReLU(), new Linear(64, 10, g));
        SGD sgd = new SGD(model.parameters(), 0.01f, 0.9f, 0f, 1e-4f, false);
        LrScheduler sched = new LrScheduler(sgd, new CosineAnnealingLR(epochs, 0));
        Map<Integer, Long> heap = new LinkedHashMap<>();
        Map<Integer, Integer> threads = new LinkedHashMap<>();
        int[] step = {0};
        Trainer.Hooks probe = new Trainer.Hooks() {
            @Override public void afterStep(Tensor x, Tensor y) {
                step[0]++;
                if (step[0] % 200 == 0) {
                    heap.put(step[0], heapAfterGc());
                    threads.put(step[0], ManagementFactory.getThreadMXBean().getThreadCount());
                }
            }
        };
        try (DataLoader train = DataLoader.builder(data.train()).batchSize(16).shuffle(true).seed(9).dropLast(true)
                .transform(Transform.cifarTrain()).workers(1).prefetch(3).build();
             DataLoader eval = DataLoader.builder(data.heldOut()).batchSize(64).transform(Transform.cifarEval()).build()) {
            TrainingRun run = new TrainingRun(new TrainingRun.Config("soak", tmp, epochs, 1, false, false, Device.cpu(), Map.of(), epochs),
                    new java.io.PrintStream(java.io.OutputStream.nullOutputStream())).handleSignals(true);
            run.run(model, sgd, sched, new Trainer(model, sgd, Device.cpu(), 0f, probe), train, eval, TrainingRun.Extra.NONE);
        }
        assertEquals(steps, step[0]);
        long first = heap.get(200), last = heap.get(steps);
        long max = heap.values().stream().mapToLong(Long::longValue).max().orElseThrow();
        StringBuilder table = new StringBuilder();
        heap.forEach((k, v) -> table.append(String.format(" %d:%.1f", k, v / 1048576.0)));
        String report = String.format("soak: %d steps; heap after GC at step 200 %.1f MiB, at step %d %.1f MiB (%+.2f %%), max %.1f MiB; "
                        + "live threads at step 200 %d, at step %d %d; MiB by step:%s", steps, first / 1048576.0, steps, last / 1048576.0,
                100.0 * (last - first) / first, max / 1048576.0, threads.get(200), steps, threads.get(steps), table);
        System.out.println(report);
        assertTrue(Math.abs(last - first) <= 0.05 * first, report);
        assertTrue(max <= 1.05 * first, report);
        int before = threads.get(200);
        assertTrue(threads.get(steps) <= before, report);
        int after = threadsSettled(before);
        assertTrue(after <= before, "threads after the run: " + after + " > " + before + "; " + report);
    }
}
