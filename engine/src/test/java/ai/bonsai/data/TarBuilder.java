package ai.bonsai.data;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.zip.GZIPOutputStream;

/**
 * Writes small ustar archives for tests, including the malformed and malicious ones a real tar tool refuses
 * to make (absolute names, '..', links).
 */
final class TarBuilder {
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();

    TarBuilder file(String name, byte[] data) { return entry(name, '0', data, ""); }

    TarBuilder dir(String name) { return entry(name, '5', new byte[0], ""); }

    TarBuilder symlink(String name, String target) { return entry(name, '2', new byte[0], target); }

    TarBuilder hardlink(String name, String target) { return entry(name, '1', new byte[0], target); }

    /** A GNU long-name entry, then a regular file whose header name is truncated. */
    TarBuilder longNameFile(String name, byte[] data) {
        byte[] n = (name + "\0").getBytes(StandardCharsets.UTF_8);
        entry("././@LongLink", 'L', n, "");
        return entry(name.substring(0, Math.min(99, name.length())), '0', data, "");
    }

    TarBuilder entry(String name, char type, byte[] data, String linkName) {
        byte[] h = new byte[512];
        put(h, 0, 100, name);
        put(h, 100, 8, "0000644");
        put(h, 108, 8, "0000000");
        put(h, 116, 8, "0000000");
        put(h, 124, 12, String.format("%011o", data.length));
        put(h, 136, 12, "00000000000");
        h[156] = (byte) type;
        put(h, 157, 100, linkName);
        put(h, 257, 6, "ustar");   // "ustar\0"
        put(h, 263, 2, "00");
        for (int i = 148; i < 156; i++) h[i] = ' ';
        int sum = 0;
        for (byte b : h) sum += b & 0xFF;
        put(h, 148, 8, String.format("%06o", sum) + "\0 ");
        out.writeBytes(h);
        out.writeBytes(data);
        out.writeBytes(new byte[(512 - data.length % 512) % 512]);
        return this;
    }

    private static void put(byte[] h, int off, int len, String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        if (b.length > len) throw new IllegalArgumentException("tar field of " + len + " bytes cannot hold '" + s + "'");
        System.arraycopy(b, 0, h, off, b.length);
    }

    /** The archive with its end marker (two zero blocks). */
    byte[] tar() {
        ByteArrayOutputStream o = new ByteArrayOutputStream();
        o.writeBytes(out.toByteArray());
        o.writeBytes(new byte[1024]);
        return o.toByteArray();
    }

    byte[] tarGz() {
        ByteArrayOutputStream o = new ByteArrayOutputStream();
        try (GZIPOutputStream gz = new GZIPOutputStream(o)) {
            gz.write(tar());
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
        return o.toByteArray();
    }
}
