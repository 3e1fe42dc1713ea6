package ai.bonsai.dsp.export;

import ai.bonsai.data.Transform;
import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.dsp.pack.PackedModel;
import ai.bonsai.dsp.pack.PackedModel.Affine;
import ai.bonsai.dsp.pack.PackedModel.Block;
import ai.bonsai.dsp.pack.PackedModel.Branch;
import ai.bonsai.dsp.pack.PackedModel.DenseConv;
import ai.bonsai.nn.BatchNorm2d;
import ai.bonsai.nn.Conv2d;
import ai.bonsai.nn.Linear;
import ai.bonsai.nn.Module;
import ai.onnx.proto.OnnxMl.ModelProto;
import ai.onnx.proto.OnnxMl.OperatorSetIdProto;
import ai.onnx.proto.OnnxMl.StringStringEntryProto;

import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import static ai.bonsai.dsp.export.OnnxGraph.floatValue;
import static ai.bonsai.dsp.export.OnnxGraph.integer;
import static ai.bonsai.dsp.export.OnnxGraph.ints;
import static ai.bonsai.dsp.export.OnnxGraph.real;
import static ai.bonsai.dsp.export.OnnxGraph.string;

/**
 * Exports a CIFAR ResNet to ONNX, through ONNX's generated protobuf classes.
 *
 * <p>The graph takes what the model takes in Bonsai: the normalised float tensor {@code input} of shape
 * (N, C, S, S), N fixed or the symbolic {@code N}; normalisation constants go to the metadata, not into the graph.
 * It returns the logits {@code logits} (N, classes). Node and tensor names are Bonsai's dotted names.
 *
 * <ul>
 *   <li>A dense or masked {@link CifarResNet} becomes Conv, BatchNormalization (not folded, so every parameter
 *       keeps its Bonsai name), Relu, Add, GlobalAveragePool, Flatten and Gemm.</li>
 *   <li>A packed model ({@link PackedModel.Structure}: from {@code bonsai pack}, a packed file or a published
 *       .pt) becomes its multi-branch structure: per block, a Gather on the channel axis and a Conv (batch norm
 *       folded) plus Relu per conv_a branch, Concat, then conv_b as either
 *       <ul>
 *         <li>{@link Residual#SCATTER}: per branch a Gather of the concatenation and a Conv, Concat, and
 *             ScatterElements with reduction add into the residual (opset 16+), or</li>
 *         <li>{@link Residual#PADDED}: one Conv over the concatenation whose weight holds every branch's
 *             kernels at (residual channel, concat position) and zeros elsewhere, then Add; more multiply-adds
 *             but a single dense Conv.</li>
 *       </ul></li>
 * </ul>
 */
public final class OnnxExport {
    /** Bonsai's version, recorded as the ONNX producer version and in the metadata. */
    public static final String BONSAI_VERSION = "0.1.0";
    public static final String PRODUCER = "bonsai";
    public static final String INPUT = "input";
    public static final String OUTPUT = "logits";
    public static final int DEFAULT_OPSET = 17;
    /** Opsets the export writes (the operators it uses are unchanged over this range; ONNX Runtime 1.20 reads up to 21). */
    public static final int MIN_OPSET = 13, MAX_OPSET = 21;

    /** How a packed block's conv_b reaches the residual. */
    public enum Residual { SCATTER, PADDED }

    /** {@code batch}: a fixed batch size, or null for the symbolic dimension N. */
    public record Options(Integer batch, int opset, Residual residual) {
        public Options {
            if (batch != null && batch < 1) throw new IllegalArgumentException("--batch: expected a positive batch size, got " + batch);
            if (opset < MIN_OPSET || opset > MAX_OPSET) {
                throw new IllegalArgumentException("--opset: expected " + MIN_OPSET + " to " + MAX_OPSET + ", got " + opset);
            }
            if (residual == Residual.SCATTER && opset < 16) {
                throw new IllegalArgumentException("--opset " + opset + ": the scatter residual needs ScatterElements with reduction add, "
                        + "which is opset 16 or later; use --opset 16+ or --residual padded");
            }
        }

        /**
         * Dynamic batch, opset 17, the padded residual: ONNX Runtime 1.20 ran it 1.4-2.3x faster than the scatter
         * form in OnnxRuntimeBench (README, ONNX export).
         */
        public static Options defaults() { return new Options(null, DEFAULT_OPSET, Residual.PADDED); }
    }

    private OnnxExport() {}

    /** The ONNX IR version that goes with an opset (ONNX's versioning table). */
    static int irVersion(int opset) {
        if (opset <= 14) return 7;
        if (opset <= 18) return 8;
        if (opset <= 20) return 9;
        return 10;
    }

