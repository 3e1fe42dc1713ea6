package ai.bonsai.bench;

import ai.bonsai.autograd.GradMode;
import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.dsp.pack.PackedModel;
import ai.bonsai.dsp.pack.Packer;
import ai.bonsai.dsp.prune.PruneWrapper;
import ai.bonsai.nn.BatchNorm2d;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;
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
 * Whole-network inference of a DSP-pruned CIFAR ResNet: {@code dense} (an unpruned network of the same depth),
 * {@code masked} (the pruned network run densely, as training leaves it) and {@code packed} (its multi-branch
 * form, {@link PackedModel}), at batch 1 and 128, paired in one run.
 *
 * <p>Stand-in for trained models: random weights and BN statistics, random group logits, G = 4, then
 * {@link PruneWrapper#initialize} at 0.65 (about 64-65 % of the prunable FLOPs). Packed speed depends on the
 * branch structure, which random logits make plausible but not identical to a trained model's. Setup checks that
 * the packed logits equal the masked ones (max |diff| <= 1e-4 max |logit|) so a broken kernel is never timed.
 * Run: {@code benchmarks/run PackedInferenceBench}; see {@code benchmarks/RESULTS-packed.md}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "-Xmx4g", "-XX:+UseParallelGC"})
public class PackedInferenceBench {
    @Param({"20", "56"})
    public int depth;

    @Param({"1", "128"})
    public int batch;

    private CifarResNet dense, masked;
    private PackedModel packed;
    private Tensor x;

    @Setup(Level.Trial)
    public void setUp() {
        Generator g = new Generator(depth);
        dense = new CifarResNet(depth, 10, new Generator(0));
        dense.eval();
        masked = new CifarResNet(depth, 10, g);
        for (ai.bonsai.nn.Module m : masked.namedModules().values()) {
            if (!(m instanceof BatchNorm2d bn)) continue;
            int c = bn.numFeatures();
            bn.weight().copyFrom(Tensor.rand(g, 0.5f, 1.5f, c));
            bn.bias().copyFrom(Tensor.rand(g, -0.5f, 0.5f, c));
            bn.runningMean().copyFrom(Tensor.rand(g, -0.5f, 0.5f, c));
            bn.runningVar().copyFrom(Tensor.rand(g, 0.5f, 2f, c));
        }
        PruneWrapper pw = new PruneWrapper(masked, 4, 2);
        for (int l = 0; l < pw.layers().size(); l++) {
            Tensor a = pw.groupLogits(l);
            a.copyFrom(Tensor.randn(g, a.dims()));
        }
        pw.initialize(0.65);
        masked.eval();
        packed = Packer.pack(masked);
        x = Tensor.randn(new Generator(1), batch, 3, 32, 32);
        float[] ref;
        try (var scope = GradMode.noGrad()) {
            ref = masked.forward(x).toFloatArray();
        }
        float[] got = packed.forward(x).toFloatArray();
        double maxRef = 0, maxDiff = 0;
        for (int i = 0; i < ref.length; i++) {
            maxRef = Math.max(maxRef, Math.abs(ref[i]));
            maxDiff = Math.max(maxDiff, Math.abs(ref[i] - got[i]));
        }
        if (!(maxDiff <= 1e-4 * maxRef)) throw new IllegalStateException("PackedInferenceBench: packed differs from masked by " + maxDiff);
        System.out.printf("%nResNet-%d: multiply-adds per image dense %,d, packed %,d (ratio %.3f)%n", depth, packed.denseMacs(),
                packed.macs(), (double) packed.denseMacs() / packed.macs());
    }

    @Benchmark
    public Tensor dense() {
        try (var scope = GradMode.noGrad()) {
            return dense.forward(x);
        }
    }

    @Benchmark
    public Tensor masked() {
        try (var scope = GradMode.noGrad()) {
            return masked.forward(x);
        }
    }

    @Benchmark
    public Tensor packed() { return packed.forward(x); }
}
