package ai.bonsai.dsp.cli;

import ai.bonsai.data.Cifar10;
import ai.bonsai.data.DataLoader;
import ai.bonsai.data.Dataset;
import ai.bonsai.data.SyntheticCifar;
import ai.bonsai.data.Transform;
import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.dsp.models.ModelStats;
import ai.bonsai.dsp.pack.PackedFormat;
import ai.bonsai.dsp.pack.PackedModel;
import ai.bonsai.dsp.pack.Packer;
import ai.bonsai.dsp.prune.PruneWrapper;
import ai.bonsai.dsp.train.Trainer;
import ai.bonsai.io.Checkpoint;
import ai.bonsai.nn.Module;
import ai.bonsai.tensor.Device;
import ai.bonsai.tensor.Generator;
import com.fasterxml.jackson.databind.ObjectMapper;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code bonsai eval}: accuracy of a checkpoint (dense, masked, or a packed model from {@code bonsai pack}) on
 * CIFAR-10 data, with its remaining multiply-adds and weights, as text or JSON, with optional predictions.
 */
@Command(name = "eval", mixinStandardHelpOptions = true, description = "Evaluate a checkpoint: accuracy, parameters and multiply-adds.")
public final class Evaluate implements Callable<Integer> {
    @Option(names = "--ckpt", required = true, paramLabel = "FILE",
            description = "A Bonsai checkpoint (dense or masked), a packed model from 'bonsai pack', or a published packed DSP model (TorchScript .pt).")
    Path ckpt;

    @Option(names = "--data", paramLabel = "PATH",
            description = "CIFAR-10 folder or a single file of records (a single file is evaluated whole), or 'synthetic'. Default: ./data/cifar10.")
    String data;

    @Option(names = "--split", defaultValue = "test", paramLabel = "train|test", description = "Which part of a CIFAR-10 folder (default: ${DEFAULT-VALUE}).")
    String split;

    @Option(names = "--json", description = "Print one JSON object instead of text.")
    boolean json;

    @Option(names = "--predictions", paramLabel = "FILE", description = "Write one predicted class per line, in input order.")
    Path predictions;

    @Option(names = "--batch-size", defaultValue = "256", description = "Batch size (default: ${DEFAULT-VALUE}).")
    int batchSize;

    @Option(names = "--threads", paramLabel = "N", description = "CPU threads (default: the number of cores).")
    Integer threads;

    @Option(names = "--device", defaultValue = "cpu", paramLabel = "cpu|cuda", description = "Device (default: ${DEFAULT-VALUE}).")
    String device;

    @Option(names = "--seed", defaultValue = "1", description = "Seed of the synthetic data, when it is used (default: ${DEFAULT-VALUE}).")
    long seed;

    public static void main(String[] args) { System.exit(Bonsai.execute(new Evaluate(), args)); }

