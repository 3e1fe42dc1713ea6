package ai.bonsai.dsp.group;

import ai.bonsai.backend.Backends;
import ai.bonsai.cuda.EmulatedCuda;
import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.dsp.prune.PrunableLayer;
import ai.bonsai.nn.Functional;
import ai.bonsai.optim.SGD;
import ai.bonsai.tensor.Device;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.Locale;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Group learning on a CUDA device ({@link EmulatedCuda}: our kernels under the CPU emulator) against the CPU: the
 * same narrow ResNet-8 (widths 4, 8, 16; six prunable layers), seeds and 2-image 8x8 batches, three iterations of
 * {@link GroupWrapper} (Gumbel sampling, the regulariser, dR/dp, the look-ahead step, the second-order term, the
 * softmax backward and the Adam step on the logits, the hard penalty). The losses, the soft assignments, the group
 * logits and every weight must agree within 1e-5 relative; everything the wrapper holds must be on the device.
 *
 * <p>The group logits start from seeded random values (as if loaded), not zeros, and tau is 1. From zeros, the
 * comparison would measure rounding, not the device: Adam's first step moves every logit by almost exactly +-lr
 * (g / (|g| + 1e-12)), so after it a filter's logits are near-ties that the hard assignment's argmax breaks by the
 * last bit of the update, and a sharply peaked soft assignment (P near 1) makes the winning group's logit gradient
 * a difference below float rounding whose sign is arbitrary, which Adam again turns into +-lr. Measured with zero
 * logits and tau 0.5 (widths 16, 32, 64): logits 0.7 relative apart after three steps on the two devices, by whole
 * +-lr steps, while the soft assignments of step one agreed to rounding. Random logits keep the argmax's margins
 * far above rounding and the soft assignments unsaturated, so the check is about the device's arithmetic.
 */
class GroupWrapperCudaEmulationTest {
    private static final Device DEV = Device.cuda(5);
    private static final int G = 4, STEPS = 3;
    private static final float LAMBDA = 0.5f, TAU = 1f;
    private static final long T = 10;
    private static final double RTOL = 1e-5;

    /** One side of the comparison: the model moved to {@code device} before the optimiser and the wrapper are built. */
    record Side(CifarResNet model, SGD opt, GroupWrapper gw, Device device) {
        static Side on(Device device) {
            CifarResNet model = new CifarResNet(8, 10, 4, new Generator(11));
            Generator logits = new Generator(13);
            for (PrunableLayer p : PrunableLayer.find(model)) {
                p.conv().registerBuffer(GroupWrapper.BUFFER, Tensor.randn(logits, G, p.filters()));    // kept by the wrapper
            }
            model.to(device);
            SGD opt = new SGD(model.parameters(), 0.05f, 0.9f, 1e-3f);
            GroupWrapper gw = new GroupWrapper(model, PrunableLayer.find(model), opt, Functional::crossEntropy, LAMBDA, T, G, TAU,
                    new Generator(12), GroupWrapper.DEFAULT_GROUP_LR, null);
            return new Side(model, opt, gw, device);
        }

        /** One iteration as Trainer runs it; returns the loss. */
        float iteration(float[] images, long[] labels) {
            Tensor x = Tensor.of(images, device, 2, 3, 8, 8);
            Tensor y = Tensor.ofLongs(labels, 2);
            gw.beforeForward();
            Tensor loss = Functional.crossEntropy(model.forward(x), y);
            float value = loss.item();
            opt.zeroGrad();
            loss.backward();
            opt.step();
            gw.afterStep(x, y);
            return value;
        }
    }

