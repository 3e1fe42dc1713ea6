package ai.bonsai.dsp.cli;

import ai.bonsai.dsp.models.TorchvisionResNet;
import ai.bonsai.io.Checkpoint;
import ai.bonsai.io.NamedArray;
import ai.bonsai.io.SafeTensors;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Shape;
import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static ai.bonsai.dsp.cli.CliTest.run;
import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code bonsai import} on state dicts written here (no PyTorch needed): an exact torchvision-named ResNet-18 .pth,
 * one with a tensor missing and one unexpected (strict refusal naming both, then --non-strict), a class count that
 * does not fit, a truncated file, a pickle that names {@code os.system} and {@code builtins.eval}, a safetensors
 * with a wrong shape; then {@code pretrain --init} from an import, and {@code eval --predictions} of an imported
 * 1000-class model on a small image folder. Everything at 32x32 so that it stays quick.
 */
class ImportCliTest {
    @TempDir static Path tmp;
    static Map<String, Tensor> r18c10;            // a torchvision-style ResNet-18 state dict, 10 classes, with counters
    static Path exactPth;

    /** {@code model}'s state dict plus a num_batches_tracked counter per batch norm, as torchvision's has. */
    static Map<String, Tensor> torchvisionStyle(ai.bonsai.nn.Module model) {
        Map<String, Tensor> sd = new LinkedHashMap<>();
        model.stateDict().forEach((k, v) -> {
            sd.put(k, v);
            if (k.endsWith(".running_var")) sd.put(k.substring(0, k.length() - "running_var".length()) + "num_batches_tracked", Tensor.ofLongs(new long[] {42}, new int[0]));
        });
        return sd;
    }

    @BeforeAll
    static void files() throws IOException {
        r18c10 = torchvisionStyle(TorchvisionResNet.resnet18(10, new Generator(5)));
        exactPth = tmp.resolve("resnet18-exact.pth");
        StateDictFiles.writePth(exactPth, r18c10);
    }

    @Test
    void exactPthImportsWithCountersIgnored() {
        Path out = tmp.resolve("exact.safetensors");
        CliTest.Run r = run(new Import(), "--from", exactPth.toString(), "--arch", "resnet18", "--save", out.toString());
        assertEquals(0, r.code(), r.out() + r.err());
        assertTrue(r.out().contains("resnet18 (torch_zip) from " + exactPth + ", 10 classes"), r.out());
        assertTrue(r.out().contains("matched:    102 tensors (62 parameters, 40 buffers)"), r.out());
        assertTrue(r.out().contains("missing:    0\n") && r.out().contains("unexpected: 0\n") && r.out().contains("mismatched: 0\n"), r.out());
        assertTrue(r.out().contains("ignored:    20 (batch-norm step counters, which Bonsai does not keep)\n  bn1.num_batches_tracked\n"), r.out());
        Checkpoint ck = Checkpoint.load(out);
        Map<String, String> m = ck.metadata();
        assertEquals("bonsai-checkpoint-1", m.get("format"));
        assertEquals("resnet18", m.get("architecture"));
        assertEquals("10", m.get("numClasses"));
        assertEquals("224", m.get("imageSize"));
        assertEquals("import", m.get("stage"));
        assertEquals(exactPth.toAbsolutePath().normalize().toString(), m.get("source"));
        assertEquals("true", m.get("importStrict"));
        for (Map.Entry<String, Tensor> e : ck.tensors().entrySet()) {
            assertArrayEquals(r18c10.get(e.getKey()).toFloatArray(), e.getValue().toFloatArray(), e.getKey());
        }
        assertEquals(102, ck.tensors().size());
    }

