package ai.bonsai.dsp.pack;

import ai.bonsai.dsp.pack.PackedGraph.Step;
import ai.bonsai.dsp.pack.PackedGraph.Structure;
import ai.bonsai.io.NamedArray;
import ai.bonsai.io.SafeTensors;
import ai.bonsai.nn.Module;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Shape;
import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The packed graph file: a bit-exact round trip, and clear errors for truncated, tampered and malformed files. */
class PackedGraphFormatTest {
    @TempDir Path dir;

    /** The bottleneck model (pairs, accumulation, max pooling, a projection), pruned. */
    static PackedGraph packed() {
        Generator g = new Generator(14);
        Module m = GraphModels.prune(new GraphModels.BottleneckNet(g), new int[] {3, 16, 16}, 4, 3, 0.5, g);
        return GraphPacker.pack(m, 3, 16, 16);
    }

    @Test
    void roundTripIsBitExact() {
        PackedGraph p = packed();
        Path f = dir.resolve("model.safetensors");
        p.save(f);
        assertTrue(PackedGraphFormat.isPackedGraph(f));
        assertFalse(PackedFormat.isPacked(f), "not the CIFAR-ResNet packed format");
        PackedGraph q = PackedGraph.load(f);
        assertEquals(p.toString(), q.toString());
        assertEquals(p.macs(), q.macs());
        assertEquals(p.params(), q.params());
        Tensor x = Tensor.randn(new Generator(4), 3, 3, 16, 16);
        assertArrayEquals(p.forward(x).toFloatArray(), q.forward(x).toFloatArray());
        // No temp files left behind by the atomic write.
        try (var files = Files.list(dir)) {
            assertEquals(List.of(f), files.toList());
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    @Test
    void everyModelKindRoundTrips() {
        Generator g = new Generator(12);
        Module m = GraphModels.prune(new GraphModels.InvertedResidualNet(g, 6f), new int[] {3, 10, 10}, 4, 2, 0.5, g);
        PackedGraph p = GraphPacker.pack(m, 3, 10, 10);
        Generator g2 = new Generator(15);
        Module v = GraphModels.prune(new GraphModels.VggNet(g2), new int[] {3, 8, 8}, 4, 2, 0.5, g2);
        PackedGraph pv = GraphPacker.pack(v, 3, 8, 8);
        for (PackedGraph one : new PackedGraph[] {p, pv}) {
            Path f = dir.resolve("m.safetensors");
            one.save(f);
            PackedGraph q = PackedGraph.load(f);
            int[] dims = one.structure().inputDims();
            Tensor x = Tensor.randn(new Generator(4), 2, dims[0], dims[1], dims[2]);
            assertArrayEquals(one.forward(x).toFloatArray(), q.forward(x).toFloatArray());
        }
    }

    @Test
    void truncatedFileNamesTheFile() throws IOException {
        Path f = dir.resolve("model.safetensors");
        packed().save(f);
        byte[] all = Files.readAllBytes(f);
        for (int keep : new int[] {4, 100, all.length / 2, all.length - 3}) {
            Path t = dir.resolve("truncated-" + keep + ".safetensors");
            Files.write(t, Arrays.copyOf(all, keep));
            RuntimeException e = assertThrows(RuntimeException.class, () -> PackedGraph.load(t));
            assertTrue(e.getMessage().contains(t.toString()), e.getMessage());
        }
    }

    /** Rewrites the file with its JSON changed by {@code edit} and its tensors by {@code tensors}, then loads it. */
    IllegalArgumentException tampered(UnaryOperator<String> edit, UnaryOperator<List<NamedArray>> tensors) throws IOException {
        Path f = dir.resolve("model.safetensors");
        packed().save(f);
        SafeTensors.Contents c = SafeTensors.read(f);
        Map<String, String> meta = new LinkedHashMap<>(c.metadata());
        meta.put(PackedGraphFormat.METADATA_KEY, edit.apply(meta.get(PackedGraphFormat.METADATA_KEY)));
        Path t = dir.resolve("tampered.safetensors");
        SafeTensors.write(t, tensors.apply(new ArrayList<>(c.tensors())), meta);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PackedGraph.load(t));
        assertTrue(e.getMessage().startsWith("packed graph file " + t + ": "), e.getMessage());
        return e;
    }

    @Test
    void tamperedFilesGiveClearErrors() throws IOException {
        String m;
        m = tampered(s -> s.replaceFirst("\"type\":\"CONV\"", "\"type\":\"java.lang.Runtime\""), l -> l).getMessage();
        assertTrue(m.contains("step 0 type") && m.contains("is not a step type"), m);
        m = tampered(s -> s.replaceFirst("\"inputs\":\\[0\\]", "\"inputs\":[7]"), l -> l).getMessage();
        assertTrue(m.contains("step 0") && m.contains("value 7 is not an earlier value"), m);
        m = tampered(s -> s.replaceFirst("\"out\":\\[\\d+", "\"out\":[999"), l -> l).getMessage();
        assertTrue(m.contains("step 0 (CONV conv1) plan 0") && m.contains("999") && m.contains("outside [0, 16)"), m);
        m = tampered(s -> s.replaceFirst("\"out\":\\[", "\"out\":[999,"), l -> l).getMessage();
        assertTrue(m.contains("tensor steps.0.plans.0.branches.0.weight") && m.contains("expected shape"), m);
        m = tampered(s -> s.replaceFirst("\"format\":\"bonsai-packed-graph\"", "\"format\":\"other\""), l -> l).getMessage();
        assertTrue(m.contains("format") && m.contains("other"), m);
        m = tampered(s -> s.substring(0, s.length() / 2), l -> l).getMessage();
        assertTrue(m.contains("is not valid JSON"), m);
        m = tampered(s -> s.replaceFirst("\"output\":\\d+", "\"output\":400"), l -> l).getMessage();
        assertTrue(m.contains("output") && m.contains("400"), m);
        m = tampered(s -> s, l -> {
            l.add(NamedArray.ofFloats("extra", Shape.of(1), new float[1]));
            return l;
        }).getMessage();
        assertTrue(m.contains("tensor extra") && m.contains("unexpected"), m);
        m = tampered(s -> s, l -> {
            l.removeIf(a -> a.name().equals("steps.0.plans.0.branches.0.scale"));
            return l;
        }).getMessage();
        assertTrue(m.contains("steps.0.plans.0.branches.0.scale") && m.contains("missing"), m);
        m = tampered(s -> s, l -> {
            l.replaceAll(a -> a.name().equals("steps.0.plans.0.branches.0.shift") ? NamedArray.ofFloats(a.name(), Shape.of(3), new float[3]) : a);
            return l;
        }).getMessage();
        assertTrue(m.contains("steps.0.plans.0.branches.0.shift") && m.contains("expected shape"), m);
    }

    @Test
    void aFileWithoutTheKeySaysWhatItIs() throws IOException {
        Path f = dir.resolve("plain.safetensors");
        SafeTensors.write(f, List.of(NamedArray.ofFloats("w", Shape.of(2), new float[2])), Map.of());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PackedGraph.load(f));
        assertTrue(e.getMessage().contains("not a packed graph") && e.getMessage().contains(f.toString()), e.getMessage());
    }

    @Test
    void structuresAreValidatedWhenBuiltInMemoryToo() {
        Structure s = packed().structure();
        List<Step> steps = new ArrayList<>(s.steps());
        Step first = steps.get(0);
        steps.set(0, new Step(first.type(), first.name(), new int[] {0, 0}, first.ints(), first.value(), first.plans(), first.tensors()));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> PackedGraph.of(new Structure(s.inputDims(), steps, s.output(), s.denseMacs(), s.denseParams())));
        assertTrue(e.getMessage().contains("step 0 (CONV conv1) inputs") && e.getMessage().contains("residual"), e.getMessage());
        IllegalArgumentException dims = assertThrows(IllegalArgumentException.class,
                () -> PackedGraph.of(new Structure(new int[] {4, 16, 16}, s.steps(), s.output(), 0, 0)));
        assertTrue(dims.getMessage().contains("inChannels") && dims.getMessage().contains("expected 4"), dims.getMessage());
    }
}
