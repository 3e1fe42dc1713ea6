package ai.bonsai.dsp.cli;

import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.dsp.pack.PackedModel;
import ai.bonsai.io.Checkpoint;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/**
 * {@code bonsai demo}: the README's main job, the DSP pipeline end to end on the embedded default (the CPU,
 * and CIFAR-10 when it has been downloaded, else the synthetic CIFAR-shaped data): pretrain a ResNet-20, learn
 * groups, prune and fine-tune, then print a table of the stages. Sizes are cut down to fit in minutes on two
 * cores; the individual commands keep the reference's full recipes.
 */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = "Run the DSP pipeline end to end in a few minutes: pretrain, group learning, pruning, fine-tuning and packing of a ResNet-20.")
public final class Demo implements Callable<Integer> {
    @Option(names = "--save-dir", defaultValue = "./runs/demo", description = "Where everything goes (default: ${DEFAULT-VALUE}).")
    Path saveDir;

    @Option(names = "--pretrain-epochs", defaultValue = "6", description = "Pretraining epochs (default: ${DEFAULT-VALUE}).")
    int pretrainEpochs;

    @Option(names = "--dsp-epochs", defaultValue = "3", description = "Group-learning epochs (default: ${DEFAULT-VALUE}).")
    int dspEpochs;

    @Option(names = "--finetune-epochs", defaultValue = "4", description = "Fine-tuning epochs, over two cycles (default: ${DEFAULT-VALUE}).")
    int finetuneEpochs;

    @Option(names = {"-g", "--groups"}, defaultValue = "4", description = "Groups per layer (default: ${DEFAULT-VALUE}).")
    int groups;

    @Option(names = {"-p", "--prune"}, defaultValue = "0.5", description = "FLOPs rate to prune (default: ${DEFAULT-VALUE}).")
    double rate;

    @Option(names = "--data", paramLabel = "PATH", description = "As for pretrain (default: ./data/cifar10 when present, else synthetic).")
    String data;

    @Option(names = "--limit-train", paramLabel = "N", defaultValue = "6000", description = "Training images used (default: ${DEFAULT-VALUE}).")
    int limitTrain;

    @Option(names = "--seed", defaultValue = "1", description = "Seed (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--threads", paramLabel = "N", description = "CPU threads (default: the number of cores).")
    Integer threads;

    public static void main(String[] args) { System.exit(Bonsai.execute(new Demo(), args)); }

    private record Stage(String name, String accuracy, String flops, String params, Path file) {}

