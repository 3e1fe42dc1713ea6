package ai.bonsai.backend;

import ai.bonsai.tensor.Device;

/**
 * A backend for a kind of device that lives outside the engine (the CUDA backend in {@code bonsai-kernels}),
 * found by {@link Backends#of} through {@link java.util.ServiceLoader}. The engine never depends on such a
 * module: putting its jar on the class path is what makes the device available.
 */
public interface BackendProvider {

    /** The kind of device this provider serves. */
    Device.Kind kind();

    /**
     * The backend for {@code device}, opened on first use and cached by the provider. Fails with an exception
     * whose message names what is missing (a driver library, a device index out of range) when it cannot.
     */
    Backend open(Device device);
}
