package ai.bonsai.dsp.cli;

import ai.bonsai.dsp.testing.SharedData;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** {@code bonsai eval --ckpt resnet20_g4.pt}: JSON fields, predictions, and a one-line error for a broken file. */
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
        assertEquals(63.57, j.get("prunedFlopsPercent").asDouble(), 0.005);
        assertEquals(50.45, j.get("prunedParamsPercent").asDouble(), 0.005);
        assertEquals(15.32e6, j.get("macs").asDouble(), 0.005e6);
        assertEquals(40.81e6, j.get("denseMacs").asDouble(), 0.005e6);
        assertTrue(j.get("params").asLong() > 132_426);
        List<String> lines = Files.readAllLines(pred);
        assertEquals(4000, lines.size());
        assertEquals("6", lines.get(0));                  // image 0 is a frog (label 6)
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