    @Test
    void groupLearningOnTheDeviceMatchesTheCpu() {
        try (EmulatedCuda gpu = EmulatedCuda.open(DEV)) {
            assertSame(gpu.backend(), Backends.of(DEV));
            long start = System.nanoTime();
            Side cpu = Side.on(Device.cpu()), dev = Side.on(DEV);
            assertOnDevice(dev);
            Generator data = new Generator(99);
            double worstLoss = 0, worstSoft = 0, worstLogits = 0, worstState = 0;
            for (int s = 0; s < STEPS; s++) {
                float[] images = new float[2 * 3 * 8 * 8];
                for (int i = 0; i < images.length; i++) images[i] = (float) data.nextGaussian();
                long[] labels = {data.nextInt(10), data.nextInt(10)};
                float lc = cpu.iteration(images, labels), ld = dev.iteration(images, labels);
                worstLoss = Math.max(worstLoss, Math.abs(lc - ld) / Math.abs(lc));
                for (int l = 0; l < cpu.gw.layers().size(); l++) {
                    worstSoft = Math.max(worstSoft, rel(cpu.gw.assignment(l), dev.gw.assignment(l)));
                    worstLogits = Math.max(worstLogits, rel(cpu.gw.logits(l), dev.gw.logits(l)));
                }
                Map<String, Tensor> sc = cpu.model.stateDict(), sd = dev.model.stateDict();
                for (String k : sc.keySet()) worstState = Math.max(worstState, rel(sc.get(k), sd.get(k)));
                assertEquals(cpu.gw.step(), dev.gw.step());
            }
            String summary = String.format(Locale.ROOT, "%d group-learning steps, %.1f s: worst relative difference losses %.2e, soft assignments %.2e, "
                    + "group logits %.2e, model state %.2e; group-logit std cpu %.6f, device %.6f", STEPS, (System.nanoTime() - start) / 1e9,
                    worstLoss, worstSoft, worstLogits, worstState, cpu.gw.stats(), dev.gw.stats());
            System.out.println(summary);
            assertTrue(worstLoss <= RTOL, summary);
            assertTrue(worstSoft <= RTOL, summary);
            assertTrue(worstLogits <= RTOL, summary);
            assertTrue(worstState <= RTOL, summary);
            assertTrue(cpu.gw.stats() > 0, "the logits moved: " + summary);
            assertEquals(cpu.gw.stats(), dev.gw.stats(), 1e-5 * cpu.gw.stats(), summary);
            assertOnDevice(dev);
            // The group optimiser's moments, which a checkpoint saves, are on the device too (its hyperparameters and step counts are host scalars).
            int moments = 0;
            for (Map.Entry<String, Tensor> e : dev.gw.tensors().entrySet()) {
                if (!e.getKey().startsWith("group_optimizer.state.") || e.getKey().endsWith(".step")) continue;   // the step count is a host long
                moments++;
                assertEquals(DEV, e.getValue().device(), e.getKey());
            }
            assertTrue(moments >= 2 * dev.gw.layers().size(), "Adam moments of every layer's logits: " + dev.gw.tensors().keySet());
        }
    }

    @Test
    void aModelMovedAfterTheWrapperWasBuiltIsReportedInOneLine() {
        try (EmulatedCuda gpu = EmulatedCuda.open(DEV)) {
            Side cpu = Side.on(Device.cpu());
            cpu.model.to(DEV);
            cpu.gw.initialize();
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> cpu.gw.afterStep(Tensor.zeros(DEV, 2, 3, 8, 8), Tensor.ofLongs(new long[] {1, 2}, 2)));
            assertTrue(e.getMessage().contains("moved from cpu to cuda:5: call model.to(device) before building the GroupWrapper"), e.getMessage());
        }
    }

    /** Every tensor the wrapper made or uses is on the device. */
    private static void assertOnDevice(Side s) {
        for (int l = 0; l < s.gw.layers().size(); l++) {
            assertEquals(DEV, s.gw.logits(l).device(), "logits " + l);
            assertEquals(DEV, s.gw.regularizer(l).device(), "regulariser " + l);
            assertEquals(DEV, s.gw.regularizer(l).penalty().device(), "penalty " + l);
            if (s.gw.assignment(l) != null) assertEquals(DEV, s.gw.assignment(l).device(), "assignment " + l);
        }
        for (Map.Entry<String, Tensor> e : s.model.stateDict().entrySet()) assertEquals(DEV, e.getValue().device(), e.getKey());
    }

    /** max |a - b| / max |a| over the elements (a from the CPU). */
    static double rel(Tensor a, Tensor b) {
        float[] x = a.toFloatArray(), y = b.toFloatArray();
        assertEquals(x.length, y.length);
        double diff = 0, scale = 0;
        for (int i = 0; i < x.length; i++) {
            diff = Math.max(diff, Math.abs((double) x[i] - y[i]));
            scale = Math.max(scale, Math.abs(x[i]));
        }
        return scale == 0 ? diff : diff / scale;
    }
}
