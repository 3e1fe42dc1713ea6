package ai.bonsai.dsp.cli;

import ai.bonsai.dsp.models.Architectures;
import ai.bonsai.dsp.models.TorchvisionWeights;
import ai.bonsai.io.Checkpoint;
import ai.bonsai.nn.Module;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code bonsai import}: PyTorch weights with torchvision's names ({@code torch.save(model.state_dict(), f)} or
 * safetensors) into a Bonsai checkpoint of an {@code --arch} model, which {@code eval}, {@code pretrain --init},
 * {@code dsp} and {@code finetune} then read like any other. Nothing in the file is executed: a .pth goes through
 * the engine's allow-listed unpickler ({@link ai.bonsai.io.torch.TorchStateDict}).
 *
 * <p>It prints what matched and names every missing, unexpected and mis-shaped tensor, and the batch-norm counters
 * it ignores; any mismatch refuses the import unless {@code --non-strict}, where the model's own initial values
 * stay in place of what the file lacks. This is not a converter of arbitrary models: the architecture is Bonsai's
 * and only the weights come from the file.
 */
@Command(name = "import", mixinStandardHelpOptions = true,
        description = "Import PyTorch weights (torch.save state dict .pth/.pt, or safetensors) with torchvision's names into a Bonsai checkpoint.")
public final class Import implements Callable<Integer> {
    @Option(names = "--from", required = true, paramLabel = "FILE",
            description = "A state dict saved by torch.save(model.state_dict(), f) (zip, PyTorch >= 1.6) or a safetensors file, with torchvision's names.")
    Path from;

    @Option(names = "--arch", required = true, paramLabel = "NAME",
            description = "The architecture the weights are for: resnet18, resnet34, resnet50, vgg16 or mobilenetv2.")
    String arch;

    @Option(names = "--save", required = true, paramLabel = "FILE", description = "The Bonsai checkpoint to write (safetensors), atomically.")
    Path save;

    @Option(names = "--non-strict", description = "Import what matches and keep the model's initial values for the rest, instead of refusing any mismatch.")
    boolean nonStrict;

    @Option(names = "--classes", paramLabel = "N",
            description = "Outputs of the classifier (default: from the file's classifier weight, fc.weight or classifier.N.weight).")
    Integer classes;

    public static void main(String[] args) { System.exit(Bonsai.execute(new Import(), args)); }

    /** A model with imported weights, how the file matched, and the class count used. */
    public record Imported(Module model, Architectures.Spec spec, int classes, TorchvisionWeights.Match match) {}

    /** The input side recorded for an imported model: torchvision's 224, except the CIFAR VGG, whose classifier needs 32. */
    static int imageSize(Architectures.Spec spec) { return spec.name().equals("vgg16") ? 32 : 224; }

    /**
     * Reads {@code from}, builds {@code spec}'s model with {@code classes} outputs (null: from the file) and copies
     * the matching weights; strict refuses any mismatch, naming each. The one code path of {@code bonsai import},
     * {@code pretrain --init} and the PyTorch cross-check.
     */
    public static Imported importWeights(Path from, Architectures.Spec spec, Integer classes, boolean strict) {
        if (spec.isCifarResNet()) throw new IllegalArgumentException("--arch: expected one of " + String.join(", ", Architectures.names()) + " (torchvision names)");
        Map<String, Tensor> state = TorchvisionWeights.read(from);
        int n = classes != null ? classes : classesOf(state, spec, from);
        if (n < 1) throw new IllegalArgumentException("--classes: expected a positive number, got " + n);
        Module model = spec.create(n, new Generator(0));
        TorchvisionWeights.Match m = TorchvisionWeights.match(model, state);
        if (strict && !m.isExact()) {
            throw new IllegalArgumentException(from + " does not fit " + spec.displayName() + " with " + n + " classes: " + m.summary()
                    + ". Pass --non-strict to import what matches and keep the model's initial values for the rest."
                    + System.lineSeparator() + m.report());
        }
        TorchvisionWeights.load(model, state, false);
        return new Imported(model, spec, n, m);
    }

