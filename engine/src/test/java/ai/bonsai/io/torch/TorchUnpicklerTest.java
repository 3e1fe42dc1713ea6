package ai.bonsai.io.torch;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The restricted unpickler on hand-built pickles: each supported opcode, the allowlist (forbidden globals
 * rejected with their name), tensors and storages, and every bound (memo, stack, MARK depth, string length,
 * allocation, truncation). Expected values were worked out from the pickle format by hand.
 */
class TorchUnpicklerTest {
    /** Builds pickle bytes. */
    private static final class P {
        final ByteArrayOutputStream b = new ByteArrayOutputStream();

        P op(int... v) { for (int x : v) b.write(x); return this; }

        P le(long v, int n) { for (int i = 0; i < n; i++) b.write((int) (v >>> (8 * i))); return this; }

        P str(String s) { byte[] u = s.getBytes(StandardCharsets.UTF_8); op('X').le(u.length, 4); b.writeBytes(u); return this; }

        P global(String m, String n) { op('c'); b.writeBytes((m + "\n" + n + "\n").getBytes(StandardCharsets.US_ASCII)); return this; }

        byte[] bytes() { return b.toByteArray(); }

        static P proto() { return new P().op(0x80, 2); }
    }

    private static Object load(byte[] b) throws TorchFormatException { return load(b, TorchLimits.DEFAULT, null); }

    private static Object load(byte[] b, TorchLimits l, TorchUnpickler.StorageResolver r) throws TorchFormatException {
        return TorchUnpickler.load(b, "test.pt:root/data.pkl", l, r);
    }

    private static String rejected(byte[] b) { return rejected(b, TorchLimits.DEFAULT); }

    private static String rejected(byte[] b, TorchLimits l) {
        TorchFormatException e = assertThrows(TorchFormatException.class, () -> load(b, l, null));
        assertTrue(e.getMessage().startsWith("test.pt:root/data.pkl: "), e.getMessage());
        return e.getMessage();
    }

    private static TorchLimits limits(int memo, int stack, int marks, int string, long alloc) {
        TorchLimits d = TorchLimits.DEFAULT;
        return new TorchLimits(d.maxArchiveBytes(), d.maxEntries(), d.maxEntryBytes(), d.maxCompressionRatio(), memo, stack, marks, string, alloc, d.maxModuleDepth(), d.maxRank());
    }

    @Test
    void scalars() throws Exception {
        assertNull(load(P.proto().op('N', '.').bytes()));
        assertEquals(true, load(P.proto().op(0x88, '.').bytes()));
        assertEquals(false, load(P.proto().op(0x89, '.').bytes()));
        assertEquals(200L, load(P.proto().op('K', 200, '.').bytes()));
        assertEquals(513L, load(P.proto().op('M', 1, 2, '.').bytes()));
        assertEquals(-2L, load(P.proto().op('J').le(-2, 4).op('.').bytes()));
        assertEquals(-129L, load(P.proto().op(0x8a, 2, 0x7f, 0xff, '.').bytes()));       // LONG1, two bytes, negative
        assertEquals(1L << 40, load(P.proto().op(0x8a, 6, 0, 0, 0, 0, 0, 1, '.').bytes()));
        assertEquals(1.5, load(P.proto().op('G', 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, '.').bytes()));
        assertEquals("héllo", load(P.proto().str("héllo").op('.').bytes()));
        assertEquals("ab", load(P.proto().op(0x8c, 2, 'a', 'b', '.').bytes()));
    }

