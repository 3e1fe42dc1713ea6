package ai.bonsai.dsp.cli;

import ai.bonsai.backend.cpu.Parallel;
import ai.bonsai.data.DataLoader;
import ai.bonsai.data.TrainSplit;
import ai.bonsai.dsp.models.Architectures;
import ai.bonsai.dsp.prune.PrunableLayer;
import ai.bonsai.nn.Module;
import ai.bonsai.dsp.prune.PruneRates;
import ai.bonsai.dsp.prune.PruneSummary;
import ai.bonsai.dsp.prune.PruneWrapper;
import ai.bonsai.dsp.train.Trainer;
import ai.bonsai.dsp.train.TrainingRun;
import ai.bonsai.io.Checkpoint;
import ai.bonsai.optim.LambdaLR;
import ai.bonsai.optim.LrScheduler;
import ai.bonsai.optim.SGD;
import ai.bonsai.tensor.Device;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code bonsai finetune}: group channel pruning and cyclic fine-tuning (spec section 5), the reference's
 * cifar_finetune.py. Loads the group-learned {@code resnet<L>_g<G>.safetensors}, prunes to the requested FLOPs
 * rate, and fine-tunes in cycles of ceil(epochs / cycles) epochs of cosine schedules; at the end of every cycle but
 * the last it reloads the best state, prunes a little more ({@code initialize(bestPrunedFlops / 100 + 0.001)}) and
 * restarts the optimiser. The best model, masks included, is {@code resnet<L>_g<G>_p<rate>.safetensors}; as in the
 * reference, an accuracy equal to the best so far replaces it, so a tie goes to the later, usually more pruned, state.
 */
@Command(name = "finetune", mixinStandardHelpOptions = true,
        description = "Prune a group-learned model to a FLOPs rate and fine-tune it in cosine cycles.")
public final class CifarFinetune implements Callable<Integer> {
    @Mixin ArchOptions arch;

    @Option(names = {"-g", "--groups"}, defaultValue = "4", description = "Groups per layer, as in dsp (default: ${DEFAULT-VALUE}).")
    int groups;

    @Option(names = {"-p", "--prune"}, defaultValue = "0.5", description = "Fraction of the prunable layers' FLOPs to remove (default: ${DEFAULT-VALUE}).")
    double rate;

    @Option(names = {"-c", "--cycles"}, defaultValue = "5", description = "Cosine cycles of ceil(epochs / cycles) epochs; each but the last ends with a little more pruning (default: ${DEFAULT-VALUE}).")
    int cycles;

    @Option(names = "--fp-every", defaultValue = "2", paramLabel = "N",
            description = "Prune filters of every Nth prunable convolution, -1 for none (default: ${DEFAULT-VALUE}: every conv_b).")
    int fpEvery;

    @Option(names = "--save-dir", defaultValue = "./cifarmodel", description = "Reads resnet<L>_g<G>.safetensors here, writes resnet<L>_g<G>_p<rate>.* (default: ${DEFAULT-VALUE}).")
    Path saveDir;

    @Option(names = "--ckpt", paramLabel = "FILE", description = "Group-learned model (default: <save-dir>/resnet<L>_g<G>.safetensors).")
    Path ckpt;

    @Option(names = "--epochs", defaultValue = "400", description = "Epochs over all cycles (default: ${DEFAULT-VALUE}).")
    int epochs;

    @Option(names = "--batch-size", defaultValue = "128", description = "Batch size; the last partial batch is dropped unless --keep-last-batch (default: ${DEFAULT-VALUE}).")
    int batchSize;

    @Option(names = "--lr", defaultValue = "0.015", description = "Learning rate at the start of each cycle (default: ${DEFAULT-VALUE}).")
    float lr;

    @Option(names = "--momentum", defaultValue = "0.9", description = "SGD momentum (default: ${DEFAULT-VALUE}).")
    float momentum;

    @Option(names = "--wd", defaultValue = "1e-3", description = "Weight decay (default: ${DEFAULT-VALUE}).")
    float wd;

    @Mixin ResumeOptions resume;

    @Mixin CommonOptions common;

    public static void main(String[] args) { System.exit(Bonsai.execute(new CifarFinetune(), args)); }