    @Test
    void strictRefusesAndNamesEveryMismatchThenNonStrictImports() throws IOException {
        Map<String, Tensor> sd = new LinkedHashMap<>(r18c10);
        sd.remove("layer1.0.conv1.weight");
        sd.put("head.extra.weight", Tensor.zeros(3, 3));
        Path pth = tmp.resolve("resnet18-odd.pth");
        StateDictFiles.writePth(pth, sd);
        Path out = tmp.resolve("odd.safetensors");
        CliTest.Run r = run(new Import(), "--from", pth.toString(), "--arch", "resnet18", "--save", out.toString());
        assertEquals(1, r.code(), r.out() + r.err());
        assertTrue(r.err().startsWith("bonsai import: " + pth + " does not fit resnet18 with 10 classes: 1 missing [layer1.0.conv1.weight]; "
                + "1 unexpected [head.extra.weight]. Pass --non-strict"), r.err());
        assertTrue(r.out().contains("missing:    1 (in the model, not in the file)\n  layer1.0.conv1.weight\n"), r.out());
        assertTrue(r.out().contains("unexpected: 1 (in the file, not in the model)\n  head.extra.weight\n"), r.out());
        assertFalse(Files.exists(out), "a refused import writes nothing");

        r = run(new Import(), "--from", pth.toString(), "--arch", "resnet18", "--save", out.toString(), "--non-strict");
        assertEquals(0, r.code(), r.out() + r.err());
        assertTrue(r.out().contains("matched:    101 tensors"), r.out());
        Checkpoint ck = Checkpoint.load(out);
        assertEquals("false", ck.metadata().get("importStrict"));
        assertEquals("layer1.0.conv1.weight", ck.metadata().get("importNotImported"));
        assertArrayEquals(r18c10.get("fc.weight").toFloatArray(), ck.tensors().get("fc.weight").toFloatArray());
        assertFalse(Arrays.equals(r18c10.get("layer1.0.conv1.weight").toFloatArray(), ck.tensors().get("layer1.0.conv1.weight").toFloatArray()),
                "the missing tensor keeps the model's own initialisation");
    }

    @Test
    void anotherClassCountIsAShapeMismatch() {
        CliTest.Run r = run(new Import(), "--from", exactPth.toString(), "--arch", "resnet18", "--classes", "7", "--save", tmp.resolve("c7.safetensors").toString());
        assertEquals(1, r.code());
        assertTrue(r.err().contains("2 mismatched [fc.weight: file [10, 512] FLOAT32, model [7, 512] FLOAT32, fc.bias: file [10] FLOAT32, model [7] FLOAT32]"), r.err());
        // The wrong architecture: every ResNet-34 block beyond ResNet-18's is missing.
        r = run(new Import(), "--from", exactPth.toString(), "--arch", "resnet34", "--save", tmp.resolve("r34.safetensors").toString());
        assertEquals(1, r.code());
        assertTrue(r.err().contains("does not fit resnet34 with 10 classes: 80 missing [layer1.2.conv1.weight"), r.err());
    }

    @Test
    void truncatedAndHostileFilesAreRefusedNamingTheFile() throws IOException {
        byte[] full = Files.readAllBytes(exactPth);
        Path cut = tmp.resolve("cut.pth");
        Files.write(cut, Arrays.copyOf(full, full.length / 3));
        CliTest.Run r = run(new Import(), "--from", cut.toString(), "--arch", "resnet18", "--save", tmp.resolve("cut.safetensors").toString());
        assertEquals(1, r.code());
        assertTrue(r.err().startsWith("bonsai import: " + cut + ": truncated"), r.err());

        for (String[] g : new String[][] {{"os", "system"}, {"builtins", "eval"}}) {
            Path evil = tmp.resolve("evil-" + g[1] + ".pth");
            StateDictFiles.writeHostilePth(evil, g[0], g[1]);
            r = run(new Import(), "--from", evil.toString(), "--arch", "resnet18", "--save", tmp.resolve("evil.safetensors").toString());
            assertEquals(1, r.code());
            assertTrue(r.err().startsWith("bonsai import: " + evil + ":archive/data.pkl: global '" + g[0] + "." + g[1] + "' is not allowed"), r.err());
        }
        assertFalse(Files.exists(tmp.resolve("evil.safetensors")));
    }

