package ai.bonsai.dsp.cli;

import ai.bonsai.io.Checkpoint;
import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Disk trouble during {@code bonsai pretrain}: a checkpoint write that fails (the disk fills, or a file-size limit
 * is hit) ends the run with an error naming the file and the cause, leaves the previous checkpoint whole and
 * loadable and no temporary file behind, and a later {@code --resume} on a healthy disk ends with the weights of an
 * uninterrupted run, bit for bit.
 */
class DiskTroubleTest {
    static List<String> args(Path dir, String... extra) {
        List<String> a = new ArrayList<>(List.of("--data", "synthetic", "--synthetic-size", "80", "--holdout", "0.2", "--epochs", "2",
                "--batch-size", "16", "--save-dir", dir.toString(), "--seed", "3", "-l", "8", "--threads", "2"));
        a.addAll(List.of(extra));
        return a;
    }

    static void assertSameTensors(Path expected, Path actual) {
        Map<String, Tensor> a = Checkpoint.load(expected).tensors(), b = Checkpoint.load(actual).tensors();
        assertEquals(a.keySet(), b.keySet());
        for (String k : a.keySet()) assertArrayEquals(a.get(k).toFloatArray(), b.get(k).toFloatArray(), k);
    }

    static void assertNoTemporaries(Path dir) throws IOException {
        try (var files = Files.list(dir)) {
            List<String> tmp = files.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".tmp")).toList();
            assertEquals(List.of(), tmp, "temporary files left in " + dir);
        }
    }

    static void copyDir(Path from, Path to) throws IOException {
        Files.createDirectories(to);
        try (var files = Files.list(from)) {
            for (Path p : (Iterable<Path>) files::iterator) Files.copy(p, to.resolve(p.getFileName()));
        }
    }

    private static int sh(String... cmd) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        p.getInputStream().readAllBytes();
        return p.waitFor(30, TimeUnit.SECONDS) ? p.exitValue() : -1;
    }

    /**
     * A size-limited file system (tmpfs with room for the first epoch's two checkpoints but not for a third copy):
     * the first checkpoint write of epoch 2 fails with "No space left on device". Needs mount rights (root on
     * Linux); skipped with a message elsewhere.
     */
    @Test
    void diskFullLeavesThePreviousCheckpointAndResumeLosesNothing(@TempDir Path tmp) throws Exception {
        Path straight = tmp.resolve("straight");
        CliTest.Run ref = CliTest.run(new CifarPretrain(), args(straight).toArray(String[]::new));
        assertEquals(0, ref.code(), ref.err());
        long size = Files.size(straight.resolve("resnet8.last.safetensors"));

        Path mount = Files.createDirectories(tmp.resolve("small-disk"));
        long limit = 2 * size + size / 2;   // epoch 1's best and resume checkpoints fit; a third copy (the next temporary) does not
        int m = sh("mount", "-t", "tmpfs", "-o", "size=" + limit, "tmpfs", mount.toString());
        Assumptions.assumeTrue(m == 0, "skipped: cannot mount a size-limited tmpfs here (needs root on Linux), so no real full disk to test on");
        Path full = mount.resolve("run"), after = tmp.resolve("after");
        try {
            CliTest.Run r = CliTest.run(new CifarPretrain(), args(full).toArray(String[]::new));
            assertNotEquals(0, r.code(), r.out());
            assertTrue(r.err().contains("checkpoint " + full.resolve("resnet8")) && r.err().contains(": write failed, the previous file (if any) is unchanged: ")
                    && r.err().contains("No space left on device"), r.err());
            Checkpoint last = Checkpoint.load(full.resolve("resnet8.last.safetensors"));
            assertEquals(1, last.requireInt("epoch"));
            assertEquals(1, Checkpoint.load(full.resolve("resnet8.safetensors")).requireInt("epoch"));
            assertNoTemporaries(full);
            copyDir(full, after);   // "free some space": continue on a healthy disk
        } finally {
            sh("umount", mount.toString());
        }
        CliTest.Run end = CliTest.run(new CifarPretrain(), args(after, "--resume").toArray(String[]::new));
        assertEquals(0, end.code(), end.err());
        assertSameTensors(straight.resolve("resnet8.last.safetensors"), after.resolve("resnet8.last.safetensors"));
        assertSameTensors(straight.resolve("resnet8.safetensors"), after.resolve("resnet8.safetensors"));
        long epochLines = Files.readAllLines(after.resolve("resnet8.metrics.jsonl")).stream().filter(l -> l.contains("\"event\":\"epoch\"")).count();
        assertEquals(2, epochLines, "each epoch logged once");
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
