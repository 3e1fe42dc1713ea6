package ai.bonsai.dsp.cli;

import ai.bonsai.data.Cifar10;
import ai.bonsai.data.DataLoader;
import ai.bonsai.data.Dataset;
import ai.bonsai.data.SyntheticCifar;
import ai.bonsai.data.Transform;
import ai.bonsai.dsp.models.Architectures;
import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.dsp.prune.PruneSummary;
import ai.bonsai.dsp.pack.PackedGraph;
import ai.bonsai.dsp.pack.PackedGraphFormat;
import ai.bonsai.dsp.models.ModelStats;
import ai.bonsai.dsp.pack.PackedFormat;
import ai.bonsai.dsp.pack.PackedModel;
import ai.bonsai.dsp.pack.Packer;
import ai.bonsai.dsp.imports.PackedResNetConverter;
import ai.bonsai.dsp.prune.PrunableLayer;
import ai.bonsai.dsp.prune.PruneWrapper;
import ai.bonsai.dsp.train.Trainer;
import ai.bonsai.io.Checkpoint;
import ai.bonsai.nn.Module;
import ai.bonsai.tensor.Device;
import ai.bonsai.tensor.Generator;
import com.fasterxml.jackson.databind.ObjectMapper;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
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
            description = "CIFAR-10 folder or a single file of records (a single file is evaluated whole), 'synthetic', "
                    + "imagefolder:DIR (DIR/<class>/<image>) or imagelist:FILE ('path label' lines). Default: ./data/cifar10.")
    String data;

    @Mixin ImageOptions image;

    @Option(names = "--split", defaultValue = "test", paramLabel = "train|test", description = "Which part of a CIFAR-10 folder (default: ${DEFAULT-VALUE}).")
    String split;

    @Option(names = "--json", description = "Print one JSON object instead of text.")
    boolean json;

    @Option(names = "--predictions", paramLabel = "FILE", description = "Write one predicted class per line, in input order.")
    Path predictions;

    @Option(names = "--batch-size", defaultValue = "256", description = "Batch size (default: ${DEFAULT-VALUE}).")
    int batchSize;

    @Option(names = "--limit", paramLabel = "N", description = "Evaluate only the first N images (quick checks).")
    Integer limit;

    @Mixin DeviceOptions devices;

    @Option(names = "--seed", defaultValue = "1", description = "Seed of the synthetic data, when it is used (default: ${DEFAULT-VALUE}).")
    long seed;

    public static void main(String[] args) { System.exit(Bonsai.execute(new Evaluate(), args)); }

    @Override public Integer call() {
        Device dev = devices.setUp();
        PrintStream log = json ? System.err : System.out;
        if (!Files.isRegularFile(ckpt)) throw new IllegalArgumentException("--ckpt " + ckpt.toAbsolutePath() + ": no such file");
        Loaded m = load(ckpt);
        if (m.net instanceof PackedGraph && dev.kind() != Device.Kind.CPU) {
            // Packed graphs have CPU plans only (packed CIFAR ResNets run anywhere): say so here rather than fail inside.
            throw new IllegalArgumentException("device " + dev + ": " + ckpt + " is a " + m.kind + " model, which runs on the CPU only; "
                    + "evaluate it with --device cpu (or evaluate the masked checkpoint it was packed from on " + dev + ")");
        }
        m.net.to(dev);
        ImageOptions.Source src = ImageOptions.source(data);
        Dataset ds = src != null ? image.evalData(src, src.list() ? m.classes : 0) : dataset(log);
        // Accuracy needs the data's classes to be the model's. With other classes the predictions are still the
        // model's class indices, which is what --predictions is for; the labels are then ignored (set to 0).
        int dataClasses = ds.numClasses();
        boolean meaningful = dataClasses == m.classes;
        if (!meaningful) {
            String why = "--data " + (src != null ? src.describe() : ds.description()) + " has " + ds.numClasses()
                    + " classes but the model has " + m.classes + " outputs";
            if (predictions == null) {
                throw new IllegalArgumentException(why + ": accuracy needs the model's classes. Pass --predictions FILE to write the model's "
                        + "predicted class indices for these images instead.");
            }
            System.err.println("note: " + why + "; writing the model's class indices (0.." + (m.classes - 1)
                    + ") to --predictions; accuracy and loss are meaningless for these classes and are not reported.");
            ds = new Relabelled(ds, m.classes);
        }
        if (limit != null) {
            if (limit < 1) throw new IllegalArgumentException("--limit: expected a positive number, got " + limit);
            ds = ds.subset(0, Math.min(limit, ds.size()));
        }
        int[] pred = new int[ds.size()];
        java.util.Arrays.fill(pred, -1);   // stays -1 for an image that could not be read
        Trainer.EpochStats r;
        String unreadable;
        DataLoader.Builder b = DataLoader.builder(ds).batchSize(batchSize);
        b = src != null ? b.transform(Transform.imagenetEval()).workers(image.workers).prefetch(2 * image.workers) : b.transform(Transform.cifarEval());
        try (DataLoader loader = b.build()) {
            r = Trainer.evaluate(m.net, loader, dev, pred);
            unreadable = loader.skippedSummary();
        }
        if (unreadable != null) System.err.println("warning: " + unreadable);
        if (predictions != null) writePredictions(predictions, pred);
        Counts c = m.counts;
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("accuracy", meaningful ? r.accuracy() : null);
        out.put("images", r.images());
        out.put("loss", meaningful ? r.loss() : null);
        out.put("dataClasses", dataClasses);
        out.put("modelClasses", m.classes);
        // The published accounting: over the prunable convolutions (every conv_a and conv_b).
        out.put("prunedFlopsPercent", percentPruned(c.prunableMacs, c.densePrunableMacs));
        out.put("prunedParamsPercent", percentPruned(c.prunableParams, c.densePrunableParams));
        // The whole network: stem, shortcut projections and classifier included.
        out.put("networkPrunedMacsPercent", percentPruned(c.macs, c.denseMacs));
        out.put("networkPrunedParamsPercent", percentPruned(c.params, c.denseParams));
        out.put("macs", c.macs);
        out.put("denseMacs", c.denseMacs);
        out.put("params", c.params);
        out.put("denseParams", c.denseParams);
        out.put("prunableMacs", c.prunableMacs);
        out.put("densePrunableMacs", c.densePrunableMacs);
        out.put("prunableParams", c.prunableParams);
        out.put("densePrunableParams", c.densePrunableParams);
        out.put("architecture", m.architecture);
        out.put("format", m.kind);
        out.put("checkpoint", ckpt.toAbsolutePath().toString());
        out.put("data", ds.description());
        if (json) {
            try {
                System.out.println(new ObjectMapper().writeValueAsString(out));
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        } else {
            System.out.printf("%s (%s) from %s%n", m.architecture, m.kind, ckpt);
            if (m.report != null) System.out.print(m.report);
            System.out.printf("data: %s%n", ds.description());
            if (meaningful) System.out.printf("accuracy %.3f%% on %d images (loss %.4f)%n", r.accuracy(), r.images(), r.loss());
            else System.out.printf("accuracy: meaningless (the data's %d classes are not the model's %d); predicted %d images%n", dataClasses, m.classes, r.images());
            System.out.printf("prunable convolutions: %,d of %,d multiply-adds, %,d of %,d weights remain (pruned %.2f%% FLOPs, %.2f%% params)%n",
                    c.prunableMacs, c.densePrunableMacs, c.prunableParams, c.densePrunableParams,
                    percentPruned(c.prunableMacs, c.densePrunableMacs), percentPruned(c.prunableParams, c.densePrunableParams));
            System.out.printf("whole network: %,d of %,d multiply-adds per image, %,d of %,d params (conv + classifier)%n",
                    c.macs, c.denseMacs, c.params, c.denseParams);
            if (predictions != null) System.out.println("predictions: " + predictions.toAbsolutePath());
        }
        return 0;
    }

    private static double percentPruned(long remaining, long dense) { return 100.0 * (1 - (double) remaining / dense); }

    /** Multiply-adds and weights per image, whole network and prunable convolutions, remaining and dense. */
    record Counts(long macs, long denseMacs, long params, long denseParams,
                  long prunableMacs, long densePrunableMacs, long prunableParams, long densePrunableParams) {
        static Counts of(PackedModel p) {
            PackedModel.PrunableCounts pc = p.prunableCounts();
            return new Counts(p.macs(), p.denseMacs(), p.params(), p.denseParams(), pc.macs(), pc.denseMacs(), pc.params(), pc.denseParams());
        }
    }

    /** A network ready to evaluate, what it is, and its counts. */
    record Loaded(Module net, String architecture, String kind, Counts counts, String report, int classes) {}

    /**
     * Loads any model Bonsai reads: a dense or masked Bonsai checkpoint, a packed file from {@code bonsai pack},
     * or a published DSP TorchScript archive (.pt), which is imported into the same packed model.
     */
    static Loaded load(Path ckpt) {
        if (isTorchScript(ckpt)) {
            PackedModel packed;
            try {
                packed = PackedResNetConverter.load(ckpt);
            } catch (IOException e) {
                throw new UncheckedIOException(e.getMessage(), e);
            }
            return new Loaded(packed, "resnet" + packed.structure().depth(), "torchscript (packed)", Counts.of(packed), packed.report(),
                    packed.structure().classifier().classes());
        }
        if (PackedFormat.isPacked(ckpt)) {
            PackedModel packed = PackedModel.load(ckpt);
            return new Loaded(packed, "resnet" + packed.structure().depth(), "packed", Counts.of(packed), packed.report(), packed.structure().classifier().classes());
        }
        if (PackedGraphFormat.isPackedGraph(ckpt)) {
            PackedGraph packed = PackedGraph.load(ckpt);
            Map<String, String> meta = PackedGraphFormat.metadata(ckpt);
            Architectures.Spec spec = Architectures.fromMetadata(meta, ckpt.toString());
            long[] p = new long[4];
            String[] keys = {"prunableMacs", "densePrunableMacs", "prunableParams", "densePrunableParams"};
            for (int i = 0; i < 4; i++) {
                String v = meta.get(keys[i]);
                if (v == null) throw new IllegalArgumentException("packed graph file " + ckpt + ": metadata has no '" + keys[i] + "' (not written by bonsai pack?)");
                p[i] = Long.parseLong(v.trim());
            }
            Counts c = new Counts(packed.macs(), packed.denseMacs(), packed.params(), packed.denseParams(), p[0], p[1], p[2], p[3]);
            int classes = Integer.parseInt(meta.getOrDefault("numClasses", "10").trim());
            return new Loaded(packed, spec.baseName(), "packed", c, null, classes);
        }
        Rebuilt rebuilt = rebuild(Checkpoint.load(ckpt));
        return new Loaded(rebuilt.model(), rebuilt.spec().baseName(), rebuilt.pruner() != null ? "masked" : "dense", counts(rebuilt), null, rebuilt.classes());
    }

    /**
     * The counts of a rebuilt checkpoint: for a masked model what its packed form computes (what pruning leaves),
     * for a dense one the dense figures.
     */
    static Counts counts(Rebuilt rebuilt) {
        Module model = rebuilt.model();
        if (rebuilt.pruner() != null && model instanceof CifarResNet resnet) return Counts.of(Packer.pack(resnet));
        if (rebuilt.pruner() != null) {
            PruneSummary s = rebuilt.pruner().summary(false);
            return new Counts(Math.round(s.networkRemainingMacs()), s.networkMacs(), Math.round(s.networkRemainingParams()), s.networkParams(),
                    Math.round(s.remainingFlops()), s.totalFlops(), Math.round(s.remainingParams()), s.totalParams());
        }
        ModelStats stats = ModelStats.of(model, rebuilt.inputDims());
        long prunableMacs = 0, prunableParams = 0;
        for (PrunableLayer l : PrunableLayer.discover(model, rebuilt.inputDims(), PrunableLayer.InputSizeProbe.MODEL, rebuilt.excluded()).layers()) {
            prunableMacs += l.flops();
            prunableParams += l.conv().weight().numel();
        }
        return new Counts(stats.macs(), stats.macs(), stats.params(), stats.params(), prunableMacs, prunableMacs, prunableParams, prunableParams);
    }

    /** TorchScript archives, recognised by the .pt / .pth extension. */
    static boolean isTorchScript(Path ckpt) {
        String n = ckpt.getFileName().toString().toLowerCase(java.util.Locale.ROOT);
        return n.endsWith(".pt") || n.endsWith(".pth");
    }

    /**
     * A model rebuilt from a checkpoint, in eval mode: its architecture, input size (3, imageSize, imageSize; 32
     * unless the checkpoint records {@code imageSize}), classes, the convolutions dsp excluded, and the pruner that
     * owns its group and mask buffers (null for a dense checkpoint).
     */
    record Rebuilt(Module model, Architectures.Spec spec, int[] inputDims, int classes, List<String> excluded, PruneWrapper pruner) {}

    /**
     * Builds the model a checkpoint describes and loads it strictly. A pruned checkpoint (with {@code .mask}
     * and {@code .group} entries) is loaded through a {@link PruneWrapper}, which owns those buffers.
     */
    static Rebuilt rebuild(Checkpoint ck) {
        Map<String, String> meta = ck.metadata();
        Architectures.Spec spec = Architectures.fromMetadata(meta, String.valueOf(ck.file()));
        int classes = meta.containsKey("numClasses") ? ck.requireInt("numClasses") : 10;
        int size = meta.containsKey("imageSize") ? ck.requireInt("imageSize") : 32;
        int[] dims = {3, size, size};
        Module model = spec.create(classes, new Generator(0));
        List<String> excluded = excluded(meta);
        PruneWrapper pruner = null;
        boolean dsp = ck.modelState().keySet().stream().anyMatch(k -> k.endsWith("." + PruneWrapper.GROUP_BUFFER));
        try {
            if (dsp) {
                PrunableLayer.Discovery found = PrunableLayer.discover(model, dims, PrunableLayer.InputSizeProbe.MODEL, excluded);
                pruner = new PruneWrapper(model, found, ck.requireInt("groups"), -1, null);
                pruner.loadState(ck.modelState());
            } else {
                ck.loadModel(model, true);
            }
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("checkpoint " + ck.file() + " does not fit the model (" + spec.displayName() + "): " + e.getMessage(), e);
        }
        model.eval();
        return new Rebuilt(model, spec, dims, classes, excluded, pruner);
    }

    /** A CIFAR ResNet from a checkpoint, for the commands that handle only those (ONNX export, the CIFAR packer). */
    static CifarResNet loadModel(Checkpoint ck) {
        Rebuilt r = rebuild(ck);
        if (!(r.model() instanceof CifarResNet resnet)) {
            throw new IllegalArgumentException("checkpoint " + ck.file() + ": architecture '" + r.spec().name() + "' is not supported here (expected cifar_resnet)");
        }
        return resnet;
    }

    /** The convolutions a dsp run excluded, from checkpoint metadata ({@code exclude}, comma-separated; none when absent). */
    static List<String> excluded(Map<String, String> metadata) {
        String e = metadata.get("exclude");
        if (e == null || e.isBlank()) return List.of();
        List<String> out = new ArrayList<>();
        for (String p : e.split(",")) if (!p.isBlank()) out.add(p.trim());
        return out;
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

    /** Another dataset with every label 0: for predicting on classes that are not the model's (no accuracy). */
    static final class Relabelled implements Dataset {
        private final Dataset base;
        private final int classes;

        Relabelled(Dataset base, int classes) {
            this.base = base;
            this.classes = classes;
        }

        @Override public int size() { return base.size(); }

        @Override public ai.bonsai.tensor.Shape imageShape() { return base.imageShape(); }

        @Override public int numClasses() { return classes; }

        @Override public int label(int i) { return 0; }

        @Override public void image(int i, float[] dst, int offset) { base.image(i, dst, offset); }

        @Override public void image(int i, float[] dst, int offset, Generator rng) { base.image(i, dst, offset, rng); }

        @Override public String source(int i) { return base.source(i); }

        @Override public String description() { return base.description(); }
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
