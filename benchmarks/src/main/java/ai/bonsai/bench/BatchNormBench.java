package ai.bonsai.bench;

import ai.bonsai.backend.BinaryOp;
import ai.bonsai.backend.UnaryOp;
import ai.bonsai.backend.cpu.CpuBackend;
import ai.bonsai.backend.cpu.Parallel;
import ai.bonsai.tensor.Buffer;
import ai.bonsai.tensor.DType;
import ai.bonsai.tensor.Generator;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/**
 * The memory-bound, non-convolution kernels of a ResNet training step at batch 128, on the CPU backend's
 * {@code Backend} entry points: batch norm (training forward, backward), ReLU forward and backward, and the
 * element-wise add of residuals and gradient accumulation. Shapes are the three ResNet-20 stages
 * ({@code NxCxHW}). Run: {@code benchmarks/run BatchNormBench -f 1 -wi 3 -i 5 -w 1 -r 1}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "-Xmx4g"})
public class BatchNormBench {
    @Param({"128x16x1024", "128x32x256", "128x64x64"})
    public String shape;

    @Param({"2"})
    public int threads;

    private final CpuBackend be = CpuBackend.get();
    private int n, c, hw;
    private int[] dims;
    private Buffer x, dy, y, yRelu, dx, gamma, beta, rm, rv, mean, invStd, dg, db, other;

    @Setup(Level.Trial)
    public void setUp() {
        Parallel.setThreads(threads);
        String[] p = shape.split("x");
        n = Integer.parseInt(p[0]);
        c = Integer.parseInt(p[1]);
        hw = Integer.parseInt(p[2]);
        dims = new int[] {n, c, hw};
        int len = n * c * hw;
        Generator g = new Generator(5);
        x = random(g, len);
        dy = random(g, len);
        other = random(g, len);
        y = be.allocate(DType.FLOAT32, len);
        dx = be.allocate(DType.FLOAT32, len);
        gamma = random(g, c);
        beta = random(g, c);
        rm = be.allocate(DType.FLOAT32, c);
        rv = be.allocate(DType.FLOAT32, c);
        be.fill(rv, 1f);
        mean = be.allocate(DType.FLOAT32, c);
        invStd = be.allocate(DType.FLOAT32, c);
        dg = be.allocate(DType.FLOAT32, c);
        db = be.allocate(DType.FLOAT32, c);
        yRelu = be.allocate(DType.FLOAT32, len);
        be.batchNormActTrain(x, n, c, hw, gamma, beta, rm, rv, 0.1f, 1e-5f, null, true, yRelu, mean, invStd);
        be.batchNormTrain(x, n, c, hw, gamma, beta, rm, rv, 0.1f, 1e-5f, y, mean, invStd);
    }

    private Buffer random(Generator g, int len) {
        Buffer b = be.allocate(DType.FLOAT32, len);
        be.normal(b, g, 0.5f, 1f);
        return b;
    }

    @Benchmark
    public Buffer batchNormTrain() {
        be.batchNormTrain(x, n, c, hw, gamma, beta, rm, rv, 0.1f, 1e-5f, y, mean, invStd);
        return y;
    }

    @Benchmark
    public Buffer batchNormBackward() {
        be.batchNormBackward(x, dy, n, c, hw, gamma, mean, invStd, dx, dg, db);
        return dx;
    }

    /** Batch norm + ReLU backward reading the ReLU's output as the mask: three arrays read per pass. */
    @Benchmark
    public Buffer batchNormReluBackwardReadingMask() {
        be.batchNormActBackward(x, dy, yRelu, n, c, hw, gamma, mean, invStd, null, dx, dg, db);
        return dx;
    }

    /** The same gradients with the mask recomputed from x (what training runs): two arrays read per pass. */
    @Benchmark
    public Buffer batchNormReluBackward() {
        be.batchNormReluBackward(x, dy, yRelu, n, c, hw, gamma, beta, mean, invStd, dx, dg, db);
        return dx;
    }

    @Benchmark
    public Buffer relu() {
        be.unary(UnaryOp.RELU, x, y);
        return y;
    }

    @Benchmark
    public Buffer reluBackward() {
        be.binary(BinaryOp.RELU_BACKWARD, dy, dims, x, dims, dx, dims);
        return dx;
    }

    @Benchmark
    public Buffer add() {
        be.binary(BinaryOp.ADD, x, dims, other, dims, y, dims);
        return y;
    }
}