    /**
     * The class count from the file's classifier: the model's last two-dimensional weight (fc.weight for the ResNets,
     * classifier.1.weight for MobileNetV2), found on a one-class probe so that no name is hard-coded here.
     */
    static int classesOf(Map<String, Tensor> state, Architectures.Spec spec, Path from) {
        String last = null;
        for (Map.Entry<String, Tensor> e : spec.create(1, new Generator(0)).namedParameters().entrySet()) {
            if (e.getKey().endsWith(".weight") && e.getValue().dims().length == 2) last = e.getKey();
        }
        if (last == null) throw new IllegalStateException(spec.displayName() + " has no linear classifier weight to count classes from");
        Tensor w = state.get(last);
        if (w == null || w.dims().length != 2) {
            throw new IllegalArgumentException(from + ": no two-dimensional '" + last + "' (the " + spec.displayName() + " classifier weight) to count the classes from"
                    + (w == null ? "" : ", it has shape " + w.shape()) + "; pass --classes N");
        }
        return w.dims()[0];
    }

    @Override public Integer call() {
        Architectures.Spec spec = Architectures.of(arch, 0);
        PrintStream out = System.out;
        Imported imp;
        try {
            imp = importWeights(from, spec, classes, !nonStrict);
        } catch (IllegalArgumentException e) {
            // The refusal's report goes to stdout like a successful one; the one-line reason is the error.
            String msg = e.getMessage();
            int nl = msg.indexOf(System.lineSeparator());
            if (nl > 0) {
                out.print(msg.substring(nl + System.lineSeparator().length()));
                throw new IllegalArgumentException(msg.substring(0, nl), e);
            }
            throw e;
        }
        out.printf("bonsai import: %s (%s) from %s, %d classes%n", spec.displayName(), TorchvisionWeights.formatOf(from).name().toLowerCase(java.util.Locale.ROOT), from, imp.classes());
        out.print(imp.match().report());
        if (!imp.match().isExact()) out.println("--non-strict: the model's initial values stand in for the " + (imp.match().missing().size() + imp.match().mismatched().size()) + " tensors not imported");
        Map<String, String> meta = metadata(spec, imp, from, !nonStrict);
        Checkpoint.save(save, imp.model(), null, null, null, meta);
        out.println("saved " + save.toAbsolutePath());
        out.println("next: bonsai eval --ckpt " + save + " --data imagefolder:DIR   or   bonsai pretrain --arch " + spec.name() + " --init " + save + " --data imagefolder:DIR");
        return 0;
    }

    /**
     * {@code pretrain --init}: loads {@code file} into {@code model} strictly. A Bonsai checkpoint must name the same
     * architecture in its metadata; any other file (a torch.save state dict, a safetensors state dict) is matched by
     * name as {@code bonsai import} does. Returns what the metadata records as the init source.
     */
    static String loadInit(Path file, Module model, Architectures.Spec spec) {
        if (!java.nio.file.Files.isRegularFile(file)) throw new IllegalArgumentException("--init " + file.toAbsolutePath() + ": no such file");
        if (TorchvisionWeights.formatOf(file) == TorchvisionWeights.Format.SAFETENSORS) {
            Checkpoint ck = Checkpoint.load(file);
            if ("bonsai-checkpoint-1".equals(ck.metadata().get("format"))) {
                Architectures.Spec saved = Architectures.fromMetadata(ck.metadata(), file.toString());
                if (!saved.equals(spec)) {
                    throw new IllegalArgumentException("--init " + file + ": a checkpoint of " + saved.displayName() + " (" + saved.flags() + "), but this run trains "
                            + spec.displayName() + " (" + spec.flags() + ")");
                }
                try {
                    TorchvisionWeights.load(model, ck.modelState(), true);
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException("--init " + file + ": " + e.getMessage(), e);
                }
                return file.toAbsolutePath().normalize().toString();
            }
        }
        try {
            TorchvisionWeights.load(model, TorchvisionWeights.read(file), true);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--init " + file + ": " + e.getMessage(), e);
        }
        return file.toAbsolutePath().normalize().toString();
    }

    static Map<String, String> metadata(Architectures.Spec spec, Imported imp, Path from, boolean strict) {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("format", "bonsai-checkpoint-1");
        spec.putMetadata(m);
        m.put("numClasses", Integer.toString(imp.classes()));
        m.put("imageSize", Integer.toString(imageSize(spec)));
        m.put("stage", "import");
        m.put("source", from.toAbsolutePath().normalize().toString());
        m.put("importStrict", Boolean.toString(strict));
        TorchvisionWeights.Match match = imp.match();
        m.put("importMatched", Integer.toString(match.matched().size()));
        if (!match.isExact()) m.put("importNotImported", String.join(",", notImported(match)));
        return m;
    }

    private static List<String> notImported(TorchvisionWeights.Match m) {
        List<String> l = new java.util.ArrayList<>(m.missing());
        for (String s : m.mismatched()) l.add(s.substring(0, s.indexOf(':')));
        return l;
    }
}
