package ai.bonsai.dsp.pack;

import ai.bonsai.dsp.pack.PackedGraph.Branch;
import ai.bonsai.dsp.pack.PackedGraph.Plan;
import ai.bonsai.dsp.pack.PackedGraph.Step;
import ai.bonsai.dsp.pack.PackedGraph.Structure;
import ai.bonsai.dsp.pack.PackedGraph.Type;
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
import java.util.TreeMap;

/**
 * The packed graph file: a safetensors file (written atomically, temp file and rename, by {@link SafeTensors#write})
 * whose {@code __metadata__} holds the steps as one JSON string under {@value #METADATA_KEY}, and whose tensors hold
 * the weights and folded batch norms. It is not {@link PackedFormat}'s CIFAR-ResNet file (that key marks the other).
 *
 * <pre>
 * __metadata__["bonsai.packed-graph"] = {
 *   "format": "bonsai-packed-graph", "version": 1, "inputDims": [3, 32, 32], "output": 42,
 *   "denseMacs": 40000000, "denseParams": 270000,
 *   "steps": [{"type": "CONV", "name": "layer1.0.conv2", "inputs": [5, 3], "ints": [], "value": 0.0,
 *              "tensors": ["weight", ...],
 *              "plans": [{"in": 16, "out": 16, "kernel": 3, "stride": 1, "padding": 1,
 *                         "outputShift": false, "outputRelu": true,
 *                         "branches": [{"in": [channels], "out": [channels], "relu": false}, ...]}]}, ...]}
 * tensors (F32): steps.I.T for each name T a step lists; steps.I.plans.P.branches.B.{weight,scale,shift};
 *                steps.I.plans.P.outputShift when "outputShift" is true
 * </pre>
 * Step types, inputs and ints are those of {@link PackedGraph}'s class comment. Reading treats the file as untrusted:
 * the JSON is read as a plain tree (nothing named in the file is instantiated; a type is matched against a fixed
 * list), integers and list lengths are bounded, every tensor must have exactly the length the structure implies, no
 * tensor may be missing or extra, and then {@link PackedGraph#of} validates every index and shape. Every error
 * starts with "packed graph file PATH:".
 */
public final class PackedGraphFormat {
    public static final String METADATA_KEY = "bonsai.packed-graph";
    public static final String FORMAT = "bonsai-packed-graph";
    public static final int VERSION = 1;
    static final int MAX_JSON_CHARS = 64 << 20, MAX_STEPS = 1 << 16;
    private static final ObjectMapper JSON = new ObjectMapper().enable(DeserializationFeature.FAIL_ON_READING_DUP_TREE_KEY);

    private PackedGraphFormat() {}

