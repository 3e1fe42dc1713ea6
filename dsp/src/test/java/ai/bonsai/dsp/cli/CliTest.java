package ai.bonsai.dsp.cli;

import ai.bonsai.io.Checkpoint;
import ai.bonsai.tensor.Tensor;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

import static org.junit.jupiter.api.Assertions.*;

/** The bonsai commands as a user runs them: help, training, resume, evaluation output, bad input. */
class CliTest {
    record Run(int code, String out, String err) {}

    /** Runs a command in-process, capturing what it prints. */
    static Run run(Object command, String... args) {
        PrintStream oldOut = System.out, oldErr = System.err;
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        try {
            System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
            System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
            int code = Bonsai.execute(command, args);
            return new Run(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(oldOut);
            System.setErr(oldErr);
        }
    }

    @Test
    void everyCommandHasHelp() {
        List<Object> commands = List.of(new Bonsai(), new Demo(), new Download(), new CifarPretrain(), new Evaluate());
        for (Object c : commands) {
            Run r = run(c, "--help");
            assertEquals(0, r.code(), c.getClass().getSimpleName());
            assertTrue(r.out().contains("Usage:"), r.out());
        }
        Run top = run(new Bonsai(), "--help");
        for (String sub : new String[] {"demo", "download", "pretrain", "eval"}) assertTrue(top.out().contains(sub), top.out());
        // Every registered subcommand, with nothing on stderr: picocli warns there (and prints the raw text) when
        // a description has a bare '%', as bench's "within 5 %" once did.
        var subs = new picocli.CommandLine(new Bonsai()).getSubcommands();
        assertTrue(subs.keySet().containsAll(List.of("pack", "bench", "dsp", "finetune", "export", "import")), subs.keySet().toString());
        for (var e : subs.entrySet()) {
            Run r = run(e.getValue().getCommand(), "--help");
            assertEquals(0, r.code(), e.getKey());
            assertTrue(r.out().contains("Usage:"), e.getKey() + ": " + r.out());
            assertEquals("", r.err(), e.getKey() + " --help wrote to stderr");
        }
        Run pre = run(new CifarPretrain(), "--help");
        for (String flag : new String[] {"--layers", "--save-dir", "--epochs", "--batch-size", "--lr", "--momentum", "--wd", "--data",
                "--seed", "--threads", "--device", "--resume", "--limit-train"}) {
            assertTrue(pre.out().contains(flag), "pretrain --help lacks " + flag);
        }
        assertTrue(pre.out().contains("default: 164") && pre.out().contains("default: ./cifarmodel"), pre.out());
    }

    static String[] tinyPretrain(Path dir, int epochs, String... extra) {
        List<String> a = new java.util.ArrayList<>(List.of("--data", "synthetic", "--synthetic-size", "48", "--holdout", "0.25",
                "--epochs", Integer.toString(epochs), "--batch-size", "16", "--save-dir", dir.toString(), "--seed", "3", "-l", "8"));
        a.addAll(List.of(extra));
        return a.toArray(String[]::new);
    }

    @Test
    void resumeContinuesBitExactly(@TempDir Path tmp) {
        Path straight = tmp.resolve("straight"), interrupted = tmp.resolve("interrupted");
        assertEquals(0, run(new CifarPretrain(), tinyPretrain(straight, 3)).code());
        // The same run stopped after epoch 2 (its schedule still spans 3 epochs), then resumed.
        Run first = run(new CifarPretrain(), tinyPretrain(interrupted, 3, "--stop-after", "2"));
        assertEquals(0, first.code(), first.err());
        Run r = run(new CifarPretrain(), tinyPretrain(interrupted, 3, "--resume"));
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("resumed from") && r.out().contains("after epoch 2"), r.out());
        Map<String, Tensor> a = Checkpoint.load(straight.resolve("resnet8.last.safetensors")).tensors();
        Map<String, Tensor> b = Checkpoint.load(interrupted.resolve("resnet8.last.safetensors")).tensors();
        assertEquals(a.keySet(), b.keySet());
        for (String k : a.keySet()) assertArrayEquals(a.get(k).toFloatArray(), b.get(k).toFloatArray(), k);
        // The metrics log of the resumed run holds all three epochs once.
        long epochs = r.out().lines().filter(l -> l.startsWith("resnet8 epoch")).count();
        assertEquals(1, epochs, r.out());
    }

    @Test
    void evalPrintsJsonAndPredictions(@TempDir Path tmp) throws Exception {
        assertEquals(0, run(new CifarPretrain(), tinyPretrain(tmp, 1)).code());
        Path preds = tmp.resolve("preds.txt");
        Run r = run(new Evaluate(), "--ckpt", tmp.resolve("resnet8.safetensors").toString(), "--data", "synthetic", "--json",
                "--predictions", preds.toString(), "--seed", "3");
        assertEquals(0, r.code(), r.err());
        JsonNode j = new ObjectMapper().readTree(r.out().trim());
        for (String k : new String[] {"accuracy", "images", "params", "macs"}) assertTrue(j.has(k), "eval --json lacks " + k + ": " + r.out());
        int images = j.get("images").asInt();
        assertTrue(images > 0);
        List<String> lines = Files.readAllLines(preds);
        assertEquals(images, lines.size());
        for (String l : lines) assertTrue(l.matches("[0-9]"), l);
    }

    @Test
    void badInputGetsOneClearLine(@TempDir Path tmp) throws Exception {
        Run missing = run(new CifarPretrain(), "--data", tmp.resolve("nope").toString(), "--epochs", "1");
        assertEquals(1, missing.code());
        assertTrue(missing.err().contains("nope") && missing.err().contains("bonsai download cifar10"), missing.err());

        Path junk = tmp.resolve("junk.safetensors");
        Files.write(junk, new byte[] {1, 2, 3});
        Run corrupt = run(new Evaluate(), "--ckpt", junk.toString(), "--data", "synthetic");
        assertEquals(1, corrupt.code());
        assertTrue(corrupt.err().contains("junk.safetensors"), corrupt.err());
        assertFalse(corrupt.err().contains("\tat "), "no stack trace: " + corrupt.err());

        Run device = run(new CifarPretrain(), "--device", "tpu");
        assertEquals(1, device.code());
        assertTrue(device.err().contains("tpu"), device.err());
    }

    @Test
    void aCheckpointOfAnotherDepthIsRejectedWithTheMismatches(@TempDir Path tmp) throws Exception {
        assertEquals(0, run(new CifarPretrain(), tinyPretrain(tmp, 1)).code());
        Path ck = tmp.resolve("resnet8.safetensors");
        Checkpoint c = Checkpoint.load(ck);
        Map<String, String> meta = new java.util.LinkedHashMap<>(c.metadata());
        meta.put("depth", "14");
        Path wrong = tmp.resolve("wrong.safetensors");
        Checkpoint.save(wrong, null, null, null, null, meta);
        Run r = run(new Evaluate(), "--ckpt", wrong.toString(), "--data", "synthetic");
        assertEquals(1, r.code());
        assertTrue(r.err().contains("wrong.safetensors") && r.err().contains("Missing key(s)"), r.err());
    }
}
