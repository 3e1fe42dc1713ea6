package ai.bonsai.dsp.models;

import ai.bonsai.autograd.GradMode;
import ai.bonsai.nn.BatchNorm2d;
import ai.bonsai.nn.Conv2d;
import ai.bonsai.nn.Dropout;
import ai.bonsai.nn.Linear;
import ai.bonsai.nn.Module;
import ai.bonsai.nn.Sequential;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The torchvision architectures of ai.bonsai.dsp.models against torchvision itself, without Python at test time:
 * state-dict keys, order and shapes equal the fixtures under src/test/resources/torchvision/ (written by
 * {@code /usr/bin/python3 scripts/torchvision-crosscheck.py keys --out dsp/src/test/resources/torchvision}, from
 * torchvision 0.14.1), less the {@code num_batches_tracked} counters Bonsai's BatchNorm2d does not keep; parameter
 * counts equal torchvision's; forward shapes at 32x32 and, for ResNet-18 and MobileNetV2, at 224x224; init
 * statistics; loading a torchvision-keyed state dict; and the errors. The logits themselves are compared with
 * torchvision's in TorchvisionCrossCheckTest (-Ptorch-crosscheck).
 */
class TorchvisionArchitecturesTest {

    /** One fixture line: a state-dict key with its dtype and shape. */
    record Entry(String key, String dtype, List<Integer> shape) {
        @Override public String toString() { return key + " " + dtype + " " + shape; }
    }

    /** The fixture's entries in torchvision's order, and the parameter count from its header. */
    record Fixture(List<Entry> entries, long parameters) {}

