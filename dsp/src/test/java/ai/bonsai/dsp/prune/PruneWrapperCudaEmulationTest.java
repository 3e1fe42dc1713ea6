package ai.bonsai.dsp.prune;

import ai.bonsai.autograd.GradMode;
import ai.bonsai.cuda.EmulatedCuda;
import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.nn.BatchNorm2d;
import ai.bonsai.nn.Functional;
import ai.bonsai.nn.Module;
import ai.bonsai.optim.SGD;
import ai.bonsai.tensor.Device;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@link PruneWrapper} on a CUDA device ({@link EmulatedCuda}) against the CPU, on a narrow ResNet-8 (widths 4, 8,
 * 16) with seeded random group logits: the bisection of {@code initialize} must give the same beta, rates, masks,
 * weights and batch norms bit for bit (pruning decides on the host from the same values), and the per-step
 * {@code afterStep}, which runs on the device, must keep pruned kernels at zero after a fine-tuning step. Also, on the
 * CPU alone: afterStep is exactly the element loop it replaced, for -0, NaN and infinities too.
 */
class PruneWrapperCudaEmulationTest {
    private static final Device DEV = Device.cuda(5);
    private static final int G = 3;

    /** A model with its pruner and random logits, moved to {@code device} after the pruner is built (as finetune does). */
    record Side(CifarResNet model, PruneWrapper pw) {
        static Side on(Device device) {
            CifarResNet model = new CifarResNet(8, 10, 4, new Generator(21));
            PruneWrapper pw = new PruneWrapper(model, PrunableLayer.discover(model, 3, 8, 8), G, 2, null);
            PruneFixtures.randomGroups(pw, new Generator(22));
            model.to(device);
            return new Side(model, pw);
        }
    }

    @Test
    void pruningOnTheDeviceGivesTheCpuMasksAndFineTuningKeepsThem() {
        try (EmulatedCuda gpu = EmulatedCuda.open(DEV)) {
            long start = System.nanoTime();
            Side cpu = Side.on(Device.cpu()), dev = Side.on(DEV);
            PruneRates rc = cpu.pw.initialize(0.5), rd = dev.pw.initialize(0.5);
            assertEquals(cpu.pw.beta(), dev.pw.beta());
            assertEquals(rc.prunedFlopsPercent(), rd.prunedFlopsPercent());
            assertEquals(rc.prunedParamsPercent(), rd.prunedParamsPercent());
            assertTrue(rc.prunedFlopsPercent() > 20, "pruned something: " + rc);
            for (int l = 0; l < cpu.pw.layers().size(); l++) {
                assertEquals(DEV, dev.pw.mask(l).device(), "mask " + l);
                assertArrayEquals(cpu.pw.mask(l).toFloatArray(), dev.pw.mask(l).toFloatArray(), "mask of layer " + l);
            }
            PruneFixtures.assertSameArrays(PruneFixtures.snapshot(cpu.model), PruneFixtures.snapshot(dev.model));
            assertEquals(cpu.pw.summary(false).format(true), dev.pw.summary(false).format(true));

            // One fine-tuning step on each, then the hook: pruned kernels stay exactly zero on the device.
            SGD oc = new SGD(cpu.model.parameters(), 0.05f, 0.9f, 1e-3f), od = new SGD(dev.model.parameters(), 0.05f, 0.9f, 1e-3f);
            float[] images = new float[2 * 3 * 8 * 8];
            Generator data = new Generator(23);
            for (int i = 0; i < images.length; i++) images[i] = (float) data.nextGaussian();
            long[] labels = {4, 9};
            step(cpu, oc, Tensor.of(images, 2, 3, 8, 8), labels);
            step(dev, od, Tensor.of(images, DEV, 2, 3, 8, 8), labels);
            double worst = 0;
            for (int l = 0; l < dev.pw.layers().size(); l++) {
                PrunableLayer p = dev.pw.layers().get(l);
                float[] m = dev.pw.mask(l).toFloatArray(), w = p.conv().weight().toFloatArray();
                int kk = p.kernel() * p.kernel();
                for (int i = 0; i < m.length; i++) {
                    if (m[i] != 0f) continue;
                    for (int j = i * kk; j < (i + 1) * kk; j++) assertEquals(0f, w[j], p.name() + " pruned kernel " + i);
                }
            }
            Map<String, Tensor> sc = cpu.model.stateDict(), sd = dev.model.stateDict();
            for (String k : sc.keySet()) worst = Math.max(worst, rel(sc.get(k), sd.get(k)));
            for (Module mod : dev.model.namedModules().values()) {
                if (!(mod instanceof BatchNorm2d bn)) continue;
                float[] g = bn.weight().toFloatArray(), b = bn.bias().toFloatArray();
                for (int i = 0; i < g.length; i++) if (g[i] == 0f) assertEquals(0f, b[i], "bias of a removed BN channel");
            }
            String summary = String.format(Locale.ROOT, "prune to %.2f%% FLOPs and one fine-tuning step, %.1f s: state worst relative difference %.2e",
                    rd.prunedFlopsPercent(), (System.nanoTime() - start) / 1e9, worst);
            System.out.println(summary);
            assertTrue(worst <= 1e-5, summary);
        }
    }

