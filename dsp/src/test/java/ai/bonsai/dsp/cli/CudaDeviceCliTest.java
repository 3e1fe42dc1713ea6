package ai.bonsai.dsp.cli;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/** {@code bonsai pretrain --device cuda} on a machine without an NVIDIA driver: one line naming it, exit 1. */
class CudaDeviceCliTest {

    @Test
    void withoutDriverPretrainSaysWhatIsMissing() {
        for (String d : new String[] {"/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/nvidia/lib64", "/usr/lib/wsl/lib"})
            Assumptions.assumeFalse(Files.exists(Path.of(d, "libcuda.so.1")), "this machine has an NVIDIA driver");
        CliTest.Run r = CliTest.run(new CifarPretrain(), "--device", "cuda", "-l", "20");
        assertEquals(1, r.code(), r.err());
        assertEquals("bonsai pretrain: device cuda:0: CUDA is not available: the NVIDIA driver library libcuda.so.1 was not found; "
                + "install an NVIDIA driver (580 series or newer) or use --device cpu", r.err().strip());
        assertEquals("", r.out());
    }
}
