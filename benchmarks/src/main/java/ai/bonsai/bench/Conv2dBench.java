package ai.bonsai.bench;

import ai.bonsai.backend.cpu.Conv2dKernels;
import ai.bonsai.backend.ConvGeometry;
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
import org.openjdk.jmh.infra.Blackhole;

/**
 * The convolutions of a CIFAR ResNet at batch 128.
 *
 * <p>Shape grammar: {@code NxCxHxW-K[sS][kR]}: input (N, C, H, W), K output channels, stride S (default 1),
 * square kernel R (default 3), padding R/2. So {@code 128x16x32x32-32s2} is the 16->32 stride-2 transition and
 * {@code 128x16x32x32-32s2k1} its 1x1 projection shortcut. FLOPs: forward = 2 * macs; forwardBackward (forward,
 * dx and dW) = 6 * macs, with macs = N*K*C*R*R*outH*outW; {@code benchmarks/run} prints GFLOP/s from these.
 * {@code forward} and {@code forwardScalar} differ only in their fork flags, and so do {@code forward(Backward)} and
 * {@code forward(Backward)Direct}: the direct methods switch off the Winograd path ({@code -Dbonsai.conv.winograd=false})
 * that stride-1 3x3 shapes take by default. FLOPs are counted for the direct method in both, so a Winograd figure is
 * a direct-equivalent rate (it does about half those multiply-adds). Run: {@code benchmarks/run Conv2dBench}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "-Xmx4g"})
public class Conv2dBench {
    @Param({"128x16x32x32-16", "128x32x16x16-32", "128x64x8x8-64", "128x16x32x32-32s2", "128x32x16x16-64s2",
            "128x16x32x32-32s2k1", "128x32x16x16-64s2k1"})
    public String shape;

    private ConvGeometry g;
    private float[] x, w, bias, y, dy, dx, dw;

    /** Parses the shape grammar above. */
    static ConvGeometry parse(String shape) {
        java.util.regex.Matcher m = java.util.regex.Pattern
                .compile("(\\d+)x(\\d+)x(\\d+)x(\\d+)-(\\d+)(?:s(\\d+))?(?:k(\\d+))?").matcher(shape);
        if (!m.matches()) throw new IllegalArgumentException("Conv2dBench: bad shape '" + shape + "', expected NxCxHxW-K[sS][kR]");
        int stride = m.group(6) == null ? 1 : Integer.parseInt(m.group(6));
        int r = m.group(7) == null ? 3 : Integer.parseInt(m.group(7));
        return new ConvGeometry(Integer.parseInt(m.group(1)), Integer.parseInt(m.group(2)), Integer.parseInt(m.group(3)),
                Integer.parseInt(m.group(4)), Integer.parseInt(m.group(5)), r, r, stride, stride, r / 2, r / 2, 1);
    }

    @Setup(Level.Trial)
    public void setUp() {
        g = parse(shape);
        SplittableRandom rnd = new SplittableRandom(3);
        x = random(rnd, g.n() * g.c() * g.h() * g.w());
        w = random(rnd, g.k() * g.cg() * g.r() * g.s());
        bias = random(rnd, g.k());
        dy = random(rnd, g.n() * g.k() * g.outH() * g.outW());
        y = new float[dy.length];
        dx = new float[x.length];
        dw = new float[w.length];
        verify(rnd);
    }

    private static float[] random(SplittableRandom rnd, int len) {
        float[] v = new float[len];
        for (int i = 0; i < len; i++) v[i] = (float) (rnd.nextDouble() - 0.5);
        return v;
    }

    /** Runs each kernel once and checks sampled outputs against the naive formulas, so a broken kernel is never timed. */
    private void verify(SplittableRandom rnd) {
        Conv2dKernels.forward(g, x, w, bias, y);
        Conv2dKernels.backwardData(g, dy, w, dx);
        Conv2dKernels.backwardWeight(g, x, dy, dw);
        int oh = g.outH(), ow = g.outW(), c = g.c(), h = g.h(), wd = g.w(), r = g.r(), s = g.s();
        for (int t = 0; t < 32; t++) {
            // y(n, k, i, j) = bias(k) + sum_{c,r,s} x(n, c, i*st - p + r, j*st - p + s) w(k, c, r, s)
            int n = rnd.nextInt(g.n()), k = rnd.nextInt(g.k()), i = rnd.nextInt(oh), j = rnd.nextInt(ow);
            double ref = bias[k], mass = 0;
            for (int cc = 0; cc < c; cc++)
                for (int rr = 0; rr < r; rr++)
                    for (int ss = 0; ss < s; ss++) {
                        int hi = i * g.strideH() - g.padH() + rr, wi = j * g.strideW() - g.padW() + ss;
                        if (hi < 0 || hi >= h || wi < 0 || wi >= wd) continue;
                        double term = (double) x[((n * c + cc) * h + hi) * wd + wi] * w[((k * c + cc) * r + rr) * s + ss];
                        ref += term;
                        mass += Math.abs(term);
                    }
            check("forward", y[((n * g.k() + k) * oh + i) * ow + j], ref, mass);

            // dx(n, c, hi, wi) = sum over (k, r, s) with hi = i*st - p + r, wi = j*st - p + s of dy(n, k, i, j) w(k, c, r, s)
            int hi = rnd.nextInt(h), wi = rnd.nextInt(wd), cc = rnd.nextInt(c);
            ref = 0;
            mass = 0;
            for (int kk = 0; kk < g.k(); kk++)
                for (int rr = 0; rr < r; rr++)
                    for (int ss = 0; ss < s; ss++) {
                        int ii = hi + g.padH() - rr, jj = wi + g.padW() - ss;
                        if (ii % g.strideH() != 0 || jj % g.strideW() != 0) continue;
                        ii /= g.strideH();
                        jj /= g.strideW();
                        if (ii < 0 || ii >= oh || jj < 0 || jj >= ow) continue;
                        double term = (double) dy[((n * g.k() + kk) * oh + ii) * ow + jj] * w[((kk * c + cc) * r + rr) * s + ss];
                        ref += term;
                        mass += Math.abs(term);
                    }
            check("backwardData", dx[((n * c + cc) * h + hi) * wd + wi], ref, mass);

            // dw(k, c, r, s) = sum_{n,i,j} dy(n, k, i, j) x(n, c, i*st - p + r, j*st - p + s)
            int rr = rnd.nextInt(r), ss = rnd.nextInt(s);
            ref = 0;
            mass = 0;
            for (int nn = 0; nn < g.n(); nn++)
                for (int ii = 0; ii < oh; ii++)
                    for (int jj = 0; jj < ow; jj++) {
                        int xh = ii * g.strideH() - g.padH() + rr, xw = jj * g.strideW() - g.padW() + ss;
                        if (xh < 0 || xh >= h || xw < 0 || xw >= wd) continue;
                        double term = (double) dy[((nn * g.k() + k) * oh + ii) * ow + jj] * x[((nn * c + cc) * h + xh) * wd + xw];
                        ref += term;
                        mass += Math.abs(term);
                    }
            check("backwardWeight", dw[((k * c + cc) * r + rr) * s + ss], ref, mass);
        }
    }

    private void check(String what, float got, double ref, double mass) {
        if (!(Math.abs(got - ref) <= 1e-4 + 1e-5 * mass)) {
            throw new IllegalStateException("Conv2dBench " + shape + " " + what + ": got " + got + ", expected " + ref);
        }
    }

    @Benchmark
    public float[] forward() {
        Conv2dKernels.forward(g, x, w, bias, y);
        return y;
    }

    @Benchmark
    public void forwardBackward(Blackhole bh) {
        Conv2dKernels.forward(g, x, w, bias, y);
        Conv2dKernels.backwardData(g, dy, w, dx);
        Conv2dKernels.backwardWeight(g, x, dy, dw);
        bh.consume(y);
        bh.consume(dx);
        bh.consume(dw);
    }

    @Benchmark
    @Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "-Xmx4g", "-Dbonsai.simd=false"})
    public float[] forwardScalar() {
        return forward();
    }

    @Benchmark
    @Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "-Xmx4g", "-Dbonsai.conv.winograd=false"})
    public float[] forwardDirect() {
        return forward();
    }

    @Benchmark
    @Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "-Xmx4g", "-Dbonsai.conv.winograd=false"})
    public void forwardBackwardDirect(Blackhole bh) {
        forwardBackward(bh);
    }
}