    static Fixture fixture(String model) throws Exception {
        String path = "/torchvision/" + model + ".keys.txt";
        try (InputStream in = TorchvisionArchitecturesTest.class.getResourceAsStream(path)) {
            assertNotNull(in, "missing test resource " + path);
            BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8));
            String header = r.readLine();
            assertTrue(header.startsWith("# torchvision"), path + ": header " + header);
            long params = Long.parseLong(header.substring(header.lastIndexOf(' ') + 1));
            List<Entry> entries = new ArrayList<>();
            for (String line; (line = r.readLine()) != null; ) {
                String[] f = line.split(" ");
                assertEquals(3, f.length, path + ": line '" + line + "'");
                List<Integer> shape = f[2].equals("-") ? List.of() : Arrays.stream(f[2].split(",")).map(Integer::valueOf).toList();
                entries.add(new Entry(f[0], f[1], shape));
            }
            return new Fixture(entries, params);
        }
    }

    static Stream<Arguments> models() {
        return Stream.of(
                Arguments.of("resnet18", (Supplier<Module>) () -> TorchvisionResNet.resnet18(1000, new Generator(1)), 11_689_512L),
                Arguments.of("resnet34", (Supplier<Module>) () -> TorchvisionResNet.resnet34(1000, new Generator(1)), 21_797_672L),
                Arguments.of("resnet50", (Supplier<Module>) () -> TorchvisionResNet.resnet50(1000, new Generator(1)), 25_557_032L),
                Arguments.of("mobilenet_v2", (Supplier<Module>) () -> MobileNetV2.mobilenetV2(1000, new Generator(1)), 3_504_872L),
                Arguments.of("mobilenet_v2_cifar", (Supplier<Module>) () -> new MobileNetV2(10, true, new Generator(1)), 2_236_682L),
                Arguments.of("vgg16_bn_cifar", (Supplier<Module>) () -> new Vgg16Bn(10, new Generator(1)), 14_728_266L));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void stateDictKeysShapesAndParameterCountEqualTorchvisions(String name, Supplier<Module> build, long params) throws Exception {
        Module m = build.get();
        Fixture f = fixture(name);
        List<Entry> expected = new ArrayList<>();
        int counters = 0;
        for (Entry e : f.entries()) {
            if (TorchvisionWeights.isNumBatchesTracked(e.key())) {
                assertEquals("int64", e.dtype(), e.key());
                counters++;
            } else {
                expected.add(e);
            }
        }
        List<Entry> got = new ArrayList<>();
        for (Map.Entry<String, Tensor> e : m.stateDict().entrySet()) {
            // Bonsai's FLOAT32 is torch's float32.
            got.add(new Entry(e.getKey(), e.getValue().dtype().name().toLowerCase(), Arrays.stream(e.getValue().dims()).boxed().toList()));
        }
        assertEquals(expected.stream().map(Entry::toString).toList(),
                got.stream().map(Entry::toString).toList(),
                name + ": state dict differs from torchvision's (keys, order, dtypes, shapes)");
        assertEquals(m.namedModules().values().stream().filter(x -> x instanceof BatchNorm2d).count(), counters,
                name + ": one num_batches_tracked per batch norm");
        assertEquals(params, f.parameters(), name + ": the fixture's count");
        assertEquals(params, m.parameterCount(), name + ": parameter count");
    }

    @Test
    void forwardShapesAtCifarSize() {
        Tensor x = Tensor.randn(new Generator(7), 2, 3, 32, 32);
        try (var scope = GradMode.noGrad()) {
            assertArrayEquals(new int[] {2, 10}, TorchvisionResNet.resnet18(10, new Generator(1)).eval().forward(x).dims());
            assertArrayEquals(new int[] {2, 10}, TorchvisionResNet.resnet34(10, new Generator(1)).eval().forward(x).dims());
            assertArrayEquals(new int[] {2, 100}, TorchvisionResNet.resnet50(100, new Generator(1)).eval().forward(x).dims());
            assertArrayEquals(new int[] {2, 10}, MobileNetV2.mobilenetV2(10, new Generator(1)).eval().forward(x).dims());
            assertArrayEquals(new int[] {2, 10}, new MobileNetV2(10, true, new Generator(1)).eval().forward(x).dims());
            assertArrayEquals(new int[] {2, 10}, new Vgg16Bn(10, new Generator(1)).eval().forward(x).dims());
        }
    }

    @Test
    void forwardShapesAtImageNetSize() {
        Tensor x = Tensor.randn(new Generator(7), 1, 3, 224, 224);
        try (var scope = GradMode.noGrad()) {
            Tensor r = TorchvisionResNet.resnet18(1000, new Generator(1)).eval().forward(x);
            assertArrayEquals(new int[] {1, 1000}, r.dims());
            Tensor m = MobileNetV2.mobilenetV2(1000, new Generator(1)).eval().forward(x);
            assertArrayEquals(new int[] {1, 1000}, m.dims());
            for (float v : r.toFloatArray()) assertTrue(Float.isFinite(v));
            for (float v : m.toFloatArray()) assertTrue(Float.isFinite(v));
        }
    }

    @Test
    void everyParameterGetsAGradientInTraining() {
        // Depthwise convolutions, ReLU6, dropout and the residual adds all pass gradients back.
        MobileNetV2 net = new MobileNetV2(10, true, new Generator(3));
        net.train();
        Tensor x = Tensor.randn(new Generator(4), 2, 3, 32, 32);
        net.forward(x).square().sum().backward();
        for (Map.Entry<String, Tensor> e : net.namedParameters().entrySet()) {
            assertNotNull(e.getValue().grad(), "MobileNetV2: no gradient for " + e.getKey());
        }
        TorchvisionResNet r = TorchvisionResNet.resnet50(10, new Generator(3));
        r.forward(x).square().sum().backward();
        for (Map.Entry<String, Tensor> e : r.namedParameters().entrySet()) {
            assertNotNull(e.getValue().grad(), "ResNet-50: no gradient for " + e.getKey());
        }
    }

    @Test
    void structureFollowsTorchvision() {
        TorchvisionResNet r50 = TorchvisionResNet.resnet50(1000, new Generator(1));
        var b = (TorchvisionResNet.Bottleneck) r50.layer(1).get(0);
        assertEquals(2, b.conv2().stride(), "v1.5: the stride is on the 3x3");
        assertEquals(1, b.conv1().stride());
        assertEquals(2, ((Conv2d) b.downsample().get(0)).stride());
        assertNull(((TorchvisionResNet.Bottleneck) r50.layer(1).get(1)).downsample());
        assertNotNull(((TorchvisionResNet.Bottleneck) r50.layer(0).get(0)).downsample(), "64 -> 256 needs a projection");
        assertNull(((TorchvisionResNet.BasicBlock) TorchvisionResNet.resnet18(10, new Generator(1)).layer(0).get(0)).downsample());

        MobileNetV2 m = MobileNetV2.mobilenetV2(1000, new Generator(1));
        assertEquals(17, m.blocks().size());
        assertEquals(19, m.features().size());
        long residual = m.blocks().stream().filter(MobileNetV2.InvertedResidual::useResConnect).count();
        assertEquals(10, residual, "1 + 2 + 3 + 2 + 2 + 0 blocks repeat their width at stride 1");
        Conv2d dw = (Conv2d) ((Sequential) m.blocks().get(1).conv().get(1)).get(0);
        assertEquals(96, dw.groups(), "depthwise: groups = channels (16 * 6)");
        assertEquals(2, dw.stride());
        assertEquals(0.2f, ((Dropout) m.classifier().get(0)).p());
        assertEquals(1, ((Conv2d) ((Sequential) new MobileNetV2(10, true, new Generator(1)).features().get(0)).get(0)).stride());

        assertEquals(13, new Vgg16Bn(10, new Generator(1)).convs().size());
    }

    @Test
    void initFollowsTorchvision() {
        TorchvisionResNet r = TorchvisionResNet.resnet18(1000, new Generator(5));
        // Kaiming normal, fan_out: layer4's 3x3 convs have std sqrt(2 / (512 * 9)) over 2.4M draws.
        float[] w = r.layer(3).get(1).namedParameters().get("conv1.weight").toFloatArray();
        assertEquals(Math.sqrt(2.0 / (512 * 9)), std(w), 0.01 * Math.sqrt(2.0 / (512 * 9)));
        for (Module mod : r.namedModules().values()) {
            if (mod instanceof BatchNorm2d bn) {
                for (float v : bn.weight().toFloatArray()) assertEquals(1f, v);
                for (float v : bn.bias().toFloatArray()) assertEquals(0f, v);
            }
        }
        // fc keeps nn.Linear's default, U(-1/sqrt(512), 1/sqrt(512)).
        float bound = (float) (1 / Math.sqrt(512));
        for (float v : r.fc().weight().toFloatArray()) assertTrue(Math.abs(v) <= bound);
        MobileNetV2 m = MobileNetV2.mobilenetV2(1000, new Generator(5));
        assertEquals(0.01, std(((Linear) m.classifier().get(1)).weight().toFloatArray()), 0.0002);
        for (float v : ((Linear) m.classifier().get(1)).bias().toFloatArray()) assertEquals(0f, v);
    }

    private static double std(float[] v) {
        double s = 0, s2 = 0;
        for (float f : v) { s += f; s2 += (double) f * f; }
        double mean = s / v.length;
        return Math.sqrt(s2 / v.length - mean * mean);
    }

    @Test
    void torchvisionStateDictsLoadByNameWithoutTheBatchCounters() {
        TorchvisionResNet src = TorchvisionResNet.resnet18(10, new Generator(1));
        TorchvisionResNet dst = TorchvisionResNet.resnet18(10, new Generator(2));
        Map<String, Tensor> state = new LinkedHashMap<>(src.stateDict());
        state.put("bn1.num_batches_tracked", Tensor.ofLongs(new long[] {100}));
        state.put("layer1.0.bn2.num_batches_tracked", Tensor.ofLongs(new long[] {100}));
        TorchvisionWeights.load(dst, state);
        assertArrayEquals(src.fc().weight().toFloatArray(), dst.fc().weight().toFloatArray());
        assertArrayEquals(src.layer(2).get(0).namedParameters().get("downsample.0.weight").toFloatArray(),
                dst.layer(2).get(0).namedParameters().get("downsample.0.weight").toFloatArray());

        state.remove("fc.bias");
        state.put("fc.extra", Tensor.zeros(1));
        var e = assertThrows(IllegalArgumentException.class, () -> TorchvisionWeights.load(dst, state));
        assertTrue(e.getMessage().contains("1 missing [fc.bias]; 1 unexpected [fc.extra]"), e.getMessage());
        assertTrue(e.getMessage().contains("ignored:    2 (batch-norm step counters, which Bonsai does not keep)"), e.getMessage());
    }

    @Test
    void errorsNameTheArgumentAndWhatWasExpected() {
        var e = assertThrows(IllegalArgumentException.class, () -> TorchvisionResNet.resnet18(0, new Generator(1)));
        assertEquals("TorchvisionResNet: numClasses must be positive, got 0", e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> new TorchvisionResNet(TorchvisionResNet.BlockType.BASIC, new int[] {2, 2, 2}, 10, new Generator(1)));
        assertEquals("TorchvisionResNet: layers must hold 4 block counts, got [2, 2, 2]", e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> TorchvisionResNet.resnet18(10, new Generator(1)).forward(Tensor.zeros(1, 3, 16, 16)));
        assertEquals("TorchvisionResNet: expected input (N, 3, H, W) with H, W >= 32, got [1, 3, 16, 16]", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> MobileNetV2.mobilenetV2(-1, new Generator(1)));
        assertEquals("MobileNetV2: numClasses must be positive, got -1", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new Vgg16Bn(10, new Generator(1)).eval().forward(Tensor.zeros(1, 3, 64, 64)));
        assertTrue(e.getMessage().startsWith("Vgg16Bn: the classifier takes 512x1x1 features, but input [1, 3, 64, 64] leaves [1, 512, 2, 2]"), e.getMessage());
    }
}