    @Override public Integer call() {
        if (threads != null) ai.bonsai.backend.cpu.Parallel.setThreads(threads);
        Device dev = Device.parse(device);
        ai.bonsai.backend.Backends.of(dev);
        PrintStream log = json ? System.err : System.out;
        if (!Files.isRegularFile(ckpt)) throw new IllegalArgumentException("--ckpt " + ckpt.toAbsolutePath() + ": no such file");
        // ---- TorchScript (.pt) packed DSP models: imported and run by EvaluateTorch; nothing below applies.
        if (EvaluateTorch.handles(ckpt)) return new EvaluateTorch(this).run(dev, log);
        Module net;
        String arch, kind;
        Counts counts;
        if (PackedFormat.isPacked(ckpt)) {
            PackedModel packed = PackedModel.load(ckpt);
            net = packed;
            kind = "packed";
            arch = "resnet" + packed.structure().depth();
            counts = new Counts(packed.macs(), packed.denseMacs(), packed.params(), packed.denseParams());
        } else {
            CifarResNet model = loadModel(Checkpoint.load(ckpt));
            net = model;
            boolean masked = model.namedBuffers().keySet().stream().anyMatch(k -> k.endsWith("." + PruneWrapper.MASK_BUFFER));
            kind = masked ? "masked" : "dense";
            arch = "resnet" + model.depth();
            counts = counts(model, masked);
        }
        Dataset ds = dataset(log);
        DataLoader loader = DataLoader.builder(ds).batchSize(batchSize).transform(Transform.cifarEval()).build();
        int[] pred = new int[ds.size()];
        Trainer.EpochStats r = Trainer.evaluate(net, loader, dev, pred);
        if (predictions != null) writePredictions(predictions, pred);
        double prunedFlops = 100.0 * (1 - (double) counts.macs / counts.denseMacs);
        double prunedParams = 100.0 * (1 - (double) counts.params / counts.denseParams);
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("accuracy", r.accuracy());
        out.put("images", r.images());
        out.put("loss", r.loss());
        out.put("prunedFlopsPercent", prunedFlops);
        out.put("prunedParamsPercent", prunedParams);
        out.put("macs", counts.macs);
        out.put("denseMacs", counts.denseMacs);
        out.put("params", counts.params);
        out.put("denseParams", counts.denseParams);
        out.put("architecture", arch);
        out.put("format", kind);
        out.put("checkpoint", ckpt.toAbsolutePath().toString());
        out.put("data", ds.description());
        if (json) {
            try {
                System.out.println(new ObjectMapper().writeValueAsString(out));
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        } else {
            System.out.printf("%s (%s) from %s%n", arch, kind, ckpt);
            System.out.printf("data: %s%n", ds.description());
            System.out.printf("accuracy %.3f%% on %d images (loss %.4f)%n", r.accuracy(), r.images(), r.loss());
            System.out.printf("params %,d of %,d dense (conv + classifier), multiply-adds %,d of %,d per image; "
                    + "pruned %.2f%% FLOPs, %.2f%% params (whole network)%n", counts.params, counts.denseParams, counts.macs,
                    counts.denseMacs, prunedFlops, prunedParams);
            if (predictions != null) System.out.println("predictions: " + predictions.toAbsolutePath());
        }
        return 0;
    }

    /** Multiply-adds and weights per image of what the network computes, and of its dense counterpart. */
    record Counts(long macs, long denseMacs, long params, long denseParams) {}

    /**
     * Counts for a checkpoint's network: for a masked one, those of its packed form (what pruning leaves: surviving
     * kernels of surviving filters, stem, projections and classifier included); for a dense one, ModelStats'.
     */
    static Counts counts(CifarResNet model, boolean masked) {
        ModelStats stats = ModelStats.of(model);
        if (!masked) return new Counts(stats.macs(), stats.macs(), stats.params(), stats.params());
        PackedModel p = Packer.pack(model);
        return new Counts(p.macs(), p.denseMacs(), p.params(), p.denseParams());
    }

    /**
     * Builds the model a checkpoint describes and loads it strictly. A pruned checkpoint (with {@code .mask}
     * and {@code .group} entries) is loaded through a {@link PruneWrapper}, which owns those buffers.
     */
    static CifarResNet loadModel(Checkpoint ck) {
        String arch = ck.require("architecture");
        if (!arch.equals("cifar_resnet")) {
            throw new IllegalArgumentException("checkpoint " + ck.file() + ": architecture '" + arch + "' is not supported (expected cifar_resnet)");
        }
        int depth = ck.requireInt("depth");
        int classes = ck.metadata().containsKey("numClasses") ? ck.requireInt("numClasses") : 10;
        CifarResNet model = new CifarResNet(depth, classes, new Generator(0));
        boolean dsp = ck.modelState().keySet().stream().anyMatch(k -> k.endsWith("." + PruneWrapper.GROUP_BUFFER));
        if (dsp) {
            PruneWrapper pruner = new PruneWrapper(model, ck.requireInt("groups"), -1);
            try {
                pruner.loadState(ck.modelState());
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("checkpoint " + ck.file() + " does not fit the model: " + e.getMessage(), e);
            }
        } else {
            ck.loadModel(model, true);
        }
        model.eval();
        return model;
    }

    Dataset dataset(PrintStream log) {
        try {
            if (data != null && data.equalsIgnoreCase("synthetic")) return SyntheticCifar.forTraining(seed, 10000, 1000).heldOut();
            Path p = data != null ? Path.of(data) : CommonOptions.DEFAULT_DATA;
            if (!Files.exists(p)) {
                throw new IllegalArgumentException("--data " + p.toAbsolutePath() + ": no such file or folder. "
                        + "Run 'bonsai download cifar10' to fetch CIFAR-10, or pass --data PATH.");
            }
            if (Files.isDirectory(p)) {
                Cifar10.Split s = switch (split.toLowerCase(java.util.Locale.ROOT)) {
                    case "train" -> Cifar10.Split.TRAIN;
                    case "test" -> Cifar10.Split.TEST;
                    default -> throw new IllegalArgumentException("--split: expected train or test, got '" + split + "'");
                };
                return Cifar10.read(p, s);
            }
            return Cifar10.forEval(p);
        } catch (IOException e) {
            throw new UncheckedIOException(e.getMessage(), e);
        }
    }

    static void writePredictions(Path file, int[] pred) {
        StringBuilder sb = new StringBuilder(pred.length * 2);
        for (int p : pred) sb.append(p).append('\n');
        try {
            Path abs = file.toAbsolutePath();
            if (abs.getParent() != null) Files.createDirectories(abs.getParent());
            Path tmp = abs.resolveSibling(abs.getFileName() + ".tmp");
            Files.writeString(tmp, sb, StandardCharsets.UTF_8);
            Files.move(tmp, abs, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException("--predictions " + file + ": " + e.getMessage(), e);
        }
    }
}
