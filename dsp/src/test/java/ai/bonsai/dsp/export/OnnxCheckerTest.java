package ai.bonsai.dsp.export;

import ai.bonsai.dsp.cli.Export;
import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.dsp.pack.PackFixtures;
import ai.bonsai.dsp.pack.PackedModel;
import ai.bonsai.dsp.pack.Packer;
import ai.bonsai.tensor.Generator;
import ai.bonsai.dsp.testing.PublishedModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * ONNX's checker ({@code onnx.checker.check_model}, full check) accepts every kind of export. Needs Python with
 * the onnx package (Debian's python3-onnx), so it runs only in the Maven profile {@code onnx-checker}, which
 * sets {@code bonsai.onnx.python}; otherwise it is skipped and {@code mvn verify} needs only a JDK:
 * {@code mvn -B -pl dsp -am verify -Ponnx-checker -Dtest=OnnxCheckerTest -Dsurefire.failIfNoSpecifiedTests=false}.
 */
class OnnxCheckerTest {
    @Test
    void onnxCheckerAcceptsEveryExport(@TempDir Path tmp) throws Exception {
        String python = System.getProperty("bonsai.onnx.python");
        assumeTrue(python != null && !python.isBlank(), "run with -Ponnx-checker (needs python3-onnx)");
        List<String> files = new ArrayList<>();
        CifarResNet dense = new CifarResNet(20, 10, new Generator(1));
        dense.eval();
        files.add(write(tmp, "dense20.onnx", OnnxExport.dense(dense, OnnxExport.Options.defaults(), Map.of())));
        CifarResNet masked = PackFixtures.masked(56, 4, 0.65, 4);
        files.add(write(tmp, "masked56.onnx", OnnxExport.dense(masked, new OnnxExport.Options(1, 13, OnnxExport.Residual.PADDED), Map.of())));
        PackedModel.Structure s = Packer.pack(masked).structure();
        for (int opset : new int[] {16, 17}) {
            for (OnnxExport.Residual r : OnnxExport.Residual.values()) {
                files.add(write(tmp, "packed56_" + r + "_" + opset + ".onnx", OnnxExport.packed(s, new OnnxExport.Options(null, opset, r), Map.of())));
            }
        }
        if (OnnxRuntimeEquivalenceTest.sharedImages() != null) {
            for (PublishedModels.Model m : PublishedModels.ALL) {
                files.add(write(tmp, m.name() + ".onnx", Export.export(m.file(), OnnxExport.Options.defaults(), false).model()));
            }
        }
        Path script = Path.of("src/test/python/check_onnx.py").toAbsolutePath();
        List<String> cmd = new ArrayList<>(List.of(python, script.toString()));
        cmd.addAll(files);
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        int code = p.waitFor();
        System.out.print(out);
        assertEquals(0, code, out);
    }

    private static String write(Path dir, String name, ai.onnx.proto.OnnxMl.ModelProto m) {
        Path f = dir.resolve(name);
        OnnxExport.write(m, f);
        return f.toString();
    }
}
