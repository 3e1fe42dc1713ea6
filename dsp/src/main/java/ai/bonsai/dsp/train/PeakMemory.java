package ai.bonsai.dsp.train;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.OptionalLong;

/**
 * The process's peak resident set size (Linux's {@code VmHWM} in {@code /proc/self/status}), printed at the end of a
 * training run so that users see what the run really cost in memory: the JVM's heap limit says little, because the
 * heap grows only as far as the collector lets it. Absent (empty) where {@code /proc} is not there (macOS, Windows).
 */
public final class PeakMemory {
    private PeakMemory() {}

    private static final Path STATUS = Path.of("/proc/self/status");

    /** Peak RSS in bytes, or empty where the system does not report it. */
    public static OptionalLong peakRssBytes() {
        return parseKiB(STATUS, "VmHWM:");
    }

    /** The value in bytes of a {@code KEY: N kB} line of a /proc status file, or empty when the file or line is missing. */
    static OptionalLong parseKiB(Path status, String key) {
        if (!Files.isReadable(status)) return OptionalLong.empty();
        try {
            for (String line : Files.readAllLines(status, StandardCharsets.US_ASCII)) {
                if (!line.startsWith(key)) continue;
                String[] parts = line.substring(key.length()).trim().split("\\s+");
                if (parts.length != 2 || !parts[1].equalsIgnoreCase("kB")) return OptionalLong.empty();
                return OptionalLong.of(Long.parseLong(parts[0]) * 1024L);
            }
        } catch (IOException | NumberFormatException | SecurityException e) {
            // A summary line is not worth failing a finished run for: report nothing.
        }
        return OptionalLong.empty();
    }

    /** The summary line, e.g. "peak memory: 587 MiB resident (VmHWM), heap limit 5.9 GiB"; empty where RSS is unknown. */
    public static String summary() {
        OptionalLong rss = peakRssBytes();
        if (rss.isEmpty()) return "";
        return String.format("peak memory: %d MiB resident (VmHWM), heap now %d MiB committed of at most %d MiB",
                mib(rss.getAsLong()), mib(Runtime.getRuntime().totalMemory()), mib(Runtime.getRuntime().maxMemory()));
    }

    static long mib(long bytes) {
        return (bytes + (1L << 19)) >> 20;
    }
}