    /** The output stem: resnet20_g4_p0.5. */
    static String name(Architectures.Spec spec, int groups, double rate) {
        String r = Double.toString(rate);
        if (r.endsWith(".0")) r = r.substring(0, r.length() - 2);
        return spec.baseName() + "_g" + groups + "_p" + r;
    }

    @Override public Integer call() {
        if (!(rate > 0 && rate < 1)) throw new IllegalArgumentException("--prune: expected a fraction in (0, 1), got " + rate);
        if (cycles < 1 || epochs < cycles) {
            throw new IllegalArgumentException("--cycles " + cycles + " and --epochs " + epochs + ": need 1 <= cycles <= epochs");
        }
        Device device = common.setUp();
        Architectures.Spec spec = arch.spec();
        Path source = ckpt != null ? ckpt : saveDir.resolve(spec.baseName() + "_g" + groups + ".safetensors");
        if (!Files.isRegularFile(source)) {
            throw new IllegalArgumentException("group-learned model " + source.toAbsolutePath() + " not found: run 'bonsai dsp " + spec.flags()
                    + " -g " + groups + " --save-dir " + saveDir + "' first, or pass --ckpt FILE");
        }
        Generator g = new Generator(common.seed);
        System.out.printf("bonsai finetune: %s, G=%d, rate %.3f, %d cycles, seed %d, device %s, %d threads%n", spec.displayName(), groups, rate,
                cycles, common.seed, device, Parallel.threads());
        System.out.println("group-learned model: " + source.toAbsolutePath());
        TrainSplit data = common.trainingData(System.out);
        Module model = spec.create(CommonOptions.numClasses(data), g);
        Checkpoint groupLearned = Checkpoint.load(source);
        // The layers dsp learned groups for: the same discovery, with the exclusions it recorded.
        PrunableLayer.Discovery found = PrunableLayer.discover(model, ArchOptions.inputDims(data), PrunableLayer.InputSizeProbe.MODEL,
                Evaluate.excluded(groupLearned.metadata()));
        PruneWrapper pruner = new PruneWrapper(model, found, groups, fpEvery, null);
        pruner.loadState(groupLearned.modelState());
        model.to(device);   // before the optimiser; masks made later are created on the weights' device

        DataLoader train = common.trainLoader(data, batchSize);
        DataLoader eval = common.evalLoader(data, batchSize);
        double dense = Trainer.evaluate(model, eval, device).accuracy();
        PruneRates start = pruner.initialize(rate);
        double pruned = Trainer.evaluate(model, eval, device).accuracy();
        System.out.printf("pruned to %.2f%% FLOPs / %.2f%% params (prunable layers); eval accuracy %.2f%% before pruning, %.2f%% after%n",
                start.prunedFlopsPercent(), start.prunedParamsPercent(), dense, pruned);

        SGD sgd = new SGD(model.parameters(), lr, momentum, 0f, wd, false);
        int cycleLength = cycleLength(epochs, cycles);
        int cyclesRun = (epochs + cycleLength - 1) / cycleLength;
        if (cyclesRun != cycles) {
            System.out.printf("note: %d epochs in cycles of ceil(%d / %d) = %d epochs make %d cycles, not %d (as in the reference)%n",
                    epochs, epochs, cycles, cycleLength, cyclesRun, cycles);
        }
        LrScheduler sched = new LrScheduler(sgd, new LambdaLR(e -> cyclicCosine(e, epochs, cycles)));
        String name = name(spec, groups, rate);
        Map<String, String> meta = common.metadata("finetune", spec, data);
        meta.put("exclude", String.join(",", Evaluate.excluded(groupLearned.metadata())));
        meta.put("groups", Integer.toString(groups));
        meta.put("rate", Double.toString(rate));
        meta.put("cycles", Integer.toString(cycles));
        meta.put("groupLearned", source.toAbsolutePath().toString());
        meta.put("accuracyBeforePruning", Double.toString(dense));
        TrainingRun run = resume.apply(new TrainingRun(new TrainingRun.Config(name, saveDir, epochs, 1, true, resume.resume, device, meta,
                resume.stopAfter(epochs)), System.out));
        Cycles state = new Cycles(pruner, sgd, cycleLength, epochs);
        TrainingRun.Result r = run.run(model, sgd, sched, new Trainer(model, sgd, device, 0f, pruner), train, eval, state);
        CommonOptions.reportSkipped(train, eval);

        // Report the saved (best) model, not the last state.
        pruner.loadState(Checkpoint.load(r.best()).modelState());
        PruneSummary summary = pruner.summary(false);
        System.out.println(summary.format(true));
        Path chart = saveDir.resolve(name + ".layers.png");
        pruner.writeChart(chart);
        System.out.printf("best eval accuracy %.2f%% (dense %.2f%%) at %.2f%% pruned FLOPs, %.2f%% pruned params; saved %s%n",
                r.bestAccuracy(), dense, summary.prunedFlopsPercent(), summary.prunedParamsPercent(), r.best().toAbsolutePath());
        System.out.println("kept fraction per layer: " + chart.toAbsolutePath());
        return 0;
    }

