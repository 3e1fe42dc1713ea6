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

    /**
     * Makes {@code backend} the one {@code Backends.of(backend.device())} returns (tests: a CudaBackend over the
     * CPU emulator, so that {@code Tensor.to}, {@code Module.to} and everything that finds a backend by device
     * reach it). Fails if that device is already open.
     */
    static void install(CudaBackend backend) {
        synchronized (OPEN) {
            if (OPEN.containsKey(backend.device().index())) throw new IllegalStateException("device " + backend.device() + " is already open");
            OPEN.put(backend.device().index(), backend);
        }
    }

    /** Undoes {@link #install}. */
    static void uninstall(CudaBackend backend) {
        synchronized (OPEN) { OPEN.remove(backend.device().index(), backend); }
    }

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
