package ai.bonsai.dsp.cli;

import ai.bonsai.io.Checkpoint;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/**
 * {@code bonsai demo}: the README's main job, end to end on the embedded default (the CPU, and CIFAR-10 when
 * it has been downloaded, else the synthetic CIFAR-shaped data). It trains a ResNet-20 briefly and evaluates
 * it, printing where everything was written.
 */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = "Run the pipeline end to end in a few minutes: pretrain a ResNet-20, then evaluate it.")
public final class Demo implements Callable<Integer> {
    @Option(names = "--save-dir", defaultValue = "./runs/demo", description = "Where everything goes (default: ${DEFAULT-VALUE}).")
    Path saveDir;

    @Option(names = "--epochs", defaultValue = "6", description = "Pretraining epochs (default: ${DEFAULT-VALUE}).")
    int epochs;

    @Option(names = "--data", paramLabel = "PATH", description = "As for pretrain (default: ./data/cifar10 when present, else synthetic).")
    String data;

    @Option(names = "--limit-train", paramLabel = "N", defaultValue = "6000", description = "Training images used (default: ${DEFAULT-VALUE}).")
    int limitTrain;

    @Option(names = "--seed", defaultValue = "1", description = "Seed (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--threads", paramLabel = "N", description = "CPU threads (default: the number of cores).")
    Integer threads;

    public static void main(String[] args) { System.exit(Bonsai.execute(new Demo(), args)); }

    @Override public Integer call() {
        long start = System.nanoTime();
        List<String> common = new ArrayList<>(List.of("--seed", Long.toString(seed), "--limit-train", Integer.toString(limitTrain),
                "--synthetic-size", Integer.toString(limitTrain)));
        if (data != null) common.addAll(List.of("--data", data));
        if (threads != null) common.addAll(List.of("--threads", threads.toString()));

        System.out.println("== 1. pretrain ResNet-20 ==");
        List<String> pre = new ArrayList<>(List.of("-l", "20", "--save-dir", saveDir.toString(), "--epochs", Integer.toString(epochs),
                "--batch-size", "128"));
        pre.addAll(common);
        int rc = Bonsai.execute(new CifarPretrain(), pre.toArray(String[]::new));
        if (rc != 0) return rc;

        Path best = saveDir.resolve("resnet20.safetensors");
        Checkpoint ck = Checkpoint.load(best);
        double acc = Double.parseDouble(ck.require("accuracy"));
        String dataDesc = ck.require("data");

        double minutes = (System.nanoTime() - start) / 60e9;
        System.out.println();
        System.out.println("== summary ==");
        System.out.printf("%-12s %-10s %s%n", "stage", "accuracy", "checkpoint");
        System.out.printf("%-12s %8.2f%%  %s%n", "pretrain", acc, best.toAbsolutePath());
        System.out.println("data: " + dataDesc);
        System.out.printf("done in %.1f min. Evaluate again with: ./bonsai eval --ckpt %s%s%n", minutes, best,
                data == null ? "" : " --data " + data);
        return 0;
    }
}
