package ai.bonsai.cuda;

import ai.bonsai.backend.Backend;
import ai.bonsai.tensor.Device;

/**
 * A CUDA device for other modules' tests: {@link CudaBackend} over the CPU emulator (our .cu kernels compiled by
 * g++, each block's threads as fibers), installed so that {@code Backends.of(device)}, {@code Tensor.to} and
 * {@code Module.to} reach it. Skips the calling test (JUnit assumption) where g++ or the kernel sources are absent.
 *
 * <pre>{@code try (EmulatedCuda gpu = EmulatedCuda.open(Device.cuda(3))) { ... Backends.of(Device.cuda(3)) ... }}</pre>
 */
public final class EmulatedCuda implements AutoCloseable {
    private final CudaBackend backend;

    private EmulatedCuda(CudaBackend backend) { this.backend = backend; }

    /** Fibers run in reverse order; the kernels' own tests run every kernel in two orders. */
    public static EmulatedCuda open(Device device) {
        if (device.kind() != Device.Kind.CUDA) throw new IllegalArgumentException("EmulatedCuda.open: expected a CUDA device, got " + device);
        CudaBackend b = new CudaBackend(new EmulatorRuntime(EmulatorBuild.binary(), EmulatorRuntime.Order.REVERSE, 41), device);
        try {
            CudaBackendProvider.install(b);
        } catch (RuntimeException e) {
            b.runtime().close();
            throw e;
        }
        return new EmulatedCuda(b);
    }

    public Backend backend() { return backend; }

    @Override public void close() {
        CudaBackendProvider.uninstall(backend);
        backend.runtime().close();
    }
}
