package ai.bonsai.dsp.export;

import ai.bonsai.autograd.GradMode;
import ai.bonsai.data.Cifar10;
import ai.bonsai.data.DataLoader;
import ai.bonsai.data.Dataset;
import ai.bonsai.data.ImageBatch;
import ai.bonsai.data.SyntheticCifar;
import ai.bonsai.data.Transform;
import ai.bonsai.dsp.cli.Export;
import ai.bonsai.dsp.imports.PackedResNetConverter;
import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.dsp.pack.PackFixtures;
import ai.bonsai.dsp.pack.PackedModel;
import ai.bonsai.dsp.pack.Packer;
import ai.bonsai.dsp.testing.RandomBatchNorm;
import ai.bonsai.dsp.testing.PublishedModels;
import ai.bonsai.dsp.testing.SharedData;
import ai.bonsai.nn.Module;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;
import ai.onnx.proto.OnnxMl.ModelProto;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Every kind of model Bonsai runs, exported and run in ONNX Runtime (Java API, test scope), gives Bonsai's
 * logits: the same argmax on every image and max |logit difference| <= 1e-4, on the shared CIFAR-10 images
 * (../shared): all 4,000 for the published models, the first {@link #STAND_IN_IMAGES} for Bonsai's random-weight
 * stand-ins, which keeps the suite within about two minutes on two shared cores. Without ../shared, the stand-ins
 * are checked on 512 synthetic images and the published models are skipped. All six published models are
 * checked.
 */
class OnnxRuntimeEquivalenceTest {
    static final double TOL = 1e-4;
    static final int STAND_IN_IMAGES = 1000;
    private static OrtEnvironment env;
    private static float[] images;       // normalised, (count, 3, 32, 32)
    private static int count;
    private static String data;

    @BeforeAll static void setUp() {
        env = OrtEnvironment.getEnvironment();
        Dataset ds;
        Path shared = sharedImages();
        try {
            ds = shared != null ? Cifar10.forEval(shared) : SyntheticCifar.forTraining(5, 512, 1).train();
        } catch (IOException e) {
            throw new RuntimeException(e);
        }
        data = ds.description();
        count = ds.size();
        images = new float[count * 3 * 32 * 32];
        int at = 0;
        try (DataLoader loader = DataLoader.builder(ds).batchSize(500).transform(Transform.cifarEval()).build()) {
            for (ImageBatch b : loader.epoch(0)) {
                System.arraycopy(b.images(), 0, images, at, b.images().length);
                at += b.images().length;
            }
        }
    }

    @AfterAll static void tearDown() { images = null; }

    /** ../shared/data/cifar10/first4000_of_data_batch_1.bin, or null when absent (no skip: synthetic images serve). */
    static Path sharedImages() {
        for (Path p = Path.of("").toAbsolutePath(); p != null; p = p.getParent()) {
            Path c = p.resolveSibling("shared").resolve("data/cifar10/first4000_of_data_batch_1.bin");
            if (Files.exists(c)) return c;
        }
        return null;
    }

    /** How ONNX Runtime's logits compare with Bonsai's. */
    record Agreement(double maxAbsDiff, int argmaxMismatches, int images, double maxAbsLogit) {
        void assertWithin(String what) {
            System.out.printf("%s on %d images of %s: max |ORT - Bonsai| = %.3g (max |logit| %.3g), argmax mismatches %d%n", what, images,
                    data, maxAbsDiff, maxAbsLogit, argmaxMismatches);
            assertEquals(0, argmaxMismatches, what + ": argmax differs on " + argmaxMismatches + " of " + images + " images");
            assertTrue(maxAbsDiff <= TOL, what + ": max |ORT - Bonsai| = " + maxAbsDiff + " > " + TOL);
        }
    }

    /** Runs {@code bonsai} and ONNX Runtime on all images, {@code batch} at a time (the last batch may be short). */
    static Agreement compare(Module bonsai, ModelProto onnx, int batch) throws OrtException { return compare(bonsai, onnx, batch, count); }

    static Agreement compare(Module bonsai, ModelProto onnx, int batch, int count) throws OrtException {
        int classes = -1;
        double maxDiff = 0, maxLogit = 0;
        int mismatches = 0;
        try (OrtSession.SessionOptions so = new OrtSession.SessionOptions()) {
            so.setIntraOpNumThreads(2);
            try (OrtSession session = env.createSession(onnx.toByteArray(), so)) {
                int per = 3 * 32 * 32;
                for (int from = 0; from < count; from += batch) {
                    int n = Math.min(batch, count - from);
                    float[] x = new float[n * per];
                    System.arraycopy(images, from * per, x, 0, x.length);
                    float[] ref;
                    try (var scope = GradMode.noGrad()) {
                        ref = bonsai.forward(Tensor.of(x, n, 3, 32, 32)).toFloatArray();
                    }
                    float[] got;
                    try (OnnxTensor in = OnnxTensor.createTensor(env, FloatBuffer.wrap(x), new long[] {n, 3, 32, 32});
                         OrtSession.Result r = session.run(Map.of(OnnxExport.INPUT, in))) {
                        OnnxTensor out = (OnnxTensor) r.get(OnnxExport.OUTPUT).orElseThrow();
                        long[] shape = out.getInfo().getShape();
                        assertEquals(n, shape[0], "ORT batch");
                        FloatBuffer fb = out.getFloatBuffer();
                        got = new float[fb.remaining()];
                        fb.get(got);
                    }
                    assertEquals(ref.length, got.length, "logit count");
                    classes = ref.length / n;
                    for (int i = 0; i < n; i++) {
                        if (argmax(ref, i * classes, classes) != argmax(got, i * classes, classes)) mismatches++;
                    }
                    for (int i = 0; i < ref.length; i++) {
                        maxDiff = Math.max(maxDiff, Math.abs(ref[i] - got[i]));
                        maxLogit = Math.max(maxLogit, Math.abs(ref[i]));
                    }
                }
            }
        }
        return new Agreement(maxDiff, mismatches, count, maxLogit);
    }

    static int argmax(float[] v, int off, int n) {
        int best = 0;
        for (int i = 1; i < n; i++) if (v[off + i] > v[off + best]) best = i;
        return best;
    }

    static OnnxExport.Options options(OnnxExport.Residual r) { return new OnnxExport.Options(null, OnnxExport.DEFAULT_OPSET, r); }

    /**
     * A random-weight stand-in with random BN statistics whose classifier is scaled so that its largest logit on
     * the first images is about 15, the size of a trained CIFAR ResNet's: the 1e-4 bound is absolute, and random
     * deep networks otherwise produce logits of arbitrary scale.
     */
    static CifarResNet calibrated(CifarResNet model) {
        float[] x = new float[64 * 3 * 32 * 32];
        System.arraycopy(images, 0, x, 0, x.length);
        float max = 0;
        try (var scope = GradMode.noGrad()) {
            for (float v : model.forward(Tensor.of(x, 64, 3, 32, 32)).toFloatArray()) max = Math.max(max, Math.abs(v));
        }
        float s = 15f / max;
        Tensor w = model.classifier().weight();
        w.copyFrom(Tensor.of(scale(w.toFloatArray(), s), w.dims()));
        Tensor b = model.classifier().bias();
        b.copyFrom(Tensor.of(scale(b.toFloatArray(), s), b.dims()));
        return model;
    }

    private static float[] scale(float[] v, float s) {
        for (int i = 0; i < v.length; i++) v[i] *= s;
        return v;
    }

    @ParameterizedTest(name = "dense ResNet-{0}")
    @ValueSource(ints = {20, 56})
    void denseModels(int depth) throws Exception {
        Generator g = new Generator(100 + depth);
        CifarResNet model = new CifarResNet(depth, 10, g);
        RandomBatchNorm.apply(model, g);
        model.eval();
        calibrated(model);
        compare(model, OnnxExport.dense(model, options(OnnxExport.Residual.SCATTER), Map.of()), 250, standIn()).assertWithin("dense ResNet-" + depth);
    }

    @ParameterizedTest(name = "masked and packed ResNet-{0} G=4")
    @ValueSource(ints = {20, 56})
    void maskedAndPackedModels(int depth) throws Exception {
        CifarResNet masked = calibrated(PackFixtures.masked(depth, 4, 0.65, 300 + depth));
        PackedModel packed = Packer.pack(masked);
        compare(masked, OnnxExport.dense(masked, options(OnnxExport.Residual.SCATTER), Map.of()), 250, standIn())
                .assertWithin("masked ResNet-" + depth + " exported densely");
        for (OnnxExport.Residual r : OnnxExport.Residual.values()) {
            compare(packed, OnnxExport.packed(packed.structure(), options(r), Map.of()), 250, standIn())
                    .assertWithin("packed ResNet-" + depth + " G=4, residual " + r);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("ai.bonsai.dsp.testing.PublishedModels#all")
    void publishedModels(PublishedModels.Model m, @TempDir Path tmp) throws Exception {
        Path file = m.file();
        String name = m.name();
        assumeTrue(sharedImages() != null, "the shared CIFAR-10 images are absent");
        PackedModel bonsai = PackedResNetConverter.load(file);
        for (OnnxExport.Residual r : OnnxExport.Residual.values()) {
            // Through the command's loader, as a user runs it.
            ModelProto onnx = Export.export(file, options(r), false).model();
            compare(bonsai, onnx, 250).assertWithin(name + ", residual " + r);
        }
    }

    @Test
    void dynamicBatchRunsAtBatch1And64AndAFixedBatchAtItsSize() throws Exception {
        CifarResNet masked = calibrated(PackFixtures.masked(20, 3, 0.6, 11));
        PackedModel packed = Packer.pack(masked);
        ModelProto dynamic = OnnxExport.packed(packed.structure(), options(OnnxExport.Residual.SCATTER), Map.of());
        assertEquals("N", dynamic.getGraph().getInput(0).getType().getTensorType().getShape().getDim(0).getDimParam());
        int n = Math.min(count, 256);
        compare(packed, dynamic, 1, n).assertWithin("dynamic batch, run at batch 1");
        compare(packed, dynamic, 64, n).assertWithin("dynamic batch, run at batch 64");
        ModelProto fixed = OnnxExport.packed(packed.structure(), new OnnxExport.Options(64, 17, OnnxExport.Residual.SCATTER), Map.of());
        assertEquals(64, fixed.getGraph().getInput(0).getType().getTensorType().getShape().getDim(0).getDimValue());
        compare(packed, fixed, 64, n).assertWithin("fixed batch 64");
    }

    private static int standIn() { return Math.min(count, STAND_IN_IMAGES); }

    @Test
    void exportedFilesLoadInOnnxRuntime(@TempDir Path tmp) throws Exception {
        CifarResNet masked = PackFixtures.masked(20, 2, 0.5, 5);
        Path file = tmp.resolve("m.onnx");
        OnnxExport.write(OnnxExport.packed(Packer.pack(masked).structure(), options(OnnxExport.Residual.PADDED), Map.of()), file);
        try (OrtSession s = env.createSession(file.toString(), new OrtSession.SessionOptions())) {
            List<String> names = new ArrayList<>(s.getInputNames());
            assertEquals(List.of(OnnxExport.INPUT), names);
            assertEquals("bonsai", s.getMetadata().getProducerName());
            assertTrue(s.getMetadata().getCustomMetadata().containsKey("normalization_mean"), s.getMetadata().getCustomMetadata().toString());
        }
    }
}
