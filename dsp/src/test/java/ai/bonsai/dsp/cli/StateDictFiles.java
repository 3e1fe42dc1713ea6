package ai.bonsai.dsp.cli;

import ai.bonsai.tensor.DType;
import ai.bonsai.tensor.Tensor;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.zip.CRC32;

/**
 * Test-side writer of {@code torch.save(state_dict, f)} files, so that import tests need no PyTorch: the pickle
 * torch 1.13 writes (an OrderedDict of {@code _rebuild_tensor_v2} tensors, float32 and int64 storages) in a stored
 * zip with data descriptors. Also a hostile variant whose pickle calls a global of the caller's choosing. Not a
 * general pickler; the engine's reader is tested against real PyTorch files elsewhere (TorchStateDictTest).
 */
final class StateDictFiles {
    private StateDictFiles() {}

    static void writePth(Path file, Map<String, Tensor> state) throws IOException {
        P p = new P().op(0x80, 2).global("collections", "OrderedDict").op(')', 'R', '(');
        Map<String, byte[]> entries = new LinkedHashMap<>();
        String root = "archive";
        int key = 0;
        for (Map.Entry<String, Tensor> e : state.entrySet()) {
            Tensor t = e.getValue();
            boolean f32 = t.dtype() == DType.FLOAT32;
            ByteBuffer b = ByteBuffer.allocate(t.numel() * (f32 ? 4 : 8)).order(ByteOrder.LITTLE_ENDIAN);
            if (f32) for (float v : t.toFloatArray()) b.putFloat(v);
            else for (long v : t.toLongArray()) b.putLong(v);
            entries.put(root + "/data/" + key, b.array());
            int[] d = t.dims();
            p.str(e.getKey()).global("torch._utils", "_rebuild_tensor_v2").op('(', '(').str("storage").global("torch", f32 ? "FloatStorage" : "LongStorage")
                    .str(Integer.toString(key)).str("cpu").integer(t.numel()).op('t', 'Q').integer(0).op('(');
            for (int x : d) p.integer(x);
            p.op('t', '(');
            long stride = 1;
            long[] strides = new long[d.length];
            for (int i = d.length - 1; i >= 0; i--) { strides[i] = stride; stride *= d[i]; }
            for (long s : strides) p.integer(s);
            p.op('t', 0x89).global("collections", "OrderedDict").op(')', 'R', 't', 'R');
            key++;
        }
        p.op('u', '.');
        Map<String, byte[]> all = new LinkedHashMap<>();
        all.put(root + "/data.pkl", p.bytes());
        all.putAll(entries);
        all.put(root + "/version", "3\n".getBytes(StandardCharsets.US_ASCII));
        Files.write(file, zip(all));
    }

    /** A .pth whose pickle is {@code module.name("echo pwned")}: a reader that calls globals would run it. */
    static void writeHostilePth(Path file, String module, String name) throws IOException {
        byte[] pickle = new P().op(0x80, 2).global(module, name).str("echo pwned").op(0x85, 'R', '.').bytes();
        Files.write(file, zip(Map.of("archive/data.pkl", pickle, "archive/version", "3\n".getBytes(StandardCharsets.US_ASCII))));
    }

    private static final class P {
        final ByteArrayOutputStream b = new ByteArrayOutputStream();

        P op(int... v) { for (int x : v) b.write(x); return this; }

        P le(long v, int n) { for (int i = 0; i < n; i++) b.write((int) (v >>> (8 * i))); return this; }

        P str(String s) { byte[] u = s.getBytes(StandardCharsets.UTF_8); op('X').le(u.length, 4); b.writeBytes(u); return this; }

        P global(String m, String n) { op('c'); b.writeBytes((m + "\n" + n + "\n").getBytes(StandardCharsets.US_ASCII)); return this; }

        P integer(long v) {
            if (v >= 0 && v < 256) return op('K', (int) v);
            if (v >= 0 && v < 65536) return op('M').le(v, 2);
            return op('J').le(v, 4);
        }

        byte[] bytes() { return b.toByteArray(); }
    }

    private static byte[] zip(Map<String, byte[]> entries) {
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
}
