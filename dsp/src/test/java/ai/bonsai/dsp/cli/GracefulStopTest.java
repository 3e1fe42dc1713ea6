package ai.bonsai.dsp.cli;

import ai.bonsai.io.Checkpoint;
import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * SIGINT and SIGTERM sent to a child JVM in the middle of an epoch of {@code bonsai pretrain}: the step in flight
 * finishes, the resume checkpoint is written, the command says where it is and how to continue, and exits 130 / 143.
 * A second signal stops at once without touching the checkpoints. Resuming then ends with the weights of an
 * uninterrupted run, bit for bit.
 */
class GracefulStopTest {
    static final String MAIN = CifarPretrain.class.getName();

    static List<String> args(Path dir, int epochs, String... extra) {
        List<String> a = new ArrayList<>(List.of("--data", "synthetic", "--synthetic-size", "160", "--holdout", "0.2", "--epochs",
                Integer.toString(epochs), "--batch-size", "16", "--save-dir", dir.toString(), "--seed", "3", "-l", "8", "--threads", "2"));
        a.addAll(List.of(extra));
        return a;
    }

    /** Every tensor of two checkpoints (model, optimiser, scheduler) equal bit for bit. */
    static void assertSameState(Path expected, Path actual) {
        Map<String, Tensor> a = Checkpoint.load(expected).tensors(), b = Checkpoint.load(actual).tensors();
        assertEquals(a.keySet(), b.keySet());
        for (String k : a.keySet()) assertArrayEquals(a.get(k).toFloatArray(), b.get(k).toFloatArray(), k);
    }

    /** The epochs of the metrics log's epoch lines, in order (every line must be a JSON object). */
    static List<Integer> epochLines(Path metrics) throws Exception {
        List<Integer> epochs = new ArrayList<>();
        var json = new com.fasterxml.jackson.databind.ObjectMapper();
        for (String l : Files.readAllLines(metrics)) {
            var n = json.readTree(l);
            assertTrue(n.isObject(), metrics + ": not a JSON object: " + l);
            if (n.path("event").asText().equals("epoch")) epochs.add(n.path("epoch").asInt());
        }
        return epochs;
    }

    @org.junit.jupiter.api.AfterEach
    void endChildren() { ChildRun.killAll(); }

    @Test
    void signalsMidEpochSaveAndResumeBitExactly(@TempDir Path tmp) throws Exception {
        Path straight = tmp.resolve("straight"), dir = tmp.resolve("signalled");
        CliTest.Run ref = CliTest.run(new CifarPretrain(), args(straight, 3).toArray(String[]::new));
        assertEquals(0, ref.code(), ref.err());

        // SIGINT during step 3 of epoch 2: that step completes, then the run saves and exits 130.
        ChildRun a = ChildRun.start(100, MAIN, args(dir, 3));
        assertNotNull(a.awaitLine("bonsai-crashpoint step epoch 2 step 3", 120_000), a.err.toString());
        a.signal("INT");
        assertEquals(130, a.waitFor(60), a.err.toString());
        String err = a.err.toString();
        // Step 3 at the earliest (the signal came during its pause; on a loaded machine a later step may finish first).
        int stepA = stepOf(err, "bonsai pretrain: stopped by SIGINT in epoch 2/3 after step (\\d+) of 10; the resume checkpoint "
                + java.util.regex.Pattern.quote(dir.resolve("resnet8.last.safetensors").toAbsolutePath().toString()) + " holds that state");
        assertTrue(stepA >= 3 && stepA < 10, err);
        assertTrue(err.contains("continue with: bonsai pretrain " + String.join(" ", args(dir, 3)) + " --resume"), err);
        Checkpoint mid = Checkpoint.load(dir.resolve("resnet8.last.safetensors"));
        assertEquals(1, mid.requireInt("epoch"));
        assertEquals(Integer.toString(stepA), mid.metadata().get("stepInEpoch"));

        // SIGTERM during step 2 of epoch 3, after resuming mid-epoch: exit 143.
        ChildRun b = ChildRun.start(100, MAIN, args(dir, 3, "--resume"));
        assertNotNull(b.awaitLine("bonsai-crashpoint step epoch 3 step 2", 120_000), b.err.toString());
        b.signal("TERM");   // (Process.destroy() would also close our end of its pipes)
        assertEquals(143, b.waitFor(60), b.err.toString());
        assertTrue(b.out.toString().contains("resumed from " + dir.resolve("resnet8.last.safetensors") + " after epoch 1 and step " + stepA + " of epoch 2"),
                b.out.toString());
        int stepB = stepOf(b.err.toString(), "stopped by SIGTERM in epoch 3/3 after step (\\d+) of 10");
        assertTrue(stepB >= 2 && stepB < 10, b.err.toString());
        byte[] saved = Files.readAllBytes(dir.resolve("resnet8.last.safetensors"));

        // Two SIGINTs: the second halts at once (130), and the checkpoints on disk are the ones already there.
        ChildRun c = ChildRun.start(100, MAIN, args(dir, 3, "--resume"));
        assertNotNull(c.awaitLine("bonsai-crashpoint step epoch 3 step", 120_000), c.err.toString());
        c.signal("INT");
        assertNotNull(c.awaitLine("bonsai: SIGINT received", 10_000), c.err.toString());
        c.signal("INT");
        assertEquals(130, c.waitFor(60), c.err.toString());
        assertTrue(c.err.toString().contains("bonsai: SIGINT again: stopping at once"), c.err.toString());
        assertArrayEquals(saved, Files.readAllBytes(dir.resolve("resnet8.last.safetensors")), "the halted run wrote no checkpoint");
        Checkpoint.load(dir.resolve("resnet8.safetensors"));

        // Resume to the end: the same weights, momentum and schedule as the uninterrupted run, and each epoch logged once.
        CliTest.Run end = CliTest.run(new CifarPretrain(), args(dir, 3, "--resume").toArray(String[]::new));
        assertEquals(0, end.code(), end.err());
        assertSameState(straight.resolve("resnet8.last.safetensors"), dir.resolve("resnet8.last.safetensors"));
        assertSameState(straight.resolve("resnet8.safetensors"), dir.resolve("resnet8.safetensors"));
        assertEquals(List.of(1, 2, 3), epochLines(dir.resolve("resnet8.metrics.jsonl")));
    }

    private static int stepOf(String text, String regex) {
        java.util.regex.Matcher m = java.util.regex.Pattern.compile(regex).matcher(text);
        assertTrue(m.find(), "no match for /" + regex + "/ in:\n" + text);
        return Integer.parseInt(m.group(1));
    }

    @Test
    void resumeCommandQuotesWhatTheShellWouldSplit() {
        assertEquals("bonsai pretrain --save-dir 'my runs/a' --epochs 3 --resume",
                Bonsai.resumeCommand(new CifarPretrain(), "pretrain", new String[] {"--save-dir", "my runs/a", "--epochs", "3"}));
        assertEquals("bonsai dsp -g 4 --resume", Bonsai.resumeCommand(new Bonsai(), "dsp", new String[] {"dsp", "-g", "4", "--resume"}));
    }
}
