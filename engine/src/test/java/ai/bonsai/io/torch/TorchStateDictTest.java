package ai.bonsai.io.torch;

import ai.bonsai.tensor.DType;
import ai.bonsai.tensor.Tensor;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@link TorchStateDict} on files PyTorch wrote (resources torch/statedict-*.pth, made by
 * scripts/torch-statedict-fixtures.py with PyTorch 1.13; expected values in statedict-expected.json) and on files
 * built here byte by byte: a minimal state dict, forbidden globals, a truncated file, a corrupt zip, the legacy
 * format, and a pickle whose value is not a state dict. Each error must name the file (and the global).
 */
class TorchStateDictTest {
    @TempDir Path dir;

    private static byte[] resource(String name) throws Exception {
        try (InputStream in = TorchStateDictTest.class.getResourceAsStream("/torch/" + name)) {
            assertNotNull(in, "test resource torch/" + name);
            return in.readAllBytes();
        }
    }

    /** Every tensor of both PyTorch files equals the values PyTorch printed, in the file's order. */
    @Test
    void readsWhatPyTorchWrote() throws Exception {
        JsonNode expected = new ObjectMapper().readTree(resource("statedict-expected.json")).get("files");
        for (Iterator<String> files = expected.fieldNames(); files.hasNext(); ) {
            String file = files.next();
            Path p = dir.resolve(file);
            Files.write(p, resource(file));
            Map<String, Tensor> sd = TorchStateDict.read(p);
            JsonNode want = expected.get(file);
            assertEquals(iterable(want.fieldNames()), List.copyOf(sd.keySet()), file + ": keys in order");
            for (Map.Entry<String, Tensor> e : sd.entrySet()) {
                JsonNode w = want.get(e.getKey());
                int[] shape = new ObjectMapper().convertValue(w.get("shape"), int[].class);
                assertArrayEquals(shape, e.getValue().dims(), file + ": " + e.getKey() + " shape");
                String dtype = w.get("dtype").asText();
                assertEquals(dtype.equals("int64") ? DType.INT64 : DType.FLOAT32, e.getValue().dtype(), file + ": " + e.getKey() + " dtype");
                double[] v = new double[w.get("values").size()];
                for (int i = 0; i < v.length; i++) v[i] = w.get("values").get(i).asDouble();
                if (dtype.equals("int64")) {
                    long[] got = e.getValue().toLongArray();
                    for (int i = 0; i < v.length; i++) assertEquals((long) v[i], got[i], file + ": " + e.getKey() + "[" + i + "]");
                } else {
                    float[] got = e.getValue().toFloatArray();
                    // float16/bfloat16/float32 values are exact in float32; float64 is rounded to nearest.
                    for (int i = 0; i < v.length; i++) assertEquals((float) v[i], got[i], 0f, file + ": " + e.getKey() + "[" + i + "]");
                }
            }
        }
    }

    @Test
    void transposedViewIsReadInRowMajorOrder() throws Exception {
        Path p = dir.resolve("sd.pth");
        Files.write(p, resource("statedict-conv-bn.pth"));
        Map<String, Tensor> sd = TorchStateDict.read(p);
        float[] w = sd.get("3.weight").toFloatArray(), t = sd.get("extra.transposed").toFloatArray();   // (4, 3) and its (3, 4) transpose
        for (int i = 0; i < 4; i++) for (int j = 0; j < 3; j++) assertEquals(w[i * 3 + j], t[j * 4 + i]);
    }

    @Test
    void halfPrecisionConvertsExactly() {
        assertEquals(1f, TorchTensor.halfToFloat(0x3C00));
        assertEquals(-2f, TorchTensor.halfToFloat(0xC000));
        assertEquals(65504f, TorchTensor.halfToFloat(0x7BFF));
        assertEquals(0x1p-24f, TorchTensor.halfToFloat(0x0001));          // smallest subnormal
        assertEquals(Float.NEGATIVE_INFINITY, TorchTensor.halfToFloat(0xFC00));
        assertTrue(Float.isNaN(TorchTensor.halfToFloat(0x7E00)));
        assertEquals(-0f, TorchTensor.halfToFloat(0x8000));
        assertEquals(Float.floatToIntBits(-0f), Float.floatToIntBits(TorchTensor.halfToFloat(0x8000)));
    }

