package ai.bonsai.dsp.cli;

import ai.bonsai.dsp.testing.PublishedModels.Model;
import ai.bonsai.dsp.testing.SharedData;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code bonsai eval --ckpt} and {@code bonsai bench --ckpt} on the published models: JSON fields, predictions,
 * the published figures for all six, and a one-line error for a broken file.
 */
class EvaluateTorchTest {
    @Test
    void evaluatesThePublishedModel(@TempDir Path dir) throws Exception {
        Path model = SharedData.require("reference/resnet20_g4.pt");
        Path data = SharedData.require("data/cifar10/first4000_of_data_batch_1.bin");
        Path pred = dir.resolve("pred.txt");
        CliTest.Run r = CliTest.run(new Evaluate(), "--ckpt", model.toString(), "--data", data.toString(), "--json", "--predictions", pred.toString());
        assertEquals(0, r.code(), r.err());
        JsonNode j = new ObjectMapper().readTree(r.out());
        assertEquals(99.175, j.get("accuracy").asDouble(), 1e-9);
        assertEquals(4000, j.get("images").asInt());
        assertTrue(j.get("params").asLong() > 132_426);
        List<String> lines = Files.readAllLines(pred);
        assertEquals(4000, lines.size());
        assertEquals("6", lines.get(0));                  // image 0 is a frog (label 6)
    }

    /** The figures of the reference's table, through the CLI (the library test checks each model's accuracy). */
    @ParameterizedTest(name = "{0}")
    @MethodSource("ai.bonsai.dsp.testing.PublishedModels#all")
    void everyPublishedModelGivesThePublishedFigures(Model m) throws Exception {
        CliTest.Run r = CliTest.run(new Evaluate(), "--ckpt", m.file().toString(), "--data", "synthetic", "--json");
        assertEquals(0, r.code(), r.err());
        JsonNode j = new ObjectMapper().readTree(r.out());
        assertEquals(m.prunedFlopsPercent(), j.get("prunedFlopsPercent").asDouble(), 0.005);
        assertEquals(m.prunedParamsPercent(), j.get("prunedParamsPercent").asDouble(), 0.005);
        assertEquals(m.packedMacs(), j.get("macs").asLong());
        assertEquals(m.denseMacs(), j.get("denseMacs").asLong());
        assertTrue(j.get("images").asInt() > 0);
    }

    /** bench --ckpt runs dense and packed forms of a ResNet-56 archive with single-branch blocks. */
    @Test
    void benchesAPublishedResNet56() throws Exception {
        Path model = SharedData.require("reference/resnet56_g2.pt");
        CliTest.Run r = CliTest.run(new Bench(), "--ckpt", model.toString(), "--batch", "2", "--repeats", "1", "--warmup", "0", "--warmup-seconds", "0", "--json");
        assertEquals(0, r.code(), r.err());
        JsonNode j = new ObjectMapper().readTree(r.out());
        assertEquals("resnet56", j.get("architecture").asText());
        assertEquals(46_646_336, j.get("packedMacs").asLong());
        assertEquals(125_747_840, j.get("denseMacs").asLong());
        assertTrue(j.get("denseMs").asDouble() > 0 && j.get("packedMs").asDouble() > 0, r.out());
        assertEquals(27, j.get("blocks").size() - 2);     // 27 blocks, plus the stem and the classifier
    }

    @Test
    void aBrokenArchiveIsOneLine(@TempDir Path dir) throws Exception {
        Path bad = dir.resolve("broken.pt");
        Files.write(bad, new byte[] {'P', 'K', 3, 4, 0, 0});
        CliTest.Run r = CliTest.run(new Evaluate(), "--ckpt", bad.toString(), "--data", "synthetic");
        assertEquals(1, r.code());
        assertTrue(r.err().contains("broken.pt") && r.err().contains("not a zip archive"), r.err());
        assertEquals(1, r.err().strip().lines().count(), r.err());
    }
}
