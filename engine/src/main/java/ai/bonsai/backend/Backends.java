package ai.bonsai.backend;

import ai.bonsai.backend.cpu.CpuBackend;
import ai.bonsai.tensor.Device;

import java.util.ServiceLoader;

/**
 * Finds the backend that serves a device: the CPU backend is built in; any other kind comes from a
 * {@link BackendProvider} on the class path (the CUDA backend of the {@code bonsai-kernels} module).
 */
public final class Backends {
    private Backends() {}

    /** Loaded once, on the first request for a non-CPU device, so CPU-only work never scans the class path. */
    private static final class Providers {
        static final java.util.List<BackendProvider> ALL = ServiceLoader.load(BackendProvider.class, Backends.class.getClassLoader())
                .stream().map(ServiceLoader.Provider::get).toList();
    }

    public static Backend of(Device device) {
        if (device.kind() == Device.Kind.CPU) return CpuBackend.view();
        for (BackendProvider p : Providers.ALL) {
            if (p.kind() == device.kind()) return p.open(device);
        }
        throw new IllegalStateException("device " + device + ": no " + device.kind() + " backend on the class path "
                + "(add the bonsai-kernels jar, or use --device cpu)");
    }
}
