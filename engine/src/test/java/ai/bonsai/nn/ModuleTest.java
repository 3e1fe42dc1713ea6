package ai.bonsai.nn;

import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** Module bookkeeping: dotted names, modes, state dicts, strict/non-strict loading and printing. */
class ModuleTest {

    /** A residual-style block: two convolutions with batch norm, registered the way a ResNet block is. */
    static final class Block extends Module {
        final Conv2d convA;
        final BatchNorm2d bnA;

        Block(int c, Generator g) {
            convA = registerModule("conv_a", new Conv2d(c, c, 3, 1, 1, 1, false, g));
            bnA = registerModule("bn_a", new BatchNorm2d(c));
        }

        @Override public Tensor forward(Tensor x) { return bnA.forward(convA.forward(x)).relu().add(x); }
    }

    static final class Net extends Module {
        Net(Generator g) {
            registerModule("stem", new Sequential(new Conv2d(3, 4, 3, 1, 1, 1, false, g), new BatchNorm2d(4), new ReLU()));
            registerModule("stage_1", new ModuleList(new Block(4, g), new Block(4, g)));
            registerModule("pool", new AdaptiveAvgPool2d(1));
            registerModule("flatten", new Flatten());
            registerModule("fc", new Linear(4, 3, g));
        }

        @Override public Tensor forward(Tensor x) {
            Tensor h = submodule("stem").forward(x);
            for (Module b : (ModuleList) submodule("stage_1")) h = b.forward(h);
            return submodule("fc").forward(submodule("flatten").forward(submodule("pool").forward(h)));
        }
    }

