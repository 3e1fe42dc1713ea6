package ai.bonsai.dsp.cli;

import ai.bonsai.autograd.GradMode;
import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.dsp.pack.GraphPacker;
import ai.bonsai.dsp.pack.PackedGraph;
import ai.bonsai.dsp.pack.PackedModel;
import ai.bonsai.nn.Module;
import ai.bonsai.dsp.pack.Packer;
import ai.bonsai.io.Checkpoint;
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
 * {@code bonsai pack}: turns a fine-tuned, masked checkpoint into a packed model (spec section 6), checks on a batch
 * of random inputs that it computes what the masked model computes, prints the structure and the multiply-adds,
 * and saves it.
 */
@Command(name = "pack", mixinStandardHelpOptions = true,
        description = "Pack a fine-tuned DSP checkpoint into multi-branch convolutions and save it as a packed model.")
public final class PackModel implements Callable<Integer> {
    /** The equivalence check's tolerance: max |packed - masked| <= TOLERANCE * max |masked|. */
    static final double TOLERANCE = 1e-4;

    @Option(names = "--ckpt", required = true, paramLabel = "FILE", description = "A fine-tuned (masked) Bonsai checkpoint (.safetensors).")
    Path ckpt;

    @Option(names = "--save", required = true, paramLabel = "FILE", description = "Where to write the packed model (.safetensors).")
    Path save;

    @Option(names = "--check-batch", defaultValue = "16", paramLabel = "N",
            description = "Random inputs of the model's size for the equivalence check (default: ${DEFAULT-VALUE}).")
    int checkBatch;

    @Option(names = "--seed", defaultValue = "1", description = "Seed of the check inputs (default: ${DEFAULT-VALUE}).")
    long seed;

    @Mixin DeviceOptions devices;

    public static void main(String[] args) { System.exit(Bonsai.execute(new PackModel(), args)); }

    /** The relative difference, or an error when it exceeds {@link #TOLERANCE} (nothing is saved then). */
    private double check(double maxRef, double maxDiff) {
        double rel = maxDiff / Math.max(maxRef, 1e-30);
        if (!(rel <= TOLERANCE)) {
            throw new IllegalStateException("packing " + ckpt + ": the packed model differs from the masked one: max |diff| = " + maxDiff
                    + ", max |logit| = " + maxRef + " (relative " + rel + ", allowed " + TOLERANCE + "); nothing was saved");
        }
        return rel;
    }

    /**
     * Any other architecture: {@link GraphPacker} over the traced graph, checked the same way, saved as a packed graph
     * with the architecture, classes, input size and the prunable layers' counts in its metadata (what {@code eval}
     * and {@code bench} report).
     */
    private Integer packGraph(Evaluate.Rebuilt r) {
        Module model = r.model();
        int[] dims = r.inputDims();
        PackedGraph packed = GraphPacker.pack(model, dims);
        int[] shape = new int[dims.length + 1];
        shape[0] = checkBatch;
        System.arraycopy(dims, 0, shape, 1, dims.length);
        Tensor x = Tensor.randn(new Generator(seed), shape);
        float[] ref;
        try (var scope = GradMode.noGrad()) {
            ref = model.forward(x).toFloatArray();
        }
        float[] got = packed.forward(x).toFloatArray();
        double maxRef = 0, maxDiff = 0;
        for (int i = 0; i < ref.length; i++) {
            maxRef = Math.max(maxRef, Math.abs(ref[i]));
            maxDiff = Math.max(maxDiff, Math.abs(ref[i] - got[i]));
        }
        double rel = check(maxRef, maxDiff);
        Map<String, String> meta = new LinkedHashMap<>();
        r.spec().putMetadata(meta);
        meta.put("numClasses", Integer.toString(r.classes()));
        meta.put("imageSize", Integer.toString(dims[dims.length - 1]));
        meta.put("source", ckpt.toAbsolutePath().toString());
        Evaluate.Counts c = Evaluate.counts(r);
        meta.put("prunableMacs", Long.toString(c.prunableMacs()));
        meta.put("densePrunableMacs", Long.toString(c.densePrunableMacs()));
        meta.put("prunableParams", Long.toString(c.prunableParams()));
        meta.put("densePrunableParams", Long.toString(c.densePrunableParams()));
        System.out.printf("packed %s (%s%s)%n", ckpt, r.spec().displayName(), r.pruner() != null ? "" : ", no masks: every layer is one dense branch");
        System.out.print(packed);
        System.out.printf("equivalence check on %d random inputs: max |packed - masked| = %.3g (%.2g of max |logit| %.3g, allowed %.0g)%n",
                checkBatch, maxDiff, rel, maxRef, TOLERANCE);
        System.out.printf("multiply-adds per image: dense %,d, packed %,d (%.2fx fewer)%n", packed.denseMacs(), packed.macs(),
                (double) packed.denseMacs() / packed.macs());
        packed.save(save, meta);
        System.out.println("saved " + save.toAbsolutePath());
        return 0;
    }

    @Override public Integer call() {
        ai.bonsai.tensor.Device dev = devices.setUp();
        if (dev.kind() != ai.bonsai.tensor.Device.Kind.CPU) {
            // Packing and the packed forward pass of the equivalence check are CPU code: one line here, not a failure inside them.
            throw new IllegalArgumentException("device " + dev + ": packing runs on the CPU only (a checkpoint from a " + dev
                    + " run loads there as it is); use --device cpu");
        }
        if (checkBatch < 1) throw new IllegalArgumentException("--check-batch: expected a positive number, got " + checkBatch);
        if (!Files.isRegularFile(ckpt)) throw new IllegalArgumentException("--ckpt " + ckpt.toAbsolutePath() + ": no such file");
        Checkpoint ck = Checkpoint.load(ckpt);
        Evaluate.Rebuilt rebuilt = Evaluate.rebuild(ck);
        if (!(rebuilt.model() instanceof CifarResNet)) return packGraph(rebuilt);
        CifarResNet model = (CifarResNet) rebuilt.model();
        boolean masked = ck.modelState().keySet().stream().anyMatch(k -> k.endsWith(".mask"));
        PackedModel packed = Packer.pack(model);
        Tensor x = Tensor.randn(new Generator(seed), checkBatch, model.stemConv().inChannels(), 32, 32);
        float[] ref;
        try (var scope = GradMode.noGrad()) {
            ref = model.forward(x).toFloatArray();
        }
        float[] got = packed.forward(x).toFloatArray();
        double maxRef = 0, maxDiff = 0;
        for (int i = 0; i < ref.length; i++) {
            maxRef = Math.max(maxRef, Math.abs(ref[i]));
            maxDiff = Math.max(maxDiff, Math.abs(ref[i] - got[i]));
        }
        double rel = check(maxRef, maxDiff);
        System.out.printf("packed %s (ResNet-%d%s)%n", ckpt, model.depth(), masked ? "" : ", no masks: every layer is one dense branch");
        System.out.print(packed.report());
        System.out.printf("equivalence check on %d random inputs: max |packed - masked| = %.3g (%.2g of max |logit| %.3g, allowed %.0g)%n",
                checkBatch, maxDiff, rel, maxRef, TOLERANCE);
        System.out.printf("multiply-adds per image: dense %,d, packed %,d (%.2fx fewer)%n", packed.denseMacs(), packed.macs(),
                (double) packed.denseMacs() / packed.macs());
        packed.save(save);
        System.out.println("saved " + save.toAbsolutePath());
        return 0;
    }
}
