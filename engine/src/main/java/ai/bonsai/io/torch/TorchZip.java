package ai.bonsai.io.torch;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * The zip container of a TorchScript archive, read from memory with every declared number checked.
 *
 * <p>PyTorch writes each entry with a data descriptor (sizes and CRC zero in the local header), pads the
 * local extra field so that storages start 64-byte aligned, stores tensors uncompressed and deflates the
 * code, and always ends with a zip64 end record. So sizes, CRCs and offsets come from the central directory
 * (zip64 extra fields honoured); the local header contributes only its name and extra length, and its name
 * must equal the directory's.
 *
 * <p>Rejected: encrypted entries, methods other than stored and deflate, names that are absolute, contain
 * {@code ..}, backslashes, NUL or empty segments, duplicate names, entries outside one common root folder,
 * data ranges outside the file, more entries or bigger entries than {@link TorchLimits} allows, deflated
 * entries that expand more than the compression-ratio limit, and CRC mismatches (checked on every read).
 */
final class TorchZip {
    private static final int LOCAL_SIG = 0x04034b50, CENTRAL_SIG = 0x02014b50, END_SIG = 0x06054b50;
    private static final int ZIP64_END_SIG = 0x06064b50, ZIP64_LOCATOR_SIG = 0x07064b50;

    /** One entry as the central directory declares it; dataOffset is resolved through the local header. */
    record Entry(String name, int method, long crc, long compressedSize, long size, long dataOffset) {}

    private final byte[] file;
    private final String source;
    private final TorchLimits limits;
    private final String root;
    private final Map<String, Entry> entries;          // full name -> entry, in directory order

    private TorchZip(byte[] file, String source, TorchLimits limits, String root, Map<String, Entry> entries) {
        this.file = file;
        this.source = source;
        this.limits = limits;
        this.root = root;
        this.entries = entries;
    }

