package ai.bonsai.dsp.train;

import ai.bonsai.cuda.EmulatedCuda;
import ai.bonsai.tensor.Device;
import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

/**
 * The trainer's divergence check on a device (emulated CUDA): decided there with one scalar read, it must find what
 * the host scan finds on the CPU (NaN, +-inf, inf and -inf in one tensor, a finite tensor whose sum overflows) and
 * name the same tensor and element.
 */
class NonFiniteCudaEmulationTest {
    private static final Device DEV = Device.cuda(5);

    @Test void theDeviceCheckFindsWhatTheHostScanFinds() {
        try (EmulatedCuda gpu = EmulatedCuda.open(DEV)) {
            float[][] cases = {
                    {1f, 2f, 3f},
                    {1f, Float.NaN, 3f},
                    {Float.POSITIVE_INFINITY, 0f, 0f},
                    {0f, 0f, Float.NEGATIVE_INFINITY},
                    {Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 1f},
                    {Float.MAX_VALUE, Float.MAX_VALUE, 1f},      // finite, but the sum overflows: the scan decides
            };
            for (float[] bad : cases) {
                Map<String, Tensor> cpu = new LinkedHashMap<>(), dev = new LinkedHashMap<>();
                float[][] values = {{0.5f, -1f, 2f}, bad, {7f, 8f, 9f}};
                for (int i = 0; i < values.length; i++) {
                    cpu.put("t" + i, Tensor.of(values[i], 3));
                    dev.put("t" + i, Tensor.of(values[i], DEV, 3));
                }
                String expected = Trainer.firstNonFinite(cpu, false);
                assertEquals(expected, Trainer.firstNonFinite(dev, false), java.util.Arrays.toString(bad));
                if (bad == cases[0] || bad == cases[5]) assertNull(expected);
            }
            Map<String, Tensor> none = new LinkedHashMap<>();
            none.put("w", Tensor.of(new float[] {1f}, DEV, 1));
            assertNull(Trainer.firstNonFinite(none, true), "no gradients: nothing to report");
        }
    }
}