    // ---------------------------------------------------------------- dense

    /**
     * A dense or masked model, as Bonsai's eval-mode forward computes it (masked weights are exported as stored).
     * {@code metadata} is added to the model's metadata (architecture, groups, pruning rate...).
     */
    public static ModelProto dense(CifarResNet model, Options o, Map<String, String> metadata) {
        OnnxGraph g = new OnnxGraph("resnet" + model.depth());
        Conv2d stem = model.stemConv();
        String x = input(g, o, stem.inChannels(), 32);
        x = conv(g, "conv_1_3x3", stem, x);
        x = batchNorm(g, "bn_1", (BatchNorm2d) child(model, "bn_1"), x);
        x = g.node("Relu", "relu", new String[] {x});
        for (int s = 0; s < 3; s++) {
            int b = 0;
            for (CifarResNet.BasicBlock block : model.stage(s)) {
                String p = "stage_" + (s + 1) + "." + b++;
                String y = conv(g, p + ".conv_a", block.convA(), x);
                y = batchNorm(g, p + ".bn_a", block.bnA(), y);
                y = g.node("Relu", p + ".relu_a", new String[] {y});
                y = conv(g, p + ".conv_b", block.convB(), y);
                y = batchNorm(g, p + ".bn_b", block.bnB(), y);
                String residual = x;
                if (block.downsample() != null) {
                    List<Module> ds = block.downsample().children();
                    if (ds.size() != 2 || !(ds.get(0) instanceof Conv2d c) || !(ds.get(1) instanceof BatchNorm2d bn)) {
                        throw new IllegalArgumentException("ONNX export: layer " + p + ".downsample is not a Conv2d followed by a BatchNorm2d");
                    }
                    residual = batchNorm(g, p + ".downsample.1", bn, conv(g, p + ".downsample.0", c, x));
                }
                String sum = g.node("Add", p + ".add", new String[] {residual, y});
                x = g.node("Relu", p, new String[] {sum});
            }
        }
        Linear fc = model.classifier();
        head(g, x, fc.weight().toFloatArray(), fc.bias() == null ? new float[fc.outFeatures()] : fc.bias().toFloatArray(),
                fc.inFeatures(), fc.outFeatures(), o);
        return model(g, o, metadata);
    }

    private static Module child(Module m, String name) {
        Module c = m.namedChildren().get(name);
        if (c == null) throw new IllegalArgumentException("ONNX export: the model has no layer " + name);
        return c;
    }

    private static String conv(OnnxGraph g, String name, Conv2d c, String x) {
        if (c.groups() != 1) {
            throw new IllegalArgumentException("ONNX export: layer " + name + " is a grouped convolution (groups=" + c.groups()
                    + "); only groups=1 is supported");
        }
        int[] w = c.weight().dims();
        if (w.length != 4 || w[2] != w[3] || w[2] != c.kernelSize()) {
            throw new IllegalArgumentException("ONNX export: layer " + name + " has weight " + Arrays.toString(w)
                    + "; expected (out, in, " + c.kernelSize() + ", " + c.kernelSize() + ")");
        }
        List<String> in = new ArrayList<>(List.of(x, g.floats(name + ".weight", c.weight().toFloatArray(), w[0], w[1], w[2], w[3])));
        if (c.bias() != null) in.add(g.floats(name + ".bias", c.bias().toFloatArray(), w[0]));
        return g.node("Conv", name, in.toArray(String[]::new), convAttrs(c.kernelSize(), c.stride(), c.padding()));
    }

    private static ai.onnx.proto.OnnxMl.AttributeProto[] convAttrs(int k, int stride, int pad) {
        return new ai.onnx.proto.OnnxMl.AttributeProto[] {ints("kernel_shape", k, k), ints("strides", stride, stride),
                ints("pads", pad, pad, pad, pad), ints("dilations", 1, 1), integer("group", 1)};
    }

    private static String batchNorm(OnnxGraph g, String name, BatchNorm2d bn, String x) {
        int c = bn.numFeatures();
        return g.node("BatchNormalization", name, new String[] {x, g.floats(name + ".weight", bn.weight().toFloatArray(), c),
                g.floats(name + ".bias", bn.bias().toFloatArray(), c), g.floats(name + ".running_mean", bn.runningMean().toFloatArray(), c),
                g.floats(name + ".running_var", bn.runningVar().toFloatArray(), c)}, real("epsilon", bn.eps()));
    }

    // ---------------------------------------------------------------- packed

