package ai.bonsai.bench;

import ai.bonsai.backend.cpu.Parallel;

import java.util.Locale;
import java.util.StringJoiner;

/**
 * Times the ResNet-20 training step at batch 128 as the Trainer runs it (buffers from a {@code StepArena}) and prints
 * one JSON line: every step's milliseconds, their median and the fastest, and what the timed steps allocated and how
 * many garbage collections they caused. The Bonsai half of
 * {@code benchmarks/step-vs-pytorch}, whose PyTorch half ({@code peers/torch_cpu_step.py}) prints the same fields.
 *
 * <p>Arguments: STEPS (timed, default 30) and WARMUP (default 10).
 */
public final class StepTimes {
    private StepTimes() {}

    public static void main(String[] args) {
        int steps = args.length > 0 ? Integer.parseInt(args[0]) : 30;
        int warmup = args.length > 1 ? Integer.parseInt(args[1]) : 10;
        BonsaiTrainStep s = new BonsaiTrainStep(TrainBatch.random(42), 7);
        float first = Float.NaN, last = Float.NaN;
        for (int i = 0; i < warmup; i++) {
            float loss = s.step();
            if (i == 0) first = loss;
        }
        long[] nanos = new long[steps];
        long allocated0 = PeakHeap.allocatedBytes(), gcs0 = youngCollections();
        for (int i = 0; i < steps; i++) {
            long t0 = System.nanoTime();
            last = s.step();
            nanos[i] = System.nanoTime() - t0;
        }
        // What the timed steps allocated: near zero with the StepArena. A Vector API kernel that stops compiling to
        // intrinsics boxes its vectors and shows here (and in the collection count) long before it shows in the
        // noisy timings: that is how a JDK 17 JIT profile pollution that slowed the stride-2 layers 2x was found.
        double allocatedMib = allocated0 < 0 ? -1 : (PeakHeap.allocatedBytes() - allocated0) / (double) (1 << 20) / steps;
        long gcs = youngCollections() - gcs0;
        // The same learning check as the JMH benchmarks: a step that does not train is not a step worth timing.
        if (!(last < first)) throw new IllegalStateException("the loss did not fall: " + first + " -> " + last);
        StringJoiner all = new StringJoiner(", ", "[", "]");
        long fastest = Long.MAX_VALUE;
        for (long n : nanos) {
            all.add(String.format(Locale.ROOT, "%.2f", n / 1e6));
            fastest = Math.min(fastest, n);
        }
        System.out.printf(Locale.ROOT, "{\"engine\": \"bonsai\", \"version\": \"JDK %s\", \"threads\": %d, \"batch\": %d, "
                        + "\"median_ms\": %.2f, \"fastest_ms\": %.2f, \"allocated_mib_per_step\": %.1f, \"collections\": %d, \"steps_ms\": %s}%n",
                Runtime.version(), Parallel.threads(), TrainBatch.BATCH, StepProfile.median(nanos) / 1e6, fastest / 1e6,
                allocatedMib, gcs, all);
    }

    /** Garbage collections so far, all collectors (in practice the young generation's). */
    private static long youngCollections() {
        long n = 0;
        for (var gc : java.lang.management.ManagementFactory.getGarbageCollectorMXBeans()) n += Math.max(0, gc.getCollectionCount());
        return n;
    }
}
