package ai.bonsai.dsp.pack;

import ai.bonsai.cuda.EmulatedCuda;
import ai.bonsai.dsp.imports.PackedResNetConverter;
import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.dsp.testing.PublishedModels;
import ai.bonsai.tensor.Device;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Packed models on a CUDA device: {@code PackedModel.to(cuda)} puts the plans on the CUDA backend, whose
 * branch-convolution kernels (branch_conv.cu) run here under the CPU emulator. The device's logits must match the
 * CPU's packed logits (same plans, other kernels: float32 sums in another order) and the masked network's.
 */
class PackedModelOnCudaTest {
    private static final Device DEV = Device.cuda(3);
    private static EmulatedCuda gpu;

    @BeforeAll static void open() { gpu = EmulatedCuda.open(DEV); }

    @AfterAll static void close() { if (gpu != null) gpu.close(); }

    @Test void maskedResNetPacksAndRunsOnTheDevice() {
        CifarResNet model = PackFixtures.masked(8, 2, 0.5, 303);
        PackedModel packed = Packer.pack(model);
        Tensor x = Tensor.randn(new Generator(5), 2, 3, 8, 8);
        float[] masked = PackFixtures.denseLogits(model, x);
        float[] cpu = packed.forward(x).toFloatArray();

        assertSame(packed, packed.to(DEV));
        assertEquals(DEV, packed.device());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> packed.forward(x));
        assertTrue(e.getMessage().contains("x is on cpu") && e.getMessage().contains(DEV.toString()), e.getMessage());
        Tensor y = packed.forward(x.to(DEV));
        assertEquals(DEV, y.device());
        float[] dev = y.toFloatArray();
        assertTrue(PackFixtures.relativeError(cpu, dev) <= 1e-5, "device vs CPU packed: " + PackFixtures.relativeError(cpu, dev));
        assertTrue(PackFixtures.relativeError(masked, dev) <= 1e-4, "device packed vs masked: " + PackFixtures.relativeError(masked, dev));
        // A second forward reuses the device workspace; back on the CPU, the CPU plans are rebuilt.
        assertArrayEquals(dev, packed.forward(x.to(DEV)).toFloatArray());
        assertArrayEquals(cpu, packed.to(Device.cpu()).forward(x).toFloatArray());
    }

    /** The six published models (real packed structures, imported from TorchScript) on a CIFAR-sized input. */
    @ParameterizedTest(name = "{0}") @MethodSource("ai.bonsai.dsp.testing.PublishedModels#all")
    void publishedModelRunsOnTheDevice(PublishedModels.Model m) throws Exception {
        PackedModel packed = PackedResNetConverter.load(m.file());
        Tensor x = Tensor.randn(new Generator(9), 2, 3, 32, 32);
        float[] cpu = packed.forward(x).toFloatArray();
        float[] dev = packed.to(DEV).forward(x.to(DEV)).toFloatArray();
        assertTrue(PackFixtures.relativeError(cpu, dev) <= 1e-5, m + ": device vs CPU " + PackFixtures.relativeError(cpu, dev));
    }
}