    /** A packed model in its multi-branch form. The structure is validated first (as {@link PackedModel#of} does). */
    public static ModelProto packed(PackedModel.Structure s, Options o, Map<String, String> metadata) {
        if (!"cifar_resnet".equals(s.architecture())) {
            throw new IllegalArgumentException("ONNX export: architecture '" + s.architecture() + "' is not supported (expected cifar_resnet)");
        }
        PackedModel.of(s);                                       // the same checks as every other way of building one
        OnnxGraph g = new OnnxGraph("resnet" + s.depth() + "_packed");
        String x = input(g, o, s.inputChannels(), s.inputSize());
        x = g.node("Relu", "relu", new String[] {folded(g, "conv_1_3x3", s.stem(), x)});
        for (Block b : s.blocks()) x = block(g, b, x, o.residual());
        PackedModel.Classifier fc = s.classifier();
        head(g, x, fc.weight(), fc.bias(), fc.features(), fc.classes(), o);
        return model(g, o, metadata);
    }

    /** A dense convolution with its BN folded into weight and bias. */
    private static String folded(OnnxGraph g, String name, DenseConv d, String x) {
        int k = d.kernel();
        float[] w = foldWeight(d.weight(), d.bn(), d.outChannels());
        return g.node("Conv", name, new String[] {x, g.floats(name + ".weight", w, d.outChannels(), d.inChannels(), k, k),
                g.floats(name + ".bias", d.bn().shift().clone(), d.outChannels())}, convAttrs(k, d.stride(), d.padding()));
    }

    /** Row o of {@code weight} (out rows) times scale[o]. */
    private static float[] foldWeight(float[] weight, Affine bn, int out) {
        float[] w = weight.clone();
        int per = w.length / out;
        for (int r = 0; r < out; r++) {
            float sc = bn.scale()[r];
            for (int i = r * per; i < (r + 1) * per; i++) w[i] *= sc;
        }
        return w;
    }

    private static String block(OnnxGraph g, Block b, String x, Residual mode) {
        String p = b.name();
        int k = b.kernel();
        String residual = x;
        if (b.shortcut() != null) residual = folded(g, p + ".downsample.0", b.shortcut(), x);
        if (b.residualBias() != null) {
            residual = g.node("Add", p + ".residual_bias", new String[] {residual,
                    g.floats(p + ".residual_bias.value", b.residualBias().clone(), 1, b.planes(), 1, 1)});
        }
        if (b.convA().isEmpty() || b.convB().isEmpty()) return g.node("Relu", p, new String[] {residual});

        // conv_a: one Gather + Conv + Relu per branch, concatenated; pos maps an original filter to its place there.
        int[] pos = new int[b.planes()];
        List<String> parts = new ArrayList<>();
        int width = 0;
        for (int i = 0; i < b.convA().size(); i++) {
            Branch br = b.convA().get(i);
            String name = p + ".conv_a.branch_" + i;
            for (int f : br.out()) pos[f] = width++;
            String in = gather(g, name, x, br.in(), b.inChannels());
            String y = branchConv(g, name, br, in, k, b.stride());
            parts.add(g.node("Relu", name + ".relu", new String[] {y}));
        }
        String t = parts.size() == 1 ? parts.get(0) : g.node("Concat", p + ".conv_a", parts.toArray(String[]::new), integer("axis", 1));

        String sum;
        if (mode == Residual.PADDED) {
            float[] w = new float[b.planes() * width * k * k];
            float[] bias = new float[b.planes()];
            for (Branch br : b.convB()) {
                int n = br.in().length;
                for (int j = 0; j < br.out().length; j++) {
                    int row = br.out()[j];
                    float sc = br.bn().scale()[j];
                    bias[row] = br.bn().shift()[j];
                    for (int q = 0; q < n; q++) {
                        int col = pos[br.in()[q]];
                        for (int e = 0; e < k * k; e++) {
                            w[((row * width + col) * k * k) + e] = br.weight()[(j * n + q) * k * k + e] * sc;
                        }
                    }
                }
            }
            String y = g.node("Conv", p + ".conv_b", new String[] {t, g.floats(p + ".conv_b.weight", w, b.planes(), width, k, k),
                    g.floats(p + ".conv_b.bias", bias, b.planes())}, convAttrs(k, 1, k / 2));
            sum = g.node("Add", p + ".add", new String[] {residual, y});
        } else {
            List<String> outs = new ArrayList<>();
            List<Long> channels = new ArrayList<>();
            for (int i = 0; i < b.convB().size(); i++) {
                Branch br = b.convB().get(i);
                String name = p + ".conv_b.branch_" + i;
                int[] in = new int[br.in().length];
                for (int q = 0; q < in.length; q++) in[q] = pos[br.in()[q]];
                outs.add(branchConv(g, name, br, gather(g, name, t, in, width), k, 1));
                for (int c : br.out()) channels.add((long) c);
            }
            String u = outs.size() == 1 ? outs.get(0) : g.node("Concat", p + ".conv_b", outs.toArray(String[]::new), integer("axis", 1));
            long[] idx = channels.stream().mapToLong(Long::longValue).toArray();
            if (isIota(idx, b.planes())) {
                sum = g.node("Add", p + ".add", new String[] {residual, u});       // conv_b writes every channel, in order
            } else {
                // ScatterElements wants indices of the updates' full shape: broadcast the channel list to (N, K, H, W).
                String list = g.longs(p + ".conv_b.out", idx, 1, idx.length, 1, 1);
                String shape = g.node("Shape", p + ".conv_b.shape", new String[] {u});
                String index = g.node("Expand", p + ".conv_b.index", new String[] {list, shape});
                sum = g.node("ScatterElements", p + ".scatter_add", new String[] {residual, index, u}, integer("axis", 1),
                        string("reduction", "add"));
            }
        }
        return g.node("Relu", p, new String[] {sum});
    }

