package ai.bonsai.cuda;

import ai.bonsai.backend.Backend;
import ai.bonsai.backend.BackendSuite;
import ai.bonsai.backend.Backends;
import ai.bonsai.tensor.Device;
import org.junit.jupiter.api.Assumptions;

/**
 * The engine's backend suite on a real GPU ({@code Backends.of(cuda:0)}: the driver, our PTX, cuBLAS and cuDNN
 * where they load). Where there is no driver every case skips with the one-line reason the backend gives; on a GPU
 * machine scripts/gpu-check runs it through {@link CudaBackendSuiteMain}.
 */
public class CudaBackendSuiteTest extends BackendSuite {
    private static Backend gpu;
    private static String unavailable;

    @Override protected synchronized Backend backend() {
        if (gpu == null && unavailable == null) {
            try {
                gpu = Backends.of(Device.cuda(0));
            } catch (RuntimeException e) {
                unavailable = e.getMessage();
            }
        }
        Assumptions.assumeTrue(gpu != null, () -> "no CUDA device: " + unavailable);
        return gpu;
    }
}
