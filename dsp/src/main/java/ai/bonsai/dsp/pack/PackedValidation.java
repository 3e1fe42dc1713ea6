package ai.bonsai.dsp.pack;

import ai.bonsai.dsp.pack.PackedModel.Block;
import ai.bonsai.dsp.pack.PackedModel.Branch;
import ai.bonsai.dsp.pack.PackedModel.Classifier;
import ai.bonsai.dsp.pack.PackedModel.DenseConv;
import ai.bonsai.dsp.pack.PackedModel.Structure;

import java.util.List;

/**
 * The consistency rules of a {@link Structure}, shared by {@link PackedModel#of}, the file reader and therefore any
 * importer. Every message starts with the source (a file, or "packed model") and names the block, the branch and
 * the field, with the expected and the actual value. Sizes are bounded so that a hostile file cannot make the
 * loader allocate or loop without limit.
 */
final class PackedValidation {
    static final int MAX_CHANNELS = 1 << 16, MAX_KERNEL = 15, MAX_STRIDE = 8, MAX_INPUT = 1 << 14, MAX_BLOCKS = 4096,
            MAX_BRANCHES = 1 << 16, MAX_CLASSES = 1 << 20;

    private PackedValidation() {}

    static void validate(Structure s, String source) {
        if (s == null) throw fail(source, "structure", "is null");
        if (s.architecture() == null || s.architecture().isBlank()) throw fail(source, "architecture", "is missing");
        range(source, "depth", s.depth(), 0, 100_000);
        range(source, "inputChannels", s.inputChannels(), 1, MAX_CHANNELS);
        range(source, "inputSize", s.inputSize(), 1, MAX_INPUT);
        if (s.stem() == null) throw fail(source, "stem", "is missing");
        if (s.blocks() == null) throw fail(source, "blocks", "is missing");
        if (s.blocks().size() > MAX_BLOCKS) throw fail(source, "blocks", "has " + s.blocks().size() + " entries, more than the limit " + MAX_BLOCKS);
        dense(source, "stem", s.stem());
        if (s.stem().inChannels() != s.inputChannels()) {
            throw fail(source, "stem inChannels", "expected inputChannels = " + s.inputChannels() + ", got " + s.stem().inChannels());
        }
        int size = PackedModel.outSize(s.inputSize(), s.stem().kernel(), s.stem().stride(), s.stem().padding());
        if (size < 1) throw fail(source, "inputSize", s.inputSize() + " is smaller than the stem's kernel " + s.stem().kernel());
        int width = s.stem().outChannels();
        for (int i = 0; i < s.blocks().size(); i++) {
            Block b = s.blocks().get(i);
            String where = "block " + i + (b != null && b.name() != null ? " (" + b.name() + ")" : "");
            if (b == null) throw fail(source, where, "is null");
            if (b.name() == null || b.name().isBlank()) throw fail(source, where + " name", "is missing");
            if (b.inChannels() != width) throw fail(source, where + " inChannels", "expected " + width + " (the previous layer's output), got " + b.inChannels());
            range(source, where + " planes", b.planes(), 1, MAX_CHANNELS);
            range(source, where + " stride", b.stride(), 1, MAX_STRIDE);
            range(source, where + " kernel", b.kernel(), 1, MAX_KERNEL);
            if (b.kernel() % 2 == 0) throw fail(source, where + " kernel", "expected an odd size (padding kernel/2), got " + b.kernel());
            int out = PackedModel.outSize(size, b.kernel(), b.stride(), b.padding());
            if (out < 1) throw fail(source, where, "input " + size + "x" + size + " is too small for kernel " + b.kernel() + " stride " + b.stride());
            if (b.shortcut() == null) {
                if (b.inChannels() != b.planes() || b.stride() != 1) {
                    throw fail(source, where + " shortcut", "an identity shortcut needs inChannels == planes and stride 1, got "
                            + b.inChannels() + " -> " + b.planes() + " stride " + b.stride());
                }
            } else {
                DenseConv sc = b.shortcut();
                dense(source, where + " shortcut", sc);
                if (sc.inChannels() != b.inChannels() || sc.outChannels() != b.planes() || sc.stride() != b.stride()) {
                    throw fail(source, where + " shortcut", "expected " + b.inChannels() + " -> " + b.planes() + " stride " + b.stride()
                            + ", got " + sc.inChannels() + " -> " + sc.outChannels() + " stride " + sc.stride());
                }
                int scOut = PackedModel.outSize(size, sc.kernel(), sc.stride(), sc.padding());
                if (scOut != out) throw fail(source, where + " shortcut", "output size " + scOut + " differs from the block's " + out);
            }
            if (b.convA() == null || b.convB() == null) throw fail(source, where, "convA and convB lists are required (may be empty)");
            if (b.convA().size() > MAX_BRANCHES || b.convB().size() > MAX_BRANCHES) {
                throw fail(source, where, "has more than " + MAX_BRANCHES + " branches in a layer");
            }
            boolean[] produced = new boolean[b.planes()];
            branches(source, where + " convA", b.convA(), b.inChannels(), null, b.planes(), produced, b.kernel());
            branches(source, where + " convB", b.convB(), b.planes(), produced, b.planes(), new boolean[b.planes()], b.kernel());
            if (b.residualBias() != null && b.residualBias().length != b.planes()) {
                throw fail(source, where + " residualBias", "expected " + b.planes() + " entries, got " + b.residualBias().length);
            }
            width = b.planes();
            size = out;
        }
        Classifier fc = s.classifier();
        if (fc == null) throw fail(source, "classifier", "is missing");
        if (fc.features() != width) throw fail(source, "classifier features", "expected " + width + " (the last block's width), got " + fc.features());
        range(source, "classifier classes", fc.classes(), 1, MAX_CLASSES);
        length(source, "classifier weight", fc.weight(), (long) fc.classes() * fc.features(), "(" + fc.classes() + "," + fc.features() + ")");
        length(source, "classifier bias", fc.bias(), fc.classes(), "(" + fc.classes() + ")");
    }

