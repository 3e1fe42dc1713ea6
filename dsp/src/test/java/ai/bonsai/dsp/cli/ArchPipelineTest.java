package ai.bonsai.dsp.cli;

import ai.bonsai.dsp.testing.SharedData;
import ai.bonsai.io.Checkpoint;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code bonsai pretrain|dsp|finetune|pack|bench|eval --arch NAME} end to end for every architecture, on a few synthetic images
 * (the pipeline, not accuracy), with the checkpoint names {@code NAME.safetensors -> NAME_g<G> -> NAME_g<G>_p<rate>};
 * and again on the shared CIFAR-10 images (skipped without ../shared; 10 classes from the data).
 */
class ArchPipelineTest {
    static List<String> with(List<String> base, String... extra) {
        List<String> a = new ArrayList<>(base);
        a.addAll(List.of(extra));
        return a;
    }

    static CliTest.Run ok(java.util.concurrent.Callable<Integer> cmd, List<String> args) {
        CliTest.Run r = CliTest.run(cmd, args.toArray(String[]::new));
        assertEquals(0, r.code(), "exit code of " + args + "\n" + r.out() + r.err());
        return r;
    }

    static void pipeline(String arch, List<String> common, Path dir, int fpEvery) throws Exception {
        List<String> a = with(common, "--arch", arch, "--save-dir", dir.toString());
        ok(new CifarPretrain(), with(a, "--epochs", "1"));
        CliTest.Run dsp = ok(new CifarDsp(), with(a, "--epochs", "1", "-g", "2"));
        assertTrue(dsp.out().contains("not prunable:") && dsp.out().contains("the stem (the first convolution)"), dsp.out());
        assertTrue(dsp.out().contains("next: bonsai finetune --arch " + arch + " -g 2"), dsp.out());
        CliTest.Run fine = ok(new CifarFinetune(), with(a, "--epochs", "2", "-c", "2", "-g", "2", "-p", "0.5", "--fp-every", Integer.toString(fpEvery)));
        assertTrue(fine.out().contains("pruned FLOPs"), fine.out());
        Checkpoint dense = Checkpoint.load(dir.resolve(arch + ".safetensors"));
        assertEquals(arch, dense.require("architecture"));
        Checkpoint pruned = Checkpoint.load(dir.resolve(arch + "_g2_p0.5.safetensors"));
        assertEquals(arch, pruned.require("architecture"));
        assertTrue(pruned.modelState().keySet().stream().anyMatch(k -> k.endsWith(".mask")));

        CliTest.Run eval = ok(new Evaluate(), List.of("--ckpt", dir.resolve(arch + "_g2_p0.5.safetensors").toString(), "--data", "synthetic", "--limit", "64", "--json"));
        JsonNode j = new ObjectMapper().readTree(eval.out().lines().filter(l -> l.startsWith("{")).findFirst().orElseThrow());
        assertEquals(arch, j.get("architecture").asText());
        assertEquals("masked", j.get("format").asText());
        assertEquals(64, j.get("images").asInt());
        double pf = j.get("prunedFlopsPercent").asDouble();
        assertTrue(pf > 45 && pf < 75, arch + ": pruned FLOPs " + pf + " (target 50, the first cycle's end prunes a little more)");

        // pack (checked against the masked model inside the command), eval the packed file, bench.
        Path packedFile = dir.resolve(arch + ".packed.safetensors");
        CliTest.Run pack = ok(new PackModel(), List.of("--ckpt", dir.resolve(arch + "_g2_p0.5.safetensors").toString(), "--save", packedFile.toString(),
                "--check-batch", "3"));
        assertTrue(pack.out().contains("equivalence check on 3 random inputs"), pack.out());
        CliTest.Run evalPacked = ok(new Evaluate(), List.of("--ckpt", packedFile.toString(), "--data", "synthetic", "--limit", "64", "--json"));
        JsonNode p = new ObjectMapper().readTree(evalPacked.out().lines().filter(l -> l.startsWith("{")).findFirst().orElseThrow());
        assertEquals("packed", p.get("format").asText());
        assertEquals(arch, p.get("architecture").asText());
        assertEquals(j.get("accuracy").asDouble(), p.get("accuracy").asDouble(), 1e-9, "packed and masked predict alike");
        assertEquals(pf, p.get("prunedFlopsPercent").asDouble(), 1e-9);
        assertTrue(p.get("macs").asLong() < p.get("denseMacs").asLong());
        CliTest.Run bench = ok(new Bench(), List.of("--ckpt", dir.resolve(arch + "_g2_p0.5.safetensors").toString(), "--batch", "2",
                "--warmup", "1", "--warmup-seconds", "0", "--repeats", "2", "--json"));
        JsonNode b = new ObjectMapper().readTree(bench.out().lines().filter(l -> l.startsWith("{")).findFirst().orElseThrow());
        assertTrue(b.get("packedMs").asDouble() > 0 && b.get("maskedMs").asDouble() > 0 && b.get("macRatio").asDouble() > 1, b.toString());
    }

    @ParameterizedTest
    @ValueSource(strings = {"resnet18", "resnet34", "resnet50", "vgg16", "mobilenetv2"})
    void everyArchitectureRunsThePipelineOnSyntheticData(String arch, @TempDir Path tmp) throws Exception {
        List<String> common = List.of("--data", "synthetic", "--synthetic-size", "16", "--holdout", "0.25", "--batch-size", "8",
                "--seed", "3", "--threads", "2");
        pipeline(arch, common, tmp, arch.equals("resnet50") ? 3 : 2);
    }

    /**
     * On the shared images: ResNet-18 and MobileNetV2 in {@code mvn verify} (the other three cost CI minutes and add no
     * path the synthetic runs miss); all five with {@code -Dbonsai.arch.full=true}.
     */
    @ParameterizedTest
    @ValueSource(strings = {"resnet18", "resnet34", "resnet50", "vgg16", "mobilenetv2"})
    void everyArchitectureRunsThePipelineOnTheSharedCifarImages(String arch, @TempDir Path tmp) throws Exception {
        Path data = SharedData.require("data/cifar10/first4000_of_data_batch_1.bin");
        org.junit.jupiter.api.Assumptions.assumeTrue(Boolean.getBoolean("bonsai.arch.full") || arch.equals("resnet18") || arch.equals("mobilenetv2"),
                "reduced run: " + arch + " on the shared images only with -Dbonsai.arch.full=true");
        List<String> common = List.of("--data", data.toString(), "--limit-train", "32", "--holdout", "0.005", "--batch-size", "16",
                "--seed", "5", "--threads", "2");
        pipeline(arch, common, tmp, arch.equals("resnet50") ? 3 : 2);
        assertTrue(Files.exists(tmp.resolve(arch + "_g2_p0.5.layers.png")));
    }
}
