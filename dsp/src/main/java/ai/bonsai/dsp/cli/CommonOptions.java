package ai.bonsai.dsp.cli;

import ai.bonsai.data.Cifar10;
import ai.bonsai.data.DataLoader;
import ai.bonsai.data.Transform;
import ai.bonsai.data.SyntheticCifar;
import ai.bonsai.data.TrainSplit;
import ai.bonsai.tensor.Device;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Flags every training and evaluation command shares, and what they resolve to. */
public final class CommonOptions {
    /** Where {@code bonsai download cifar10} puts the data, and where commands look when --data is not given. */
    public static final Path DEFAULT_DATA = Path.of("data", "cifar10");

    @Option(names = "--data", paramLabel = "PATH",
            description = "CIFAR-10 folder (data_batch_1.bin ... test_batch.bin) or a single file of records, 'synthetic', "
                    + "imagefolder:DIR (DIR/<class>/<image>, or DIR/train and DIR/val of those) or imagelist:FILE ('path label' lines). "
                    + "Default: ./data/cifar10 when present, else synthetic CIFAR-shaped data.")
    String data;

    @Mixin ImageOptions image;

    @Option(names = "--holdout", paramLabel = "FRACTION", defaultValue = "0.1",
            description = "When --data is a single file, the fraction at its end held out for evaluation (default: ${DEFAULT-VALUE}).")
    double holdout;

    @Option(names = "--seed", defaultValue = "1", description = "Seed of the run's one random generator (default: ${DEFAULT-VALUE}).")
    long seed;

    @Mixin DeviceOptions devices;

    @Option(names = "--limit-train", paramLabel = "N", description = "Use only the first N training images (quick runs).")
    Integer limitTrain;

    @Option(names = "--synthetic-size", paramLabel = "N", defaultValue = "10000", hidden = false,
            description = "Training images of the synthetic dataset when it is used (default: ${DEFAULT-VALUE}).")
    int syntheticSize;

    @Option(names = "--keep-last-batch",
            description = "Also train on the last, partial batch of each epoch. By default it is dropped, as the reference's "
                    + "scripts do (drop_last=True): 3,600 images at batch 128 give 28 steps, not 29.")
    boolean keepLastBatch;

    /** Applies --threads and checks --device; returns the device. */
    Device setUp() { return devices.setUp(); }

    /** The training data and its held-out part, resolved from --data; says which data it is. */
    TrainSplit trainingData(PrintStream log) {
        TrainSplit split;
        try {
            ImageOptions.Source src = ImageOptions.source(data);
            if (src != null) return limited(image.trainingData(src, holdout, seed), log);
            Path p = dataPath(log);
            if (p == null) {
                if (syntheticSize < 1) throw new IllegalArgumentException("--synthetic-size: expected a positive number, got " + syntheticSize);
                split = SyntheticCifar.forTraining(seed, syntheticSize, Math.max(1, (int) Math.round(syntheticSize * holdout)));
            } else if (Files.isDirectory(p)) {
                split = new TrainSplit(Cifar10.read(p, Cifar10.Split.TRAIN), Cifar10.read(p, Cifar10.Split.TEST));
            } else {
                split = Cifar10.forTraining(p, holdout);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e.getMessage(), e);
        }
        return limited(split, log);
    }

    private TrainSplit limited(TrainSplit split, PrintStream log) {
        if (limitTrain != null) {
            if (limitTrain < 1) throw new IllegalArgumentException("--limit-train: expected a positive number, got " + limitTrain);
            split = new TrainSplit(split.train().subset(0, Math.min(limitTrain, split.train().size())), split.heldOut());
        }
        log.println("train data: " + split.train().description() + " (" + split.train().size() + " images)");
        log.println("eval data:  " + split.heldOut().description() + " (" + split.heldOut().size() + " images)");
        return split;
    }

