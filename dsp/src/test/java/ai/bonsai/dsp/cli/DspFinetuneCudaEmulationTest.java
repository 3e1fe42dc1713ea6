package ai.bonsai.dsp.cli;

import ai.bonsai.cuda.EmulatedCuda;
import ai.bonsai.data.DataLoader;
import ai.bonsai.data.Dataset;
import ai.bonsai.dsp.group.GroupWrapper;
import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.dsp.prune.PrunableLayer;
import ai.bonsai.dsp.prune.PruneWrapper;
import ai.bonsai.dsp.train.Trainer;
import ai.bonsai.dsp.train.TrainingRun;
import ai.bonsai.io.Checkpoint;
import ai.bonsai.nn.Functional;
import ai.bonsai.nn.Module;
import ai.bonsai.optim.CosineAnnealingLR;
import ai.bonsai.optim.LambdaLR;
import ai.bonsai.optim.LrScheduler;
import ai.bonsai.optim.SGD;
import ai.bonsai.tensor.Device;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Shape;
import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The code path of {@code bonsai dsp --device cuda} then {@code bonsai finetune --device cuda}, on an emulated CUDA
 * device ({@link EmulatedCuda}), at the TrainingRun level: the commands themselves build published-width models on
 * 32x32 images, which the emulator would take many minutes over, so this runs their steps in their order (model
 * moved before the optimiser and the group learner; pruner built and state loaded before the move) on a narrow
 * ResNet-8 and 8x8 images. Along the way, checkpoints cross devices both ways:
 * <ol>
 * <li>a pretrained checkpoint written on the CPU starts group learning on the device;</li>
 * <li>the device run stops after epoch 1 of 2, and its resume checkpoint (model, SGD momentum, the group
 *     optimiser's Adam state, the generator) continues epoch 2 on the CPU;</li>
 * <li>fine-tuning runs on the device from the group-learned checkpoint, two cycles (the cycle end reloads the best
 *     state, prunes further and resets momentum), and its best checkpoint, loaded on the CPU, has the masks and the
 *     accuracy the device recorded.</li>
 * </ol>
 */
class DspFinetuneCudaEmulationTest {
    private static final Device DEV = Device.cuda(0);     // what --device cuda parses to
    private static final int WIDTH = 4, SIZE = 8, G = 3;

    @TempDir Path dir;

    @Test
    void dspThenFinetuneOnTheDeviceWithCheckpointsCrossingDevices() {
        try (EmulatedCuda gpu = EmulatedCuda.open(DEV)) {
            long start = System.nanoTime();
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            PrintStream log = new PrintStream(bytes, true, StandardCharsets.UTF_8);
            Dataset train = new Tiny(4, 1), eval = new Tiny(2, 2);

            // 1. The pretrained model, written on the CPU.
            Path pretrained = dir.resolve("r8.safetensors");
            Checkpoint.save(pretrained, model(), null, null, null, Map.of("stage", "pretrain"));

            // 2. dsp on the device (CifarDsp.call's order), stopped after epoch 1 of 2.
            Path gl;
            {
                Module model = model();
                Checkpoint.load(pretrained).loadModel(model, true);
                PrunableLayer.Discovery found = PrunableLayer.discover(model, 3, SIZE, SIZE);
                model.to(DEV);
                Dsp d = new Dsp(model, found, new Generator(5));
                TrainingRun.Result r = new TrainingRun(dspConfig(false, 1), log).run(model, d.sgd, d.sched, new Trainer(model, d.sgd, DEV, 0f, d.gw),
                        loader(train, true), loader(eval, false), d.gw);
                gl = r.best();
                assertEquals(2, d.gw.step(), "two group-learning steps in the epoch");
                for (int l = 0; l < d.gw.layers().size(); l++) assertEquals(DEV, d.gw.logits(l).device());
                // Saved from the device, read back exactly on the host.
                Checkpoint ck = Checkpoint.load(dir.resolve("r8_g3.last.safetensors"));
                model.stateDict().forEach((k, v) -> assertArrayEquals(v.toFloatArray(), ck.modelState().get(k).toFloatArray(), k));
            }

            // 3. Resumed on the CPU from the device's resume checkpoint.
            {
                Module model = model();
                PrunableLayer.Discovery found = PrunableLayer.discover(model, 3, SIZE, SIZE);
                Checkpoint.load(pretrained).loadModel(model, true);
                Dsp d = new Dsp(model, found, new Generator(5));
                TrainingRun.Result r = new TrainingRun(dspConfig(true, 2), log).run(model, d.sgd, d.sched, new Trainer(model, d.sgd, Device.cpu(), 0f, d.gw),
                        loader(train, true), loader(eval, false), d.gw);
                assertEquals(4, d.gw.step(), "resumed after the device's two steps");
                assertTrue(Files.isRegularFile(r.best()));
                gl = r.best();
            }

            // 4. finetune on the device (CifarFinetune.call's order): two cycles of one epoch.
            Path best;
            PruneWrapper devicePruner;
            {
                Module model = model();
                Checkpoint groupLearned = Checkpoint.load(gl);
                PruneWrapper pruner = new PruneWrapper(model, PrunableLayer.discover(model, 3, SIZE, SIZE), G, 2, null);
                pruner.loadState(groupLearned.modelState());
                model.to(DEV);
                pruner.initialize(0.5);
                SGD sgd = new SGD(model.parameters(), 0.015f, 0.9f, 0f, 1e-3f, false);
                int epochs = 2, cycles = 2;
                LrScheduler sched = new LrScheduler(sgd, new LambdaLR(e -> CifarFinetune.cyclicCosine(e, epochs, cycles)));
                TrainingRun run = new TrainingRun(new TrainingRun.Config("r8_g3_p0.5", dir, epochs, 1, true, false, DEV, Map.of("stage", "finetune"),
                        epochs), log);
                CifarFinetune.Cycles state = new CifarFinetune.Cycles(pruner, sgd, CifarFinetune.cycleLength(epochs, cycles), epochs);
                PrintStream stdout = System.out;
                ByteArrayOutputStream cycleOut = new ByteArrayOutputStream();
                System.setOut(new PrintStream(cycleOut, true, StandardCharsets.UTF_8));     // Cycles reports the cycle end on stdout
                TrainingRun.Result r;
                try {
                    r = run.run(model, sgd, sched, new Trainer(model, sgd, DEV, 0f, pruner), loader(train, true), loader(eval, false), state);
                } finally {
                    System.setOut(stdout);
                }
                stdout.print(cycleOut.toString(StandardCharsets.UTF_8));
                best = r.best();
                devicePruner = pruner;
                for (int l = 0; l < pruner.layers().size(); l++) assertEquals(DEV, pruner.mask(l).device());
                assertTrue(cycleOut.toString(StandardCharsets.UTF_8).contains("cycle 1 done"), "the cycle end ran:\n" + cycleOut + bytes);
            }

            // 5. The device's fine-tuned checkpoint on the CPU: same masks, same accuracy as recorded.
            {
                Module model = model();
                PruneWrapper pruner = new PruneWrapper(model, PrunableLayer.discover(model, 3, SIZE, SIZE), G, 2, null);
                Checkpoint ck = Checkpoint.load(best);
                pruner.loadState(ck.modelState());
                double acc = Trainer.evaluate(model, loader(eval, false), Device.cpu()).accuracy();
                assertEquals(Double.parseDouble(ck.require("accuracy")), acc, 1e-9, "accuracy recorded on the device, measured on the CPU");
                assertTrue(Double.parseDouble(ck.require("prunedFlopsPercent")) > 20, ck.metadata().toString());
                boolean masked = false;
                for (int l = 0; l < pruner.layers().size(); l++) {
                    float[] m = pruner.mask(l).toFloatArray();
                    for (float v : m) masked |= v == 0f;
                }
                assertTrue(masked, "the checkpoint carries masks");
                assertNotNull(devicePruner.summary(false));
            }
            System.out.printf("dsp (device, then resumed on the CPU) and finetune (device) with checkpoints across devices: %.1f s%n",
                    (System.nanoTime() - start) / 1e9);
        }
    }

    private static CifarResNet model() { return new CifarResNet(8, 10, WIDTH, new Generator(3)); }

    private TrainingRun.Config dspConfig(boolean resume, int stopAfter) {
        return new TrainingRun.Config("r8_g3", dir, 2, 1, false, resume, resume ? Device.cpu() : DEV, new LinkedHashMap<>(Map.of("stage", "dsp")),
                stopAfter);
    }

    /** The optimiser, schedule and group learner as CifarDsp builds them (totalIterations: 2 epochs of 2 steps). */
    private static final class Dsp {
        final SGD sgd;
        final LrScheduler sched;
        final GroupWrapper gw;

        Dsp(Module model, PrunableLayer.Discovery found, Generator g) {
            sgd = new SGD(model.parameters(), 0.05f, 0.9f, 0f, 1e-3f, false);
            sched = new LrScheduler(sgd, new CosineAnnealingLR(2, 0));
            gw = new GroupWrapper(model, found.layers(), sgd, (logits, y) -> Functional.crossEntropy(logits, y), 2e-3f, 4, G, 0.5f, g.split(),
                    GroupWrapper.DEFAULT_GROUP_LR, null);
        }
    }

    private static DataLoader loader(Dataset d, boolean training) {
        return DataLoader.builder(d).batchSize(2).shuffle(training).seed(7).dropLast(training).build();
    }

    /** {@code n} seeded random 8x8 RGB images with labels. */
    private static final class Tiny implements Dataset {
        private final float[][] images;
        private final int[] labels;

        Tiny(int n, long seed) {
            Generator g = new Generator(seed);
            images = new float[n][3 * SIZE * SIZE];
            labels = new int[n];
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < images[i].length; j++) images[i][j] = g.nextFloat();
                labels[i] = g.nextInt(10);
            }
        }

        @Override public int size() { return images.length; }

        @Override public Shape imageShape() { return Shape.of(3, SIZE, SIZE); }

        @Override public int numClasses() { return 10; }

        @Override public int label(int i) { return labels[i]; }

        @Override public void image(int i, float[] dst, int offset) { System.arraycopy(images[i], 0, dst, offset, images[i].length); }

        @Override public String description() { return "tiny random 8x8"; }
    }
}
