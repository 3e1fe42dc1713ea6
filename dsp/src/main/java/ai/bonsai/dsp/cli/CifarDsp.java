package ai.bonsai.dsp.cli;

import ai.bonsai.backend.cpu.Parallel;
import ai.bonsai.data.DataLoader;
import ai.bonsai.data.TrainSplit;
import ai.bonsai.dsp.group.GroupWrapper;
import ai.bonsai.dsp.models.Architectures;
import ai.bonsai.dsp.prune.PrunableLayer;
import ai.bonsai.nn.Module;
import ai.bonsai.dsp.train.Trainer;
import ai.bonsai.dsp.train.TrainingRun;
import ai.bonsai.io.Checkpoint;
import ai.bonsai.nn.Functional;
import ai.bonsai.optim.CosineAnnealingLR;
import ai.bonsai.optim.LrScheduler;
import ai.bonsai.optim.SGD;
import ai.bonsai.tensor.Device;
import ai.bonsai.tensor.Generator;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code bonsai dsp}: differentiable group learning (spec section 4), the reference's cifar_dsp.py. Starts from
 * the pretrained {@code <save-dir>/resnet<L>.safetensors}, trains with the group regulariser and learns the
 * filter groups, and saves the best model from epoch 10 on (the reference's {@code epoch > 8}, counting from 0),
 * group logits included, as
 * {@code <save-dir>/resnet<L>_g<G>.safetensors}.
 */
@Command(name = "dsp", mixinStandardHelpOptions = true,
        description = "Differentiable group learning: learn filter groups and regularise group channels (needs a pretrained model).")
public final class CifarDsp implements Callable<Integer> {
    /**
     * Epochs (1-based) up to this one never count as best: the groups are still forming. cifar_dsp.py saves only when
     * {@code epoch > 8} with epochs counted from 0, so its first candidate is the 10th epoch.
     */
    static final int BEST_AFTER = 9;

    @Mixin ArchOptions arch;

    @Option(names = "--exclude", paramLabel = "LAYER", split = ",",
            description = "Convolutions DSP leaves alone: module paths, or patterns with * (e.g. 'layer4.*'). Recorded in the checkpoint, so finetune excludes them too.")
    List<String> exclude = new ArrayList<>();

    @Option(names = "--input-size-probe", paramLabel = "model|reference", defaultValue = "model",
            description = "The input size that scales each layer's regulariser: 'model', the model's own (224 for ImageNet-sized data), or "
                    + "'reference', 32x32 as the reference always probes (default: ${DEFAULT-VALUE}; equal for CIFAR).")
    String inputSizeProbe;

    @Option(names = {"-g", "--groups"}, defaultValue = "4", description = "Groups per layer (default: ${DEFAULT-VALUE}).")
    int groups;

    @Option(names = {"-r", "--regularize"}, defaultValue = "2e-3", description = "Regularisation power lambda (default: ${DEFAULT-VALUE}; the reference uses 5e-4 for ResNet-56).")
    float lambda;

    @Option(names = {"-t", "--temperature"}, defaultValue = "0.5", description = "Gumbel-softmax temperature (default: ${DEFAULT-VALUE}).")
    float temperature;

    @Option(names = "--save-dir", defaultValue = "./cifarmodel", description = "Reads resnet<L>.safetensors here, writes resnet<L>_g<G>.* (default: ${DEFAULT-VALUE}).")
    Path saveDir;

    @Option(names = "--ckpt", paramLabel = "FILE", description = "Pretrained model (default: <save-dir>/resnet<L>.safetensors).")
    Path ckpt;

    @Option(names = "--epochs", defaultValue = "120", description = "Epochs (default: ${DEFAULT-VALUE}).")
    int epochs;

    @Option(names = "--batch-size", defaultValue = "128", description = "Batch size; the last partial batch is dropped unless --keep-last-batch (default: ${DEFAULT-VALUE}).")
    int batchSize;

    @Option(names = "--lr", defaultValue = "0.05", description = "Learning rate, cosine-annealed over the epochs (default: ${DEFAULT-VALUE}).")
    float lr;

    @Option(names = "--group-lr", defaultValue = "1e-3", description = "Adam learning rate of the group logits (default: ${DEFAULT-VALUE}).")
    float groupLr;

    @Option(names = "--momentum", defaultValue = "0.9", description = "SGD momentum (default: ${DEFAULT-VALUE}).")
    float momentum;

    @Option(names = "--wd", defaultValue = "1e-3", description = "Weight decay (default: ${DEFAULT-VALUE}).")
    float wd;

    @Mixin ResumeOptions resume;

    @Mixin CommonOptions common;

    public static void main(String[] args) { System.exit(Bonsai.execute(new CifarDsp(), args)); }

    /**
     * The first epoch (1-based) that may become the best. A run of 9 epochs or fewer saves its last epoch, where the
     * reference would save nothing and leave fine-tuning without a model.
     */
    static int firstBestEpoch(int epochs) { return Math.min(BEST_AFTER + 1, epochs); }

    static PrunableLayer.InputSizeProbe probe(String s) {
        return switch (s.trim().toLowerCase(java.util.Locale.ROOT)) {
            case "model" -> PrunableLayer.InputSizeProbe.MODEL;
            case "reference" -> PrunableLayer.InputSizeProbe.REFERENCE;
            default -> throw new IllegalArgumentException("--input-size-probe: expected model or reference, got '" + s + "'");
        };
    }

    @Override public Integer call() {
        if (epochs < 1) throw new IllegalArgumentException("--epochs: expected a positive number, got " + epochs);
        if (groups < 1) throw new IllegalArgumentException("--groups: expected a positive number, got " + groups);
        Device device = common.setUp();
        Architectures.Spec spec = arch.spec();
        PrunableLayer.InputSizeProbe probe = probe(inputSizeProbe);
        Path source = ckpt != null ? ckpt : saveDir.resolve(spec.baseName() + ".safetensors");
        if (!Files.isRegularFile(source)) {
            throw new IllegalArgumentException("pretrained model " + source.toAbsolutePath() + " not found: run 'bonsai pretrain " + spec.flags()
                    + " --save-dir " + saveDir + "' first, or pass --ckpt FILE");
        }
        Generator g = new Generator(common.seed);
        System.out.printf("bonsai dsp: %s, G=%d, lambda=%g, tau=%g, seed %d, device %s, %d threads%n", spec.displayName(), groups, lambda,
                temperature, common.seed, device, Parallel.threads());
        System.out.println("pretrained model: " + source.toAbsolutePath());
        TrainSplit data = common.trainingData(System.out);
        Module model = spec.create(CommonOptions.numClasses(data), g);
        Checkpoint.load(source).loadModel(model, true);
        PrunableLayer.Discovery found = PrunableLayer.discover(model, ArchOptions.inputDims(data), probe, exclude);
        model.to(device);   // before the optimiser and the group learner, which take the model's tensors
        SGD sgd = new SGD(model.parameters(), lr, momentum, 0f, wd, false);
        LrScheduler sched = new LrScheduler(sgd, new CosineAnnealingLR(epochs, 0));
        DataLoader train = common.trainLoader(data, batchSize);
        DataLoader eval = common.evalLoader(data, batchSize);
        long totalIterations = (long) epochs * train.batchesPerEpoch();
        System.out.print(found.format());
        GroupWrapper groupsLearner = new GroupWrapper(model, found.layers(), sgd, (logits, y) -> Functional.crossEntropy(logits, y), lambda,
                totalIterations, groups, temperature, g.split(), groupLr, null);

        Map<String, String> meta = common.metadata("dsp", spec, data);
        meta.put("groups", Integer.toString(groups));
        meta.put("lambda", Float.toString(lambda));
        meta.put("temperature", Float.toString(temperature));
        meta.put("pretrained", source.toAbsolutePath().toString());
        meta.put("exclude", String.join(",", exclude));
        meta.put("inputSizeProbe", probe.name().toLowerCase(java.util.Locale.ROOT));
        TrainingRun run = resume.apply(new TrainingRun(new TrainingRun.Config(spec.baseName() + "_g" + groups, saveDir, epochs, firstBestEpoch(epochs), false, resume.resume,
                device, meta, resume.stopAfter(epochs)), System.out));
        Trainer trainer = new Trainer(model, sgd, device, 0f, groupsLearner);
        TrainingRun.Result r = run.run(model, sgd, sched, trainer, train, eval, groupsLearner);
        CommonOptions.reportSkipped(train, eval);
        System.out.printf("best eval accuracy %.2f%% at epoch %d (group-logit std %.4f); saved %s%n", r.bestAccuracy(), r.bestEpoch(),
                groupsLearner.stats(), r.best().toAbsolutePath());
        System.out.println("next: bonsai finetune " + spec.flags() + " -g " + groups + " --save-dir " + saveDir);
        return 0;
    }
}