    // ------------------------------------------------------------------ files built here

    /** A state dict pickle as torch.save writes one, with two float tensors and an int64 counter. */
    static byte[] stateDictPickle(Map<String, byte[]> storages, boolean withMetadata) {
        P p = new P().op(0x80, 2).global("collections", "OrderedDict").op(')', 'R', '(');
        p.str("w").tensor("FloatStorage", "0", 6, new int[] {2, 3}, new int[] {3, 1});
        storages.put("data/0", floats(1, 2, 3, 4, 5, 6));
        p.str("b").tensor("FloatStorage", "1", 2, new int[] {2}, new int[] {1});
        storages.put("data/1", floats(-1, 0.5f));
        p.str("bn.num_batches_tracked").tensor("LongStorage", "2", 1, new int[] {}, new int[] {});
        storages.put("data/2", new byte[] {7, 0, 0, 0, 0, 0, 0, 0});
        p.op('u');
        if (withMetadata) p.op('}').str("_metadata").global("collections", "OrderedDict").op(')', 'R').str("").op('}').str("version").op('K', 1, 's', 's', 's', 'b');
        return p.op('.').bytes();
    }

    static byte[] stateDictFile(String root, byte[] pickle, Map<String, byte[]> storages) {
        Map<String, byte[]> e = new LinkedHashMap<>();
        e.put(root + "/data.pkl", pickle);
        storages.forEach((k, v) -> e.put(root + "/" + k, v));
        e.put(root + "/version", "3\n".getBytes(StandardCharsets.US_ASCII));
        return zip(e);
    }