    /** True when {@code file} is a safetensors file carrying a packed graph. */
    public static boolean isPackedGraph(Path file) {
        try {
            return SafeTensors.read(file).metadata().containsKey(METADATA_KEY);
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": " + e.getMessage(), e);
        }
    }

    // ---------------------------------------------------------------- write

    /** The file's other metadata (what {@code bonsai pack} records: architecture, classes, counts). */
    public static Map<String, String> metadata(Path file) {
        try {
            Map<String, String> m = new LinkedHashMap<>(SafeTensors.read(file).metadata());
            m.remove(METADATA_KEY);
            return m;
        } catch (IOException e) {
            throw new UncheckedIOException("packed graph file " + file + ": " + e.getMessage(), e);
        }
    }

    static void write(PackedGraph model, Path file, Map<String, String> extra) {
        Structure s = model.structure();
        ObjectNode root = JSON.createObjectNode();
        root.put("format", FORMAT);
        root.put("version", VERSION);
        ArrayNode dims = root.putArray("inputDims");
        for (int d : s.inputDims()) dims.add(d);
        root.put("output", s.output());
        root.put("denseMacs", s.denseMacs());
        root.put("denseParams", s.denseParams());
        ArrayNode steps = root.putArray("steps");
        List<NamedArray> tensors = new ArrayList<>();
        for (int i = 0; i < s.steps().size(); i++) {
            Step st = s.steps().get(i);
            ObjectNode o = steps.addObject();
            o.put("type", st.type().name());
            o.put("name", st.name());
            ints(o.putArray("inputs"), st.inputs());
            ints(o.putArray("ints"), st.ints());
            o.put("value", st.value());
            ArrayNode names = o.putArray("tensors");
            for (Map.Entry<String, float[]> t : new TreeMap<>(st.tensors()).entrySet()) {
                names.add(t.getKey());
                tensors.add(flat("steps." + i + "." + t.getKey(), t.getValue()));
            }
            ArrayNode plans = o.putArray("plans");
            for (int p = 0; p < st.plans().size(); p++) {
                Plan pl = st.plans().get(p);
                String prefix = "steps." + i + ".plans." + p;
                ObjectNode po = plans.addObject();
                po.put("in", pl.inChannels());
                po.put("out", pl.outChannels());
                po.put("kernel", pl.kernel());
                po.put("stride", pl.stride());
                po.put("padding", pl.padding());
                po.put("outputShift", pl.outputShift() != null);
                po.put("outputRelu", pl.outputRelu());
                if (pl.outputShift() != null) tensors.add(flat(prefix + ".outputShift", pl.outputShift()));
                ArrayNode bs = po.putArray("branches");
                for (int b = 0; b < pl.branches().size(); b++) {
                    Branch br = pl.branches().get(b);
                    ObjectNode bo = bs.addObject();
                    ints(bo.putArray("in"), br.in());
                    ints(bo.putArray("out"), br.out());
                    bo.put("relu", br.relu());
                    String bp = prefix + ".branches." + b;
                    int k = pl.kernel();
                    tensors.add(NamedArray.ofFloats(bp + ".weight", Shape.of(br.out().length, br.in().length, k, k), br.weight()));
                    tensors.add(flat(bp + ".scale", br.scale()));
                    tensors.add(flat(bp + ".shift", br.shift()));
                }
            }
        }
        Map<String, String> meta = new LinkedHashMap<>(extra);
        if (meta.containsKey(METADATA_KEY)) throw new IllegalArgumentException("packed graph file " + file + ": extra metadata may not use the key " + METADATA_KEY);
        try {
            meta.put(METADATA_KEY, JSON.writeValueAsString(root));
            SafeTensors.write(file, tensors, meta);
        } catch (IOException e) {
            throw new UncheckedIOException("packed graph file " + file + ": " + e.getMessage(), e);
        }
    }

    private static NamedArray flat(String name, float[] a) { return NamedArray.ofFloats(name, Shape.of(a.length), a); }

    private static void ints(ArrayNode arr, int[] v) { for (int x : v) arr.add(x); }

    // ---------------------------------------------------------------- read

    static PackedGraph read(Path file) {
        String source = "packed graph file " + file;
        SafeTensors.Contents contents;
        try {
            contents = SafeTensors.read(file);
        } catch (IOException e) {
            throw new UncheckedIOException(source + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            throw new IllegalArgumentException(source + ": " + e.getMessage(), e);
        }
        JsonNode root = PackedValidation.metadataJson(source, contents.metadata(), METADATA_KEY, MAX_JSON_CHARS, "not a packed graph");
        Reader r = new Reader(source, contents.tensors());
        Structure s = r.structure(root);
        r.checkAllUsed();
        return PackedGraph.of(s, source);
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
            int[] dims = ints(root, "inputDims", "structure", 3);
            int output = integer(root, "output", "structure", 0, MAX_STEPS);
            long denseMacs = integer(root, "denseMacs", "structure", 0, Long.MAX_VALUE);
            long denseParams = integer(root, "denseParams", "structure", 0, Long.MAX_VALUE);
            JsonNode arr = root.get("steps");
            if (arr == null || !arr.isArray()) throw fail("steps", "expected a JSON array");
            if (arr.size() > MAX_STEPS) throw fail("steps", "has " + arr.size() + " entries, over the limit " + MAX_STEPS);
            List<Step> steps = new ArrayList<>();
            for (int i = 0; i < arr.size(); i++) steps.add(step(arr.get(i), i));
            return new Structure(dims, steps, output, denseMacs, denseParams);
        }

        Step step(JsonNode o, int i) {
            String where = "step " + i;
            if (o == null || !o.isObject()) throw fail(where, "expected a JSON object");
            String typeName = text(o, "type", where);
            Type type = null;
            for (Type t : Type.values()) if (t.name().equals(typeName)) type = t;
            if (type == null) throw fail(where + " type", "'" + shorten(typeName) + "' is not a step type (expected one of " + Arrays.toString(Type.values()) + ")");
            String name = text(o, "name", where);
            where = "step " + i + " (" + type + " " + shorten(name) + ")";
            int[] inputs = ints(o, "inputs", where, -1);
            int[] ints = ints(o, "ints", where, -1);
            JsonNode v = o.get("value");
            if (v == null || !v.isNumber()) throw fail(where + " value", "expected a number, got " + describe(v));
            float value = v.floatValue();
            JsonNode names = o.get("tensors");
            if (names == null || !names.isArray() || names.size() > 8) throw fail(where + " tensors", "expected an array of at most 8 names, got " + describe(names));
            Map<String, float[]> t = new LinkedHashMap<>();
            for (JsonNode n : names) {
                if (!n.isTextual()) throw fail(where + " tensors", "entry " + describe(n) + " is not a name");
                String tn = n.textValue();
                if (!tn.matches("[a-z]{1,16}")) throw fail(where + " tensors", "'" + shorten(tn) + "' is not a tensor name");
                if (t.put(tn, tensor("steps." + i + "." + tn, -1)) != null) throw fail(where + " tensors", "'" + tn + "' listed twice");
            }
            JsonNode ps = o.get("plans");
            if (ps == null || !ps.isArray() || ps.size() > 2) throw fail(where + " plans", "expected an array of at most 2 plans, got " + describe(ps));
            List<Plan> plans = new ArrayList<>();
            for (int p = 0; p < ps.size(); p++) plans.add(plan(ps.get(p), where + " plan " + p, "steps." + i + ".plans." + p));
            return new Step(type, name, inputs, ints, value, plans, t);
        }

        Plan plan(JsonNode o, String where, String prefix) {
            if (o == null || !o.isObject()) throw fail(where, "expected a JSON object");
            int in = integer(o, "in", where, 1, PackedValidation.MAX_CHANNELS);
            int out = integer(o, "out", where, 1, PackedValidation.MAX_CHANNELS);
            int k = integer(o, "kernel", where, 1, PackedValidation.MAX_KERNEL);
            int stride = integer(o, "stride", where, 1, PackedValidation.MAX_STRIDE);
            int pad = integer(o, "padding", where, 0, PackedValidation.MAX_KERNEL);
            boolean hasShift = bool(o, "outputShift", where), relu = bool(o, "outputRelu", where);
            float[] shift = hasShift ? tensor(prefix + ".outputShift", out) : null;
            JsonNode bs = o.get("branches");
            if (bs == null || !bs.isArray()) throw fail(where + " branches", "expected a JSON array");
            if (bs.size() > PackedValidation.MAX_BRANCHES) throw fail(where + " branches", "has " + bs.size() + " entries, over the limit " + PackedValidation.MAX_BRANCHES);
            List<Branch> branches = new ArrayList<>();
            for (int b = 0; b < bs.size(); b++) {
                String bw = where + " branch " + b;
                JsonNode bo = bs.get(b);
                if (bo == null || !bo.isObject()) throw fail(bw, "expected a JSON object");
                int[] bi = ints(bo, "in", bw, -1), bout = ints(bo, "out", bw, -1);
                boolean br = bool(bo, "relu", bw);
                String bp = prefix + ".branches." + b;
                float[] w = tensor(bp + ".weight", bout.length, bi.length, k, k);
                branches.add(new Branch(bi, bout, w, tensor(bp + ".scale", bout.length), tensor(bp + ".shift", bout.length), br));
            }
            return new Plan(in, out, k, stride, pad, branches, shift, relu);
        }

        /** The tensor's floats, checking its dtype and shape; shape {@code -1}: any rank-1 length. */
        float[] tensor(String name, int... dims) {
            NamedArray a = tensors.get(name);
            if (a == null) throw fail("tensor " + name, "is missing (expected F32" + (dims.length == 1 && dims[0] < 0 ? "" : " " + Arrays.toString(dims)) + ")");
            used.add(name);
            if (a.dtype() != DType.FLOAT32) throw fail("tensor " + name, "expected dtype F32, got " + a.dtype());
            int[] got = a.shape().dims();
            boolean ok = dims.length == 1 && dims[0] < 0 ? got.length == 1 : Arrays.equals(got, dims);
            if (!ok) throw fail("tensor " + name, "expected shape " + (dims[0] < 0 ? "(length)" : Arrays.toString(dims)) + " from the structure, got " + Arrays.toString(got));
            return a.floats();
        }

        void checkAllUsed() {
            for (String n : tensors.keySet()) if (!used.contains(n)) throw fail("tensor " + n, "is not part of the structure (unexpected tensor)");
        }

        String text(JsonNode o, String field, String where) {
            JsonNode v = o.get(field);
            if (v == null || !v.isTextual()) throw fail(where + " " + field, "expected a string, got " + describe(v));
            if (v.textValue().length() > 1024) throw fail(where + " " + field, "is " + v.textValue().length() + " characters, over the limit 1024");
            return v.textValue();
        }

        boolean bool(JsonNode o, String field, String where) {
            JsonNode v = o.get(field);
            if (v == null || !v.isBoolean()) throw fail(where + " " + field, "expected true or false, got " + describe(v));
            return v.booleanValue();
        }

        long integer(JsonNode o, String field, String where, long lo, long hi) {
            JsonNode v = o.get(field);
            if (v == null || !v.isIntegralNumber() || !v.canConvertToLong()) throw fail(where + " " + field, "expected an integer, got " + describe(v));
            long x = v.longValue();
            if (x < lo || x > hi) throw fail(where + " " + field, "expected a value in [" + lo + ", " + hi + "], got " + x);
            return x;
        }

        int integer(JsonNode o, String field, String where, int lo, int hi) { return (int) integer(o, field, where, (long) lo, (long) hi); }

        /** An array of integers; {@code length} -1: any length up to the channel limit. */
        int[] ints(JsonNode o, String field, String where, int length) {
            JsonNode v = o.get(field);
            if (v == null || !v.isArray()) throw fail(where + " " + field, "expected an array of integers, got " + describe(v));
            if (length >= 0 && v.size() != length) throw fail(where + " " + field, "expected " + length + " entries, got " + v.size());
            if (v.size() > PackedValidation.MAX_CHANNELS) throw fail(where + " " + field, "has " + v.size() + " entries, over the limit " + PackedValidation.MAX_CHANNELS);
            int[] out = new int[v.size()];
            for (int j = 0; j < out.length; j++) {
                JsonNode e = v.get(j);
                if (!e.isIntegralNumber() || !e.canConvertToInt()) throw fail(where + " " + field, "entry " + j + " is not an integer: " + describe(e));
                out[j] = e.intValue();
            }
            return out;
        }

        private static String describe(JsonNode v) {
            if (v == null) return "nothing (missing)";
            return shorten(v.toString());
        }

        private static String shorten(String s) { return s.length() > 40 ? s.substring(0, 40) + "..." : s; }

        IllegalArgumentException fail(String where, String what) { return PackedValidation.fail(source, where, what); }
    }
}