    @Test
    void dottedNamesInRegistrationOrder() {
        Net net = new Net(new Generator(1));
        assertEquals(List.of(
                "stem.0.weight", "stem.1.weight", "stem.1.bias",
                "stage_1.0.conv_a.weight", "stage_1.0.bn_a.weight", "stage_1.0.bn_a.bias",
                "stage_1.1.conv_a.weight", "stage_1.1.bn_a.weight", "stage_1.1.bn_a.bias",
                "fc.weight", "fc.bias"), new ArrayList<>(net.namedParameters().keySet()));
        assertEquals(List.of("stem.1.running_mean", "stem.1.running_var",
                "stage_1.0.bn_a.running_mean", "stage_1.0.bn_a.running_var",
                "stage_1.1.bn_a.running_mean", "stage_1.1.bn_a.running_var"), new ArrayList<>(net.namedBuffers().keySet()));
        // The state dict interleaves per module: its parameters, its buffers, then its children.
        assertEquals(List.of("stem.0.weight", "stem.1.weight", "stem.1.bias", "stem.1.running_mean", "stem.1.running_var",
                "stage_1.0.conv_a.weight", "stage_1.0.bn_a.weight", "stage_1.0.bn_a.bias", "stage_1.0.bn_a.running_mean", "stage_1.0.bn_a.running_var",
                "stage_1.1.conv_a.weight", "stage_1.1.bn_a.weight", "stage_1.1.bn_a.bias", "stage_1.1.bn_a.running_mean", "stage_1.1.bn_a.running_var",
                "fc.weight", "fc.bias"), new ArrayList<>(net.stateDict().keySet()));
        assertEquals(List.of("", "stem", "stem.0", "stem.1", "stem.2", "stage_1", "stage_1.0", "stage_1.0.conv_a", "stage_1.0.bn_a",
                "stage_1.1", "stage_1.1.conv_a", "stage_1.1.bn_a", "pool", "flatten", "fc"), new ArrayList<>(net.namedModules().keySet()));
        assertSame(net.submodule("stage_1.1.bn_a"), ((Block) ((ModuleList) net.submodule("stage_1")).get(1)).bnA);
        for (Tensor p : net.parameters()) assertTrue(p.requiresGrad());
        for (Tensor b : net.buffers()) assertFalse(b.requiresGrad());
        assertEquals(4 * 3 * 9 + 8 + 2 * (16 * 9 + 8) + 12 + 3, net.parameterCount());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> net.submodule("stage_1.7"));
        assertTrue(e.getMessage().contains("no child '7'"), e.getMessage());
    }

    @Test
    void sharedParameterListedOnce() {
        Generator g = new Generator(2);
        Linear shared = new Linear(2, 2, g);
        Sequential s = new Sequential(shared, new ReLU(), shared);
        assertEquals(List.of("0.weight", "0.bias"), new ArrayList<>(s.namedParameters().keySet()));
        assertEquals(4, s.stateDict().size());       // the state dict keeps both paths, as PyTorch's does
    }

    @Test
    void trainAndEvalPropagate() {
        Net net = new Net(new Generator(3));
        assertTrue(net.isTraining());
        net.eval();
        for (Module m : net.namedModules().values()) assertFalse(m.isTraining(), m.getClass().getSimpleName());
        net.train();
        for (Module m : net.namedModules().values()) assertTrue(m.isTraining(), m.getClass().getSimpleName());
    }

    @Test
    void applyVisitsChildrenBeforeParents() {
        Net net = new Net(new Generator(4));
        List<String> seen = new ArrayList<>();
        net.apply(m -> seen.add(m.getClass().getSimpleName()));
        assertEquals(List.of("Conv2d", "BatchNorm2d", "ReLU", "Sequential", "Conv2d", "BatchNorm2d", "Block", "Conv2d", "BatchNorm2d", "Block",
                "ModuleList", "AdaptiveAvgPool2d", "Flatten", "Linear", "Net"), seen);
        // Typical use: re-initialise every convolution.
        Generator g = new Generator(5);
        net.apply(m -> { if (m instanceof Conv2d c) Init.kaimingNormal(c.weight(), Init.FanMode.FAN_OUT, g); });
        assertNotEquals(0f, ((Conv2d) net.submodule("stem.0")).weight().toFloatArray()[0]);
    }

    private static Map<String, Tensor> snapshot(Map<String, Tensor> sd) {
        Map<String, Tensor> out = new LinkedHashMap<>();
        sd.forEach((k, v) -> out.put(k, v.copy()));
        return out;
    }

    @Test
    void stateDictRoundTripCopiesInPlace() {
        Net net = new Net(new Generator(6));
        Tensor x = Tensor.randn(new Generator(7), 2, 3, 5, 5);
        net.forward(x);                                    // moves the running statistics off their defaults
        Map<String, Tensor> saved = snapshot(net.stateDict());
        Tensor fcWeight = ((Linear) net.submodule("fc")).weight();

        Generator noise = new Generator(8);
        try (var scope = ai.bonsai.autograd.GradMode.noGrad()) {
            for (Tensor t : net.stateDict().values()) t.addi(Tensor.randn(noise, t.dims()));
        }
        assertNotEquals(saved.get("fc.weight").toFloatArray()[0], fcWeight.toFloatArray()[0]);

        Module.LoadResult r = net.loadStateDict(saved, true);
        assertTrue(r.isComplete());
        assertSame(fcWeight, ((Linear) net.submodule("fc")).weight(), "loading must not replace the tensors");
        for (Map.Entry<String, Tensor> e : net.stateDict().entrySet()) {
            assertArrayEquals(saved.get(e.getKey()).toFloatArray(), e.getValue().toFloatArray(), e.getKey());
        }
        assertTrue(fcWeight.requiresGrad());
    }

    @Test
    void strictLoadListsEveryProblemAndCopiesNothing() {
        Net net = new Net(new Generator(9));
        Map<String, Tensor> sd = snapshot(net.stateDict());
        float before = ((Linear) net.submodule("fc")).bias().toFloatArray()[0];
        sd.remove("stem.1.running_var");
        sd.remove("fc.bias");
        sd.put("fc.extra", Tensor.zeros(3));
        sd.put("head.weight", Tensor.zeros(1));
        sd.put("stage_1.0.conv_a.weight", Tensor.zeros(4, 4, 1, 1));
        sd.put("fc.weight", Tensor.zeros(3, 5));
        sd.get("stem.0.weight").fill(42f);

        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> net.loadStateDict(sd, true));
        String msg = e.getMessage();
        assertTrue(msg.startsWith("Error(s) in loading state dict for Net:"), msg);
        assertTrue(msg.contains("Missing key(s) in state dict: \"stem.1.running_var\", \"fc.bias\"."), msg);
        assertTrue(msg.contains("Unexpected key(s) in state dict: \"fc.extra\", \"head.weight\"."), msg);
        assertTrue(msg.contains("size mismatch for stage_1.0.conv_a.weight: copying a tensor with shape [4, 4, 1, 1] FLOAT32 from the state dict, "
                + "the shape in the current model is [4, 4, 3, 3] FLOAT32."), msg);
        assertTrue(msg.contains("size mismatch for fc.weight: copying a tensor with shape [3, 5] FLOAT32 from the state dict, "
                + "the shape in the current model is [3, 4] FLOAT32."), msg);
        assertNotEquals(42f, ((Conv2d) net.submodule("stem.0")).weight().toFloatArray()[0], "a failed strict load must change nothing");
        assertEquals(before, ((Linear) net.submodule("fc")).bias().toFloatArray()[0]);
    }

    @Test
    void nonStrictLoadCopiesWhatMatchesAndReports() {
        Net net = new Net(new Generator(10));
        Map<String, Tensor> sd = new LinkedHashMap<>();
        sd.put("fc.bias", Tensor.of(new float[] {1, 2, 3}, 3));
        sd.put("fc.weight", Tensor.zeros(2, 2));
        sd.put("stem.1.running_mean", Tensor.full(0.5f, 4));
        sd.put("classifier.weight", Tensor.zeros(1));
        Module.LoadResult r = net.loadStateDict(sd, false);
        assertEquals(List.of("classifier.weight"), r.unexpectedKeys());
        assertEquals(List.of("fc.weight"), r.mismatchedKeys());
        assertEquals(net.stateDict().size() - 3, r.missingKeys().size());
        assertTrue(r.missingKeys().contains("stem.0.weight"));
        assertFalse(r.isComplete());
        assertArrayEquals(new float[] {1, 2, 3}, ((Linear) net.submodule("fc")).bias().toFloatArray());
        assertArrayEquals(new float[] {0.5f, 0.5f, 0.5f, 0.5f}, ((BatchNorm2d) net.submodule("stem.1")).runningMean().toFloatArray());
    }

    @Test
    void replacedParameterTakesEffect() {
        Generator g = new Generator(11);
        Conv2d c = new Conv2d(4, 6, 3, 1, 1, 1, true, g);
        c.registerParameter("weight", Tensor.zeros(2, 4, 3, 3));
        c.registerParameter("bias", Tensor.ones(2));
        assertEquals(2, c.outChannels());
        assertEquals(List.of("weight", "bias"), new ArrayList<>(c.namedParameters().keySet()));
        Tensor y = c.forward(Tensor.randn(g, 1, 4, 5, 5));
        assertEquals(List.of(1, 2, 5, 5), List.of(y.dim(0), y.dim(1), y.dim(2), y.dim(3)));
        assertEquals(1f, y.toFloatArray()[0]);
    }

    @Test
    void registrationValidatesNames() {
        Linear l = new Linear(2, 2, new Generator(12));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> l.registerBuffer("weight", Tensor.zeros(1)))
                .getMessage().contains("'weight' is already used"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> l.registerModule("a.b", new ReLU()))
                .getMessage().contains("contain no '.'"));
        Tensor nonLeaf = Tensor.ones(2).requiresGrad(true).mul(2f);
        assertTrue(assertThrows(IllegalArgumentException.class, () -> l.registerParameter("scale", nonLeaf))
                .getMessage().contains("must be a leaf tensor"));
        assertTrue(assertThrows(IllegalStateException.class, () -> new ModuleList(new ReLU()).forward(Tensor.zeros(1)))
                .getMessage().contains("container"));
    }

    @Test
    void zeroGradDropsGradients() {
        Net net = new Net(new Generator(13));
        net.forward(Tensor.randn(new Generator(14), 2, 3, 4, 4)).sum().backward();
        assertNotNull(((Linear) net.submodule("fc")).weight().grad());
        net.zeroGrad();
        for (Tensor p : net.parameters()) assertNull(p.grad());
    }

    @Test
    void printsLikePyTorch() {
        Generator g = new Generator(15);
        Sequential s = new Sequential(
                new Conv2d(3, 16, 3, 1, 1, 1, false, g), new BatchNorm2d(16), new ReLU(), new MaxPool2d(2),
                new Sequential(new Conv2d(16, 32, 3, 2, 0, 2, true, g)), new AdaptiveAvgPool2d(1), new Flatten(), new Linear(32, 10, g));
        assertEquals(String.join("\n",
                "Sequential(",
                "  (0): Conv2d(3, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)",
                "  (1): BatchNorm2d(16, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)",
                "  (2): ReLU()",
                "  (3): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)",
                "  (4): Sequential(",
                "    (0): Conv2d(16, 32, kernel_size=(3, 3), stride=(2, 2), groups=2)",
                "  )",
                "  (5): AdaptiveAvgPool2d(output_size=(1, 1))",
                "  (6): Flatten(start_dim=1, end_dim=-1)",
                "  (7): Linear(in_features=32, out_features=10, bias=True)",
                ")"), s.toString());
        assertEquals("0.0001", Module.pyFloat(1e-4));
        assertEquals("1e-05", Module.pyFloat(1e-5));
        assertEquals("2.5e-07", Module.pyFloat(2.5e-7));
        assertEquals("1.0", Module.pyFloat(1));
    }

    /** Module.to onto the device the tensors are already on keeps them (the CUDA move is tested in kernels). */
    @Test void toTheSameDeviceKeepsEveryTensor() {
        Net net = new Net(new Generator(1));
        Map<String, Tensor> before = new LinkedHashMap<>();
        net.namedParameters().forEach(before::put);
        net.namedBuffers().forEach(before::put);
        assertSame(net, net.to(ai.bonsai.tensor.Device.cpu()));
        assertEquals(ai.bonsai.tensor.Device.cpu(), net.device());
        Map<String, Tensor> after = new LinkedHashMap<>();
        net.namedParameters().forEach(after::put);
        net.namedBuffers().forEach(after::put);
        assertEquals(before.keySet(), after.keySet());
        for (String k : before.keySet()) assertSame(before.get(k), after.get(k), k);
        assertThrows(IllegalArgumentException.class, () -> net.to(null));
        for (Tensor p : net.parameters()) assertTrue(p.requiresGrad() && p.isLeaf());
    }
}