    @Test
    void containersAndMemo() throws Exception {
        assertEquals(List.of(), load(P.proto().op(')', '.').bytes()));
        assertEquals(List.of(1L, 2L), load(P.proto().op('(', 'K', 1, 'K', 2, 't', '.').bytes()));
        assertEquals(List.of(1L), load(P.proto().op('K', 1, 0x85, '.').bytes()));
        assertEquals(List.of(1L, 2L), load(P.proto().op('K', 1, 'K', 2, 0x86, '.').bytes()));
        assertEquals(List.of(1L, 2L, 3L), load(P.proto().op('K', 1, 'K', 2, 'K', 3, 0x87, '.').bytes()));
        assertEquals(List.of(1L, 2L, 3L), load(P.proto().op(']', 'K', 1, 'a', '(', 'K', 2, 'K', 3, 'e', '.').bytes()));
        assertEquals(List.of(4L), load(P.proto().op('(', 'K', 4, 'l', '.').bytes()));
        assertEquals(Map.of("a", 1L, "b", 2L), load(P.proto().op('}').str("a").op('K', 1, 's', '(').str("b").op('K', 2, 'u', '.').bytes()));
        assertEquals(Map.of("c", 3L), load(P.proto().op('(').str("c").op('K', 3, 'd', '.').bytes()));
        // BINPUT / BINGET / LONG_BINPUT / LONG_BINGET, DUP, POP, POP_MARK
        assertEquals(List.of("x", "x", "x"), load(P.proto().str("x").op('q', 5, 'h', 5, 'r').le(70000, 4).op('j').le(70000, 4).op(0x87, '.').bytes()));
        assertEquals(List.of(7L, 7L), load(P.proto().op('K', 7, '2', 0x86, '.').bytes()));
        assertEquals(1L, load(P.proto().op('K', 1, 'K', 2, '0', '.').bytes()));
        assertEquals(1L, load(P.proto().op('K', 1, '(', 'K', 2, 'K', 3, '1', '.').bytes()));
        // A list that contains itself is built without recursing.
        Object cyc = load(P.proto().op(']', 'q', 0, 'h', 0, 'a', '.').bytes());
        assertSame(cyc, ((List<?>) cyc).get(0));
    }

    @Test
    void torchScriptObjects() throws Exception {
        byte[] b = P.proto().global("__torch__.m", "Net").op(')', 0x81, '}', '(').str("training").op(0x88).str("k").op('K', 3, 'u', 'b', '.').bytes();
        TorchObject o = (TorchObject) load(b);
        assertEquals("__torch__.m.Net", o.className());
        assertEquals("Net", o.simpleName());
        assertEquals(Map.of("training", true, "k", 3L), o.attributes());
    }

    @Test
    void forbiddenGlobalsAreNamed() {
        for (String[] g : new String[][] {{"os", "system"}, {"builtins", "eval"}, {"subprocess", "Popen"}, {"torch", "load"}, {"torch._utils", "_rebuild_qtensor"}, {"__torch__x", "Y"}}) {
            String msg = rejected(P.proto().global(g[0], g[1]).op('.').bytes());
            assertTrue(msg.contains("'" + g[0] + "." + g[1] + "' is not allowed"), msg);
        }
        // Allowed globals used the wrong way.
        assertTrue(rejected(P.proto().global("__torch__.m", "Net").op(')', 'R', '.').bytes()).contains("REDUCE on global '__torch__.m.Net'"));
        assertTrue(rejected(P.proto().global("collections", "OrderedDict").op(')', 0x81, '.').bytes()).contains("NEWOBJ on global collections.OrderedDict"));
        assertTrue(rejected(P.proto().global("torch", "FloatStorage").op(')', 'R', '.').bytes()).contains("may not be called"));
        assertTrue(rejected(P.proto().op('}', '}', 'b', '.').bytes()).contains("BUILD on a dict"));
        assertTrue(rejected(P.proto().global("collections", "OrderedDict").op('.').bytes()).contains("bare global"));
        assertTrue(rejected(P.proto().op(']').global("collections", "OrderedDict").op('a', '.').bytes()).contains("appended to a list"));
        assertTrue(rejected(P.proto().op(0x80, 3, 'N', '.').bytes()).contains("protocol 3"));
        assertTrue(rejected(P.proto().op('S', '.').bytes()).contains("opcode 0x53 ('S') is not supported"));
        assertTrue(rejected(P.proto().op('}', '(', ']', 'K', 1, 'u', '.').bytes()).contains("dict key a list"));
    }

