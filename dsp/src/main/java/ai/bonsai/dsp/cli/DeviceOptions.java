package ai.bonsai.dsp.cli;

import ai.bonsai.backend.Backends;
import ai.bonsai.backend.cpu.Parallel;
import ai.bonsai.tensor.Device;
import picocli.CommandLine.Option;

/** --threads and --device, shared by every command that computes. */
public final class DeviceOptions {
    @Option(names = "--threads", paramLabel = "N", description = "CPU threads (default: the number of cores).")
    Integer threads;

    @Option(names = "--device", defaultValue = "cpu", paramLabel = "cpu|cuda", description = "Device to run on (default: ${DEFAULT-VALUE}).")
    String device;

    /** Applies --threads and checks --device; returns the device. Fails with one clear line when it has no backend. */
    Device setUp() {
        if (threads != null) Parallel.setThreads(threads);
        Device d = Device.parse(device);
        Backends.of(d);
        return d;
    }
}
