package ai.bonsai.bench;

import ai.bonsai.backend.cpu.Parallel;

import java.util.Arrays;

/**
 * The ResNet-20 training step at batch 128 with buffers reused from step to step ({@code StepArena}, the Trainer's
 * default) against every buffer allocated afresh, in one JVM, steps alternated so that both see the same machine
 * load. Both models start from the same seed and see the same batch, so their losses must agree bit for bit at every
 * step: the run stops if they do not. Prints medians, fastest steps, GC time per step and the ratio.
 *
 * <p>{@code benchmarks/step-arena [STEPS]} (default 30 steps of each after 10 warm-up steps of each).
 */
public final class StepArenaAlternation {
    private StepArenaAlternation() {}

    public static void main(String[] args) {
        int steps = args.length > 0 ? Integer.parseInt(args[0]) : 30;
        TrainBatch batch = TrainBatch.random(42);
        BonsaiTrainStep reuse = new BonsaiTrainStep(batch, 7).reuseBuffers(true);
        BonsaiTrainStep fresh = new BonsaiTrainStep(batch, 7).reuseBuffers(false);
        for (int i = 0; i < 10; i++) check(i, reuse.step(), fresh.step());
        long[][] nanos = new long[2][steps], gc = new long[2][2];
        for (int i = 0; i < steps; i++) {
            // Alternate which goes first, so neither always follows the other's garbage.
            boolean reuseFirst = i % 2 == 0;
            float a = 0, b = 0;
            for (int k = 0; k < 2; k++) {
                boolean r = reuseFirst == (k == 0);
                long[] g0 = StepProfile.gc();
                long t0 = System.nanoTime();
                float loss = (r ? reuse : fresh).step();
                nanos[r ? 0 : 1][i] = System.nanoTime() - t0;
                long[] g1 = StepProfile.gc();
                gc[r ? 0 : 1][0] += g1[0] - g0[0];
                gc[r ? 0 : 1][1] += g1[1] - g0[1];
                if (r) a = loss; else b = loss;
            }
            check(10 + i, a, b);
        }
        System.out.printf("ResNet-20 training step, batch %d, %d threads, JVM %s, -Xmx %d MiB; %d steps of each, alternated%n%n",
                TrainBatch.BATCH, Parallel.threads(), Runtime.version(), Runtime.getRuntime().maxMemory() >> 20, steps);
        System.out.println("| buffers | median ms | fastest ms | GC ms per step (collections) |");
        System.out.println("|---|---:|---:|---:|");
        String[] names = {"reused (StepArena)", "allocated afresh"};
        for (int r = 0; r < 2; r++) {
            long[] s = nanos[r].clone();
            Arrays.sort(s);
            System.out.printf("| %s | %.1f | %.1f | %.1f (%d) |%n", names[r], StepProfile.median(s) / 1e6, s[0] / 1e6, (double) gc[r][0] / steps, gc[r][1]);
        }
        System.out.printf("%nmedian ratio, afresh / reused: %.2f; arena: %d buffers reused, %d allocated, %.0f MiB held between steps%n",
                StepProfile.median(nanos[1]) / StepProfile.median(nanos[0]), reuse.arena().reused(), reuse.arena().allocated(), reuse.arena().freeBytes() / 1048576.0);
    }

    private static void check(int step, float reused, float fresh) {
        if (Float.floatToIntBits(reused) != Float.floatToIntBits(fresh)) {
            throw new IllegalStateException("step " + step + ": loss " + reused + " with reused buffers but " + fresh + " with fresh ones");
        }
    }
}
