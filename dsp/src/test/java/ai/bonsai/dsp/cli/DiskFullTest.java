package ai.bonsai.dsp.cli;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * A checkpoint write on a full disk: {@code bonsai pretrain} saves into a 4 MiB tmpfs (mounted in a private mount
 * namespace with {@code unshare}, so no privileges are needed where user namespaces are allowed), then the disk is
 * filled to within 48 KiB and the run resumed. The next checkpoint cannot be written: the command fails with one
 * line naming the file and "No space left on device", the previous checkpoints are byte for byte what they were, and
 * no temporary file is left. Skipped, with the reason, where {@code unshare} or tmpfs mounts are not available.
 */
class DiskFullTest {
    @AfterEach
    void endChildren() { ChildRun.killAll(); }

    private static String q(String s) { return "'" + s.replace("'", "'\\''") + "'"; }

    private static String shell(List<String> cmd) {
        StringBuilder sb = new StringBuilder();
        for (String a : cmd) sb.append(sb.length() == 0 ? "" : " ").append(q(a));
        return sb.toString();
    }

    @Test
    void aFailedCheckpointWriteKeepsThePreviousOneAndSaysWhy(@TempDir Path tmp) throws Exception {
        Path mnt = Files.createDirectories(tmp.resolve("mnt")), out = Files.createDirectories(tmp.resolve("out"));
        Files.createDirectories(out.resolve("before"));
        Files.createDirectories(out.resolve("after"));
        String m = q(mnt.toString()), o = q(out.toString());
        List<String> first = ChildRun.javaCommand(0, GracefulStopTest.MAIN, GracefulStopTest.args(mnt, 2, "--stop-after", "1"));
        List<String> second = ChildRun.javaCommand(0, GracefulStopTest.MAIN, GracefulStopTest.args(mnt, 2, "--resume"));
        String script = String.join("\n",
                "mount -t tmpfs -o size=4m tmpfs " + m + " || exit 77",
                shell(first) + " > " + o + "/run1.log 2>&1 || exit 78",
                "cp " + m + "/resnet8.last.safetensors " + m + "/resnet8.safetensors " + o + "/before/",
                "dd if=/dev/zero of=" + m + "/fill bs=4k 2>/dev/null; rm -f " + m + "/fill",
                "avail=$(df -k --output=avail " + m + " | tail -1)",
                "dd if=/dev/zero of=" + m + "/fill bs=1k count=$((avail - 48)) 2>/dev/null",
                shell(second) + " > " + o + "/run2.log 2>&1; echo $? > " + o + "/run2.code",
                "cp " + m + "/resnet8.last.safetensors " + m + "/resnet8.safetensors " + o + "/after/",
                "ls -a " + m + " > " + o + "/listing");
        Process p;
        try {
            p = new ProcessBuilder("unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script).redirectErrorStream(true).start();
        } catch (java.io.IOException e) {
            assumeTrue(false, "no unshare here (" + e.getMessage() + "): cannot mount a size-limited file system; skipping");
            return;
        }
        String log = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(300, TimeUnit.SECONDS), "timed out");
        assumeTrue(p.exitValue() != 77 && !log.contains("unshare:"),
                "cannot mount a tmpfs in a private mount namespace here (" + log.trim() + "); skipping the disk-full test");
        assertEquals(0, p.exitValue(), log + Files.readString(out.resolve("run1.log")));

        String run2 = Files.readString(out.resolve("run2.log"));
        assertEquals("1", Files.readString(out.resolve("run2.code")).trim(), run2);
        Matcher e = Pattern.compile("bonsai pretrain: checkpoint (\\S+): write failed, the previous file \\(if any\\) is unchanged: "
                + "No space left on device").matcher(run2);
        assertTrue(e.find(), run2);
        assertTrue(e.group(1).equals(mnt.resolve("resnet8.safetensors").toString())
                || e.group(1).equals(mnt.resolve("resnet8.last.safetensors").toString()), e.group(1));
        for (String f : new String[] {"resnet8.last.safetensors", "resnet8.safetensors"}) {
            assertArrayEquals(Files.readAllBytes(out.resolve("before").resolve(f)), Files.readAllBytes(out.resolve("after").resolve(f)), f);
        }
        List<String> listing = new ArrayList<>(Files.readAllLines(out.resolve("listing")));
        assertFalse(listing.stream().anyMatch(n -> n.endsWith(".tmp")), "temporary files left: " + listing);
    }
}