    @Test
    void safetensorsWithAWrongShapeIsRefused() throws IOException {
        List<NamedArray> arrays = new ArrayList<>();
        r18c10.forEach((k, v) -> {
            if (k.equals("layer2.0.conv2.weight")) arrays.add(NamedArray.ofFloats(k, Shape.of(128, 128, 1, 3), new float[128 * 128 * 3]));
            else if (!k.endsWith("num_batches_tracked")) arrays.add(NamedArray.ofFloats(k, v.shape(), v.toFloatArray()));
        });
        Path st = tmp.resolve("wrong-shape.safetensors");
        SafeTensors.write(st, arrays, Map.of());
        CliTest.Run r = run(new Import(), "--from", st.toString(), "--arch", "resnet18", "--save", tmp.resolve("ws.safetensors").toString());
        assertEquals(1, r.code());
        assertTrue(r.err().contains("1 mismatched [layer2.0.conv2.weight: file [128, 128, 1, 3] FLOAT32, model [128, 128, 3, 3] FLOAT32]"), r.err());
        assertTrue(r.out().contains("mismatched: 1 (shape or dtype differs)\n  layer2.0.conv2.weight: file [128, 128, 1, 3]"), r.out());
    }

    @Test
    void pretrainStartsFromAnImport() throws IOException {
        Path folder = ImageFolderCliTest.makeFolder(tmp.resolve("colours"), "blue", "green", "red");
        Path imported = tmp.resolve("r18-3.safetensors");
        CliTest.Run r = run(new Import(), "--from", exactPth.toString(), "--arch", "resnet18", "--classes", "3", "--non-strict", "--save", imported.toString());
        assertEquals(0, r.code(), r.out() + r.err());
        assertTrue(r.out().contains("mismatched: 2"), r.out());
        // lr 0 and no weight decay: the weights after one epoch are the imported ones, which shows --init loaded them.
        Path runDir = tmp.resolve("init-run");
        r = run(new CifarPretrain(), "--arch", "resnet18", "--init", imported.toString(), "--data", "imagefolder:" + folder, "--image-size", "32",
                "--holdout", "0.34", "--epochs", "1", "--batch-size", "4", "--lr", "0", "--wd", "0", "--save-dir", runDir.toString());
        assertEquals(0, r.code(), r.out() + r.err());
        assertTrue(r.out().contains("init: weights from " + imported.toAbsolutePath().normalize()), r.out());
        Checkpoint ck = Checkpoint.load(runDir.resolve("resnet18.safetensors"));
        assertEquals(imported.toAbsolutePath().normalize().toString(), ck.metadata().get("init"));
        assertArrayEquals(r18c10.get("layer3.1.conv2.weight").toFloatArray(), ck.tensors().get("layer3.1.conv2.weight").toFloatArray());

        // Strict: an init of another class count or architecture is refused before any training.
        r = run(new CifarPretrain(), "--arch", "resnet18", "--init", exactPth.toString(), "--data", "imagefolder:" + folder, "--image-size", "32",
                "--epochs", "1", "--batch-size", "4", "--save-dir", tmp.resolve("bad-init").toString());
        assertEquals(1, r.code());
        assertTrue(r.err().startsWith("bonsai pretrain: --init " + exactPth + ": the weights do not fit TorchvisionResNet: 2 mismatched [fc.weight: file [10, 512]"), r.err());
        r = run(new CifarPretrain(), "--arch", "resnet34", "--init", imported.toString(), "--data", "imagefolder:" + folder, "--image-size", "32",
                "--epochs", "1", "--batch-size", "4", "--save-dir", tmp.resolve("bad-init").toString());
        assertEquals(1, r.code());
        assertTrue(r.err().contains("--init " + imported + ": a checkpoint of resnet18 (--arch resnet18), but this run trains resnet34 (--arch resnet34)"), r.err());
    }