    /** Parses the directory of {@code file}; {@code source} names it in error messages. */
    static TorchZip read(byte[] file, String source, TorchLimits limits) throws TorchFormatException {
        if (file.length > limits.maxArchiveBytes()) {
            throw new TorchFormatException(source + ": " + file.length + " bytes is more than the limit of " + limits.maxArchiveBytes());
        }
        Reader r = new Reader(file, source);
        int end = findEnd(file, source);
        long count = r.u16(end + 10), cdSize = r.u32(end + 12), cdOffset = r.u32(end + 16);
        if (r.u16(end + 4) != 0 && r.u16(end + 4) != 0xFFFF) throw new TorchFormatException(source + ": multi-disk zip archives are not supported");
        int locator = end - 20;
        if (locator >= 0 && r.i32(locator) == ZIP64_LOCATOR_SIG) {
            long z64 = r.u64(locator + 8);
            if (z64 < 0 || z64 > locator - 56) throw new TorchFormatException(source + ": zip64 end record offset " + z64 + " is outside the file");
            int p = (int) z64;
            if (r.i32(p) != ZIP64_END_SIG) throw new TorchFormatException(source + ": no zip64 end record at offset " + p + " (the zip64 locator points there)");
            count = r.u64(p + 32);
            cdSize = r.u64(p + 40);
            cdOffset = r.u64(p + 48);
        }
        if (count > limits.maxEntries()) throw new TorchFormatException(source + ": " + count + " zip entries is more than the limit of " + limits.maxEntries());
        if (cdOffset < 0 || cdSize < 0 || cdOffset > end || cdSize > end - cdOffset) {
            throw new TorchFormatException(source + ": central directory [" + cdOffset + ", +" + cdSize + ") is outside the file before its end record at " + end);
        }
        Map<String, Entry> entries = new LinkedHashMap<>();
        int p = (int) cdOffset;
        String root = null;
        for (long i = 0; i < count; i++) {
            if (r.i32(p) != CENTRAL_SIG) throw new TorchFormatException(source + ": central directory entry " + i + " at offset " + p + " has no signature");
            int flags = r.u16(p + 8), method = r.u16(p + 10);
            long crc = r.u32(p + 16), csize = r.u32(p + 20), size = r.u32(p + 24);
            int nameLen = r.u16(p + 28), extraLen = r.u16(p + 30), commentLen = r.u16(p + 32);
            long lho = r.u32(p + 42);
            String name = r.utf8(p + 46, nameLen, "entry " + i + " name");
            // zip64: the fields that overflowed 32 bits move, in this order, into extra field 0x0001.
            int x = p + 46 + nameLen, xEnd = x + extraLen;
            r.check(xEnd, 0, "entry " + name + " extra field");
            while (x + 4 <= xEnd) {
                int id = r.u16(x), len = r.u16(x + 2);
                if (x + 4 + len > xEnd) throw new TorchFormatException(source + ": entry " + name + ": extra field 0x" + Integer.toHexString(id) + " runs past its end");
                if (id == 1) {
                    int q = x + 4;
                    if (size == 0xFFFFFFFFL) { size = needZip64(r, q, x + 4 + len, name, "size"); q += 8; }
                    if (csize == 0xFFFFFFFFL) { csize = needZip64(r, q, x + 4 + len, name, "compressed size"); q += 8; }
                    if (lho == 0xFFFFFFFFL) { lho = needZip64(r, q, x + 4 + len, name, "local header offset"); }
                }
                x += 4 + len;
            }
            if ((flags & 0x41) != 0) throw new TorchFormatException(source + ": entry " + name + " is encrypted");
            if (method != 0 && method != 8) throw new TorchFormatException(source + ": entry " + name + " uses compression method " + method + " (expected 0 stored or 8 deflate)");
            checkName(source, name);
            if (size < 0 || size > limits.maxEntryBytes()) throw new TorchFormatException(source + ": entry " + name + " declares " + size + " bytes, more than the limit of " + limits.maxEntryBytes());
            if (method == 0 && csize != size) throw new TorchFormatException(source + ": stored entry " + name + " has compressed size " + csize + " but size " + size);
            if (method == 8 && size > Math.max(1024, csize * limits.maxCompressionRatio())) {
                throw new TorchFormatException(source + ": entry " + name + " expands " + csize + " bytes to " + size + ", more than the compression-ratio limit of " + limits.maxCompressionRatio());
            }
            if (lho < 0 || lho > cdOffset - 30) throw new TorchFormatException(source + ": entry " + name + " local header offset " + lho + " is outside the data area [0, " + cdOffset + ")");
            int l = (int) lho;
            if (r.i32(l) != LOCAL_SIG) throw new TorchFormatException(source + ": entry " + name + " has no local header at offset " + l);
            int lNameLen = r.u16(l + 26), lExtraLen = r.u16(l + 28);
            String localName = r.utf8(l + 30, lNameLen, "entry " + name + " local name");
            if (!localName.equals(name)) throw new TorchFormatException(source + ": entry " + name + " is called '" + localName + "' in its local header");
            long data = (long) l + 30 + lNameLen + lExtraLen;
            if (data + csize > cdOffset) throw new TorchFormatException(source + ": entry " + name + " data [" + data + ", +" + csize + ") runs into the central directory at " + cdOffset);
            String first = name.substring(0, Math.max(0, name.indexOf('/')));
            if (first.isEmpty()) throw new TorchFormatException(source + ": entry " + name + " is not inside a root folder");
            if (root == null) root = first;
            else if (!root.equals(first)) throw new TorchFormatException(source + ": entry " + name + " is outside the archive's root folder '" + root + "/'");
            if (entries.put(name, new Entry(name, method, crc, csize, size, data)) != null) throw new TorchFormatException(source + ": duplicate entry " + name);
            p = xEnd + commentLen;
            if (p > cdOffset + cdSize) throw new TorchFormatException(source + ": central directory entry " + name + " runs past the directory's end");
        }
        if (root == null) throw new TorchFormatException(source + ": the zip archive is empty");
        return new TorchZip(file, source, limits, root, Collections.unmodifiableMap(entries));
    }

    private static long needZip64(Reader r, int q, int end, String name, String what) throws TorchFormatException {
        if (q + 8 > end) throw new TorchFormatException(r.source + ": entry " + name + ": zip64 extra field lacks the " + what);
        long v = r.u64(q);
        if (v < 0) throw new TorchFormatException(r.source + ": entry " + name + ": zip64 " + what + " " + Long.toUnsignedString(v) + " is too large");
        return v;
    }

    private static int findEnd(byte[] f, String source) throws TorchFormatException {
        int last = f.length - 22;
        for (int p = last; p >= 0 && p >= last - 0xFFFF; p--) {
            if (f[p] == 'P' && f[p + 1] == 'K' && f[p + 2] == 5 && f[p + 3] == 6) {
                int commentLen = (f[p + 20] & 0xFF) | (f[p + 21] & 0xFF) << 8;
                if (p + 22 + commentLen == f.length) return p;
            }
        }
        throw new TorchFormatException(source + ": not a zip archive (no end-of-central-directory record in the last 64 KiB; the file has " + f.length + " bytes)");
    }