    /** Epochs per cycle: ceil(epochs / cycles), as cifar_finetune.py's epoch_per_cycle; the last cycle may be shorter. */
    static int cycleLength(int epochs, int cycles) { return (epochs + cycles - 1) / cycles; }

    /**
     * The lr factor at {@code epoch} (0-based): a cosine from 1 towards 0 over each cycle of {@link #cycleLength} epochs.
     * Like the reference's CosineAnnealingLR(T_max = epoch_per_cycle), a shorter last cycle keeps the full cycle's
     * period, so it stops before reaching 0.
     */
    static double cyclicCosine(long epoch, int epochs, int cycles) {
        int length = cycleLength(epochs, cycles);
        return (1 + Math.cos(Math.PI * (epoch % length) / length)) / 2;
    }

    /** Whether the cycle ends after epoch {@code epoch} (1-based): every cycleLength epochs, except after the last epoch. */
    static boolean cycleEnds(int epoch, int length, int epochs) { return epoch % length == 0 && epoch < epochs; }

    /** The cycle ends: reload the best state, prune a little more, restart the momentum. Also the pruner's resume state. */
    static final class Cycles implements TrainingRun.Extra {
        private final PruneWrapper pruner;
        private final SGD sgd;
        private final int length, epochs;

        Cycles(PruneWrapper pruner, SGD sgd, int length, int epochs) {
            this.pruner = pruner;
            this.sgd = sgd;
            this.length = length;
            this.epochs = epochs;
        }

        @Override public Map<String, Tensor> tensors() { return Map.of(); }

        @Override public Map<String, String> metadata() {
            PruneRates r = pruner.summary(false).rates();
            Map<String, String> m = new LinkedHashMap<>();
            m.put("beta", Double.toString(pruner.beta()));
            m.put("prunedFlopsPercent", Double.toString(r.prunedFlopsPercent()));
            m.put("prunedParamsPercent", Double.toString(r.prunedParamsPercent()));
            return m;
        }

        @Override public void restore(Map<String, Tensor> tensors, Map<String, String> metadata) {
            String b = metadata.get("beta");
            if (b == null) throw new IllegalArgumentException("resume checkpoint: metadata has no 'beta'");
            pruner.setBeta(Double.parseDouble(b));
            pruner.refreshRates();   // the model's masks were just loaded
        }

        @Override public void afterEpoch(int epoch, TrainingRun run) {
            if (!cycleEnds(epoch, length, epochs)) return;
            Checkpoint best = Checkpoint.load(run.bestPath());
            double bestFlops = Double.parseDouble(best.require("prunedFlopsPercent"));
            pruner.loadState(best.modelState());
            PruneRates r = pruner.initialize(bestFlops / 100 + 0.001);
            for (int i = 0; i < sgd.params().size(); i++) sgd.setMomentumBuffer(i, null);
            System.out.printf("cycle %d done: reloaded the best state (%.2f%% pruned FLOPs, accuracy %s%%), pruned to %.2f%% FLOPs / %.2f%% params%n",
                    epoch / length, bestFlops, best.require("accuracy"), r.prunedFlopsPercent(), r.prunedParamsPercent());
        }
    }
}