    @Override public Integer call() {
        long start = System.nanoTime();
        saveDir = saveDir.toAbsolutePath().normalize();
        List<String> common = new ArrayList<>(List.of("--seed", Long.toString(seed), "--limit-train", Integer.toString(limitTrain),
                "--synthetic-size", Integer.toString(limitTrain), "--save-dir", saveDir.toString(), "-l", "20"));
        if (data != null) common.addAll(List.of("--data", data));
        if (threads != null) common.addAll(List.of("--threads", threads.toString()));

        System.out.println("== 1/3 pretrain ResNet-20 ==");
        if (step(new CifarPretrain(), common, "--epochs", Integer.toString(pretrainEpochs)) != 0) return 1;
        System.out.println();
        System.out.println("== 2/3 differentiable group learning (G=" + groups + ") ==");
        if (step(new CifarDsp(), common, "--epochs", Integer.toString(dspEpochs), "-g", Integer.toString(groups)) != 0) return 1;
        System.out.println();
        System.out.println("== 3/3 group channel pruning to " + rate + " and cyclic fine-tuning ==");
        if (step(new CifarFinetune(), common, "--epochs", Integer.toString(finetuneEpochs), "-c", "2", "-g", Integer.toString(groups),
                "-p", Double.toString(rate)) != 0) return 1;

        Path pre = saveDir.resolve("resnet20.safetensors"), dsp = saveDir.resolve("resnet20_g" + groups + ".safetensors");
        Path fine = saveDir.resolve(CifarFinetune.name(ai.bonsai.dsp.models.Architectures.of(null, 20), groups, rate) + ".safetensors");
        Path packedFile = saveDir.resolve(CifarFinetune.name(ai.bonsai.dsp.models.Architectures.of(null, 20), groups, rate) + ".packed.safetensors");
        System.out.println();
        System.out.println("== packing into multi-branch convolutions ==");
        List<String> pack = new ArrayList<>(List.of("--ckpt", fine.toString(), "--save", packedFile.toString()));
        if (threads != null) pack.addAll(List.of("--threads", threads.toString()));
        if (Bonsai.execute(new PackModel(), pack.toArray(String[]::new)) != 0) return 1;
        CifarResNet masked = Evaluate.loadModel(Checkpoint.load(fine));
        PackedModel packed = PackedModel.load(packedFile);
        List<Bench.Timing> timings = new ArrayList<>();
        for (int batch : new int[] {1, 128}) timings.add(Bench.measure(masked, packed, batch, 3, batch == 1 ? 10 : 2, batch == 1 ? 25 : 7, ai.bonsai.tensor.Device.cpu()));
        Checkpoint cp = Checkpoint.load(pre), cd = Checkpoint.load(dsp), cf = Checkpoint.load(fine);
        List<Stage> rows = List.of(
                new Stage("pretrain", pct(cp.require("bestAccuracy")), "0.00%", "0.00%", pre),
                new Stage("dsp (groups)", pct(cd.require("bestAccuracy")), "0.00%", "0.00%", dsp),
                new Stage("pruned+tuned", pct(cf.require("bestAccuracy")), pct(cf.require("prunedFlopsPercent")),
                        pct(cf.require("prunedParamsPercent")), fine));
        System.out.println();
        System.out.println("== summary ==  (pruned FLOPs and params over the prunable convolutions, the published accounting)");
        System.out.printf("%-14s %9s %13s %14s  %s%n", "stage", "accuracy", "pruned FLOPs", "pruned params", "checkpoint");
        for (Stage s : rows) System.out.printf("%-14s %9s %13s %14s  %s%n", s.name, s.accuracy, s.flops, s.params, s.file.toAbsolutePath());
        System.out.println("data: " + cp.require("data"));
        System.out.println();
        System.out.printf("== inference speed (median ms per batch; multiply-adds %,d dense -> %,d packed, %.2fx fewer) ==%n",
                packed.denseMacs(), packed.macs(), (double) packed.denseMacs() / packed.macs());
        System.out.printf("%-6s %10s %10s %10s %16s %17s%n", "batch", "dense", "masked", "packed", "packed vs dense", "packed vs masked");
        for (Bench.Timing t : timings) {
            System.out.printf("%-6d %10.2f %10.2f %10.2f %15.2fx %16.2fx%n", t.batch(), t.denseMs(), t.maskedMs(), t.packedMs(),
                    t.speedup(), t.maskedMs() / t.packedMs());
        }
        System.out.println("(bonsai bench --ckpt " + packedFile + " --batch N times it again, with the time per block)");
        System.out.println();
        System.out.println("packed model: " + packedFile.toAbsolutePath());
        System.out.println("load it and classify an image (x: a normalised (1, 3, 32, 32) Tensor):");
        System.out.println("    PackedModel model = PackedModel.load(Path.of(\"" + packedFile + "\"));");
        System.out.println("    int label = (int) model.forward(x).argmax(1).toLongArray()[0];");
        System.out.printf("done in %.1f min. Evaluate again with: ./bonsai eval --ckpt %s%s%n", (System.nanoTime() - start) / 60e9, fine,
                data == null ? "" : " --data " + data);
        return 0;
    }

    private static String pct(String value) { return String.format("%.2f%%", Double.parseDouble(value)); }

    private static int step(Object command, List<String> common, String... extra) {
        List<String> args = new ArrayList<>(common);
        args.addAll(List.of(extra));
        return Bonsai.execute(command, args.toArray(String[]::new));
    }
}
