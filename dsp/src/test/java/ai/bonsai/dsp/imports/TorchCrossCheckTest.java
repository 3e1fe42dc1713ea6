package ai.bonsai.dsp.imports;

import ai.bonsai.autograd.GradMode;
import ai.bonsai.data.Cifar10;
import ai.bonsai.data.DataLoader;
import ai.bonsai.data.ImageBatch;
import ai.bonsai.data.Transform;
import ai.bonsai.dsp.testing.PublishedModels;
import ai.bonsai.dsp.testing.PublishedModels.Model;
import ai.bonsai.dsp.testing.SharedData;
import ai.bonsai.tensor.Tensor;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Bonsai's logits for the six published models against PyTorch's, on the 4,000 shared CIFAR-10 images: the same
 * argmax on every image and a max absolute logit difference of at most 1e-3. PyTorch (Debian's python3-torch)
 * runs each archive's own TorchScript through {@code scripts/torch-crosscheck.py}, which this test starts when
 * its output is missing. Runs only in the Maven profile {@code torch-crosscheck}, which sets
 * {@code bonsai.torch.python}; otherwise skipped, so that {@code mvn verify} needs only a JDK:
 * {@code mvn -B -pl dsp -am verify -Ptorch-crosscheck -Dtest=TorchCrossCheckTest -Dsurefire.failIfNoSpecifiedTests=false}.
 * Writes target/torch-crosscheck/bonsai-vs-torch.json with each model's figures (the README's table).
 */
class TorchCrossCheckTest {
    private static final double MAX_LOGIT_DIFF = 1e-3;
    private static final Path OUT = Path.of("target", "torch-crosscheck");
    private static final Map<String, Object> report = new LinkedHashMap<>();
    private static JsonNode summary;

    @BeforeAll
    static void runPyTorch() throws Exception {
        String python = System.getProperty("bonsai.torch.python");
        assumeTrue(python != null && !python.isBlank(), "run with -Ptorch-crosscheck (needs python3-torch)");
        Path reference = PublishedModels.ALL.get(0).file().getParent();
        Path data = SharedData.require("data/cifar10/first4000_of_data_batch_1.bin");
        boolean complete = Files.exists(OUT.resolve("summary.json"))
                && PublishedModels.ALL.stream().allMatch(m -> Files.exists(OUT.resolve(m.name() + ".logits.f32")));
        if (!complete) {
            Path script = Path.of("..", "scripts", "torch-crosscheck.py").toAbsolutePath().normalize();
            Files.createDirectories(OUT);
            Path log = OUT.resolve("torch-crosscheck.log");
            List<String> cmd = List.of(python, script.toString(), "--reference", reference.toString(), "--data", data.toString(), "--out", OUT.toString());
            System.out.println("torch cross-check: " + String.join(" ", cmd));
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
            if (!p.waitFor(20, TimeUnit.MINUTES)) {
                p.destroyForcibly();
                throw new AssertionError(script + " did not finish within 20 minutes; see " + log);
            }
            assertEquals(0, p.exitValue(), script + " failed:\n" + Files.readString(log));
        }
        summary = new ObjectMapper().readTree(OUT.resolve("summary.json").toFile());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("ai.bonsai.dsp.testing.PublishedModels#all")
    void bonsaiLogitsEqualPyTorchs(Model m) throws Exception {
        JsonNode t = summary.path("models").path(m.name());
        assertTrue(t.isObject(), "summary.json has no entry for " + m);
        int classes = t.get("classes").asInt();
        float[] torch = readFloats(OUT.resolve(m.name() + ".logits.f32"));
        assertEquals(4000 * classes, torch.length, m + ": PyTorch logits");

        PackedResNetForward net = new PackedResNetForward(TorchPackedImporter.read(m.file()));
        Path data = SharedData.require("data/cifar10/first4000_of_data_batch_1.bin");
        List<float[]> batches = new ArrayList<>();
        List<Long> labels = new ArrayList<>();
        try (DataLoader loader = DataLoader.builder(Cifar10.forEval(data)).batchSize(500).transform(Transform.cifarEval()).build();
             var scope = GradMode.noGrad()) {
            for (ImageBatch b : loader.epoch(0)) {
                batches.add(net.forward(Tensor.of(b.images(), b.shape().dims())).toFloatArray());
                for (long l : b.labels()) labels.add(l);
            }
        }
        int n = labels.size(), agree = 0, correctBonsai = 0, correctTorch = 0, worst = -1;
        assertEquals(4000, n);
        double maxDiff = 0;
        int row = 0;
        for (float[] batch : batches) {
            for (int i = 0; i < batch.length / classes; i++, row++) {
                int a = argmax(batch, i * classes, classes), b = argmax(torch, row * classes, classes);
                if (a == b) agree++;
                if (a == labels.get(row)) correctBonsai++;
                if (b == labels.get(row)) correctTorch++;
                for (int c = 0; c < classes; c++) {
                    double d = Math.abs(batch[i * classes + c] - torch[row * classes + c]);
                    if (!(d <= maxDiff)) { maxDiff = d; worst = row; }
                }
            }
        }
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("images", n);
        r.put("bonsaiAccuracy", 100.0 * correctBonsai / n);
        r.put("torchAccuracy", 100.0 * correctTorch / n);
        r.put("argmaxAgreement", 100.0 * agree / n);
        r.put("maxAbsLogitDiff", maxDiff);
        r.put("torch", summary.path("torch").asText());
        synchronized (report) {
            report.put(m.name(), r);
            new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValue(OUT.resolve("bonsai-vs-torch.json").toFile(), report);
        }
        System.out.printf("%s: Bonsai %.3f %%, PyTorch %.3f %%, argmax agreement %d/%d, max |logit diff| %.2e%n",
                m, 100.0 * correctBonsai / n, 100.0 * correctTorch / n, agree, n, maxDiff);
        assertEquals(m.correct(), correctTorch, m + ": PyTorch's accuracy differs from the published fact");
        assertEquals(n, agree, m + ": argmax differs from PyTorch's on " + (n - agree) + " images");
        assertTrue(maxDiff <= MAX_LOGIT_DIFF, m + ": max |logit diff| " + maxDiff + " > " + MAX_LOGIT_DIFF + " (image " + worst + ")");
    }

    private static int argmax(float[] v, int off, int n) {
        int best = 0;
        for (int c = 1; c < n; c++) if (v[off + c] > v[off + best]) best = c;
        return best;
    }

    private static float[] readFloats(Path f) throws Exception {
        ByteBuffer bb = ByteBuffer.wrap(Files.readAllBytes(f)).order(ByteOrder.LITTLE_ENDIAN);
        float[] out = new float[bb.remaining() / 4];
        bb.asFloatBuffer().get(out);
        return out;
    }
}