    @Test
    void afterStepOnTheDeviceIsBitForBitTheCpusOnSpecialValues() {
        try (EmulatedCuda gpu = EmulatedCuda.open(DEV)) {
            Side cpu = Side.on(Device.cpu()), dev = Side.on(DEV);
            Map<String, float[]> expected = specialValues(cpu);
            specialValues(dev);
            cpu.pw.afterStep();
            dev.pw.afterStep();
            assertBitsEqual(expected, values(cpu.model));
            assertBitsEqual(expected, values(dev.model));
        }
    }

    /** CPU only (runs without g++): the device-friendly afterStep is the element loop it replaced, bit for bit. */
    @Test
    void afterStepIsTheElementLoopBitForBit() {
        Side cpu = Side.on(Device.cpu());
        Map<String, float[]> expected = specialValues(cpu);
        cpu.pw.afterStep();
        assertBitsEqual(expected, values(cpu.model));
    }

    private static void step(Side s, SGD opt, Tensor x, long[] labels) {
        Tensor loss = Functional.crossEntropy(s.model.forward(x), Tensor.ofLongs(labels, labels.length));
        opt.zeroGrad();
        loss.backward();
        opt.step();
        s.pw.afterStep(x, null);
    }

    /**
     * Writes masks, weights and BN parameters full of the cases that matter (masked -0, NaN, infinities, zero gammas
     * with zero, -0, NaN and non-zero biases) and returns the state the old element loop leaves, computed here.
     */
    private static Map<String, float[]> specialValues(Side s) {
        float[] specials = {0f, -0f, Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 1.5f, -2.5f, Float.MIN_VALUE};
        Generator g = new Generator(31);
        try (var scope = GradMode.noGrad()) {
            for (PrunableLayer p : s.pw.layers()) {
                Tensor wt = p.conv().weight(), mt = s.pw.mask(p.index());
                float[] w = wt.toFloatArray(), m = new float[mt.numel()];
                for (int i = 0; i < m.length; i++) m[i] = g.nextInt(3) == 0 ? 0f : 1f;
                if (m.length > 1) m[1] = -0f;     // a -0 mask entry counts as pruned (the loop's m != 0)
                for (int i = 0; i < w.length; i++) if (g.nextInt(2) == 0) w[i] = specials[g.nextInt(specials.length)];
                wt.copyFrom(Tensor.of(w, wt.device(), wt.dims()));
                mt.copyFrom(Tensor.of(m, mt.device(), mt.dims()));
            }
            for (Module mod : s.model.namedModules().values()) {
                if (!(mod instanceof BatchNorm2d bn)) continue;
                float[] gm = bn.weight().toFloatArray(), b = bn.bias().toFloatArray();
                for (int i = 0; i < gm.length; i++) {
                    gm[i] = specials[g.nextInt(specials.length)];
                    b[i] = specials[g.nextInt(specials.length)];
                }
                bn.weight().copyFrom(Tensor.of(gm, bn.weight().device(), gm.length));
                bn.bias().copyFrom(Tensor.of(b, bn.bias().device(), b.length));
            }
        }
        Map<String, float[]> out = values(s.model);
        for (PrunableLayer p : s.pw.layers()) {       // the loop PruneWrapper.afterStep ran before it ran on devices
            float[] m = s.pw.mask(p.index()).toFloatArray(), w = out.get(p.name() + ".weight");
            int kk = p.kernel() * p.kernel();
            for (int i = 0; i < m.length; i++) {
                if (m[i] != 0f) continue;
                for (int j = i * kk; j < (i + 1) * kk; j++) if (w[j] != 0f) w[j] = 0f;
            }
        }
        for (Map.Entry<String, Module> e : s.model.namedModules().entrySet()) {
            if (!(e.getValue() instanceof BatchNorm2d)) continue;
            float[] gm = out.get(e.getKey() + ".weight"), b = out.get(e.getKey() + ".bias");
            for (int i = 0; i < gm.length; i++) if (gm[i] == 0f && b[i] != 0f) b[i] = 0f;
        }
        return out;
    }

    private static Map<String, float[]> values(Module model) {
        Map<String, float[]> out = new LinkedHashMap<>();
        model.stateDict().forEach((k, v) -> out.put(k, v.toFloatArray()));
        return out;
    }

    /** Equal bit patterns (so -0 differs from 0), NaNs compared as canonical NaN. */
    private static void assertBitsEqual(Map<String, float[]> expected, Map<String, float[]> actual) {
        assertEquals(expected.keySet(), actual.keySet());
        for (String k : expected.keySet()) {
            float[] e = expected.get(k), a = actual.get(k);
            assertEquals(e.length, a.length, k);
            for (int i = 0; i < e.length; i++) {
                assertEquals(Float.floatToIntBits(e[i]), Float.floatToIntBits(a[i]), k + "[" + i + "]: expected " + e[i] + ", got " + a[i]);
            }
        }
    }

    private static double rel(Tensor a, Tensor b) {
        float[] x = a.toFloatArray(), y = b.toFloatArray();
        double diff = 0, scale = 0;
        for (int i = 0; i < x.length; i++) {
            diff = Math.max(diff, Math.abs((double) x[i] - y[i]));
            scale = Math.max(scale, Math.abs(x[i]));
        }
        return scale == 0 ? diff : diff / scale;
    }
}