    private static void dense(String source, String where, DenseConv d) {
        range(source, where + " inChannels", d.inChannels(), 1, MAX_CHANNELS);
        range(source, where + " outChannels", d.outChannels(), 1, MAX_CHANNELS);
        range(source, where + " kernel", d.kernel(), 1, MAX_KERNEL);
        range(source, where + " stride", d.stride(), 1, MAX_STRIDE);
        range(source, where + " padding", d.padding(), 0, MAX_KERNEL);
        long k = (long) d.kernel() * d.kernel();
        length(source, where + " weight", d.weight(), d.outChannels() * d.inChannels() * k,
                "(" + d.outChannels() + "," + d.inChannels() + "," + d.kernel() + "," + d.kernel() + ")");
        affine(source, where, d.bn(), d.outChannels());
    }

    /**
     * One layer's branches: inputs in [0, inLimit) (and among {@code allowedIn} when given: conv_b reads only what
     * conv_a produced), distinct within a branch; outputs in [0, outLimit), never twice in the layer; recorded in
     * {@code outputs}.
     */
    private static void branches(String source, String layer, List<Branch> list, int inLimit, boolean[] allowedIn,
                                 int outLimit, boolean[] outputs, int kernel) {
        for (int bi = 0; bi < list.size(); bi++) {
            Branch br = list.get(bi);
            String where = layer + " branch " + bi;
            if (br == null) throw fail(source, where, "is null");
            if (br.in() == null || br.in().length == 0) throw fail(source, where + " in", "expected at least one channel, got none");
            if (br.out() == null || br.out().length == 0) throw fail(source, where + " out", "expected at least one channel, got none");
            boolean[] seen = new boolean[inLimit];
            for (int j = 0; j < br.in().length; j++) {
                int c = br.in()[j];
                if (c < 0 || c >= inLimit) throw fail(source, where + " in", "channel " + c + " at position " + j + " is outside [0, " + inLimit + ")");
                if (seen[c]) throw fail(source, where + " in", "channel " + c + " appears twice");
                seen[c] = true;
                if (allowedIn != null && !allowedIn[c]) {
                    throw fail(source, where + " in", "channel " + c + " is not the output of any convA branch");
                }
            }
            for (int j = 0; j < br.out().length; j++) {
                int c = br.out()[j];
                if (c < 0 || c >= outLimit) throw fail(source, where + " out", "channel " + c + " at position " + j + " is outside [0, " + outLimit + ")");
                if (outputs[c]) throw fail(source, where + " out", "channel " + c + " is already an output of this layer (duplicate output)");
                outputs[c] = true;
            }
            long k = (long) kernel * kernel;
            length(source, where + " weight", br.weight(), br.out().length * (long) br.in().length * k,
                    "(" + br.out().length + "," + br.in().length + "," + kernel + "," + kernel + ") from its channel lists");
            affine(source, where, br.bn(), br.out().length);
        }
    }

    private static void affine(String source, String where, PackedModel.Affine a, int size) {
        if (a == null) throw fail(source, where + " scale/shift", "is missing");
        length(source, where + " scale", a.scale(), size, "(" + size + ")");
        length(source, where + " shift", a.shift(), size, "(" + size + ")");
    }

    private static void length(String source, String where, float[] a, long need, String shape) {
        if (a == null) throw fail(source, where, "is missing, expected " + shape);
        if (a.length != need) throw fail(source, where, "expected " + shape + " = " + need + " values, got " + a.length);
    }

    private static void range(String source, String where, long v, long lo, long hi) {
        if (v < lo || v > hi) throw fail(source, where, "expected a value in [" + lo + ", " + hi + "], got " + v);
    }

    /**
     * The JSON tree under {@code key} of a packed file's metadata (both packed formats keep their structure there):
     * present, at most {@code maxChars} long, valid JSON without duplicate keys. {@code missing} says what a file
     * without the key is not.
     */
    static com.fasterxml.jackson.databind.JsonNode metadataJson(String source, java.util.Map<String, String> metadata, String key, int maxChars,
                                                                String missing) {
        String text = metadata.get(key);
        if (text == null) throw fail(source, "__metadata__", "has no '" + key + "' entry: " + missing);
        if (text.length() > maxChars) throw fail(source, key, "is " + text.length() + " characters, over the limit " + maxChars);
        try {
            return STRICT_JSON.readTree(text);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw fail(source, key, "is not valid JSON: " + e.getOriginalMessage());
        }
    }

    private static final com.fasterxml.jackson.databind.ObjectMapper STRICT_JSON = new com.fasterxml.jackson.databind.ObjectMapper()
            .enable(com.fasterxml.jackson.databind.DeserializationFeature.FAIL_ON_READING_DUP_TREE_KEY);

    static IllegalArgumentException fail(String source, String where, String what) {
        return new IllegalArgumentException(source + ": " + where + ": " + what);
    }
}
