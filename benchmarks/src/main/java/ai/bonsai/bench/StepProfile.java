package ai.bonsai.bench;

import ai.bonsai.backend.Backend;
import ai.bonsai.backend.cpu.CpuBackend;
import ai.bonsai.backend.cpu.Parallel;
import ai.bonsai.nn.Functional;
import ai.bonsai.tensor.Tensor;

import java.lang.management.GarbageCollectorMXBean;
import java.lang.management.ManagementFactory;
import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Where one Bonsai ResNet-20 training step at batch 128 spends its time, by kind of op: convolution, batch norm,
 * element-wise, the rest of the ops, the optimiser, the batch copy, and what lies outside the backend's ops (autograd
 * bookkeeping, Java glue, GC pauses). Prints one table in Markdown.
 *
 * <p>How: every CPU op goes through a {@link Proxy} around the backend ({@link CpuBackend#observeWith}) that times the
 * op's wall time on the step's thread. An op parallelises inside itself, so its wall time is the time the step waits
 * for it; calls an op makes back into the backend, and calls from pool threads, are not counted again. GC time comes
 * from the collectors' MXBeans (for a stop-the-world collector, pause time). The profiled and plain steps alternate,
 * so the table also shows what the timing itself costs.
 *
 * <p>Run: {@code benchmarks/step-profile} (or {@code java --add-modules jdk.incubator.vector -XX:+UseParallelGC -Xss4m
 * -cp benchmarks/target/benchmarks.jar ai.bonsai.bench.StepProfile [STEPS]}); threads: {@code -Dbonsai.threads}.
 */
public final class StepProfile {
    private StepProfile() {}

    enum Kind {
        CONVOLUTION("convolution (forward, dX, dW)"),
        BATCH_NORM("batch norm with its fused ReLU and residual add (forward statistics and normalisation, backward)"),
        ELEMENTWISE("element-wise (ReLU, residual add, gradient accumulation, fill, copy)"),
        OTHER_OPS("other ops (pooling, linear, softmax/cross-entropy, reductions, indexing)"),
        ALLOCATION("buffer allocation (zeroed arrays)"),
        OPTIMISER("optimiser (zero grad, SGD step)"),
        DATA("data (batch copied into a tensor)"),
        OUTSIDE("outside the ops (autograd, Java glue, GC pauses)");

        final String label;

        Kind(String label) { this.label = label; }
    }

    /** The step's phases: ops in OPTIMISER and DATA count there, whatever they are. */
    private enum Phase { DATA, MODEL, OPTIMISER }

    /** By name prefix for the convolution and batch-norm families, so that a new variant is not left in OTHER_OPS. */
    static Kind kindOf(String op) {
        if (op.startsWith("conv2d") || op.startsWith("branchConv2d")) return Kind.CONVOLUTION;
        if (op.startsWith("batchNorm")) return Kind.BATCH_NORM;
        return switch (op) {
            case "unary", "affine", "binary", "fill", "copy", "strided" -> Kind.ELEMENTWISE;
            case "allocate", "empty", "fromFloats", "fromInts", "fromLongs" -> Kind.ALLOCATION;
            case "sgdStep", "adamStep" -> Kind.OPTIMISER;
            default -> Kind.OTHER_OPS;
        };
    }

    /** Times the outermost backend calls of one thread into per-kind nanosecond sums. */
    static final class Timer implements InvocationHandler {
        final Backend target = CpuBackend.get();
        final long[] nanos = new long[Kind.values().length];
        final Map<String, long[]> perOp = new LinkedHashMap<>();
        Thread owner;
        Phase phase = Phase.MODEL;
        private int depth;

        @Override public Object invoke(Object proxy, Method m, Object[] args) throws Throwable {
            boolean outer = Thread.currentThread() == owner && depth == 0;
            if (outer) depth++;
            long t0 = outer ? System.nanoTime() : 0;
            try {
                return m.invoke(target, args);
            } catch (InvocationTargetException e) {
                throw e.getCause();
            } finally {
                if (outer) {
                    long dt = System.nanoTime() - t0;
                    depth--;
                    Kind k = switch (phase) {
                        case DATA -> Kind.DATA;
                        case OPTIMISER -> Kind.OPTIMISER;
                        case MODEL -> kindOf(m.getName());
                    };
                    nanos[k.ordinal()] += dt;
                    long[] c = perOp.computeIfAbsent((phase == Phase.MODEL ? "" : phase.name().toLowerCase() + ": ") + m.getName(), n -> new long[2]);
                    c[0] += dt;
                    c[1]++;
                }
            }
        }
    }

    public static void main(String[] args) {
        int steps = args.length > 0 ? Integer.parseInt(args[0]) : 20;
        BonsaiTrainStep s = new BonsaiTrainStep(TrainBatch.random(42), 7);
        s.checkLearns();
        for (int i = 0; i < 10; i++) s.step();          // JIT warm-up, scratch and momentum buffers

        Timer timer = new Timer();
        timer.owner = Thread.currentThread();
        Backend proxy = (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[] {Backend.class}, timer);
        long[] plain = new long[steps], profiled = new long[steps];
        long gcNanos = 0;
        int gcCount = 0;
        for (int i = 0; i < steps; i++) {
            long t0 = System.nanoTime();
            s.step();
            plain[i] = System.nanoTime() - t0;

            CpuBackend.observeWith(proxy);
            long[] gc0 = gc();
            t0 = System.nanoTime();
            try {
                timer.phase = Phase.DATA;
                Tensor x = s.input();
                try (var scope = s.arena() == null ? null : s.arena().open()) {
                    timer.phase = Phase.MODEL;
                    Tensor loss = Functional.crossEntropy(s.model.forward(x), s.labels());
                    timer.phase = Phase.OPTIMISER;
                    s.optimizer.zeroGrad();
                    timer.phase = Phase.MODEL;
                    loss.backward();
                    loss.item();
                }
                timer.phase = Phase.OPTIMISER;
                s.optimizer.step();
                timer.phase = Phase.MODEL;
            } finally {
                CpuBackend.observeWith(null);
            }
            profiled[i] = System.nanoTime() - t0;
            long[] gc1 = gc();
            gcNanos += (gc1[0] - gc0[0]) * 1_000_000L;
            gcCount += (int) (gc1[1] - gc0[1]);
        }
        long total = Arrays.stream(profiled).sum();
        long inOps = Arrays.stream(timer.nanos).sum();
        timer.nanos[Kind.OUTSIDE.ordinal()] = total - inOps;

        List<String> gcs = new ArrayList<>();
        for (GarbageCollectorMXBean gc : ManagementFactory.getGarbageCollectorMXBeans()) gcs.add(gc.getName());
        System.out.printf("ResNet-20 training step, batch %d, %d threads, JVM %s, GC %s, -Xmx %d MiB; %d profiled steps alternating with %d plain ones%n%n",
                TrainBatch.BATCH, Parallel.threads(), Runtime.version(), gcs, Runtime.getRuntime().maxMemory() >> 20, steps, steps);
        System.out.println("| part of the step | ms per step | share |");
        System.out.println("|---|---:|---:|");
        for (Kind k : Kind.values()) {
            double ms = timer.nanos[k.ordinal()] / 1e6 / steps;
            System.out.printf("| %s | %.1f | %.1f%% |%n", k.label, ms, 100.0 * timer.nanos[k.ordinal()] / total);
        }
        System.out.printf("| **step, profiled (mean)** | **%.1f** | 100%% |%n", total / 1e6 / steps);
        System.out.printf("%nGC during the profiled steps: %.1f ms per step in %d collections (%.1f%% of the step; part of \"outside the ops\""
                + " when the pauses fall between ops, of the op's time when inside one)%n", gcNanos / 1e6 / steps, gcCount, 100.0 * gcNanos / total);
        System.out.printf("step time, median: plain %.1f ms, profiled %.1f ms (the timing proxy's cost is the difference)%n",
                median(plain) / 1e6, median(profiled) / 1e6);
        System.out.println();
        System.out.println("| op | calls per step | ms per step |");
        System.out.println("|---|---:|---:|");
        timer.perOp.entrySet().stream().sorted((a, b) -> Long.compare(b.getValue()[0], a.getValue()[0])).forEach(e ->
                System.out.printf("| %s | %d | %.2f |%n", e.getKey(), e.getValue()[1] / steps, e.getValue()[0] / 1e6 / steps));
    }

    /** Accumulated collection time (ms) and count over all collectors. */
    static long[] gc() {
        long t = 0, n = 0;
        for (GarbageCollectorMXBean gc : ManagementFactory.getGarbageCollectorMXBeans()) {
            t += Math.max(0, gc.getCollectionTime());
            n += Math.max(0, gc.getCollectionCount());
        }
        return new long[] {t, n};
    }

    static double median(long[] v) {
        long[] c = v.clone();
        Arrays.sort(c);
        return c.length % 2 == 1 ? c[c.length / 2] : (c[c.length / 2 - 1] + c[c.length / 2]) / 2.0;
    }
}
