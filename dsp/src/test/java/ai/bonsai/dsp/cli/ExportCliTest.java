package ai.bonsai.dsp.cli;

import ai.onnx.proto.OnnxMl.ModelProto;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/** bonsai export as a user runs it: a checkpoint to a file, and clear errors. */
class ExportCliTest {
    @Test
    void exportsACheckpointAndRejectsBadInput(@TempDir Path tmp) throws Exception {
        assertEquals(0, CliTest.run(new CifarPretrain(), CliTest.tinyPretrain(tmp, 1)).code());
        Path ck = tmp.resolve("resnet8.safetensors"), onnx = tmp.resolve("out/resnet8.onnx");
        CliTest.Run r = CliTest.run(new Export(), "--ckpt", ck.toString(), "--onnx", onnx.toString(), "--batch", "4");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("dense") && r.out().contains("Conv="), r.out());
        ModelProto m;
        try (InputStream in = Files.newInputStream(onnx)) {
            m = ModelProto.parseFrom(in);
        }
        assertEquals(4, m.getGraph().getInput(0).getType().getTensorType().getShape().getDim(0).getDimValue());
        assertTrue(m.getMetadataPropsList().stream().anyMatch(e -> e.getKey().equals("depth") && e.getValue().equals("8")));

        CliTest.Run missing = CliTest.run(new Export(), "--ckpt", tmp.resolve("nope.pt").toString(), "--onnx", onnx.toString());
        assertEquals(1, missing.code());
        assertTrue(missing.err().contains("nope.pt") && missing.err().contains("no such file"), missing.err());
        CliTest.Run residual = CliTest.run(new Export(), "--ckpt", ck.toString(), "--onnx", onnx.toString(), "--residual", "sparse");
        assertEquals(1, residual.code());
        assertTrue(residual.err().contains("--residual") && residual.err().contains("sparse"), residual.err());
        CliTest.Run both = CliTest.run(new Export(), "--ckpt", ck.toString(), "--onnx", onnx.toString(), "--batch", "2", "--dynamic-batch");
        assertNotEquals(0, both.code());
        assertTrue(both.err().contains("mutually exclusive"), both.err());
        Path junk = tmp.resolve("junk.safetensors");
        Files.write(junk, new byte[] {1, 2, 3});
        CliTest.Run corrupt = CliTest.run(new Export(), "--ckpt", junk.toString(), "--onnx", onnx.toString());
        assertEquals(1, corrupt.code());
        assertTrue(corrupt.err().contains("junk.safetensors"), corrupt.err());
    }
}
