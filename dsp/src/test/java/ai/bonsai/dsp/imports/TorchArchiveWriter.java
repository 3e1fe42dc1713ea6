package ai.bonsai.dsp.imports;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32;
import java.util.zip.Deflater;

/**
 * Test-side writer of TorchScript-shaped archives, so that tests can build models of any shape (and broken
 * ones) without PyTorch: a protocol-2 pickle emitter for module trees and constant tuples, and a zip writer
 * (stored or deflated entries, classic end record, data descriptors like PyTorch's). Not a general pickler.
 */
final class TorchArchiveWriter {
    private TorchArchiveWriter() {}

    /** A module object: qualified class name and attributes (Boolean, null, Obj, FloatT, LongT). */
    record Obj(String className, Map<String, Object> attrs) {}

    record FloatT(float[] data, int... shape) {}

    record LongT(long[] data, int... shape) {}

    /** Emits pickle opcodes. */
    static final class Pickle {
        final ByteArrayOutputStream out = new ByteArrayOutputStream();
        final Map<String, byte[]> storages = new LinkedHashMap<>();
        final String folder;

        Pickle(String folder) { this.folder = folder; }

        Pickle op(int... bytes) { for (int b : bytes) out.write(b); return this; }

        Pickle str(String s) {
            byte[] b = s.getBytes(StandardCharsets.UTF_8);
            op('X').le(b.length, 4);
            out.writeBytes(b);
            return this;
        }

        Pickle le(long v, int n) { for (int i = 0; i < n; i++) out.write((int) (v >>> (8 * i)) & 0xFF); return this; }

        Pickle integer(long v) {
            if (v >= 0 && v < 256) return op('K', (int) v);
            if (v >= 0 && v < 65536) return op('M').le(v, 2);
            return op('J').le(v, 4);
        }

        Pickle global(String module, String name) {
            op('c');
            out.writeBytes((module + "\n" + name + "\n").getBytes(StandardCharsets.US_ASCII));
            return this;
        }

        Pickle value(Object v) {
            if (v == null) return op('N');
            if (v instanceof Boolean b) return op(b ? 0x88 : 0x89);
            if (v instanceof Obj o) return object(o);
            if (v instanceof FloatT f) return tensor("FloatStorage", floats(f.data()), f.data().length, f.shape());
            if (v instanceof LongT l) return tensor("LongStorage", longs(l.data()), l.data().length, l.shape());
            throw new IllegalArgumentException("cannot pickle " + v);
        }

        Pickle object(Obj o) {
            int dot = o.className().lastIndexOf('.');
            global(o.className().substring(0, dot), o.className().substring(dot + 1)).op(')', 0x81, '}', '(');
            for (Map.Entry<String, Object> e : o.attrs().entrySet()) { str(e.getKey()); value(e.getValue()); }
            return op('u', 'b');
        }

        Pickle tensor(String storageClass, byte[] bytes, int numel, int[] shape) {
            String key = Integer.toString(storages.size());
            storages.put(folder + "/" + key, bytes);
            global("torch._utils", "_rebuild_tensor_v2").op('(', '(').str("storage").global("torch", storageClass).str(key).str("cpu").integer(numel).op('t', 'Q');
            integer(0).op('(');
            for (int d : shape) integer(d);
            op('t', '(');
            long stride = 1;
            long[] strides = new long[shape.length];
            for (int i = shape.length - 1; i >= 0; i--) { strides[i] = stride; stride *= shape[i]; }
            for (long s : strides) integer(s);
            op('t', 0x89).global("collections", "OrderedDict").op(')', 'R', 't', 'R');
            return this;
        }

        byte[] finish() { return op('.').out.toByteArray(); }
    }

    static byte[] floats(float[] v) {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        for (float f : v) { int x = Float.floatToIntBits(f); for (int i = 0; i < 4; i++) b.write(x >>> (8 * i)); }
        return b.toByteArray();
    }

    static byte[] longs(long[] v) {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        for (long x : v) for (int i = 0; i < 8; i++) b.write((int) (x >>> (8 * i)));
        return b.toByteArray();
    }