    @Test
    void tensorsFromStorages() throws Exception {
        float[] data = {1, 2, 3, 4, 5, 6};
        byte[] raw = new byte[24];
        for (int i = 0; i < 6; i++) { int x = Float.floatToIntBits(data[i]); for (int k = 0; k < 4; k++) raw[i * 4 + k] = (byte) (x >>> (8 * k)); }
        TorchUnpickler.StorageResolver r = (dtype, key, numel) -> {
            assertEquals(TorchDType.FLOAT32, dtype);
            assertEquals("0", key);
            return new TorchStorage(dtype, "data/" + key, numel, () -> raw);
        };
        // A transposed (3, 2) view of a (2, 3) storage: stride (1, 3), offset 0.
        byte[] b = tensor(6, 0, new int[] {3, 2}, new int[] {1, 3});
        TorchTensor t = (TorchTensor) load(b, TorchLimits.DEFAULT, r);
        assertArrayEquals(new int[] {3, 2}, t.shape());
        assertArrayEquals(new float[] {1, 4, 2, 5, 3, 6}, t.toFloats());
        assertArrayEquals(new float[] {1, 4, 2, 5, 3, 6}, t.toTensor().toFloatArray());
        // Views reaching past the storage, negative strides and too many dimensions are refused.
        assertTrue(assertThrows(TorchFormatException.class, () -> load(tensor(6, 1, new int[] {2, 3}, new int[] {3, 1}), TorchLimits.DEFAULT, r)).getMessage().contains("reaches element 6"));
        assertTrue(assertThrows(TorchFormatException.class, () -> load(tensor(6, 0, new int[] {2}, new int[] {-1}), TorchLimits.DEFAULT, r)).getMessage().contains("negative"));
        assertTrue(assertThrows(TorchFormatException.class, () -> load(tensor(6, 0, new int[9], new int[9]), TorchLimits.DEFAULT, r)).getMessage().contains("dimensions"));
        assertTrue(assertThrows(TorchFormatException.class, () -> load(tensor(6, 0, new int[] {6}, new int[] {1}), TorchLimits.DEFAULT, null)).getMessage().contains("may not reference storages"));
    }

    private static byte[] tensor(int numel, int offset, int[] size, int[] stride) {
        P p = P.proto().global("torch._utils", "_rebuild_tensor_v2").op('(', '(').str("storage").global("torch", "FloatStorage").str("0").str("cpu").op('J').le(numel, 4).op('t', 'Q');
        p.op('J').le(offset, 4).op('(');
        for (int s : size) p.op('J').le(s, 4);
        p.op('t', '(');
        for (int s : stride) p.op('J').le(s, 4);
        return p.op('t', 0x89).global("collections", "OrderedDict").op(')', 'R', 't', 'R', '.').bytes();
    }

    @Test
    void bounds() {
        assertTrue(rejected(P.proto().op('N', 'q', 9, '.').bytes(), limits(4, 100, 10, 100, 1 << 20)).contains("memo index 9"));
        P many = P.proto();
        for (int i = 0; i < 5; i++) many.op('N', 'q', i, '0');
        assertTrue(rejected(many.op('N', '.').bytes(), limits(4, 100, 10, 100, 1 << 20)).contains("memo index 4"));
        P deep = P.proto();
        for (int i = 0; i < 11; i++) deep.op('(');
        assertTrue(rejected(deep.bytes(), limits(4, 100, 10, 100, 1 << 20)).contains("more than 10 nested MARKs"));
        P wide = P.proto();
        for (int i = 0; i < 101; i++) wide.op('N');
        assertTrue(rejected(wide.bytes(), limits(4, 100, 10, 100, 1 << 20)).contains("stack of more than 100"));
        assertTrue(rejected(P.proto().str("x".repeat(101)).op('.').bytes(), limits(4, 100, 10, 100, 1 << 20)).contains("string of 101 bytes"));
        assertTrue(rejected(P.proto().op('X').le(0x7FFFFFFFL, 4).bytes()).contains("string of 2147483647 bytes"));
        P alloc = P.proto().op(']');
        for (int i = 0; i < 200; i++) alloc.op('N', 'a');
        assertTrue(rejected(alloc.op('.').bytes(), limits(4, 100, 10, 100, 2000)).contains("more than the limit of 2000 bytes"));
        // Deeply nested lists built without MARKs stay iterative.
        P nest = P.proto().op(']');
        for (int i = 0; i < 100_000; i++) nest.op(']', 'a');
        assertDoesNotThrow(() -> load(nest.op('.').bytes()));
        // Truncation, stray bytes, unbalanced stacks.
        assertTrue(rejected(P.proto().op('X', 5, 0, 0, 0, 'a').bytes()).contains("truncated"));
        assertTrue(rejected(P.proto().op('N').bytes()).contains("truncated"));
        assertTrue(rejected(P.proto().op('N', '.', 'N').bytes()).contains("after STOP"));
        assertTrue(rejected(P.proto().op('N', 'N', '.').bytes()).contains("2 values on the stack"));
        assertTrue(rejected(P.proto().op('0', '.').bytes()).contains("empty stack"));
        assertTrue(rejected(P.proto().op('h', 3, '.').bytes()).contains("memo index 3 was never stored"));
        assertTrue(rejected(P.proto().op('t', '.').bytes()).contains("no MARK"));
        assertTrue(rejected(P.proto().op(0x8a, 9).bytes()).contains("LONG1 of 9 bytes"));
    }
}
