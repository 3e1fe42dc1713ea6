package ai.bonsai.bench;

import ai.bonsai.backend.cpu.Parallel;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Training throughput of the CIFAR ResNet-20 at batch 128: one invocation is a full step (forward,
 * cross-entropy, backward, SGD momentum 0.9, weight decay 1e-4) on a fixed random batch, and
 * {@code @OperationsPerInvocation(128)} makes JMH's ops/s the images per second. Both engines use
 * {@link #threads} threads (default 2, the cores of the reference machine; {@code -p threads=1,2} for both).
 *
 * <p>The peer, {@code TrainStepDjl.pytorch} (src/peers/java), is the same step on DJL's PyTorch engine; it is
 * compiled only with {@code -Ppeers}. Run both in one JMH invocation with
 * {@code BONSAI_BENCH_PROFILES=peers benchmarks/run TrainStep -f 1 -wi 3 -i 5}; without the variable only
 * Bonsai's row appears. Setup checks that the loss is finite and falls over a few steps before timing.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@OperationsPerInvocation(TrainBatch.BATCH)
@Warmup(iterations = 3, time = 5)
@Measurement(iterations = 5, time = 5)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "-Xss4m", "-Xmx4g"})
public class TrainStep {
    /** The CPU backend's threads; the PyTorch peer takes the same parameter for its intra-op threads. */
    @Param({"2"})
    public int threads;

    private BonsaiTrainStep step;
    private float lastLoss;

    @Setup(Level.Trial)
    public void setUp() {
        Parallel.setThreads(threads);
        step = new BonsaiTrainStep(TrainBatch.random(42), 7);
        step.checkLearns();
    }

    /** Returns the loss so the step cannot be optimised away. */
    @Benchmark
    public float bonsai() {
        return lastLoss = step.step();
    }

    /**
     * The same step with the convolutions on the direct method only ({@code -Dbonsai.conv.winograd=false}), to show
     * what the Winograd path contributes.
     */
    @Benchmark
    @Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "-Xss4m", "-Xmx4g", "-Dbonsai.conv.winograd=false"})
    public float bonsaiDirectConv() {
        return bonsai();
    }

    /** Training on for minutes must not have diverged; a NaN here means the timed steps were not real training. */
    @TearDown(Level.Trial)
    public void tearDown() {
        if (!Float.isFinite(lastLoss)) throw new IllegalStateException("TrainStep.bonsai: loss became " + lastLoss + " while timing");
    }
}
