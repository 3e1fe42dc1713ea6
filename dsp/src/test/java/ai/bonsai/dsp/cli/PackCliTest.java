package ai.bonsai.dsp.cli;

import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.dsp.pack.PackFixtures;
import ai.bonsai.io.Checkpoint;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code bonsai pack}, {@code bonsai bench} and {@code bonsai eval} on a packed model, as a user runs them. */
class PackCliTest {
    @TempDir Path dir;

    private Path maskedCheckpoint() {
        CifarResNet model = PackFixtures.masked(20, 4, 0.6, 5);
        Path f = dir.resolve("resnet20_g4.safetensors");
        Checkpoint.save(f, model, null, null, null, Map.of("architecture", "cifar_resnet", "depth", "20", "groups", "4"));
        return f;
    }

    @Test void packThenEvalAndBench() throws Exception {
        Path ck = maskedCheckpoint(), out = dir.resolve("model.packed.safetensors");
        CliTest.Run p = CliTest.run(new Bonsai(), "pack", "--ckpt", ck.toString(), "--save", out.toString(), "--check-batch", "4");
        assertEquals(0, p.code(), p.err());
        for (String s : new String[] {"stage_3.2", "branches (in, out)", "equivalence check on 4 random inputs", "multiply-adds per image: dense 40,",
                "saved " + out.toAbsolutePath()}) {
            assertTrue(p.out().contains(s), "pack output lacks '" + s + "':\n" + p.out());
        }
        assertTrue(Files.isRegularFile(out));

        ObjectMapper json = new ObjectMapper();
        CliTest.Run ep = CliTest.run(new Bonsai(), "eval", "--ckpt", out.toString(), "--data", "synthetic", "--json");
        assertEquals(0, ep.code(), ep.err());
        JsonNode packed = json.readTree(ep.out());
        CliTest.Run em = CliTest.run(new Bonsai(), "eval", "--ckpt", ck.toString(), "--data", "synthetic", "--json");
        assertEquals(0, em.code(), em.err());
        JsonNode masked = json.readTree(em.out());
        for (String k : new String[] {"accuracy", "images", "prunedFlopsPercent", "prunedParamsPercent", "macs", "denseMacs", "params"}) {
            assertTrue(packed.has(k) && masked.has(k), "eval --json lacks " + k + ": " + ep.out() + " / " + em.out());
        }
        assertEquals("packed", packed.get("format").asText());
        assertEquals("masked", masked.get("format").asText());
        // Same network, same data: same predictions' accuracy and the same counts either way.
        assertEquals(masked.get("accuracy").asDouble(), packed.get("accuracy").asDouble(), 1e-9);
        assertEquals(masked.get("macs").asLong(), packed.get("macs").asLong());
        long dense = ai.bonsai.dsp.models.ModelStats.of(new CifarResNet(20, 10, new ai.bonsai.tensor.Generator(0))).macs();
        assertEquals(dense, packed.get("denseMacs").asLong());
        assertTrue(packed.get("prunedFlopsPercent").asDouble() > 30, ep.out());

        CliTest.Run b = CliTest.run(new Bonsai(), "bench", "--ckpt", ck.toString(), "--batch", "2", "--repeats", "2", "--warmup", "1", "--warmup-seconds", "0", "--json");
        assertEquals(0, b.code(), b.err());
        JsonNode bj = json.readTree(b.out());
        for (String k : new String[] {"batch", "denseMs", "maskedMs", "packedMs", "speedup", "macRatio"}) assertTrue(bj.has(k), "bench --json lacks " + k);
        assertEquals(2, bj.get("batch").asInt());
        assertTrue(bj.get("macRatio").asDouble() > 1.3, b.out());
        CliTest.Run bt = CliTest.run(new Bonsai(), "bench", "--ckpt", out.toString(), "--repeats", "2", "--warmup", "0", "--warmup-seconds", "0");
        assertEquals(0, bt.code(), bt.err());
        assertTrue(bt.out().contains("where time goes") && bt.out().contains("stage_2.0") && bt.out().contains("masked        n/a"), bt.out());
    }

    @Test void packRejectsMissingAndCorruptFiles() throws Exception {
        CliTest.Run r = CliTest.run(new Bonsai(), "pack", "--ckpt", dir.resolve("nope.safetensors").toString(), "--save", dir.resolve("o").toString());
        assertEquals(1, r.code());
        assertTrue(r.err().contains("bonsai pack: --ckpt") && r.err().contains("no such file"), r.err());
        Path bad = dir.resolve("bad.safetensors");
        Files.write(bad, new byte[] {1, 2, 3});
        CliTest.Run e = CliTest.run(new Bonsai(), "eval", "--ckpt", bad.toString(), "--data", "synthetic");
        assertEquals(1, e.code());
        assertTrue(e.err().contains(bad.toString()), e.err());
    }
}
