package ai.bonsai.dsp.cli;

import ai.bonsai.io.Checkpoint;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Disk trouble during {@code bonsai pretrain}, without root or mounts: a checkpoint write that fails because a
 * file-size limit is hit ends the run with an error naming the file and the cause, and leaves the previous
 * checkpoints byte for byte and no temporary file behind. (A full disk, on a size-limited tmpfs: {@link DiskFullTest}.)
 */
class DiskTroubleTest {
    static List<String> args(Path dir, String... extra) {
        List<String> a = new ArrayList<>(List.of("--data", "synthetic", "--synthetic-size", "80", "--holdout", "0.2", "--epochs", "2",
                "--batch-size", "16", "--save-dir", dir.toString(), "--seed", "3", "-l", "8", "--threads", "2"));
        a.addAll(List.of(extra));
        return a;
    }

    static void assertNoTemporaries(Path dir) throws IOException {
        try (var files = Files.list(dir)) {
            List<String> tmp = files.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".tmp")).toList();
            assertEquals(List.of(), tmp, "temporary files left in " + dir);
        }
    }

    /**
     * The fault injected by the operating system, without root: a child JVM under {@code ulimit -f} (a file-size
     * limit below a checkpoint's size; the JVM ignores SIGXFSZ, so the write fails with "File too large"). The
     * checkpoints of epoch 1 stay byte for byte as they were.
     */
    @Test
    void fileSizeLimitFailsTheWriteNamingPathAndCause(@TempDir Path tmp) throws Exception {
        Assumptions.assumeTrue(Files.isExecutable(Path.of("/bin/sh")), "skipped: no /bin/sh to set a file-size limit with");
        Path dir = tmp.resolve("run");
        CliTest.Run first = CliTest.run(new CifarPretrain(), args(dir, "--stop-after", "1").toArray(String[]::new));
        assertEquals(0, first.code(), first.err());
        byte[] last = Files.readAllBytes(dir.resolve("resnet8.last.safetensors")), best = Files.readAllBytes(dir.resolve("resnet8.safetensors"));

        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp", System.getProperty("java.class.path"), "--add-modules", "jdk.incubator.vector", "-Djava.awt.headless=true",
                "-Xmx512m", "-XX:+UseSerialGC", CifarPretrain.class.getName()));
        command.addAll(args(dir, "--resume"));
        StringBuilder cmd = new StringBuilder("ulimit -f " + (last.length / 1024 / 2) + " && exec");
        for (String a : command) cmd.append(" '").append(a.replace("'", "'\\''")).append('\'');
        Process p = new ProcessBuilder("/bin/sh", "-c", cmd.toString()).start();
        p.getOutputStream().close();
        Thread drainOut = new Thread(() -> { try { p.getInputStream().transferTo(java.io.OutputStream.nullOutputStream()); } catch (IOException e) { } });
        drainOut.start();
        String err = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), err);
        assertNotEquals(0, p.exitValue(), err);
        assertTrue(err.contains("checkpoint " + dir.resolve("resnet8")) && err.contains(": write failed, the previous file (if any) is unchanged: ")
                && err.contains("File too large"), err);
        assertArrayEquals(last, Files.readAllBytes(dir.resolve("resnet8.last.safetensors")), "resume checkpoint unchanged");
        assertArrayEquals(best, Files.readAllBytes(dir.resolve("resnet8.safetensors")), "best checkpoint unchanged");
        assertNoTemporaries(dir);
    }
}