    /** Gathers {@code channels} of x on axis 1, or returns x itself when they are all of its channels in order. */
    private static String gather(OnnxGraph g, String name, String x, int[] channels, int available) {
        long[] idx = Arrays.stream(channels).mapToLong(c -> c).toArray();
        if (isIota(idx, available)) return x;
        return g.node("Gather", name + ".gather", new String[] {x, g.longs(name + ".in", idx, idx.length)}, integer("axis", 1));
    }

    private static boolean isIota(long[] idx, int n) {
        if (idx.length != n) return false;
        for (int i = 0; i < n; i++) if (idx[i] != i) return false;
        return true;
    }

    private static String branchConv(OnnxGraph g, String name, Branch br, String x, int k, int stride) {
        int out = br.out().length;
        float[] w = foldWeight(br.weight(), br.bn(), out);
        return g.node("Conv", name, new String[] {x, g.floats(name + ".weight", w, out, br.in().length, k, k),
                g.floats(name + ".bias", br.bn().shift().clone(), out)}, convAttrs(k, stride, k / 2));
    }

    // ---------------------------------------------------------------- shared

    private static String input(OnnxGraph g, Options o, int channels, int size) {
        g.input(floatValue(INPUT, new Integer[] {o.batch(), channels, size, size}, "N"));
        return INPUT;
    }

    private static void head(OnnxGraph g, String x, float[] weight, float[] bias, int features, int classes, Options o) {
        String pooled = g.node("GlobalAveragePool", "pool", new String[] {x});
        String flat = g.node("Flatten", "flatten", new String[] {pooled}, integer("axis", 1));
        g.node("Gemm", "classifier", OUTPUT, new String[] {flat, g.floats("classifier.weight", weight, classes, features),
                g.floats("classifier.bias", bias, classes)}, integer("transB", 1));
        g.output(floatValue(OUTPUT, new Integer[] {o.batch(), classes}, "N"));
    }

    private static ModelProto model(OnnxGraph g, Options o, Map<String, String> metadata) {
        ModelProto.Builder m = ModelProto.newBuilder().setIrVersion(irVersion(o.opset())).setProducerName(PRODUCER)
                .setProducerVersion(BONSAI_VERSION).setModelVersion(1)
                .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(o.opset()))
                .setGraph(g.build());
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("bonsai_version", BONSAI_VERSION);
        meta.put("input", INPUT + ": float (N, 3, H, W), normalised per channel as (pixel / 255 - mean) / std");
        meta.put("normalization_mean", join(Transform.cifarMean()));
        meta.put("normalization_std", join(Transform.cifarStd()));
        meta.put("output", OUTPUT + ": float (N, classes), logits");
        meta.put("batch", o.batch() == null ? "dynamic" : Integer.toString(o.batch()));
        meta.putAll(metadata);
        meta.forEach((k, v) -> m.addMetadataProps(StringStringEntryProto.newBuilder().setKey(k).setValue(v)));
        return m.build();
    }

    private static String join(float[] v) {
        StringBuilder sb = new StringBuilder();
        for (float f : v) sb.append(sb.length() == 0 ? "" : ",").append(String.format(Locale.ROOT, "%s", f));
        return sb.toString();
    }

    /** Writes {@code model} to {@code file} atomically (a temporary sibling, then a rename). */
    public static void write(ModelProto model, Path file) {
        Path abs = file.toAbsolutePath();
        Path tmp = abs.resolveSibling(abs.getFileName() + ".tmp");
        try {
            if (abs.getParent() != null) Files.createDirectories(abs.getParent());
            try (OutputStream out = Files.newOutputStream(tmp)) {
                model.writeTo(out);
            }
            Files.move(tmp, abs, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException("--onnx " + file + ": " + e.getMessage(), e);
        }
    }
}
