package ai.bonsai.dsp.pack;

import ai.bonsai.io.NamedArray;
import ai.bonsai.io.SafeTensors;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Shape;
import ai.bonsai.tensor.Tensor;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The packed file: a save/load round trip gives the same model bit for bit, and corrupt or inconsistent files are
 * rejected with messages that name the file, the block, the field and what was expected.
 */
class PackFormatTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static PackedModel packed;
    @TempDir Path dir;

    @BeforeAll static void pack() { packed = Packer.pack(PackFixtures.masked(20, 4, 0.6, 42)); }

    private Path saved() {
        Path f = dir.resolve("model.packed.safetensors");
        packed.save(f);
        return f;
    }

    @Test void roundTripIsExact() {
        Path f = saved();
        assertTrue(PackedFormat.isPacked(f));
        PackedModel back = PackedModel.load(f);
        Tensor x = Tensor.randn(new Generator(3), 2, 3, 32, 32);
        assertArrayEquals(packed.forward(x).toFloatArray(), back.forward(x).toFloatArray());
        assertEquals(packed.macs(), back.macs());
        assertEquals(packed.params(), back.params());
        assertEquals(packed.report(), back.report());
    }

    /** Rewrites the saved file after editing its structure JSON and/or tensor list, and returns the load error. */
    private String loadError(Consumer<ObjectNode> editJson, Consumer<List<NamedArray>> editTensors) throws Exception {
        Path f = saved();
        SafeTensors.Contents c = SafeTensors.read(f);
        ObjectNode root = (ObjectNode) JSON.readTree(c.metadata().get(PackedFormat.METADATA_KEY));
        editJson.accept(root);
        List<NamedArray> tensors = new ArrayList<>(c.tensors());
        editTensors.accept(tensors);
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put(PackedFormat.METADATA_KEY, JSON.writeValueAsString(root));
        Path g = dir.resolve("edited.safetensors");
        SafeTensors.write(g, tensors, meta);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PackedModel.load(g));
        assertTrue(e.getMessage().startsWith("packed file " + g), e.getMessage());
        return e.getMessage();
    }

    private static ObjectNode block(ObjectNode root, int i) { return (ObjectNode) root.get("blocks").get(i); }

    private static ArrayNode list(ObjectNode root, int block, String layer, int branch, String field) {
        return (ArrayNode) block(root, block).get(layer).get(branch).get(field);
    }

    private static void assertContains(String msg, String... parts) {
        for (String p : parts) assertTrue(msg.contains(p), "expected '" + p + "' in: " + msg);
    }

    @Test void unknownVersion() throws Exception {
        String m = loadError(r -> r.put("version", 2), t -> { });
        assertContains(m, "version", "format version 2 is not supported (this build reads version 1)");
    }

    @Test void channelIndexOutOfRange() throws Exception {
        String m = loadError(r -> list(r, 1, "convA", 0, "in").set(0, 16), t -> { });
        assertContains(m, "block 1 (stage_1.1) convA branch 0 in", "channel 16", "outside [0, 16)");
    }

    @Test void duplicateOutputWithinALayer() throws Exception {
        String m = loadError(r -> {
            int taken = list(r, 2, "convB", 0, "out").get(0).intValue();
            ArrayNode second = list(r, 2, "convB", 1, "out");
            second.set(0, taken);
        }, t -> { });
        assertContains(m, "block 2 (stage_1.2) convB branch 1 out", "already an output of this layer (duplicate output)");
    }

    @Test void listsInconsistentWithWeightShape() throws Exception {
        // One more input channel than the weight has: the shape check names the tensor and both shapes.
        String m = loadError(r -> {
            ArrayNode in = list(r, 0, "convA", 0, "in");
            boolean[] has = new boolean[16];
            in.forEach(v -> has[v.intValue()] = true);
            for (int c = 0; c < 16; c++) if (!has[c]) { in.add(c); break; }
        }, t -> { });
        assertContains(m, "tensor blocks.0.convA.0.weight", "expected shape [", "from the structure, got [");
    }

    @Test void convBReadingAFilterConvADoesNotProduce() throws Exception {
        // The first stage-1 block (16 filters) in which pruning removed a whole conv_a filter; which one that is
        // depends on the fixture's random draws.
        int[] where = new int[1];
        String m = loadError(r -> {
            for (int blk = 0; blk < 3; blk++) {
                boolean[] produced = new boolean[16];
                block(r, blk).get("convA").forEach(b -> b.get("out").forEach(v -> produced[v.intValue()] = true));
                for (int c = 0; c < 16; c++) {
                    if (!produced[c]) {
                        list(r, blk, "convB", 0, "in").set(0, c);
                        where[0] = blk;
                        return;
                    }
                }
            }
            throw new IllegalStateException("fixture: every conv_a filter of stage 1 survived");
        }, t -> { });
        assertContains(m, "block " + where[0] + " (stage_1." + where[0] + ") convB branch 0 in", "is not the output of any convA branch");
    }

    @Test void missingAndUnexpectedTensors() throws Exception {
        String m = loadError(r -> { }, t -> t.removeIf(a -> a.name().equals("blocks.3.shortcut.scale")));
        assertContains(m, "tensor blocks.3.shortcut.scale", "is missing");
        m = loadError(r -> { }, t -> t.add(NamedArray.ofFloats("extra.weight", Shape.of(2), new float[2])));
        assertContains(m, "tensor extra.weight", "unexpected tensor");
    }

    @Test void wrongTypesInTheJson() throws Exception {
        String m = loadError(r -> block(r, 3).put("stride", "two"), t -> { });
        assertContains(m, "block 3 (stage_2.0) stride", "expected an integer, got \"two\"");
        m = loadError(r -> block(r, 0).put("planes", 1_000_000_000), t -> { });
        assertContains(m, "block 0 (stage_1.0) planes", "expected a value in [1, 65536], got 1000000000");
        m = loadError(r -> r.put("format", "something-else"), t -> { });
        assertContains(m, "format", "expected 'bonsai-packed'");
    }

    @Test void identityShortcutWithChangingShapeIsRejected() throws Exception {
        String m = loadError(r -> block(r, 3).putNull("shortcut"), t -> t.removeIf(a -> a.name().startsWith("blocks.3.shortcut.")));
        assertContains(m, "block 3 (stage_2.0) shortcut", "an identity shortcut needs inChannels == planes and stride 1");
    }

    @Test void truncatedAndForeignFiles() throws Exception {
        Path f = saved();
        byte[] bytes = Files.readAllBytes(f);
        Path cut = dir.resolve("cut.safetensors");
        Files.write(cut, java.util.Arrays.copyOf(bytes, bytes.length / 2));
        UncheckedIOException e = assertThrows(UncheckedIOException.class, () -> PackedModel.load(cut));
        assertTrue(e.getMessage().startsWith("packed file " + cut), e.getMessage());
        Path plain = dir.resolve("plain.safetensors");
        SafeTensors.write(plain, List.of(NamedArray.ofFloats("w", Shape.of(1), new float[1])), Map.of("architecture", "cifar_resnet"));
        IllegalArgumentException e2 = assertThrows(IllegalArgumentException.class, () -> PackedModel.load(plain));
        assertContains(e2.getMessage(), "packed file " + plain, "no 'bonsai.packed' entry", "not a packed model");
        Path junk = dir.resolve("junk.safetensors");
        SafeTensors.write(junk, List.of(), Map.of(PackedFormat.METADATA_KEY, "{not json"));
        e2 = assertThrows(IllegalArgumentException.class, () -> PackedModel.load(junk));
        assertContains(e2.getMessage(), "packed file " + junk, "bonsai.packed: is not valid JSON");
    }

    @Test void importerStyleConstructionIsValidated() {
        PackedModel.Structure s = packed.structure();
        PackedModel.Block b0 = s.blocks().get(0);
        PackedModel.Branch br = b0.convA().get(0);
        PackedModel.Branch bad = new PackedModel.Branch(br.in(), br.out(), new float[br.weight().length - 1], br.bn());
        List<PackedModel.Branch> a = new ArrayList<>(b0.convA());
        a.set(0, bad);
        List<PackedModel.Block> blocks = new ArrayList<>(s.blocks());
        blocks.set(0, new PackedModel.Block(b0.name(), b0.inChannels(), b0.planes(), b0.stride(), b0.kernel(), a, b0.convB(), null, null));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PackedModel.of(
                new PackedModel.Structure(s.architecture(), s.depth(), s.inputChannels(), s.inputSize(), s.stem(), blocks, s.classifier())));
        assertContains(e.getMessage(), "packed model: block 0 (stage_1.0) convA branch 0 weight", "from its channel lists",
                "values, got " + (br.weight().length - 1));
    }
}
