package ai.bonsai.dsp.train;

import ai.bonsai.io.CrashPoints;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Metrics as JSON lines: one object per event ({"event":"epoch","epoch":3,"loss":...}), flushed at once so
 * that a crashed run keeps everything it logged and {@code tail -f} works. A resumed run appends, after
 * {@link #repair} has made the file agree with the resume checkpoint.
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
            String text = JSON.writeValueAsString(line);
            if (CrashPoints.enabled()) {   // expose a torn line to a crash-recovery harness
                out.write(text, 0, text.length() / 2);
                out.flush();
                CrashPoints.reached("metrics", path);
                text = text.substring(text.length() / 2);
            }
            out.write(text);
            out.write('\n');
            out.flush();
        } catch (IOException e) {
            throw new UncheckedIOException("metrics log " + path + ": write failed: " + e.getMessage(), e);
        }
    }

    /** What {@link #repair} changed; {@link #changed()} is false when the file was already consistent. */
    public record Repair(boolean tornLastLine, int droppedEpochLines, int droppedUnreadableLines) {
        public boolean changed() { return tornLastLine || droppedEpochLines > 0 || droppedUnreadableLines > 0; }

        @Override public String toString() {
            List<String> parts = new ArrayList<>();
            if (tornLastLine) parts.add("dropped a torn last line (a kill during the append)");
            if (droppedEpochLines > 0) parts.add("dropped " + droppedEpochLines + " epoch line(s) newer than the resume checkpoint (that work is redone)");
            if (droppedUnreadableLines > 0) parts.add("dropped " + droppedUnreadableLines + " unreadable line(s)");
            return String.join("; ", parts);
        }
    }

    /**
     * Makes the log agree with a resume checkpoint taken after {@code completedEpochs} epochs, before a resumed run
     * appends to it: a last line without its newline (the process was killed while appending it) is dropped, as is
     * any line that is not a JSON object, and so are {@code epoch} lines for epochs after {@code completedEpochs}
     * (logged before a kill that came before their checkpoint, so the resumed run logs them again). The file is
     * rewritten atomically (temporary sibling, then a rename), and only when something changes.
     */
    public static Repair repair(Path path, int completedEpochs) {
        if (!Files.exists(path)) return new Repair(false, 0, 0);
        try {
            String text = Files.readString(path, StandardCharsets.UTF_8);
            boolean torn = !text.isEmpty() && !text.endsWith("\n");
            List<String> lines = new ArrayList<>(text.lines().toList());
            if (torn) lines.remove(lines.size() - 1);
            int droppedEpochs = 0, unreadable = 0;
            StringBuilder kept = new StringBuilder();
            for (String l : lines) {
                if (l.isBlank()) continue;
                JsonNode n;
                try {
                    n = JSON.readTree(l);
                } catch (IOException e) {
                    n = null;
                }
                if (n == null || !n.isObject()) {
                    unreadable++;
                    continue;
                }
                if ("epoch".equals(n.path("event").asText()) && n.path("epoch").asInt(Integer.MAX_VALUE) > completedEpochs) {
                    droppedEpochs++;
                    continue;
                }
                kept.append(l).append('\n');
            }
            Repair r = new Repair(torn, droppedEpochs, unreadable);
            if (r.changed()) {
                Path tmp = path.resolveSibling("." + path.getFileName() + ".repair.tmp");
                Files.writeString(tmp, kept, StandardCharsets.UTF_8);
                Files.move(tmp, path, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            }
            return r;
        } catch (IOException e) {
            throw new UncheckedIOException("metrics log " + path + ": cannot repair: " + e.getMessage(), e);
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
