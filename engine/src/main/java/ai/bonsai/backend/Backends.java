package ai.bonsai.backend;

import ai.bonsai.backend.cpu.CpuBackend;
import ai.bonsai.tensor.Device;

/** Finds the backend that serves a device. */
public final class Backends {
    private Backends() {}

    public static Backend of(Device device) {
        if (device.kind() == Device.Kind.CPU) return CpuBackend.get();
        throw new IllegalStateException("device " + device + ": no CUDA backend in this build of Bonsai "
                + "(the CUDA backend is not implemented yet; use --device cpu)");
    }
}
