package ai.bonsai.dsp.cli;

import ai.bonsai.cuda.EmulatedCuda;
import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.dsp.pack.PackFixtures;
import ai.bonsai.io.Checkpoint;
import ai.bonsai.tensor.Device;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The parts of the DSP workflow that run on the CPU only, asked for with {@code --device cuda} where a CUDA device
 * exists (emulated, so that the device check passes): packing stops with one line naming the device and what to do,
 * exit 1; a packed CIFAR ResNet evaluates on the device with the CPU's predictions.
 */
class CudaDevicePackedCliTest {
    @TempDir Path dir;

    private static String read(Path p) {
        try { return java.nio.file.Files.readString(p); } catch (java.io.IOException x) { throw new java.io.UncheckedIOException(x); }
    }

    @Test void packSaysItRunsOnTheCpuAndPackedEvalRunsOnTheDevice() throws Exception {
        try (EmulatedCuda gpu = EmulatedCuda.open(Device.cuda(0))) {
            CifarResNet model = PackFixtures.masked(8, 4, 0.6, 5);
            Path ck = dir.resolve("resnet8_g4.safetensors"), packed = dir.resolve("resnet8.packed.safetensors");
            Checkpoint.save(ck, model, null, null, null, Map.of("architecture", "cifar_resnet", "depth", "8", "groups", "4"));

            CliTest.Run p = CliTest.run(new Bonsai(), "pack", "--device", "cuda", "--ckpt", ck.toString(), "--save", packed.toString());
            assertEquals(1, p.code(), p.err());
            assertEquals("bonsai pack: device cuda:0: packing runs on the CPU only (a checkpoint from a cuda:0 run loads there as it is); "
                    + "use --device cpu", p.err().strip());

            CliTest.Run ok = CliTest.run(new Bonsai(), "pack", "--ckpt", ck.toString(), "--save", packed.toString(), "--check-batch", "2");
            assertEquals(0, ok.code(), ok.err());

            // A packed CIFAR ResNet runs on the device (PackedModel.to): the same predictions as on the CPU.
            Path predCpu = dir.resolve("cpu.txt"), predGpu = dir.resolve("gpu.txt");
            CliTest.Run c = CliTest.run(new Bonsai(), "eval", "--ckpt", packed.toString(), "--data", "synthetic", "--limit", "6",
                    "--predictions", predCpu.toString());
            assertEquals(0, c.code(), c.err());
            CliTest.Run e = CliTest.run(new Bonsai(), "eval", "--device", "cuda", "--ckpt", packed.toString(), "--data", "synthetic",
                    "--limit", "6", "--predictions", predGpu.toString());
            assertEquals(0, e.code(), e.err());
            assertEquals(read(predCpu), read(predGpu), "predicted classes, CPU vs device");

            // bench times dense, masked and packed on the device (no warm-up: each forward is slow under emulation).
            CliTest.Run bench = CliTest.run(new Bonsai(), "bench", "--device", "cuda", "--ckpt", ck.toString(), "--batch", "1",
                    "--warmup", "0", "--warmup-seconds", "0", "--repeats", "1", "--json");
            assertEquals(0, bench.code(), bench.err());
            com.fasterxml.jackson.databind.JsonNode j = new com.fasterxml.jackson.databind.ObjectMapper().readTree(bench.out());
            assertEquals("cuda:0", j.get("device").asText());
            for (String f : new String[] {"denseMs", "maskedMs", "packedMs"}) assertTrue(j.get(f).asDouble() > 0, f + ": " + j);
            assertEquals(0, j.get("blocks").size(), "no per-stage times on a GPU");

        }
    }
}
