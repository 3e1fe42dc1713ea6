package ai.bonsai.io;

import ai.bonsai.tensor.DType;
import ai.bonsai.tensor.Shape;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** The safetensors reader and writer: exact bytes, round trips, atomic replacement and every corruption check. */
class SafeTensorsTest {
    @TempDir Path tmp;

    private static byte[] le64(long v) {
        return ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(v).array();
    }

    private static byte[] concat(byte[]... parts) {
        ByteArrayOutputStream o = new ByteArrayOutputStream();
        for (byte[] p : parts) o.writeBytes(p);
        return o.toByteArray();
    }

    private static byte[] ascii(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    @Test void writesExactlyTheBytesOfTheFormat() throws IOException {
        Path f = tmp.resolve("one.safetensors");
        SafeTensors.write(f, List.of(NamedArray.ofFloats("w", Shape.of(2), new float[] {1.0f, -2.5f})), Map.of("format", "pt"));
        String json = "{\"__metadata__\":{\"format\":\"pt\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}   ";
        assertEquals(88, json.length(), "85 bytes of JSON padded with 3 spaces to a multiple of 8");
        byte[] expected = concat(
                new byte[] {88, 0, 0, 0, 0, 0, 0, 0},
                ascii(json),
                new byte[] {0, 0, (byte) 0x80, 0x3F},          // 1.0f little-endian
                new byte[] {0, 0, 0x20, (byte) 0xC0});         // -2.5f little-endian
        assertArrayEquals(expected, Files.readAllBytes(f));
    }

    @Test void emptyMetadataIsLeftOutAndIntegersAreLittleEndian() throws IOException {
        Path f = tmp.resolve("ints.safetensors");
        SafeTensors.write(f, List.of(
                NamedArray.ofInts("i", Shape.of(1), new int[] {0x01020304}),
                NamedArray.ofLongs("l", Shape.scalar(), new long[] {-2})), Map.of());
        String json = "{\"i\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]},\"l\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[4,12]}}";
        String padded = json + " ".repeat((8 - json.length() % 8) % 8);
        byte[] expected = concat(le64(padded.length()), ascii(padded),
                new byte[] {4, 3, 2, 1},
                new byte[] {(byte) 0xFE, -1, -1, -1, -1, -1, -1, -1});
        assertArrayEquals(expected, Files.readAllBytes(f));
    }

    @Test void readsAHandBuiltFile() throws IOException {
        String json = "{\"b\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[8,16]},\"a\":{\"dtype\":\"F32\",\"shape\":[2,1],\"data_offsets\":[0,8]},"
                + "\"__metadata__\":{\"epoch\":\"3\"}}";
        Path f = Files.write(tmp.resolve("hand.safetensors"), concat(le64(json.length()), ascii(json),
                new byte[] {0, 0, (byte) 0x80, 0x3F, 0, 0, 0, 0x40},  // 1.0f, 2.0f
                le64(7)));
        SafeTensors.Contents c = SafeTensors.read(f);
        assertEquals(List.of("b", "a"), c.tensors().stream().map(NamedArray::name).toList(), "header order, not offset order");
        assertArrayEquals(new float[] {1f, 2f}, c.get("a").floats());
        assertEquals(Shape.of(2, 1), c.get("a").shape());
        assertArrayEquals(new long[] {7}, c.get("b").longs());
        assertEquals(DType.INT64, c.get("b").dtype());
        assertEquals(Map.of("epoch", "3"), c.metadata());
        var e = assertThrows(IllegalArgumentException.class, () -> c.get("z"));
        assertEquals(f + ": no tensor 'z'; the file has [b, a]", e.getMessage());
        var s = assertThrows(IllegalStateException.class, () -> c.get("b").floats());
        assertEquals("NamedArray 'b' holds INT64, not FLOAT32", s.getMessage());
    }

    @Test void roundTripsTypesShapesOrderAndMetadata() throws IOException {
        float[] big = new float[300_007];   // larger than one 1 MiB write chunk
        for (int i = 0; i < big.length; i++) big[i] = (float) Math.sin(i) * 1e3f;
        big[5] = Float.NaN;
        big[6] = Float.NEGATIVE_INFINITY;
        big[7] = -0.0f;
        List<NamedArray> tensors = List.of(
                NamedArray.ofFloats("layer1.conv.weight", Shape.of(4, 3, 3, 3), new float[108]),
                NamedArray.ofFloats("big", Shape.of(300_007), big),
                NamedArray.ofInts("counts", Shape.of(2, 2), new int[] {Integer.MIN_VALUE, -1, 0, Integer.MAX_VALUE}),
                NamedArray.ofLongs("step", Shape.scalar(), new long[] {Long.MAX_VALUE}),
                NamedArray.ofFloats("empty", Shape.of(0, 5), new float[0]),
                NamedArray.ofLongs("a.after.empty", Shape.of(1), new long[] {42}));
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("z-first", "1");
        meta.put("model", "resnet20 \"dsp\" ∆ ünïcode\n\ttab");
        meta.put("a-last", "");
        Path f = tmp.resolve("sub/dir/ckpt.safetensors");
        SafeTensors.write(f, tensors, meta);
        assertEquals(0, (Files.size(f) - 8 - tensors.stream().mapToLong(NamedArray::byteSize).sum()) % 8, "header padded to 8");

        SafeTensors.Contents c = SafeTensors.read(f);
        assertEquals(tensors, c.tensors());
        assertEquals(List.copyOf(meta.entrySet()), List.copyOf(c.metadata().entrySet()), "metadata keeps its order");
        assertEquals(Float.floatToRawIntBits(-0.0f), Float.floatToRawIntBits(c.get("big").floats()[7]));

        // Rewriting what was read gives the same bytes.
        Path g = tmp.resolve("again.safetensors");
        SafeTensors.write(g, c.tensors(), c.metadata());
        assertArrayEquals(Files.readAllBytes(f), Files.readAllBytes(g));
    }

    @Test void writerRejectsDuplicateAndReservedNames() {
        NamedArray a = NamedArray.ofFloats("a", Shape.of(1), new float[1]);
        var e = assertThrows(IllegalArgumentException.class, () -> SafeTensors.write(tmp.resolve("x"), List.of(a, a), Map.of()));
        assertEquals("safetensors: tensor name 'a' appears twice", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> SafeTensors.write(tmp.resolve("x"),
                List.of(NamedArray.ofFloats("__metadata__", Shape.of(1), new float[1])), Map.of()));
        assertEquals("safetensors: '__metadata__' is reserved and cannot name a tensor", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> NamedArray.ofFloats("w", Shape.of(2, 3), new float[5]));
        assertEquals("NamedArray 'w': shape [2, 3] has 6 elements, but the array has 5", e.getMessage());
        assertFalse(Files.exists(tmp.resolve("x")));
    }

    /** Files in the folder, by name, to see that no temporary file is left. */
    private List<String> listing() throws IOException {
        try (Stream<Path> s = Files.list(tmp)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test void aCrashMidWriteLeavesThePreviousFileIntactAndNoTempFile() throws IOException {
        Path f = tmp.resolve("model.safetensors");
        SafeTensors.write(f, List.of(NamedArray.ofFloats("w", Shape.of(3), new float[] {1, 2, 3})), Map.of("epoch", "1"));
        byte[] before = Files.readAllBytes(f);

        float[] big = new float[600_000];   // several chunks, so the failure lands part-way through the data
        List<NamedArray> next = List.of(NamedArray.ofFloats("w", Shape.of(600_000), big));
        long[] seen = {0};
        IOException crash = new IOException("simulated disk failure");
        var e = assertThrows(IOException.class, () -> SafeTensors.write(f, next, Map.of("epoch", "2"), bytes -> {
            seen[0] = bytes;
            if (bytes > (1 << 20)) throw crash;
        }));
        assertSame(crash, e);
        assertTrue(seen[0] > (1 << 20) && seen[0] < 8 + 2_400_000, "failed part-way, after " + seen[0] + " bytes");
        assertArrayEquals(before, Files.readAllBytes(f), "the old file is untouched");
        assertEquals(List.of("model.safetensors"), listing(), "no temporary file left behind");

        // An unchecked failure (e.g. out of memory in a real crash) cleans up the same way.
        assertThrows(IllegalStateException.class, () -> SafeTensors.write(f, next, Map.of(), bytes -> {
            throw new IllegalStateException("boom");
        }));
        assertArrayEquals(before, Files.readAllBytes(f));
        assertEquals(List.of("model.safetensors"), listing());

        SafeTensors.write(f, next, Map.of("epoch", "2"));
        assertEquals("2", SafeTensors.read(f).metadata().get("epoch"));
        assertEquals(List.of("model.safetensors"), listing());
    }

    // ------------------------------------------------------------------------------------------ corruption

    /** A file with the given header text (its length as the prefix) followed by {@code dataBytes} zero bytes. */
    private Path file(String json, int dataBytes) throws IOException {
        byte[] h = ascii(json);
        return Files.write(tmp.resolve("bad.safetensors"), concat(le64(h.length), h, new byte[dataBytes]));
    }

    private void assertRejected(Path f, String message) {
        var e = assertThrows(IOException.class, () -> SafeTensors.read(f));
        assertEquals(f + ": " + message, e.getMessage());
    }

    private static final String W = "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}";

    @Test void rejectsBadHeaderLengths() throws IOException {
        Path f = Files.write(tmp.resolve("short.safetensors"), new byte[] {1, 2, 3});
        assertRejected(f, "file is 3 bytes, too short for the 8-byte header length");
        f = Files.write(tmp.resolve("huge.safetensors"), concat(le64(200_000_000L), ascii("{}")));
        assertRejected(f, "header length 200000000 (the first 8 bytes) is over the limit of 100000000 bytes; not a safetensors file, or a corrupt one");
        f = Files.write(tmp.resolve("neg.safetensors"), concat(le64(-1), ascii("{}")));
        assertRejected(f, "header length 18446744073709551615 (the first 8 bytes) is over the limit of 100000000 bytes; not a safetensors file, or a corrupt one");
        f = Files.write(tmp.resolve("cut.safetensors"), concat(le64(100), ascii("{}")));
        assertRejected(f, "header length 100 (the first 8 bytes) is more than the 2 bytes after them; the file is truncated or not a safetensors file");
    }

    @Test void rejectsMalformedJson() throws IOException {
        assertRejected(file("[1, 2]", 0), "header must be a JSON object, found '[' at its start");
        assertRejected(file("{" + W + "} x", 8), "header is not valid JSON: Unrecognized token 'x': was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false') (at character 56 of the header)");
        assertRejected(file("{" + W + "}{}", 8), "header has '{' after its JSON object; only space padding may follow");
        assertRejected(file("{\"w\": {\"dtype\": \"F32\",", 8), "header entry 'w' is not valid JSON: Unexpected end-of-input within/between Object entries (at character 22 of the header)");
        byte[] latin1 = concat(ascii("{\"__metadata__\":{\"k\":\""), new byte[] {(byte) 0xE9}, ascii("\"}}"));
        Path f = Files.write(tmp.resolve("utf.safetensors"), concat(le64(latin1.length), latin1));
        var e = assertThrows(IOException.class, () -> SafeTensors.read(f));
        assertTrue(e.getMessage().startsWith(f + ": header is not valid UTF-8"), e.getMessage());
    }

    @Test void rejectsBadEntries() throws IOException {
        assertRejected(file("{\"w\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4),
                "tensor 'w': dtype 'F16' is not supported; expected F32, I32 or I64");
        assertRejected(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8),
                "tensor 'w': shape[0] must be a non-negative integer, got -2");
        assertRejected(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8),
                "tensor 'w': shape[0] must be a non-negative integer, got 2.5");
        assertRejected(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,8]}}", 8),
                "tensor 'w': data_offsets [0, 8] span 8 bytes, but F32 shape [2, 3] needs 24");
        assertRejected(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8),
                "tensor 'w': data_offsets [8, 0] end before they begin");
        assertRejected(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8),
                "tensor 'w': data_offsets must be [begin, end], got [0]");
        assertRejected(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8),
                "tensor 'w': data_offsets must be [begin, end], got nothing");
        assertRejected(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"extra\":1}}", 8),
                "tensor 'w': unexpected field 'extra'; expected only dtype, shape and data_offsets");
        assertRejected(file("{\"w\":[1,2]}", 0),
                "tensor 'w': expected an object with dtype, shape and data_offsets, got array");
        assertRejected(file("{\"w\":{\"dtype\":\"F32\",\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
                "header entry 'w' is not valid JSON: Duplicate field 'dtype' for `ObjectNode`: not allowed when `DeserializationFeature.FAIL_ON_READING_DUP_TREE_KEY` enabled (at character 28 of the header)");
        assertRejected(file("{\"__metadata__\":{\"epoch\":3}}", 0), "metadata 'epoch' must be a string, got number 3");
        assertRejected(file("{\"__metadata__\":[]}", 0), "'__metadata__' must be an object of strings, got array");
    }

    @Test void rejectsBadLayouts() throws IOException {
        assertRejected(file("{" + W + "," + W + "}", 8), "tensor 'w' appears twice in the header");
        assertRejected(file("{" + W + "}", 4), "the data section holds 4 bytes, but tensor 'w' ends at 8; expected them to match");
        assertRejected(file("{" + W + "}", 12), "the data section holds 12 bytes, but tensor 'w' ends at 8; expected them to match");
        assertRejected(file("{}", 4), "the data section holds 4 bytes, but no tensors; expected them to match");
        assertRejected(file("{" + W + ",\"v\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8),
                "tensor 'v': data_offsets [4, 8] overlap tensor 'w' [0, 8]");
        assertRejected(file("{" + W + ",\"v\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[12,16]}}", 16),
                "tensor 'v': data begins at 12, expected 8 (tensors must be laid out without gaps)");
        assertRejected(file("{\"v\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8),
                "tensor 'v': data begins at 4, expected 0 (tensors must be laid out without gaps)");
    }

    /** Cross-check with the reference implementation when python3 has it (it is not installed by the build). */
    @Test void interoperatesWithThePythonPackageWhenPresent() throws Exception {
        assumeTrue(python("import safetensors, numpy") == 0, "python3 with safetensors and numpy not available");
        Path ours = tmp.resolve("ours.safetensors");
        SafeTensors.write(ours, List.of(NamedArray.ofFloats("w", Shape.of(2, 2), new float[] {1, 2, 3, 4}),
                NamedArray.ofLongs("n", Shape.of(1), new long[] {5})), Map.of("k", "v"));
        Path theirs = tmp.resolve("theirs.safetensors");
        assertEquals(0, python("from safetensors.numpy import load_file, save_file; import numpy as np\n"
                + "d = load_file('" + ours + "')\n"
                + "assert d['w'].tolist() == [[1, 2], [3, 4]] and d['w'].dtype == np.float32, d\n"
                + "assert d['n'].tolist() == [5] and d['n'].dtype == np.int64, d\n"
                + "save_file({'a': np.arange(6, dtype=np.int32).reshape(2, 3)}, '" + theirs + "', metadata={'m': 'x'})"));
        SafeTensors.Contents c = SafeTensors.read(theirs);
        assertArrayEquals(new int[] {0, 1, 2, 3, 4, 5}, c.get("a").ints());
        assertEquals(Shape.of(2, 3), c.get("a").shape());
        assertEquals(Map.of("m", "x"), c.metadata());
    }

    private static int python(String code) {
        try {
            Process p = new ProcessBuilder("python3", "-c", code).redirectErrorStream(true).start();
            byte[] out = p.getInputStream().readAllBytes();
            if (!p.waitFor(60, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                return -1;
            }
            if (p.exitValue() != 0 && !code.startsWith("import")) System.err.write(out, 0, out.length);   // a failed cross-check, not a probe
            return p.exitValue();
        } catch (IOException e) {
            return -1;   // no python3
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return -1;
        }
    }
}