    private static void checkName(String source, String name) throws TorchFormatException {
        if (name.isEmpty() || name.startsWith("/") || name.indexOf('\\') >= 0 || name.indexOf('\0') >= 0 || name.indexOf(':') >= 0) {
            throw new TorchFormatException(source + ": entry name '" + name + "' is not a plain relative path");
        }
        for (String seg : name.split("/", -1)) {
            if (seg.equals("..") || seg.equals(".") || (seg.isEmpty() && !name.endsWith("/"))) {
                throw new TorchFormatException(source + ": entry name '" + name + "' has an empty, '.' or '..' segment");
            }
        }
    }

    String source() { return source; }

    /** The archive's root folder, without the slash. */
    String root() { return root; }

    /** The entry at {@code relative} under the root folder, or null. */
    Entry entry(String relative) { return entries.get(root + "/" + relative); }

    /** Names under the root folder (root prefix removed) that start with {@code prefix}, in directory order. */
    List<String> names(String prefix) {
        List<String> out = new ArrayList<>();
        String full = root + "/" + prefix;
        for (String n : entries.keySet()) if (n.startsWith(full)) out.add(n.substring(root.length() + 1));
        return out;
    }

    /** The bytes of entry {@code relative}, inflated if needed, with size and CRC checked. */
    byte[] read(String relative) throws TorchFormatException {
        Entry e = entry(relative);
        if (e == null) throw new TorchFormatException(source + ": no entry " + root + "/" + relative);
        byte[] out = new byte[(int) e.size()];
        if (e.method() == 0) {
            System.arraycopy(file, (int) e.dataOffset(), out, 0, out.length);
        } else {
            Inflater inf = new Inflater(true);
            try {
                inf.setInput(file, (int) e.dataOffset(), (int) e.compressedSize());
                int n = 0;
                while (n < out.length) {
                    int k = inf.inflate(out, n, out.length - n);
                    if (k == 0 && (inf.finished() || inf.needsInput() || inf.needsDictionary())) break;
                    n += k;
                }
                if (n != out.length) throw new TorchFormatException(source + ": entry " + e.name() + " inflates to " + n + " bytes, expected " + out.length);
                if (!inf.finished()) {
                    byte[] probe = new byte[1];
                    if (inf.inflate(probe) > 0) throw new TorchFormatException(source + ": entry " + e.name() + " inflates to more than its declared " + out.length + " bytes");
                }
            } catch (DataFormatException ex) {
                throw new TorchFormatException(source + ": entry " + e.name() + " is not valid deflate data: " + ex.getMessage(), ex);
            } finally {
                inf.end();
            }
        }
        CRC32 crc = new CRC32();
        crc.update(out);
        if (crc.getValue() != e.crc()) {
            throw new TorchFormatException(source + ": entry " + e.name() + " has CRC 0x" + Long.toHexString(crc.getValue()) + ", the directory says 0x" + Long.toHexString(e.crc()));
        }
        return out;
    }

    /** Little-endian reads with bounds checks that name the file. */
    private static final class Reader {
        final byte[] f;
        final String source;

        Reader(byte[] f, String source) { this.f = f; this.source = source; }

        void check(long p, int n, String what) throws TorchFormatException {
            if (p < 0 || p + n > f.length) throw new TorchFormatException(source + ": " + what + " at offset " + p + " (+" + n + " bytes) is outside the file of " + f.length + " bytes");
        }

        int u16(int p) throws TorchFormatException {
            check(p, 2, "a 2-byte field");
            return (f[p] & 0xFF) | (f[p + 1] & 0xFF) << 8;
        }

        int i32(int p) throws TorchFormatException {
            check(p, 4, "a 4-byte field");
            return (f[p] & 0xFF) | (f[p + 1] & 0xFF) << 8 | (f[p + 2] & 0xFF) << 16 | (f[p + 3] & 0xFF) << 24;
        }

        long u32(int p) throws TorchFormatException { return i32(p) & 0xFFFFFFFFL; }

        long u64(int p) throws TorchFormatException {
            check(p, 8, "an 8-byte field");
            return u32(p) | u32(p + 4) << 32;
        }

        String utf8(int p, int n, String what) throws TorchFormatException {
            check(p, n, what);
            try {
                return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(f, p, n)).toString();
            } catch (CharacterCodingException e) {
                throw new TorchFormatException(source + ": " + what + " at offset " + p + " is not valid UTF-8");
            }
        }
    }
}
