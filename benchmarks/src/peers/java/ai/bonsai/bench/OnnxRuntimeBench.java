package ai.bonsai.bench;

import ai.bonsai.autograd.GradMode;
import ai.bonsai.dsp.export.OnnxExport;
import ai.bonsai.dsp.imports.PackedResNetConverter;
import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.dsp.pack.PackedModel;
import ai.bonsai.dsp.pack.Packer;
import ai.bonsai.dsp.prune.PruneWrapper;
import ai.bonsai.nn.BatchNorm2d;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;
import ai.onnx.proto.OnnxMl.ModelProto;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
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
import org.openjdk.jmh.annotations.TearDown;

/**
 * Inference of a pruned CIFAR ResNet on Bonsai and on ONNX Runtime (1.20, CPU, Java API), in one run, with 2
 * intra-op threads for both: ONNX Runtime on the dense network and on the packed export (both residual forms),
 * Bonsai dense and Bonsai packed. Compiled only with the Maven profile {@code peers}:
 * {@code BONSAI_BENCH_PROFILES=peers benchmarks/run OnnxRuntimeBench}.
 *
 * <p>{@code model}: a published file from {@code ../shared/reference} ({@code resnet56_g4} is the goal's model; a
 * file the importer rejects fails its setup and JMH moves on), or {@code standin56}, a random-weight ResNet-56
 * pruned by {@link PruneWrapper} to about 65 % of the prunable FLOPs (as in {@link PackedInferenceBench}). The dense
 * network is an unpruned CifarResNet of the same depth (its speed does not depend on its weights). ONNX Runtime
 * runs with all graph optimisations and sequential execution; setup checks that its packed logits equal Bonsai's
 * (max |diff| <= 1e-4 max |logit|) so a wrong graph is never timed.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "-Xmx4g", "-XX:+UseParallelGC", "-Dbonsai.threads=2"})
public class OnnxRuntimeBench {
    @Param({"resnet56_g4", "resnet20_g4", "standin56"})
    public String model;

    @Param({"1", "128"})
    public int batch;

    private CifarResNet dense;
    private PackedModel packed;
    private Tensor x;
    private OrtEnvironment env;
    private OrtSession ortDense, ortPacked, ortPadded;
    private OnnxTensor input;

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        if (model.startsWith("standin")) {
            packed = Packer.pack(standIn(Integer.parseInt(model.substring("standin".length()))));
        } else {
            packed = PackedResNetConverter.load(reference(model + ".pt"));
        }
        dense = new CifarResNet(packed.structure().depth(), 10, new Generator(0));
        dense.eval();
        x = Tensor.randn(new Generator(1), batch, 3, 32, 32);
        env = OrtEnvironment.getEnvironment();
        ortDense = session(OnnxExport.dense(dense, OnnxExport.Options.defaults(), Map.of()));
        ortPacked = session(OnnxExport.packed(packed.structure(),
                new OnnxExport.Options(null, OnnxExport.DEFAULT_OPSET, OnnxExport.Residual.SCATTER), Map.of()));
        ortPadded = session(OnnxExport.packed(packed.structure(),
                new OnnxExport.Options(null, OnnxExport.DEFAULT_OPSET, OnnxExport.Residual.PADDED), Map.of()));
        input = OnnxTensor.createTensor(env, FloatBuffer.wrap(x.toFloatArray()), new long[] {batch, 3, 32, 32});
        float[] ref = packed.forward(x).toFloatArray();
        check(ref, run(ortPacked), "scatter");
        check(ref, run(ortPadded), "padded");
        System.out.printf("%n%s: multiply-adds per image dense %,d, packed %,d (ratio %.3f); ONNX Runtime %s%n", model, packed.denseMacs(),
                packed.macs(), (double) packed.denseMacs() / packed.macs(), env.getVersion());
    }

    private static Path reference(String name) {
        for (Path p = Path.of("").toAbsolutePath(); p != null; p = p.getParent()) {
            Path c = p.resolveSibling("shared").resolve("reference").resolve(name);
            if (Files.exists(c)) return c;
            c = p.resolve("shared").resolve("reference").resolve(name);
            if (Files.exists(c)) return c;
        }
        throw new IllegalStateException("OnnxRuntimeBench: ../shared/reference/" + name + " not found");
    }

    static CifarResNet standIn(int depth) {
        Generator g = new Generator(depth);
        CifarResNet m = new CifarResNet(depth, 10, g);
        for (ai.bonsai.nn.Module mod : m.namedModules().values()) {
            if (!(mod instanceof BatchNorm2d bn)) continue;
            int c = bn.numFeatures();
            bn.weight().copyFrom(Tensor.rand(g, 0.5f, 1.5f, c));
            bn.bias().copyFrom(Tensor.rand(g, -0.5f, 0.5f, c));
            bn.runningMean().copyFrom(Tensor.rand(g, -0.5f, 0.5f, c));
            bn.runningVar().copyFrom(Tensor.rand(g, 0.5f, 2f, c));
        }
        PruneWrapper pw = new PruneWrapper(m, 4, 2);
        for (int l = 0; l < pw.layers().size(); l++) {
            Tensor a = pw.groupLogits(l);
            a.copyFrom(Tensor.randn(g, a.dims()));
        }
        pw.initialize(0.65);
        m.eval();
        return m;
    }

    private OrtSession session(ModelProto m) throws OrtException {
        try (OrtSession.SessionOptions so = new OrtSession.SessionOptions()) {
            so.setIntraOpNumThreads(2);
            so.setInterOpNumThreads(1);
            so.setExecutionMode(OrtSession.SessionOptions.ExecutionMode.SEQUENTIAL);
            so.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
            return env.createSession(m.toByteArray(), so);
        }
    }

    private float[] run(OrtSession s) throws OrtException {
        try (OrtSession.Result r = s.run(Map.of(OnnxExport.INPUT, input))) {
            FloatBuffer fb = ((OnnxTensor) r.get(0)).getFloatBuffer();
            float[] out = new float[fb.remaining()];
            fb.get(out);
            return out;
        }
    }

    private static void check(float[] ref, float[] got, String what) {
        double maxRef = 0, maxDiff = 0;
        for (int i = 0; i < ref.length; i++) {
            maxRef = Math.max(maxRef, Math.abs(ref[i]));
            maxDiff = Math.max(maxDiff, Math.abs(ref[i] - got[i]));
        }
        if (!(maxDiff <= 1e-4 * Math.max(maxRef, 1e-30))) {
            throw new IllegalStateException("OnnxRuntimeBench: ONNX Runtime (" + what + ") differs from Bonsai by " + maxDiff);
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() throws OrtException {
        if (input != null) input.close();
        for (OrtSession s : new OrtSession[] {ortDense, ortPacked, ortPadded}) if (s != null) s.close();
    }

    @Benchmark
    public float[] ortDense() throws OrtException { return run(ortDense); }

    @Benchmark
    public float[] ortPacked() throws OrtException { return run(ortPacked); }

    @Benchmark
    public float[] ortPackedPadded() throws OrtException { return run(ortPadded); }

    @Benchmark
    public Tensor bonsaiDense() {
        try (var scope = GradMode.noGrad()) {
            return dense.forward(x);
        }
    }

    @Benchmark
    public Tensor bonsaiPacked() { return packed.forward(x); }
}
