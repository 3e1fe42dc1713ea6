package ai.bonsai.dsp.cli;

import ai.bonsai.data.DataLoader;
import ai.bonsai.data.TrainSplit;
import ai.bonsai.dsp.models.Architectures;
import ai.bonsai.dsp.train.Trainer;
import ai.bonsai.dsp.train.TrainingRun;
import ai.bonsai.optim.LambdaLR;
import ai.bonsai.optim.LrScheduler;
import ai.bonsai.optim.SGD;
import ai.bonsai.tensor.Device;
import ai.bonsai.nn.Module;
import ai.bonsai.tensor.Generator;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code bonsai pretrain}: trains a CIFAR ResNet (or the {@code --arch} model) from scratch, as the reference's cifar_pretrain.py does
 * (spec section 8): SGD with momentum, lr / 4 for the first two epochs, then x0.1 at 50 % and 75 % of the
 * epochs, evaluation after every epoch, the best model saved as {@code <save-dir>/resnet<L>.safetensors}
 * ({@code <arch>.safetensors}). {@code --init FILE} starts from imported or earlier weights instead (recorded as
 * {@code init} in the metadata); the schedule is the same.
 */
@Command(name = "pretrain", mixinStandardHelpOptions = true,
        description = "Train a CIFAR ResNet or another --arch (the dense model that DSP starts from).")
public final class CifarPretrain implements Callable<Integer> {
    @Mixin ArchOptions arch;

    @Option(names = "--save-dir", defaultValue = "./cifarmodel", description = "Where checkpoints, metrics and plots go (default: ${DEFAULT-VALUE}).")
    Path saveDir;

    @Option(names = "--epochs", defaultValue = "164", description = "Epochs (default: ${DEFAULT-VALUE}).")
    int epochs;

    @Option(names = "--batch-size", defaultValue = "128", description = "Batch size; the last partial batch is dropped unless --keep-last-batch (default: ${DEFAULT-VALUE}).")
    int batchSize;

    @Option(names = "--lr", defaultValue = "0.1", description = "Learning rate (default: ${DEFAULT-VALUE}).")
    float lr;

    @Option(names = "--momentum", defaultValue = "0.9", description = "SGD momentum (default: ${DEFAULT-VALUE}).")
    float momentum;

    @Option(names = "--wd", defaultValue = "1e-4", description = "Weight decay (default: ${DEFAULT-VALUE}).")
    float wd;

    @Option(names = "--init", paramLabel = "FILE",
            description = "Start from these weights instead of a random initialisation: a Bonsai checkpoint of the same --arch, or a file "
                    + "'bonsai import' reads (torch.save state dict, safetensors with torchvision names). Loaded strictly: every tensor must fit; "
                    + "for another class count, 'bonsai import --classes N --non-strict' first.")
    Path init;

    @Mixin ResumeOptions resume;

    @Mixin CommonOptions common;

    public static void main(String[] args) { System.exit(Bonsai.execute(new CifarPretrain(), args)); }

    /**
     * The reference's pretraining schedule as a factor of the base lr at a given epoch (0-based). cifar_pretrain.py
     * writes lr / 4 into the optimiser on epochs 0 and 1 and the full lr on epoch 2, while MultiStepLR multiplies the
     * lr it finds by 0.1 at epochs / 2 and epochs * 3 / 4. So a milestone at or before epoch 2 (runs of fewer than 6
     * epochs) is undone by the warm-up's reset; from 6 epochs on this is plain "x0.1 at 50 % and 75 %".
     */
    public static double scheduleFactor(long epoch, int epochs) {
        if (epoch < 2) return 0.25;
        double f = 1;
        for (int milestone : new int[] {epochs / 2, epochs * 3 / 4}) {
            if (milestone > 2 && epoch >= milestone) f *= 0.1;
        }
        return f;
    }

    @Override public Integer call() {
        if (epochs < 1) throw new IllegalArgumentException("--epochs: expected a positive number, got " + epochs);
        Device device = common.setUp();
        Generator g = new Generator(common.seed);
        Architectures.Spec spec = arch.spec();
        System.out.printf("bonsai pretrain: %s, seed %d, device %s, %d threads%n", spec.displayName(), common.seed, device,
                ai.bonsai.backend.cpu.Parallel.threads());
        TrainSplit data = common.trainingData(System.out);
        Module model = spec.create(CommonOptions.numClasses(data), g);
        String initSource = init == null ? null : Import.loadInit(init, model, spec);
        if (initSource != null) System.out.println("init: weights from " + initSource);
        model.to(device);   // initialised on the host (same values on every device), trained on the device
        SGD sgd = new SGD(model.parameters(), lr, momentum, 0f, wd, false);
        int total = epochs;
        LrScheduler sched = new LrScheduler(sgd, new LambdaLR(e -> scheduleFactor(e, total)));
        DataLoader train = common.trainLoader(data, batchSize);
        DataLoader eval = common.evalLoader(data, batchSize);
        Map<String, String> meta = common.metadata("pretrain", spec, data);
        if (initSource != null) meta.put("init", initSource);
        TrainingRun run = resume.apply(new TrainingRun(new TrainingRun.Config(spec.baseName(), saveDir, epochs, 1, false, resume.resume, device, meta,
                resume.stopAfter(epochs)), System.out));
        Trainer trainer = new Trainer(model, sgd, device, 0f, Trainer.Hooks.NONE);
        TrainingRun.Result r = run.run(model, sgd, sched, trainer, train, eval, TrainingRun.Extra.NONE);
        CommonOptions.reportSkipped(train, eval);
        System.out.printf("best eval accuracy %.2f%% at epoch %d; saved %s%n", r.bestAccuracy(), r.bestEpoch(), r.best().toAbsolutePath());
        System.out.println("metrics: " + r.metrics().toAbsolutePath() + ", plot: " + r.plot().toAbsolutePath());
        return 0;
    }
}
