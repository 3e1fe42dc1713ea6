package ai.bonsai.dsp.pack;

import ai.bonsai.dsp.pack.PackedModel.Affine;
import ai.bonsai.dsp.pack.PackedModel.Block;
import ai.bonsai.dsp.pack.PackedModel.Branch;
import ai.bonsai.dsp.pack.PackedModel.Classifier;
import ai.bonsai.dsp.pack.PackedModel.DenseConv;
import ai.bonsai.dsp.pack.PackedModel.Structure;
import ai.bonsai.io.NamedArray;
import ai.bonsai.io.SafeTensors;
import ai.bonsai.tensor.DType;
import ai.bonsai.tensor.Shape;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The packed file: a safetensors file whose {@code __metadata__} holds the structure as one JSON string under
 * {@value #METADATA_KEY}, and whose tensors hold the weights and folded BN.
 *
 * <pre>
 * __metadata__["bonsai.packed"] = {
 *   "format": "bonsai-packed", "version": 1, "architecture": "cifar_resnet", "depth": 20,
 *   "inputChannels": 3, "inputSize": 32,
 *   "stem":   {"in": 3, "out": 16, "kernel": 3, "stride": 1, "padding": 1},
 *   "blocks": [{"name": "stage_1.0", "in": 16, "planes": 16, "stride": 1, "kernel": 3,
 *               "shortcut": null | {"kernel": 1, "stride": 2, "padding": 0},
 *               "residualBias": false,
 *               "convA": [{"in": [block input channels], "out": [conv_a filter indices]}, ...],
 *               "convB": [{"in": [conv_a filter indices], "out": [residual channels]}, ...]}, ...],
 *   "classifier": {"features": 64, "classes": 10}}
 * tensors (F32): stem.{weight,scale,shift}; blocks.I.convA.B.{weight,scale,shift}; blocks.I.convB.B.{...};
 *                blocks.I.shortcut.{...}; blocks.I.residualBias; classifier.{weight,bias}
 * </pre>
 * A branch weight is (out, in, k, k) in the order of its lists; scale and shift are the folded eval-mode BN of
 * its outputs. The residual indices of a block are its conv_b "out" lists; residual channels in none pass through.
 *
 * <p>Reading treats the file as untrusted: SafeTensors bounds and checks the container, the JSON is parsed into a
 * plain tree (no data binding, nothing named in the file is instantiated), integers and list lengths are bounded,
 * every tensor must have exactly the shape the lists imply, no tensor may be missing or extra, and then the whole
 * structure goes through {@link PackedValidation}. Every error starts with "packed file PATH:" and names the
 * block, branch and field.
 */
public final class PackedFormat {
    public static final String METADATA_KEY = "bonsai.packed";
    public static final String FORMAT = "bonsai-packed";
    public static final int VERSION = 1;
    /** Largest structure JSON accepted (a ResNet-110 with 8 branches per layer is well under 1 MB). */
    static final int MAX_JSON_CHARS = 16 << 20;
    private static final ObjectMapper JSON = new ObjectMapper().enable(DeserializationFeature.FAIL_ON_READING_DUP_TREE_KEY);

    private PackedFormat() {}

    /** True when {@code file} is a safetensors file carrying a packed structure (not a dense or masked checkpoint). */
    public static boolean isPacked(Path file) {
        try {
            return SafeTensors.read(file).metadata().containsKey(METADATA_KEY);
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": " + e.getMessage(), e);
        }
    }

    // ---------------------------------------------------------------- write

    static void write(PackedModel model, Path file) {
        Structure s = model.structure();
        ObjectNode root = JSON.createObjectNode();
        root.put("format", FORMAT);
        root.put("version", VERSION);
        root.put("architecture", s.architecture());
        root.put("depth", s.depth());
        root.put("inputChannels", s.inputChannels());
        root.put("inputSize", s.inputSize());
        List<NamedArray> tensors = new ArrayList<>();
        ObjectNode stem = root.putObject("stem");
        stem.put("in", s.stem().inChannels());
        stem.put("out", s.stem().outChannels());
        convFields(stem, s.stem());
        dense(tensors, "stem", s.stem());
        ArrayNode blocks = root.putArray("blocks");
        for (int i = 0; i < s.blocks().size(); i++) {
            Block b = s.blocks().get(i);
            ObjectNode o = blocks.addObject();
            o.put("name", b.name());
            o.put("in", b.inChannels());
            o.put("planes", b.planes());
            o.put("stride", b.stride());
            o.put("kernel", b.kernel());
            if (b.shortcut() == null) {
                o.putNull("shortcut");
            } else {
                convFields(o.putObject("shortcut"), b.shortcut());
            }
            o.put("residualBias", b.residualBias() != null);
            branches(o.putArray("convA"), tensors, "blocks." + i + ".convA", b.convA(), b.kernel());
            branches(o.putArray("convB"), tensors, "blocks." + i + ".convB", b.convB(), b.kernel());
            if (b.shortcut() != null) dense(tensors, "blocks." + i + ".shortcut", b.shortcut());
            if (b.residualBias() != null) tensors.add(NamedArray.ofFloats("blocks." + i + ".residualBias", Shape.of(b.planes()), b.residualBias()));
        }
        Classifier fc = s.classifier();
        ObjectNode c = root.putObject("classifier");
        c.put("features", fc.features());
        c.put("classes", fc.classes());
        tensors.add(NamedArray.ofFloats("classifier.weight", Shape.of(fc.classes(), fc.features()), fc.weight()));
        tensors.add(NamedArray.ofFloats("classifier.bias", Shape.of(fc.classes()), fc.bias()));
        Map<String, String> meta = new LinkedHashMap<>();
        try {
            meta.put(METADATA_KEY, JSON.writeValueAsString(root));
            SafeTensors.write(file, tensors, meta);
        } catch (IOException e) {
            throw new UncheckedIOException("packed file " + file + ": " + e.getMessage(), e);
        }
    }

    private static void convFields(ObjectNode o, DenseConv d) {
        o.put("kernel", d.kernel());
        o.put("stride", d.stride());
        o.put("padding", d.padding());
    }

    private static void dense(List<NamedArray> out, String prefix, DenseConv d) {
        out.add(NamedArray.ofFloats(prefix + ".weight", Shape.of(d.outChannels(), d.inChannels(), d.kernel(), d.kernel()), d.weight()));
        out.add(NamedArray.ofFloats(prefix + ".scale", Shape.of(d.outChannels()), d.bn().scale()));
        out.add(NamedArray.ofFloats(prefix + ".shift", Shape.of(d.outChannels()), d.bn().shift()));
    }

    private static void branches(ArrayNode arr, List<NamedArray> out, String prefix, List<Branch> list, int k) {
        for (int b = 0; b < list.size(); b++) {
            Branch br = list.get(b);
            ObjectNode o = arr.addObject();
            ArrayNode in = o.putArray("in"), outs = o.putArray("out");
            for (int c : br.in()) in.add(c);
            for (int c : br.out()) outs.add(c);
            String p = prefix + "." + b;
            out.add(NamedArray.ofFloats(p + ".weight", Shape.of(br.out().length, br.in().length, k, k), br.weight()));
            out.add(NamedArray.ofFloats(p + ".scale", Shape.of(br.out().length), br.bn().scale()));
            out.add(NamedArray.ofFloats(p + ".shift", Shape.of(br.out().length), br.bn().shift()));
        }
    }

    // ---------------------------------------------------------------- read

    static PackedModel read(Path file) {
        String source = "packed file " + file;
        SafeTensors.Contents contents;
        try {
            contents = SafeTensors.read(file);
        } catch (IOException e) {
            throw new UncheckedIOException(source + ": " + e.getMessage(), e);
        }
        JsonNode root = PackedValidation.metadataJson(source, contents.metadata(), METADATA_KEY, MAX_JSON_CHARS,
                "not a packed model (pack a fine-tuned checkpoint with 'bonsai pack --ckpt FILE --save FILE')");
        Reader r = new Reader(source, contents.tensors());
        Structure s = r.structure(root);
        r.checkAllUsed();
        return PackedModel.of(s, source);
    }

    /** Reads the JSON tree and pulls each tensor it implies, checking names, dtypes and shapes. */
    private static final class Reader {
        final String source;
        final Map<String, NamedArray> tensors = new LinkedHashMap<>();
        final Set<String> used = new HashSet<>();

        Reader(String source, List<NamedArray> list) {
            this.source = source;
            for (NamedArray a : list) tensors.put(a.name(), a);
        }

        Structure structure(JsonNode root) {
            if (root == null || !root.isObject()) throw fail("structure", "expected a JSON object");
            String format = text(root, "format", "structure");
            if (!format.equals(FORMAT)) throw fail("format", "expected '" + FORMAT + "', got '" + format + "'");
            int version = integer(root, "version", "structure", 0, Integer.MAX_VALUE);
            if (version != VERSION) throw fail("version", "format version " + version + " is not supported (this build reads version " + VERSION + ")");
            String arch = text(root, "architecture", "structure");
            int depth = integer(root, "depth", "structure", 0, 100_000);
            int inCh = integer(root, "inputChannels", "structure", 1, PackedValidation.MAX_CHANNELS);
            int inSize = integer(root, "inputSize", "structure", 1, PackedValidation.MAX_INPUT);
            JsonNode st = object(root, "stem", "structure");
            DenseConv stem = dense(st, "stem", integer(st, "in", "stem", 1, PackedValidation.MAX_CHANNELS),
                    integer(st, "out", "stem", 1, PackedValidation.MAX_CHANNELS), "stem");
            JsonNode bl = root.get("blocks");
            if (bl == null || !bl.isArray()) throw fail("blocks", "expected a JSON array");
            if (bl.size() > PackedValidation.MAX_BLOCKS) throw fail("blocks", "has " + bl.size() + " entries, more than the limit " + PackedValidation.MAX_BLOCKS);
            List<Block> blocks = new ArrayList<>();
            for (int i = 0; i < bl.size(); i++) blocks.add(block(bl.get(i), i));
            JsonNode fc = object(root, "classifier", "structure");
            int features = integer(fc, "features", "classifier", 1, PackedValidation.MAX_CHANNELS);
            int classes = integer(fc, "classes", "classifier", 1, PackedValidation.MAX_CLASSES);
            Classifier c = new Classifier(features, classes, tensor("classifier.weight", classes, features), tensor("classifier.bias", classes));
            return new Structure(arch, depth, inCh, inSize, stem, blocks, c);
        }

        Block block(JsonNode o, int i) {
            String where = "block " + i;
            if (o == null || !o.isObject()) throw fail(where, "expected a JSON object");
            String name = text(o, "name", where);
            where = "block " + i + " (" + name + ")";
            int in = integer(o, "in", where, 1, PackedValidation.MAX_CHANNELS);
            int planes = integer(o, "planes", where, 1, PackedValidation.MAX_CHANNELS);
            int stride = integer(o, "stride", where, 1, PackedValidation.MAX_STRIDE);
            int kernel = integer(o, "kernel", where, 1, PackedValidation.MAX_KERNEL);
            JsonNode sc = o.get("shortcut");
            if (sc == null) throw fail(where + " shortcut", "is missing (null for an identity shortcut)");
            DenseConv shortcut = sc.isNull() ? null : dense(sc, where + " shortcut", in, planes, "blocks." + i + ".shortcut");
            JsonNode rb = o.get("residualBias");
            if (rb == null || !rb.isBoolean()) throw fail(where + " residualBias", "expected true or false");
            float[] bias = rb.booleanValue() ? tensor("blocks." + i + ".residualBias", planes) : null;
            List<Branch> a = branches(o, "convA", where, "blocks." + i + ".convA", kernel);
            List<Branch> b = branches(o, "convB", where, "blocks." + i + ".convB", kernel);
            return new Block(name, in, planes, stride, kernel, a, b, shortcut, bias);
        }

        List<Branch> branches(JsonNode block, String field, String where, String prefix, int kernel) {
            JsonNode arr = block.get(field);
            if (arr == null || !arr.isArray()) throw fail(where + " " + field, "expected a JSON array of branches");
            if (arr.size() > PackedValidation.MAX_BRANCHES) throw fail(where + " " + field, "has " + arr.size() + " branches, over the limit " + PackedValidation.MAX_BRANCHES);
            List<Branch> out = new ArrayList<>();
            for (int b = 0; b < arr.size(); b++) {
                String w = where + " " + field + " branch " + b;
                JsonNode o = arr.get(b);
                if (o == null || !o.isObject()) throw fail(w, "expected a JSON object");
                int[] in = ints(o, "in", w), outs = ints(o, "out", w);
                String p = prefix + "." + b;
                float[] weight = tensor(p + ".weight", outs.length, in.length, kernel, kernel);
                out.add(new Branch(in, outs, weight, new Affine(tensor(p + ".scale", outs.length), tensor(p + ".shift", outs.length))));
            }
            return out;
        }

        DenseConv dense(JsonNode o, String where, int in, int out, String prefix) {
            if (!o.isObject()) throw fail(where, "expected a JSON object or null");
            int k = integer(o, "kernel", where, 1, PackedValidation.MAX_KERNEL);
            int stride = integer(o, "stride", where, 1, PackedValidation.MAX_STRIDE);
            int pad = integer(o, "padding", where, 0, PackedValidation.MAX_KERNEL);
            float[] w = tensor(prefix + ".weight", out, in, k, k);
            return new DenseConv(in, out, k, stride, pad, w, new Affine(tensor(prefix + ".scale", out), tensor(prefix + ".shift", out)));
        }

        float[] tensor(String name, int... dims) {
            NamedArray a = tensors.get(name);
            if (a == null) throw fail("tensor " + name, "is missing (expected F32 " + Arrays.toString(dims) + ")");
            used.add(name);
            if (a.dtype() != DType.FLOAT32) throw fail("tensor " + name, "expected dtype F32, got " + a.dtype());
            if (!Arrays.equals(a.shape().dims(), dims)) {
                throw fail("tensor " + name, "expected shape " + Arrays.toString(dims) + " from the structure, got " + Arrays.toString(a.shape().dims()));
            }
            return a.floats();
        }

        void checkAllUsed() {
            for (String n : tensors.keySet()) {
                if (!used.contains(n)) throw fail("tensor " + n, "is not part of the structure (unexpected tensor)");
            }
        }

        String text(JsonNode o, String field, String where) {
            JsonNode v = o.get(field);
            if (v == null || !v.isTextual()) throw fail(where + " " + field, "expected a string, got " + describe(v));
            return v.textValue();
        }

        int integer(JsonNode o, String field, String where, long lo, long hi) {
            JsonNode v = o.get(field);
            if (v == null || !v.isIntegralNumber() || !v.canConvertToLong()) throw fail(where + " " + field, "expected an integer, got " + describe(v));
            long x = v.longValue();
            if (x < lo || x > hi) throw fail(where + " " + field, "expected a value in [" + lo + ", " + hi + "], got " + x);
            return (int) x;
        }

        JsonNode object(JsonNode o, String field, String where) {
            JsonNode v = o.get(field);
            if (v == null || !v.isObject()) throw fail(where + " " + field, "expected a JSON object, got " + describe(v));
            return v;
        }

        int[] ints(JsonNode o, String field, String where) {
            JsonNode v = o.get(field);
            if (v == null || !v.isArray()) throw fail(where + " " + field, "expected an array of channel indices, got " + describe(v));
            if (v.size() > PackedValidation.MAX_CHANNELS) throw fail(where + " " + field, "has " + v.size() + " entries, over the limit " + PackedValidation.MAX_CHANNELS);
            int[] out = new int[v.size()];
            for (int j = 0; j < out.length; j++) {
                JsonNode e = v.get(j);
                if (!e.isIntegralNumber() || !e.canConvertToInt()) throw fail(where + " " + field, "entry " + j + " is not an integer channel index: " + e);
                out[j] = e.intValue();
            }
            return out;
        }

        private static String describe(JsonNode v) {
            if (v == null) return "nothing (missing)";
            String s = v.toString();
            return s.length() > 40 ? s.substring(0, 40) + "..." : s;
        }

        IllegalArgumentException fail(String where, String what) { return PackedValidation.fail(source, where, what); }
    }
}