    /** A zip of {@code entries} (names used as given); names ending in .py are deflated, the rest stored. */
    static byte[] zip(Map<String, byte[]> entries) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream cd = new ByteArrayOutputStream();
        for (Map.Entry<String, byte[]> e : entries.entrySet()) {
            byte[] name = e.getKey().getBytes(StandardCharsets.UTF_8), raw = e.getValue();
            boolean deflate = e.getKey().endsWith(".py");
            byte[] data = deflate ? deflate(raw) : raw;
            CRC32 crc = new CRC32();
            crc.update(raw);
            int offset = out.size();
            le(out, 0x04034b50, 4); le(out, 20, 2); le(out, 0x0808, 2); le(out, deflate ? 8 : 0, 2); le(out, 0, 4);
            le(out, 0, 4); le(out, 0, 4); le(out, 0, 4);                     // CRC and sizes in the descriptor
            le(out, name.length, 2); le(out, 0, 2);
            out.writeBytes(name);
            out.writeBytes(data);
            le(out, 0x08074b50, 4); le(out, crc.getValue(), 4); le(out, data.length, 4); le(out, raw.length, 4);
            le(cd, 0x02014b50, 4); le(cd, 20, 2); le(cd, 20, 2); le(cd, 0x0808, 2); le(cd, deflate ? 8 : 0, 2); le(cd, 0, 4);
            le(cd, crc.getValue(), 4); le(cd, data.length, 4); le(cd, raw.length, 4);
            le(cd, name.length, 2); le(cd, 0, 2); le(cd, 0, 2); le(cd, 0, 2); le(cd, 0, 2); le(cd, 0, 4); le(cd, offset, 4);
            cd.writeBytes(name);
        }
        int cdOffset = out.size();
        out.writeBytes(cd.toByteArray());
        le(out, 0x06054b50, 4); le(out, 0, 2); le(out, 0, 2); le(out, entries.size(), 2); le(out, entries.size(), 2);
        le(out, cd.size(), 4); le(out, cdOffset, 4); le(out, 0, 2);
        return out.toByteArray();
    }

    private static byte[] deflate(byte[] raw) {
        Deflater d = new Deflater(Deflater.DEFAULT_COMPRESSION, true);
        d.setInput(raw);
        d.finish();
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        byte[] buf = new byte[4096];
        while (!d.finished()) b.write(buf, 0, d.deflate(buf));
        d.end();
        return b.toByteArray();
    }

    private static void le(ByteArrayOutputStream o, long v, int n) { for (int i = 0; i < n; i++) o.write((int) (v >>> (8 * i)) & 0xFF); }

    /** Entries of a TorchScript archive under {@code root/}: version, data.pkl + data/, constants.pkl + constants/, code. */
    static Map<String, byte[]> archive(String root, Obj model, List<LongT> constants, Map<String, String> code) {
        Map<String, byte[]> e = new LinkedHashMap<>();
        Pickle data = new Pickle("data");
        data.op(0x80, 2).object(model);
        byte[] dataPkl = data.finish();
        Pickle cons = new Pickle("constants");
        cons.op(0x80, 2, '(');
        for (LongT c : constants) cons.value(c);
        cons.op('t');
        byte[] consPkl = cons.finish();
        e.put(root + "/version", "3\n".getBytes(StandardCharsets.US_ASCII));
        e.put(root + "/data.pkl", dataPkl);
        for (Map.Entry<String, byte[]> s : data.storages.entrySet()) e.put(root + "/" + s.getKey(), s.getValue());
        for (Map.Entry<String, String> c : code.entrySet()) e.put(root + "/code/" + c.getKey(), c.getValue().getBytes(StandardCharsets.UTF_8));
        e.put(root + "/constants.pkl", consPkl);
        for (Map.Entry<String, byte[]> s : cons.storages.entrySet()) e.put(root + "/" + s.getKey(), s.getValue());
        return e;
    }
}
