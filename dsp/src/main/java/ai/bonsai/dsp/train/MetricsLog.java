package ai.bonsai.dsp.train;

import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Metrics as JSON lines: one object per event ({"event":"epoch","epoch":3,"loss":...}), flushed at once so
 * that a crashed run keeps everything it logged and {@code tail -f} works. A resumed run appends.
 */
public final class MetricsLog implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();
    private final Path path;
    private final BufferedWriter out;

    public MetricsLog(Path path) {
        this.path = path;
        try {
            if (path.getParent() != null) Files.createDirectories(path.getParent());
            out = Files.newBufferedWriter(path, StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        } catch (IOException e) {
            throw new UncheckedIOException("metrics log " + path + ": cannot open for appending: " + e.getMessage(), e);
        }
    }

    public Path path() { return path; }

    /** Writes one line: {"event": event, ...fields}. */
    public void log(String event, Map<String, ?> fields) {
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("event", event);
        line.put("time", java.time.Instant.now().toString());
        line.putAll(fields);
        try {
            out.write(JSON.writeValueAsString(line));
            out.newLine();
            out.flush();
        } catch (IOException e) {
            throw new UncheckedIOException("metrics log " + path + ": write failed: " + e.getMessage(), e);
        }
    }

    @Override public void close() {
        try {
            out.close();
        } catch (IOException e) {
            throw new UncheckedIOException("metrics log " + path + ": close failed: " + e.getMessage(), e);
        }
    }
}
