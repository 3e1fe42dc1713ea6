package ai.bonsai.dsp.models;

import ai.bonsai.autograd.GradMode;
import ai.bonsai.nn.Module;
import ai.bonsai.tensor.Generator;
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

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Bonsai's {@link TorchvisionResNet} (18, 50), {@link MobileNetV2} (torchvision's stem and the CIFAR stem) and
 * {@link Vgg16Bn} against torchvision's own modules with the same weights:
 * {@code scripts/torchvision-crosscheck.py logits} (Debian's PyTorch 1.13 and torchvision 0.14) builds each model with a fixed seed, sets its batch-norm statistics from a calibration batch, draws random
 * batch-norm affine parameters, and writes the state dict (safetensors), a fixed input and torchvision's eval-mode
 * logits; this test loads the state dict by name with {@link TorchvisionWeights#load} and compares Bonsai's logits.
 * The tolerance is relative to the logits' scale, max |diff| <= 1e-4 * max(1, max |logit|), because float32
 * rounding grows with the activations (ResNet-50's untrained logits reach about 300).
 *
 * <p>Measured on 2026-12-06 (CPU backend, 2 x (3, 64, 64) inputs, 2 x (3, 32, 32) for the CIFAR models):
 * <pre>
 *   model            max |logit|   max |logit diff|   relative to max |logit|   same argmax
 *   resnet18           5.53          1.38e-05            2.5e-06                 2/2
 *   resnet50         313.6           6.87e-04            2.2e-06                 2/2
 *   mobilenet_v2       1.89          1.44e-05            7.6e-06                 2/2
 *   mobilenet_v2_cifar 1.89          8.20e-06            4.3e-06                 2/2
 *   vgg16_bn_cifar    10.01          1.50e-05            1.5e-06                 2/2
 * </pre>
 * Each run writes its own figures to target/torchvision-crosscheck/bonsai-vs-torchvision.json.
 *
 * <p>Runs only in the Maven profile {@code torch-crosscheck}, which sets {@code bonsai.torch.python}; skipped
 * otherwise, so that {@code mvn verify} needs only a JDK:
 * {@code mvn -o -B -pl dsp -am test -Ptorch-crosscheck -Dtest=TorchvisionCrossCheckTest -Dsurefire.failIfNoSpecifiedTests=false}.
 * The script's output is kept in target/torchvision-crosscheck and reused while it is complete.
 */
class TorchvisionCrossCheckTest {
    private static final double RTOL = 1e-4;
    private static final List<String> MODELS = List.of("resnet18", "resnet50", "mobilenet_v2", "mobilenet_v2_cifar", "vgg16_bn_cifar");
    private static final Path OUT = Path.of("target", "torchvision-crosscheck");
    private static final Map<String, Object> report = new LinkedHashMap<>();
    private static JsonNode summary;

    @BeforeAll
    static void runTorchvision() throws Exception {
        String python = System.getProperty("bonsai.torch.python");
        assumeTrue(python != null && !python.isBlank(), "run with -Ptorch-crosscheck (needs python3-torch and python3-torchvision)");
        boolean complete = Files.exists(OUT.resolve("summary.json")) && MODELS.stream().allMatch(m ->
                Files.exists(OUT.resolve(m + ".safetensors")) && Files.exists(OUT.resolve(m + ".input.f32")) && Files.exists(OUT.resolve(m + ".logits.f32")));
        if (!complete) {
            Path script = Path.of("..", "scripts", "torchvision-crosscheck.py").toAbsolutePath().normalize();
            Files.createDirectories(OUT);
            Path log = OUT.resolve("torchvision-crosscheck.log");
            List<String> cmd = new ArrayList<>(List.of(python, script.toString(), "logits", "--out", OUT.toString(), "--models"));
            cmd.addAll(MODELS);
            System.out.println("torchvision cross-check: " + String.join(" ", cmd));
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
            if (!p.waitFor(10, TimeUnit.MINUTES)) {
                p.destroyForcibly();
                throw new AssertionError(script + " did not finish within 10 minutes; see " + log);
            }
            assertEquals(0, p.exitValue(), script + " failed:\n" + Files.readString(log));
        }
        summary = new ObjectMapper().readTree(OUT.resolve("summary.json").toFile());
    }

    static Module build(String name) {
        Generator g = new Generator(0);   // every weight is overwritten by the load
        return switch (name) {
            case "resnet18" -> TorchvisionResNet.resnet18(1000, g);
            case "resnet50" -> TorchvisionResNet.resnet50(1000, g);
            case "mobilenet_v2" -> MobileNetV2.mobilenetV2(1000, g);
            case "mobilenet_v2_cifar" -> new MobileNetV2(10, true, g);
            case "vgg16_bn_cifar" -> new Vgg16Bn(10, g);
            default -> throw new IllegalArgumentException("no Bonsai model for '" + name + "'");
        };
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"resnet18", "resnet50", "mobilenet_v2", "mobilenet_v2_cifar", "vgg16_bn_cifar"})
    void bonsaiLogitsEqualTorchvisions(String name) throws Exception {
        JsonNode s = summary.path("models").path(name);
        assertTrue(s.isObject(), "summary.json has no entry for " + name);
        int[] inputShape = new ObjectMapper().convertValue(s.get("input"), int[].class);
        int classes = s.get("classes").asInt();
        float[] input = readFloats(OUT.resolve(name + ".input.f32"));
        float[] torch = readFloats(OUT.resolve(name + ".logits.f32"));
        assertEquals(inputShape[0] * classes, torch.length, name + ": torchvision's logits");

        Module model = build(name);
        TorchvisionWeights.load(model, OUT.resolve(name + ".safetensors"));
        model.eval();
        Tensor y;
        try (var scope = GradMode.noGrad()) {
            y = model.forward(Tensor.of(input, inputShape));
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
        r.put("argmaxAgreement", agree + "/" + inputShape[0]);
        r.put("torch", summary.path("torch").asText());
        r.put("torchvision", summary.path("torchvision").asText());
        synchronized (report) {
            report.put(name, r);
            new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValue(OUT.resolve("bonsai-vs-torchvision.json").toFile(), report);
        }
        System.out.printf("%s: max |logit| %.4g, max |logit diff| %.3e, argmax agreement %d/%d%n", name, maxAbs, maxDiff, agree, inputShape[0]);
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
