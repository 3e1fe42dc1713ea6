package ai.bonsai.dsp.cli;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link GracefulStopTest}'s contract for the other two training commands: SIGINT in the middle of an epoch of
 * {@code bonsai dsp} and SIGTERM in the middle of an epoch of {@code bonsai finetune} (in its second cosine cycle,
 * after a pruning step) save the resume checkpoint and exit 130 / 143; resuming ends with the weights, group logits,
 * masks and optimiser state of an uninterrupted run, bit for bit.
 */
class GracefulStopDspFinetuneTest {
    @AfterEach
    void endChildren() { ChildRun.killAll(); }

    static List<String> common(Path dir) {
        return List.of("--data", "synthetic", "--synthetic-size", "160", "--holdout", "0.2", "--batch-size", "16",
                "--save-dir", dir.toString(), "--seed", "3", "-l", "8", "--threads", "2");
    }

    static List<String> with(List<String> base, String... extra) {
        List<String> a = new ArrayList<>(base);
        a.addAll(List.of(extra));
        return a;
    }

    /** The last "flops -x% params -y%" of a progress bar. */
    static String lastRates(String text) {
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("flops -[0-9.]+% params -[0-9.]+%").matcher(text);
        String last = "";
        while (m.find()) last = m.group();
        return last;
    }

    @Test
    void dspAndFinetuneStopOnSignalAndResumeBitExactly(@TempDir Path tmp) throws Exception {
        Path straight = tmp.resolve("straight"), dir = tmp.resolve("signalled");
        CliTest.Run pre = CliTest.run(new CifarPretrain(), with(common(straight), "--epochs", "1").toArray(String[]::new));
        assertEquals(0, pre.code(), pre.err());
        Files.createDirectories(dir);
        Files.copy(straight.resolve("resnet8.safetensors"), dir.resolve("resnet8.safetensors"), StandardCopyOption.REPLACE_EXISTING);

        // bonsai dsp: uninterrupted, then SIGINT during step 3 of epoch 2 and --resume.
        List<String> dspArgs = with(common(dir), "--epochs", "2", "-g", "4");
        CliTest.Run dspRef = CliTest.run(new CifarDsp(), with(common(straight), "--epochs", "2", "-g", "4").toArray(String[]::new));
        assertEquals(0, dspRef.code(), dspRef.err());
        ChildRun a = ChildRun.start(100, CifarDsp.class.getName(), dspArgs);
        assertNotNull(a.awaitLine("bonsai-crashpoint step epoch 2 step 3", 120_000), a.err.toString());
        a.signal("INT");
        assertEquals(130, a.waitFor(60), a.err.toString());
        assertTrue(a.err.toString().contains("stopped by SIGINT in epoch 2/2 after step"), a.err.toString());
        assertTrue(a.err.toString().contains("--resume"), a.err.toString());
        assertTrue(Files.exists(dir.resolve("resnet8_g4.last.safetensors")), "resume checkpoint written");
        CliTest.Run dspEnd = CliTest.run(new CifarDsp(), with(dspArgs, "--resume").toArray(String[]::new));
        assertEquals(0, dspEnd.code(), dspEnd.err());
        GracefulStopTest.assertSameState(straight.resolve("resnet8_g4.last.safetensors"), dir.resolve("resnet8_g4.last.safetensors"));
        GracefulStopTest.assertSameState(straight.resolve("resnet8_g4.safetensors"), dir.resolve("resnet8_g4.safetensors"));

        // bonsai finetune: two cycles of one epoch (a pruning step between them); SIGTERM during step 2 of epoch 2.
        List<String> ftArgs = with(common(dir), "--epochs", "2", "-c", "2", "-g", "4", "-p", "0.5");
        CliTest.Run ftRef = CliTest.run(new CifarFinetune(), with(common(straight), "--epochs", "2", "-c", "2", "-g", "4", "-p", "0.5")
                .toArray(String[]::new));
        assertEquals(0, ftRef.code(), ftRef.err());
        ChildRun b = ChildRun.start(100, CifarFinetune.class.getName(), ftArgs);
        assertNotNull(b.awaitLine("bonsai-crashpoint step epoch 2 step 2", 120_000), b.err.toString());
        b.signal("TERM");
        assertEquals(143, b.waitFor(60), b.err.toString());
        assertTrue(b.err.toString().contains("stopped by SIGTERM in epoch 2/2 after step"), b.err.toString());
        // In a child JVM, whose progress bar (on the real stderr) shows the rates of the masks it restored: those of the
        // straight run's last epoch, not those of the prune at the start.
        ChildRun ftEnd = ChildRun.start(0, CifarFinetune.class.getName(), with(ftArgs, "--resume"));
        assertEquals(0, ftEnd.waitFor(120), ftEnd.err.toString());
        assertTrue(ftEnd.out.toString().contains("resumed from"), ftEnd.out.toString());
        String rates = lastRates(ftEnd.err.toString());
        assertTrue(rates.startsWith("flops -"), ftEnd.err.toString());
        var straightEpoch2 = new com.fasterxml.jackson.databind.ObjectMapper().readTree(
                ai.bonsai.io.Checkpoint.load(straight.resolve("resnet8_g4_p0.5.last.safetensors")).metadata().get("prunedFlopsPercent"));
        assertTrue(rates.startsWith(String.format("flops -%.1f%%", straightEpoch2.asDouble())), rates + " vs " + straightEpoch2);
        GracefulStopTest.assertSameState(straight.resolve("resnet8_g4_p0.5.last.safetensors"), dir.resolve("resnet8_g4_p0.5.last.safetensors"));
        GracefulStopTest.assertSameState(straight.resolve("resnet8_g4_p0.5.safetensors"), dir.resolve("resnet8_g4_p0.5.safetensors"));
        assertEquals(List.of(1, 2), GracefulStopTest.epochLines(dir.resolve("resnet8_g4_p0.5.metrics.jsonl")));
    }
}
