package ai.bonsai.cuda;

import ai.bonsai.backend.Backends;
import ai.bonsai.tensor.Device;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/** Backends.of finds this module through ServiceLoader; without a driver it fails with one line naming libcuda.so.1. */
class CudaProviderTest {

    static boolean driverPresent() {
        String[] dirs = {"/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/nvidia/lib64", "/usr/lib/wsl/lib", "/usr/local/cuda/compat"};
        for (String d : dirs) if (Files.exists(Path.of(d, "libcuda.so.1"))) return true;
        for (String d : System.getenv().getOrDefault("LD_LIBRARY_PATH", "").split(":"))
            if (!d.isEmpty() && Files.exists(Path.of(d, "libcuda.so.1"))) return true;
        return false;
    }

    @Test
    void withoutDriverTheErrorNamesLibcuda() {
        Assumptions.assumeFalse(driverPresent(), "this machine has libcuda.so.1; the no-driver message is checked elsewhere");
        CudaUnavailableException e = assertThrows(CudaUnavailableException.class, () -> Backends.of(Device.cuda(0)));
        assertTrue(e.getMessage().equals("device cuda:0: CUDA is not available: the NVIDIA driver library libcuda.so.1 was not found; install an NVIDIA driver (580 series or newer) or use --device cpu"), e.getMessage());
        assertTrue(e.getMessage().endsWith("or use --device cpu"), e.getMessage());
        assertFalse(e.getMessage().contains("\n"), "one line: " + e.getMessage());
        // Asking again gives the same answer (no half-initialised state), and the CPU still works.
        CudaUnavailableException again = assertThrows(CudaUnavailableException.class, () -> Backends.of(Device.cuda(1)));
        assertTrue(again.getMessage().contains("libcuda.so.1 was not found"), again.getMessage());
        assertNotNull(Backends.of(Device.cpu()).fromFloats(new float[] {1}));
    }

    @Test
    void providerIsRegistered() {
        var found = java.util.ServiceLoader.load(ai.bonsai.backend.BackendProvider.class).stream().map(p -> p.type().getName()).toList();
        assertEquals(java.util.List.of(CudaBackendProvider.class.getName()), found);
    }
}