    /** Issue 14's workflow end to end: import, pretrain --init, dsp, finetune, pack, bench and eval on an image folder. */
    @Test
    void theWholeWorkflowRunsFromImportedWeightsOnAnImageFolder() throws IOException {
        Path folder = ImageFolderCliTest.makeFolder(tmp.resolve("workflow-colours"), "blue", "green", "red");
        Path imported = tmp.resolve("wf-r18-3.safetensors");
        assertEquals(0, run(new Import(), "--from", exactPth.toString(), "--arch", "resnet18", "--classes", "3", "--non-strict", "--save", imported.toString()).code());
        Path dir = tmp.resolve("workflow");
        String[] data = {"--arch", "resnet18", "--data", "imagefolder:" + folder, "--image-size", "32", "--holdout", "0.34", "--batch-size", "4",
                "--save-dir", dir.toString(), "--seed", "2"};
        CliTest.Run r = run(new CifarPretrain(), concat(data, "--init", imported.toString(), "--epochs", "1"));
        assertEquals(0, r.code(), r.out() + r.err());
        r = run(new CifarDsp(), concat(data, "--epochs", "1", "-g", "2"));
        assertEquals(0, r.code(), r.out() + r.err());
        r = run(new CifarFinetune(), concat(data, "--epochs", "1", "-c", "1", "-g", "2", "-p", "0.5"));
        assertEquals(0, r.code(), r.out() + r.err());
        Path fine = dir.resolve("resnet18_g2_p0.5.safetensors");
        assertEquals("32", Checkpoint.load(fine).metadata().get("imageSize"));
        Path packed = dir.resolve("resnet18.packed.safetensors");
        r = run(new PackModel(), "--ckpt", fine.toString(), "--save", packed.toString(), "--check-batch", "2");
        assertEquals(0, r.code(), r.out() + r.err());
        r = run(new Bench(), "--ckpt", fine.toString(), "--batch", "2", "--warmup", "1", "--warmup-seconds", "0", "--repeats", "1", "--json");
        assertEquals(0, r.code(), r.out() + r.err());
        CliTest.Run masked = run(new Evaluate(), "--ckpt", fine.toString(), "--data", "imagefolder:" + folder, "--image-size", "32", "--json");
        CliTest.Run pack = run(new Evaluate(), "--ckpt", packed.toString(), "--data", "imagefolder:" + folder, "--image-size", "32", "--json");
        assertEquals(0, masked.code(), masked.err());
        assertEquals(0, pack.code(), pack.err());
        var json = new com.fasterxml.jackson.databind.ObjectMapper();
        var m = json.readTree(masked.out().lines().filter(l -> l.startsWith("{")).findFirst().orElseThrow());
        var p = json.readTree(pack.out().lines().filter(l -> l.startsWith("{")).findFirst().orElseThrow());
        assertEquals(18, m.get("images").asInt());
        assertEquals(m.get("accuracy").asDouble(), p.get("accuracy").asDouble(), 1e-9, "packed and masked agree on the folder");
        assertTrue(p.get("prunedFlopsPercent").asDouble() > 45, p.toString());
    }

    private static String[] concat(String[] a, String... b) {
        String[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    @Test
    void evalOfAStateDictPointsToImport() {
        // eval reads .pth files as TorchScript archives (the published DSP models); a state dict gets a pointer instead.
        CliTest.Run r = run(new Evaluate(), "--ckpt", exactPth.toString(), "--data", "synthetic", "--limit", "4");
        assertEquals(1, r.code());
        assertTrue(r.err().contains("the root value is a dict, as torch.save(model.state_dict(), f) writes, not a TorchScript module"), r.err());
        assertTrue(r.err().contains("'bonsai import --from FILE --arch NAME --save CKPT'"), r.err());
    }

    @Test
    void evalPredictsWithAnImported1000ClassModel() throws IOException {
        Path pth = tmp.resolve("resnet18-1000.pth");
        StateDictFiles.writePth(pth, torchvisionStyle(TorchvisionResNet.resnet18(1000, new Generator(9))));
        Path imported = tmp.resolve("r18-1000.safetensors");
        CliTest.Run r = run(new Import(), "--from", pth.toString(), "--arch", "resnet18", "--save", imported.toString());
        assertEquals(0, r.code(), r.out() + r.err());
        assertTrue(r.out().contains("1000 classes"), r.out());
        Path folder = ImageFolderCliTest.makeFolder(tmp.resolve("few"), "cat", "dog");
        Path preds = tmp.resolve("preds.txt");
        r = run(new Evaluate(), "--ckpt", imported.toString(), "--data", "imagefolder:" + folder, "--image-size", "32", "--predictions", preds.toString());
        assertEquals(0, r.code(), r.out() + r.err());
        assertTrue(r.err().contains("has 2 classes but the model has 1000 outputs"), r.err());
        List<String> lines = Files.readAllLines(preds);
        assertEquals(12, lines.size(), "one line per image");
        for (String l : lines) {
            int c = Integer.parseInt(l.trim());
            assertTrue(c >= 0 && c < 1000, "class index " + c);
        }
    }
}
