package ai.bonsai.cuda;

import ai.bonsai.backend.Backend;
import ai.bonsai.backend.BackendProvider;
import ai.bonsai.tensor.Device;

import java.util.HashMap;
import java.util.Map;

/**
 * Serves {@code Backends.of(Device.cuda(i))} (registered in META-INF/services). Opens the driver on first use;
 * where there is none, {@link #open} throws a {@link CudaUnavailableException} that names the missing library.
 * TF32 GEMMs are off unless {@code -Dbonsai.cuda.tf32=true}.
 */
public final class CudaBackendProvider implements BackendProvider {
    private static final Map<Integer, CudaBackend> OPEN = new HashMap<>();

    @Override public Device.Kind kind() { return Device.Kind.CUDA; }

    @Override public Backend open(Device device) {
        synchronized (OPEN) {
            CudaBackend b = OPEN.get(device.index());
            if (b == null) {
                boolean tf32 = Boolean.getBoolean("bonsai.cuda.tf32");
                b = new CudaBackend(DriverRuntime.open(device, tf32), device);
                OPEN.put(device.index(), b);
            }
            return b;
        }
    }
}
