package ai.bonsai.cuda;

import ai.bonsai.tensor.Device;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * scripts/gpu-check's Java half ({@link GpuCheck}) run whole on the emulated device, at batch 2: every parity
 * check, the CPU-vs-device training comparison and the timings execute, so the program a GPU machine runs has
 * run here end to end, and its report is well-formed JSON that names every check.
 */
class GpuCheckEmulationTest {
    @Test void gpuCheckPassesOnTheEmulatedDeviceAndWritesItsReport(@TempDir Path dir) throws Exception {
        CudaBackend gpu = new CudaBackend(new EmulatorRuntime(EmulatorBuild.binary(), EmulatorRuntime.Order.REVERSE, 5), Device.cuda(6));
        CudaBackendProvider.install(gpu);
        int failures;
        Path report = dir.resolve("results/gpu-check.json");
        try {
            failures = GpuCheck.run(gpu, true, report);
        } finally {
            CudaBackendProvider.uninstall(gpu);
            gpu.runtime().close();
        }
        JsonNode json = new ObjectMapper().readTree(Files.readString(report));
        List<String> failed = new ArrayList<>();
        for (JsonNode c : json.get("checks")) if (c.has("ok") && !c.get("ok").asBoolean()) failed.add(c.toString());
        assertEquals(0, failures, "failed checks: " + failed);
        assertEquals(0, json.get("failures").asInt());
        int parity = 0, timings = 0;
        boolean training = false;
        for (JsonNode c : json.get("checks")) {
            if (c.has("timing")) {
                timings++;
                assertTrue(c.get("ms").asDouble() > 0, c.toString());
            } else if (c.get("check").asText().startsWith("training")) {
                training = true;
                assertTrue(c.get("ok").asBoolean(), c.toString());
            } else {
                parity++;
            }
        }
        assertTrue(training, "the training comparison ran");
        assertEquals(4, timings, "conv2d and training step, each on the device and the CPU");
        assertTrue(parity > 50, "parity checks: " + parity);
    }
}
