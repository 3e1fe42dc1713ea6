package ai.bonsai.bench;

import ai.bonsai.backend.cpu.Gemm;
import java.util.SplittableRandom;
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
 * Square sgemm, C = A * B (row-major, no transposes, beta = 0), at a power of two and at odd sizes.
 * FLOPs per op = 2 n^3, so GFLOP/s = 2 n^3 / (ms/op * 1e6); {@code benchmarks/run} prints that column.
 * {@code sgemm} and {@code sgemmScalar} differ only in their fork flags (Vector API vs {@code -Dbonsai.simd=false}).
 * Run: {@code benchmarks/run GemmBench}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "-Xmx4g"})
public class GemmBench {
    @Param({"1024", "1000", "207"})
    public int n;

    private float[] a, b, c;

    @Setup(Level.Trial)
    public void setUp() {
        SplittableRandom rnd = new SplittableRandom(1);
        a = new float[n * n];
        b = new float[n * n];
        c = new float[n * n];
        for (int i = 0; i < a.length; i++) {
            a[i] = (float) (rnd.nextDouble() - 0.5);
            b[i] = (float) (rnd.nextDouble() - 0.5);
        }
        // Refuse to time a wrong kernel: check a sample of C against the naive dot product.
        sgemm();
        for (int t = 0; t < 64; t++) {
            int i = rnd.nextInt(n), j = rnd.nextInt(n);
            double ref = 0, mass = 0;
            for (int p = 0; p < n; p++) {
                ref += (double) a[i * n + p] * b[p * n + j];
                mass += Math.abs((double) a[i * n + p] * b[p * n + j]);
            }
            if (!(Math.abs(c[i * n + j] - ref) <= 1e-5 + 1e-5 * mass)) {
                throw new IllegalStateException("sgemm n=" + n + ": C(" + i + "," + j + ") = " + c[i * n + j] + ", expected " + ref);
            }
        }
    }

    @Benchmark
    public float[] sgemm() {
        Gemm.sgemm(false, false, n, n, n, 1f, a, 0, n, b, 0, n, 0f, c, 0, n);
        return c;
    }

    @Benchmark
    @Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "-Xmx4g", "-Dbonsai.simd=false"})
    public float[] sgemmScalar() {
        return sgemm();
    }
}
