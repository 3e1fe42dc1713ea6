package ai.bonsai.dsp.cli;

import ai.bonsai.dsp.export.OnnxExport;
import ai.bonsai.dsp.imports.PackedResNetConverter;
import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.dsp.pack.PackedFormat;
import ai.bonsai.dsp.pack.PackedModel;
import ai.bonsai.dsp.pack.Packer;
import ai.bonsai.dsp.prune.PruneWrapper;
import ai.bonsai.io.Checkpoint;
import ai.onnx.proto.OnnxMl.ModelProto;
import ai.onnx.proto.OnnxMl.NodeProto;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * {@code bonsai export}: any model Bonsai runs (dense or masked checkpoint, packed file, published .pt) to an ONNX
 * file that takes the same normalised input and returns the same logits; see {@link OnnxExport}.
 */
@Command(name = "export", mixinStandardHelpOptions = true,
        description = {"Export a model to ONNX: a dense or masked checkpoint as plain Conv/BatchNormalization/Relu/Add/GlobalAveragePool/Gemm,",
                "a packed model (packed file or published .pt) as its branches: Gather, Conv (BN folded), Concat, and conv_b added into the residual (--residual).",
                "The input is the normalised float tensor 'input' (N, 3, 32, 32); the output is 'logits'."})
public final class Export implements Callable<Integer> {
    @Option(names = "--ckpt", required = true, paramLabel = "FILE",
            description = "A Bonsai checkpoint (dense or masked), a packed model from 'bonsai pack', or a published packed DSP model (TorchScript .pt).")
    Path ckpt;

    @Option(names = "--onnx", required = true, paramLabel = "FILE", description = "The ONNX file to write.")
    Path onnx;

    static final class Batch {
        @Option(names = "--batch", paramLabel = "N", description = "A fixed batch size.")
        Integer batch;

        @Option(names = "--dynamic-batch", description = "A symbolic batch dimension N (the default).")
        boolean dynamic;
    }

    @ArgGroup(exclusive = true, multiplicity = "0..1")
    Batch batch;

    @Option(names = "--opset", defaultValue = "" + OnnxExport.DEFAULT_OPSET, paramLabel = "V",
            description = "ONNX opset, " + OnnxExport.MIN_OPSET + " to " + OnnxExport.MAX_OPSET + " (default: ${DEFAULT-VALUE}; the scatter residual needs 16+).")
    int opset;

    @Option(names = "--residual", defaultValue = "padded", paramLabel = "scatter|padded",
            description = "How a packed block's conv_b reaches the residual: ScatterElements with reduction add, or one zero-padded Conv "
                    + "over the conv_a concatenation plus Add, which ONNX Runtime ran 1.4-2.3x faster (default: ${DEFAULT-VALUE}).")
    String residual;

    @Option(names = "--packed", description = "Export a masked checkpoint in its packed form (as 'bonsai pack' builds it) instead of densely.")
    boolean packed;

    public static void main(String[] args) { System.exit(Bonsai.execute(new Export(), args)); }

    @Override public Integer call() {
        if (!Files.isRegularFile(ckpt)) throw new IllegalArgumentException("--ckpt " + ckpt.toAbsolutePath() + ": no such file");
        OnnxExport.Residual mode = switch (residual.toLowerCase(Locale.ROOT)) {
            case "scatter" -> OnnxExport.Residual.SCATTER;
            case "padded" -> OnnxExport.Residual.PADDED;
            default -> throw new IllegalArgumentException("--residual: expected scatter or padded, got '" + residual + "'");
        };
        Integer n = batch == null ? null : batch.batch;
        OnnxExport.Options options = new OnnxExport.Options(n, opset, mode);
        Exported e = export(ckpt, options, packed);
        OnnxExport.write(e.model(), onnx);
        Map<String, Integer> ops = new TreeMap<>();
        for (NodeProto node : e.model().getGraph().getNodeList()) ops.merge(node.getOpType(), 1, Integer::sum);
        long bytes;
        try {
            bytes = Files.size(onnx);
        } catch (IOException ex) {
            throw new UncheckedIOException(ex);
        }
        System.out.printf(Locale.ROOT, "%s (%s) -> %s: %,d bytes, opset %d, input (%s, 3, 32, 32), %d nodes %s%n", ckpt, e.kind(), onnx,
                bytes, opset, n == null ? "N" : n.toString(), e.model().getGraph().getNodeCount(), ops);
        return 0;
    }

    /** What an export produced, and from what kind of model. */
    public record Exported(ModelProto model, String kind) {}

    /**
     * Loads any model Bonsai reads, as {@code bonsai eval} does, and exports it; {@code packMasked} exports a masked
     * checkpoint in packed form.
     */
    public static Exported export(Path ckpt, OnnxExport.Options options, boolean packMasked) {
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("source", ckpt.getFileName().toString());
        meta.put("architecture", "cifar_resnet");
        if (Evaluate.isTorchScript(ckpt) || PackedFormat.isPacked(ckpt)) {
            PackedModel p;
            String kind;
            if (Evaluate.isTorchScript(ckpt)) {
                try {
                    p = PackedResNetConverter.load(ckpt);
                } catch (IOException ex) {
                    throw new UncheckedIOException(ex.getMessage(), ex);
                }
                kind = "published packed (TorchScript)";
            } else {
                p = PackedModel.load(ckpt);
                kind = "packed";
            }
            meta.put("format", kind);
            return new Exported(packed(p, options, meta, groupsFromName(ckpt), null), kind);
        }
        Checkpoint ck = Checkpoint.load(ckpt);
        CifarResNet model = Evaluate.loadModel(ck);
        boolean masked = model.namedBuffers().keySet().stream().anyMatch(k -> k.endsWith("." + PruneWrapper.MASK_BUFFER));
        String groups = ck.metadata().getOrDefault("groups", groupsFromName(ckpt));
        String rate = ck.metadata().get("rate");
        if (masked && packMasked) {
            meta.put("format", "masked, packed");
            return new Exported(packed(Packer.pack(model), options, meta, groups, rate), "masked, exported packed");
        }
        String kind = masked ? "masked" : "dense";
        meta.put("format", kind);
        meta.put("depth", Integer.toString(model.depth()));
        if (groups != null) meta.put("groups", groups);
        meta.put("pruning_rate", rate != null ? rate : masked ? "unknown" : "0");
        meta.put("pruned_flops_percent", masked ? percent(Packer.pack(model).prunableCounts().prunedFlopsPercent()) : "0");
        return new Exported(OnnxExport.dense(model, options, meta), kind);
    }

    private static ModelProto packed(PackedModel p, OnnxExport.Options options, Map<String, String> meta, String groups, String rate) {
        meta.put("depth", Integer.toString(p.structure().depth()));
        if (groups != null) meta.put("groups", groups);
        meta.put("pruning_rate", rate != null ? rate : "unknown");
        meta.put("pruned_flops_percent", percent(p.prunableCounts().prunedFlopsPercent()));
        meta.put("pruned_params_percent", percent(p.prunableCounts().prunedParamsPercent()));
        meta.put("residual", options.residual().name().toLowerCase(Locale.ROOT));
        return OnnxExport.packed(p.structure(), options, meta);
    }

    private static String percent(double v) { return String.format(Locale.ROOT, "%.2f", v); }

    private static final Pattern GROUPS = Pattern.compile("_g(\\d+)(?:[._]|$)");

    /** The published files carry their group count only in their names (resnet56_g4.pt). */
    static String groupsFromName(Path file) {
        Matcher m = GROUPS.matcher(file.getFileName().toString());
        return m.find() ? m.group(1) : null;
    }
}