    /**
     * The shuffled, augmented training loader (seeded from --seed), prefetching on a background thread. It drops
     * the last partial batch unless --keep-last-batch: a small last batch gives a noisy step and noisy batch-norm
     * statistics, and the reference's three scripts all drop it.
     */
    DataLoader trainLoader(TrainSplit data, int batchSize) {
        if (batchSize < 1) throw new IllegalArgumentException("--batch-size: expected a positive number, got " + batchSize);
        int n = data.train().size();
        if (!keepLastBatch && batchSize > n) {
            throw new IllegalArgumentException("--batch-size " + batchSize + " is larger than the " + n + " training images, and the last "
                    + "partial batch is dropped, so an epoch would have no step: use a smaller --batch-size, or --keep-last-batch");
        }
        // Image files: decoding and resizing on two threads ahead of training (ImageOptions); CIFAR: one is plenty.
        boolean files = ImageOptions.source(this.data) != null;
        return DataLoader.builder(data.train()).batchSize(batchSize).shuffle(true).seed(seed).dropLast(!keepLastBatch)
                .transform(files ? Transform.imagenetTrain() : Transform.cifarTrain()).workers(files ? image.workers : 1)
                .prefetch(files ? 2 * image.workers : 3).build();
    }

    /**
     * The evaluation loader over the held-out data, in order, normalised only, in batches of the training batch size
     * (as the reference does): larger evaluation batches would need larger activations than the training step, which
     * the step's buffers cannot serve, and they grew the heap and the resident memory by about 80 MiB (issue 17).
     */
    DataLoader evalLoader(TrainSplit data, int batchSize) {
        boolean files = ImageOptions.source(this.data) != null;
        return DataLoader.builder(data.heldOut()).batchSize(batchSize).transform(files ? Transform.imagenetEval() : Transform.cifarEval())
                .workers(files ? image.workers : 1).prefetch(files ? 2 * image.workers : 2).build();
    }

    /** The metadata every checkpoint of a training command records; commands add their own keys. */
    java.util.Map<String, String> metadata(String stage, ai.bonsai.dsp.models.Architectures.Spec arch, TrainSplit data) {
        java.util.Map<String, String> m = new java.util.LinkedHashMap<>();
        m.put("format", "bonsai-checkpoint-1");
        arch.putMetadata(m);
        m.put("numClasses", Integer.toString(data.train().numClasses()));
        if (ImageOptions.source(this.data) != null) m.put("imageSize", Integer.toString(data.train().imageShape().dim(1)));
        m.put("seed", Long.toString(seed));
        m.put("data", data.train().description());
        m.put("stage", stage);
        m.put("dropLastBatch", Boolean.toString(!keepLastBatch));
        return m;
    }

    /** The summary of images skipped as unreadable (each was reported when first met), on stderr; nothing when none was. */
    static void reportSkipped(DataLoader... loaders) {
        for (DataLoader l : loaders) {
            String s = l.skippedSummary();
            if (s != null) System.err.println("warning: " + s);
        }
    }

    /** Classes of the training data: a model trained on it gets this many outputs. */
    static int numClasses(TrainSplit data) { return data.train().numClasses(); }

    /** The --data path, the default folder when present, or null for synthetic data. */
    Path dataPath(PrintStream log) {
        if (data != null && data.equalsIgnoreCase("synthetic")) return null;
        if (data != null) {
            Path p = Path.of(data);
            if (!Files.exists(p)) {
                throw new IllegalArgumentException("--data " + p.toAbsolutePath() + ": no such file or folder. "
                        + "Run 'bonsai download cifar10' to fetch CIFAR-10 into ./data/cifar10, or pass --data synthetic.");
            }
            return p;
        }
        if (Files.isDirectory(DEFAULT_DATA) && Cifar10.isCompleteFolder(DEFAULT_DATA)) return DEFAULT_DATA;
        log.println("note: no CIFAR-10 data at " + DEFAULT_DATA.toAbsolutePath() + " and no --data given; using SYNTHETIC "
                + "CIFAR-shaped data (not CIFAR-10). Run 'bonsai download cifar10' or pass --data PATH for real data.");
        return null;
    }
}