    @Test
    void readsAGeneratedStateDict() throws Exception {
        Map<String, byte[]> st = new LinkedHashMap<>();
        byte[] f = stateDictFile("sd", stateDictPickle(st, true), st);
        Map<String, Tensor> sd = TorchStateDict.read(f, "gen.pth", TorchLimits.DEFAULT);
        assertEquals(List.of("w", "b", "bn.num_batches_tracked"), List.copyOf(sd.keySet()));
        assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6}, sd.get("w").toFloatArray());
        assertArrayEquals(new int[] {2, 3}, sd.get("w").dims());
        assertArrayEquals(new long[] {7}, sd.get("bn.num_batches_tracked").toLongArray());
        assertEquals(0, sd.get("bn.num_batches_tracked").dims().length);
    }

    @Test
    void forbiddenGlobalsAreNamedAndNeverCalled() {
        for (String[] g : new String[][] {{"os", "system"}, {"builtins", "eval"}, {"posix", "system"}, {"torch", "load"}}) {
            byte[] pickle = new P().op(0x80, 2).global(g[0], g[1]).str("touch /tmp/pwned").op(0x85, 'R', '.').bytes();
            byte[] f = stateDictFile("evil", pickle, Map.of());
            TorchFormatException e = assertThrows(TorchFormatException.class, () -> TorchStateDict.read(f, "evil.pth", TorchLimits.DEFAULT));
            assertTrue(e.getMessage().startsWith("evil.pth:evil/data.pkl: "), e.getMessage());
            assertTrue(e.getMessage().contains("global '" + g[0] + "." + g[1] + "' is not allowed"), e.getMessage());
        }
    }

    @Test
    void buildOnlyOnAnOrderedDict() {
        // BUILD on a plain dict (no OrderedDict made it) is the __setstate__ route of arbitrary objects: refused.
        byte[] pickle = new P().op(0x80, 2, '}', '}').str("_metadata").op('N', 's', 'b', '.').bytes();
        TorchFormatException e = assertThrows(TorchFormatException.class,
                () -> TorchStateDict.read(stateDictFile("x", pickle, Map.of()), "x.pth", TorchLimits.DEFAULT));
        assertTrue(e.getMessage().contains("x.pth:x/data.pkl: BUILD on a dict of 0"), e.getMessage());
    }

    @Test
    void truncatedFileIsCalledTruncated() throws Exception {
        byte[] full = resource("statedict-conv-bn.pth");
        Path p = dir.resolve("cut.pth");
        for (int len : new int[] {full.length / 2, full.length - 30, 10}) {
            Files.write(p, Arrays.copyOf(full, len));
            TorchFormatException e = assertThrows(TorchFormatException.class, () -> TorchStateDict.read(p));
            assertTrue(e.getMessage().startsWith(p + ": truncated: it starts as a zip archive"), len + " bytes: " + e.getMessage());
        }
    }

    @Test
    void corruptZipIsRefusedNamingTheEntry() throws Exception {
        Map<String, byte[]> st = new LinkedHashMap<>();
        byte[] f = stateDictFile("sd", stateDictPickle(st, false), st);
        // Flip a byte inside storage data/0 (stored uncompressed): its CRC no longer matches the directory's.
        byte[] needle = floats(1, 2, 3, 4, 5, 6);
        int at = indexOf(f, needle);
        assertTrue(at > 0);
        f[at + 5] ^= 0x40;
        TorchFormatException e = assertThrows(TorchFormatException.class, () -> TorchStateDict.read(f, "bad.pth", TorchLimits.DEFAULT));
        assertTrue(e.getMessage().startsWith("bad.pth: entry sd/data/0 has CRC"), e.getMessage());
        byte[] junk = "this is not a zip archive at all, just text".getBytes(StandardCharsets.US_ASCII);
        e = assertThrows(TorchFormatException.class, () -> TorchStateDict.read(junk, "junk.pth", TorchLimits.DEFAULT));
        assertTrue(e.getMessage().startsWith("junk.pth: not a zip archive"), e.getMessage());
    }

    @Test
    void legacyFormatAndNonStateDictsAreExplained() {
        byte[] legacy = new P().op(0x80, 2, 0x8a, 10).op('.').bytes();
        TorchFormatException e = assertThrows(TorchFormatException.class, () -> TorchStateDict.read(legacy, "old.pth", TorchLimits.DEFAULT));
        assertTrue(e.getMessage().startsWith("old.pth: a bare pickle stream (torch.save's legacy format"), e.getMessage());

        byte[] nested = new P().op(0x80, 2, '}', '(').str("epoch").op('K', 3).str("state_dict").op('}', 'u', '.').bytes();
        e = assertThrows(TorchFormatException.class, () -> TorchStateDict.read(stateDictFile("ck", nested, Map.of()), "ck.pth", TorchLimits.DEFAULT));
        assertTrue(e.getMessage().startsWith("ck.pth:ck/data.pkl: 'epoch' is a long (3), expected a tensor"), e.getMessage());

        byte[] list = new P().op(0x80, 2, ']', '.').bytes();
        e = assertThrows(TorchFormatException.class, () -> TorchStateDict.read(stateDictFile("l", list, Map.of()), "l.pth", TorchLimits.DEFAULT));
        assertTrue(e.getMessage().contains("l.pth:l/data.pkl: the saved value is a sequence of 0, expected a state dict"), e.getMessage());
    }

    @Test
    void bigEndianFilesAreRefused() {
        Map<String, byte[]> st = new LinkedHashMap<>();
        st.put("byteorder", "big".getBytes(StandardCharsets.US_ASCII));
        byte[] pickle = stateDictPickle(st, false);
        TorchFormatException e = assertThrows(TorchFormatException.class, () -> TorchStateDict.read(stateDictFile("be", pickle, st), "be.pth", TorchLimits.DEFAULT));
        assertTrue(e.getMessage().startsWith("be.pth:be/byteorder: 'big', expected 'little'"), e.getMessage());
    }

    // ------------------------------------------------------------------ byte builders

    private static final class P {
        final ByteArrayOutputStream b = new ByteArrayOutputStream();

        P op(int... v) { for (int x : v) b.write(x); return this; }

        P le(long v, int n) { for (int i = 0; i < n; i++) b.write((int) (v >>> (8 * i))); return this; }

        P str(String s) { byte[] u = s.getBytes(StandardCharsets.UTF_8); op('X').le(u.length, 4); b.writeBytes(u); return this; }

        P global(String m, String n) { op('c'); b.writeBytes((m + "\n" + n + "\n").getBytes(StandardCharsets.US_ASCII)); return this; }

        /** _rebuild_tensor_v2((storage pid), 0, size, stride, False, OrderedDict()) */
        P tensor(String storageClass, String key, int numel, int[] size, int[] stride) {
            global("torch._utils", "_rebuild_tensor_v2").op('(', '(').str("storage").global("torch", storageClass).str(key).str("cpu").op('K', numel, 't', 'Q');
            op('K', 0, '(');
            for (int d : size) op('K', d);
            op('t', '(');
            for (int s : stride) op('K', s);
            return op('t', 0x89).global("collections", "OrderedDict").op(')', 'R', 't', 'R');
        }

        byte[] bytes() { return b.toByteArray(); }
    }

    static byte[] floats(float... v) {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        for (float f : v) { int x = Float.floatToIntBits(f); for (int i = 0; i < 4; i++) b.write(x >>> (8 * i)); }
        return b.toByteArray();
    }

    /** A stored zip with data descriptors, as PyTorch writes (without its 64-byte alignment padding). */
    static byte[] zip(Map<String, byte[]> entries) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(), cd = new ByteArrayOutputStream();
        for (Map.Entry<String, byte[]> e : entries.entrySet()) {
            byte[] name = e.getKey().getBytes(StandardCharsets.UTF_8), raw = e.getValue();
            CRC32 crc = new CRC32();
            crc.update(raw);
            int offset = out.size();
            le(out, 0x04034b50, 4); le(out, 20, 2); le(out, 0x0808, 2); le(out, 0, 2); le(out, 0, 4);
            le(out, 0, 4); le(out, 0, 4); le(out, 0, 4); le(out, name.length, 2); le(out, 0, 2);
            out.writeBytes(name);
            out.writeBytes(raw);
            le(out, 0x08074b50, 4); le(out, crc.getValue(), 4); le(out, raw.length, 4); le(out, raw.length, 4);
            le(cd, 0x02014b50, 4); le(cd, 20, 2); le(cd, 20, 2); le(cd, 0x0808, 2); le(cd, 0, 2); le(cd, 0, 4);
            le(cd, crc.getValue(), 4); le(cd, raw.length, 4); le(cd, raw.length, 4);
            le(cd, name.length, 2); le(cd, 0, 2); le(cd, 0, 2); le(cd, 0, 2); le(cd, 0, 2); le(cd, 0, 4); le(cd, offset, 4);
            cd.writeBytes(name);
        }
        int cdOffset = out.size();
        out.writeBytes(cd.toByteArray());
        le(out, 0x06054b50, 4); le(out, 0, 2); le(out, 0, 2); le(out, entries.size(), 2); le(out, entries.size(), 2);
        le(out, cd.size(), 4); le(out, cdOffset, 4); le(out, 0, 2);
        return out.toByteArray();
    }

    private static void le(ByteArrayOutputStream o, long v, int n) { for (int i = 0; i < n; i++) o.write((int) (v >>> (8 * i)) & 0xFF); }

    private static int indexOf(byte[] hay, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= hay.length; i++) {
            for (int j = 0; j < needle.length; j++) if (hay[i + j] != needle[j]) continue outer;
            return i;
        }
        return -1;
    }

    private static List<String> iterable(Iterator<String> it) {
        List<String> l = new java.util.ArrayList<>();
        it.forEachRemaining(l::add);
        return l;
    }
}
