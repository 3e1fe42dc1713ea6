package ai.bonsai.cuda;

import ai.bonsai.backend.Backend;
import ai.bonsai.backend.BackendSuite;
import ai.bonsai.tensor.Device;
import org.junit.jupiter.api.AfterAll;

/**
 * The engine's backend suite on the CUDA backend, its kernels running under the CPU emulator (fibers in shuffled
 * order, a third order beside the kernel tests' forward and reverse). Skips where g++ is absent.
 */
class CudaEmulatedBackendSuiteTest extends BackendSuite {
    private static CudaBackend gpu;

    @Override protected synchronized Backend backend() {
        if (gpu == null) gpu = new CudaBackend(new EmulatorRuntime(EmulatorBuild.binary(), EmulatorRuntime.Order.SHUFFLE, 23), Device.cuda(0));
        return gpu;
    }

    @AfterAll static void close() {
        if (gpu != null) gpu.runtime().close();
        gpu = null;
    }
}
