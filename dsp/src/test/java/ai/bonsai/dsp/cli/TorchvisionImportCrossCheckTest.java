package ai.bonsai.dsp.cli;

import ai.bonsai.autograd.GradMode;
import ai.bonsai.io.Checkpoint;
import ai.bonsai.tensor.Tensor;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static ai.bonsai.dsp.cli.CliTest.run;
import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * {@code bonsai import} against PyTorch: {@code scripts/torchvision-crosscheck.py import} (Debian's PyTorch 1.13,
 * torchvision 0.14) builds torchvision's ResNet-18 and ResNet-50 (1000 classes) with a fixed seed, calibrates the
 * batch-norm statistics on a random batch and draws random affine parameters (as the {@code logits} command does),
 * and saves the state dict twice, with {@code torch.save} (.pth) and as safetensors, plus torchvision's eval-mode
 * logits of three fixed 224x224 inputs. This test runs {@code bonsai import} on each file, requires the two imported
 * checkpoints to hold identical tensors (bit for bit), then rebuilds the model as {@code bonsai eval} does
 * ({@link Evaluate#rebuild}) and compares its logits: max |diff| <= 1e-4 * max(1, max |logit|).
 *
 * <p>Measured on 2026-12-06 (CPU backend, 3 x (3, 224, 224) inputs):
 * <pre>
 *   model      max |logit|   max |logit diff|   relative to max |logit|   same argmax   .pth == .safetensors
 *   resnet18     6.10          5.96e-06            9.8e-07                 3/3           identical (102 tensors)
 *   resnet50   210.7           4.43e-04            2.1e-06                 3/3           identical (267 tensors)
 * </pre>
 * ResNet-50's untrained logits reach about 200, so its absolute difference is above 1e-4 while its difference
 * relative to the logit scale is 2e-6; the rule is the relative one. Each run writes its figures to target/torchvision-import-crosscheck/bonsai-import-vs-torchvision.json.
 *
 * <p>Runs only in the Maven profile {@code torch-crosscheck} (skipped otherwise, so that {@code mvn verify} needs only
 * a JDK): {@code mvn -o -B -pl dsp -am test -Ptorch-crosscheck -Dtest=TorchvisionImportCrossCheckTest
 * -Dsurefire.failIfNoSpecifiedTests=false}. The script's output is reused while it is complete.
 */
class TorchvisionImportCrossCheckTest {
    private static final double RTOL = 1e-4;
    private static final List<String> MODELS = List.of("resnet18", "resnet50");
    private static final Path OUT = Path.of("target", "torchvision-import-crosscheck");
    private static final Map<String, Object> report = new LinkedHashMap<>();
    private static JsonNode summary;

    @BeforeAll
    static void runTorchvision() throws Exception {
        String python = System.getProperty("bonsai.torch.python");
        assumeTrue(python != null && !python.isBlank(), "run with -Ptorch-crosscheck (needs python3-torch and python3-torchvision)");
        boolean complete = Files.exists(OUT.resolve("summary.json")) && MODELS.stream().allMatch(m -> Files.exists(OUT.resolve(m + ".pth"))
                && Files.exists(OUT.resolve(m + ".safetensors")) && Files.exists(OUT.resolve(m + ".input.f32")) && Files.exists(OUT.resolve(m + ".logits.f32")));
        if (!complete) {
            Path script = Path.of("..", "scripts", "torchvision-crosscheck.py").toAbsolutePath().normalize();
            Files.createDirectories(OUT);
            Path log = OUT.resolve("torchvision-crosscheck.log");
            List<String> cmd = new ArrayList<>(List.of(python, script.toString(), "import", "--out", OUT.toString(), "--models"));
            cmd.addAll(MODELS);
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
            if (!p.waitFor(10, TimeUnit.MINUTES)) {
                p.destroyForcibly();
                throw new AssertionError(script + " did not finish within 10 minutes; see " + log);
            }
            assertEquals(0, p.exitValue(), script + " failed:\n" + Files.readString(log));
        }
        summary = new ObjectMapper().readTree(OUT.resolve("summary.json").toFile());
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"resnet18", "resnet50"})
    void importedLogitsEqualTorchvisions(String name) throws Exception {
        JsonNode s = summary.path("models").path(name);
        assertTrue(s.isObject(), "summary.json has no entry for " + name);
        int[] inputShape = new ObjectMapper().convertValue(s.get("input"), int[].class);
        int classes = s.get("classes").asInt();

        // The same command a user runs, once per format.
        Map<String, Checkpoint> imported = new LinkedHashMap<>();
        for (String ext : new String[] {"pth", "safetensors"}) {
            Path out = OUT.resolve(name + "-from-" + ext + ".bonsai.safetensors");
            CliTest.Run r = run(new Import(), "--from", OUT.resolve(name + "." + ext).toString(), "--arch", name, "--save", out.toString());
            assertEquals(0, r.code(), name + "." + ext + ": " + r.out() + r.err());
            assertTrue(r.out().contains("missing:    0\n") && r.out().contains("unexpected: 0\n") && r.out().contains("mismatched: 0\n"), r.out());
            imported.put(ext, Checkpoint.load(out));
        }
        Map<String, Tensor> a = imported.get("pth").tensors(), b = imported.get("safetensors").tensors();
        assertEquals(a.keySet(), b.keySet(), name + ": the two imports' names");
        for (String k : a.keySet()) {
            assertEquals(a.get(k).shape(), b.get(k).shape(), name + ": " + k);
            assertArrayEquals(a.get(k).toFloatArray(), b.get(k).toFloatArray(), name + ": " + k + " differs between the .pth and the safetensors import");
        }

        Evaluate.Rebuilt rebuilt = Evaluate.rebuild(imported.get("pth"));
        assertEquals(classes, rebuilt.classes());
        float[] input = readFloats(OUT.resolve(name + ".input.f32"));
        float[] torch = readFloats(OUT.resolve(name + ".logits.f32"));
        Tensor y;
        try (var scope = GradMode.noGrad()) {
            y = rebuilt.model().forward(Tensor.of(input, inputShape));
        }
        assertArrayEquals(new int[] {inputShape[0], classes}, y.dims(), name + ": logits shape");
        float[] bonsai = y.toFloatArray();
        double maxDiff = 0, maxAbs = 0;
        int agree = 0;
        for (int i = 0; i < torch.length; i++) {
            maxDiff = Math.max(maxDiff, Math.abs(bonsai[i] - torch[i]));
            maxAbs = Math.max(maxAbs, Math.abs(torch[i]));
        }
        for (int r = 0; r < inputShape[0]; r++) if (argmax(bonsai, r * classes, classes) == argmax(torch, r * classes, classes)) agree++;
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("input", inputShape);
        r.put("maxAbsLogit", maxAbs);
        r.put("maxAbsLogitDiff", maxDiff);
        r.put("relative", maxDiff / Math.max(1, maxAbs));
        r.put("argmaxAgreement", agree + "/" + inputShape[0]);
        r.put("pthEqualsSafetensors", true);
        r.put("torch", summary.path("torch").asText());
        r.put("torchvision", summary.path("torchvision").asText());
        synchronized (report) {
            report.put(name, r);
            new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValue(OUT.resolve("bonsai-import-vs-torchvision.json").toFile(), report);
        }
        System.out.printf("%s: max |logit| %.4g, max |logit diff| %.3e (relative %.2e), argmax agreement %d/%d%n", name, maxAbs, maxDiff,
                maxDiff / Math.max(1, maxAbs), agree, inputShape[0]);
        assertEquals(inputShape[0], agree, name + ": argmax differs from torchvision's");
        double tol = RTOL * Math.max(1, maxAbs);
        assertTrue(maxDiff <= tol, name + ": max |logit diff| " + maxDiff + " > " + tol + " (max |logit| " + maxAbs + ")");
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
