package ai.bonsai.data;

import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * A minimal, defensive reader of (uncompressed) tar streams that extracts into a folder. Written for the
 * CIFAR-10 archive, whose contents we do not control, so it accepts only what it needs and rejects the rest:
 *
 * <ul>
 *   <li>entries: regular files and directories; GNU long names ('L') and pax headers ('x' path and size,
 *       'g' ignored) so that archives from common tools work;</li>
 *   <li>rejected: symbolic and hard links, devices, FIFOs and unknown types; absolute names, drive letters,
 *       {@code ..} components, backslashes, NUL bytes, anything resolving outside the folder; duplicate
 *       files; header checksum mismatches; more than {@code maxBytes} of file data in total.</li>
 * </ul>
 *
 * <p>Permissions, owners and times in the archive are ignored. Not a general tar library: no sparse files,
 * no writing.
 */
final class TarExtractor {
    private static final int BLOCK = 512;

    private final Path root;
    private final long maxBytes;
    private final String source;   // the archive's name, for messages
    private long extracted;

    /** Extracts into {@code root}, which must exist and is normally a fresh temporary folder. */
    TarExtractor(Path root, long maxBytes, String source) {
        this.root = root.toAbsolutePath().normalize();
        this.maxBytes = maxBytes;
        this.source = source;
    }

    /** Reads the whole tar stream, creating its files and folders under the root. */
    void extract(InputStream in) throws IOException {
        byte[] header = new byte[BLOCK];
        String longName = null;     // from a GNU 'L' entry, applies to the next entry
        String paxPath = null;      // from a pax 'x' entry, applies to the next entry
        long paxSize = -1;
        long offset = 0;            // byte offset of the current header in the tar stream, for messages
        while (true) {
            if (!readBlock(in, header, offset)) {
                throw new IOException(source + ": tar stream ends at byte " + offset + " without its end-of-archive marker (truncated download?)");
            }
            if (isZero(header)) return;   // end of archive; the second zero block and padding need not be read
            verifyChecksum(header, offset);
            char type = (char) (header[156] & 0xFF);
            String name = headerName(header);
            boolean member = type == '0' || type == '\0' || type == '7' || type == '5';
            // A pax 'size' overrides the next member's header size (for files over 8 GiB); never a metadata entry's own.
            long size = member && paxSize >= 0 ? paxSize : parseNumber(header, 124, 12, "size", name, offset);
            if (size < 0) throw new IOException(source + ": entry '" + name + "' at byte " + offset + " has negative size " + size);
            long dataStart = offset + BLOCK;
            long padded = (size + BLOCK - 1) / BLOCK * BLOCK;
            switch (type) {
                case 'L': {
                    longName = trimNul(new String(readSmall(in, size, name, dataStart), StandardCharsets.UTF_8));
                    skip(in, padded - size, dataStart);
                    break;
                }
                case 'x': {
                    byte[] pax = readSmall(in, size, name, dataStart);
                    skip(in, padded - size, dataStart);
                    String[] kv = parsePax(pax, name, offset);
                    if (kv[0] != null) paxPath = kv[0];
                    if (kv[1] != null) paxSize = parsePaxSize(kv[1], name, offset);
                    break;
                }
                case 'g': {
                    skip(in, padded, dataStart);   // global pax defaults: nothing we use
                    break;
                }
                case '0': case '\0': case '7': case '5': {
                    String fullName = paxPath != null ? paxPath : longName != null ? longName : name;
                    longName = null;
                    paxPath = null;
                    paxSize = -1;
                    Path out = safeResolve(fullName, offset);
                    if (type == '5') {
                        Files.createDirectories(out);
                        skip(in, padded, dataStart);
                    } else {
                        if (out.equals(root)) throw new IOException(source + ": entry '" + fullName + "' at byte " + offset + " is a file named like the extraction folder itself");
                        writeFile(in, out, size, fullName, dataStart);
                        skip(in, padded - size, dataStart);
                    }
                    break;
                }
                default:
                    throw new IOException(source + ": entry '" + (longName != null ? longName : name) + "' at byte " + offset + " is a "
                            + typeName(type) + "; only regular files and directories may be extracted");
            }
            offset = dataStart + padded;
        }
    }

    private void writeFile(InputStream in, Path out, long size, String name, long dataStart) throws IOException {
        extracted += size;
        if (extracted > maxBytes) {
            throw new IOException(source + ": entry '" + name + "' takes the extracted size to " + extracted + " bytes, over the limit of " + maxBytes);
        }
        Files.createDirectories(out.getParent());
        byte[] buf = new byte[1 << 16];
        long left = size;
        // CREATE_NEW: a second entry of the same name, or a name that exists as a link, is an error, never an overwrite.
        try (OutputStream os = Files.newOutputStream(out, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            while (left > 0) {
                int n = in.read(buf, 0, (int) Math.min(buf.length, left));
                if (n < 0) {
                    throw new EOFException(source + ": entry '" + name + "' is truncated: expected " + size + " bytes from byte " + dataStart
                            + ", the stream ended after " + (size - left));
                }
                os.write(buf, 0, n);
                left -= n;
            }
        } catch (java.nio.file.FileAlreadyExistsException e) {
            throw new IOException(source + ": entry '" + name + "' appears twice in the archive (or clashes with a folder)", e);
        }
    }

    /** Maps an entry name to a path under the root, or throws if it is absolute or escapes the root. */
    Path safeResolve(String name, long offset) throws IOException {
        String where = source + ": entry '" + name + "' at byte " + offset;
        if (name.isEmpty()) throw new IOException(where + " has an empty name");
        if (name.indexOf('\0') >= 0 || name.indexOf('\\') >= 0) throw new IOException(where + " has a NUL or backslash in its name");
        if (name.startsWith("/") || (name.length() >= 2 && name.charAt(1) == ':')) {
            throw new IOException(where + " has an absolute path; entries must be relative to the extraction folder");
        }
        Path out = root;
        for (String part : name.split("/")) {
            if (part.isEmpty() || part.equals(".")) continue;
            if (part.equals("..")) throw new IOException(where + " has a '..' component; entries must stay inside the extraction folder");
            try {
                out = out.resolve(part);
            } catch (InvalidPathException e) {
                throw new IOException(where + " is not a valid file name here: " + e.getMessage(), e);
            }
        }
        out = out.normalize();
        if (out.equals(root)) return out;   // "./" entries
        if (!out.startsWith(root)) throw new IOException(where + " resolves to " + out + ", outside " + root);
        // Nothing we create is a link, but check the parents anyway in case the root was shared.
        for (Path p = out.getParent(); p != null && p.startsWith(root) && !p.equals(root); p = p.getParent()) {
            if (Files.isSymbolicLink(p)) throw new IOException(where + " would be written through the symbolic link " + p);
        }
        return out;
    }

    private static String headerName(byte[] h) {
        String name = field(h, 0, 100);
        // POSIX ustar ("ustar\0" + "00") splits long names into prefix/name; GNU tar ("ustar  ") uses those
        // bytes for other things, so only the POSIX form has a prefix.
        boolean posix = h[257] == 'u' && h[258] == 's' && h[259] == 't' && h[260] == 'a' && h[261] == 'r' && h[262] == 0;
        if (posix) {
            String prefix = field(h, 345, 155);
            if (!prefix.isEmpty()) name = prefix + "/" + name;
        }
        return name;
    }

    private void verifyChecksum(byte[] h, long offset) throws IOException {
        long stored = parseNumber(h, 148, 8, "checksum", field(h, 0, 100), offset);
        long unsigned = 0, signed = 0;
        for (int i = 0; i < BLOCK; i++) {
            int b = (i >= 148 && i < 156) ? ' ' : h[i];
            unsigned += b & 0xFF;
            signed += b;   // some old tars summed signed bytes; accept either
        }
        if (stored != unsigned && stored != signed) {
            throw new IOException(source + ": tar header at byte " + offset + " has checksum " + stored + ", computed " + unsigned
                    + "; the archive is corrupt or not a tar file");
        }
    }

    /** Octal (NUL/space terminated) or, if the top bit is set, big-endian base-256 as GNU tar writes large sizes. */
    private long parseNumber(byte[] h, int off, int len, String what, String name, long offset) throws IOException {
        if ((h[off] & 0x80) != 0) {
            if ((h[off] & 0x40) != 0) throw new IOException(source + ": entry '" + name + "' at byte " + offset + " has a negative " + what);
            long v = h[off] & 0x3F;
            for (int i = off + 1; i < off + len; i++) {
                if (v > (Long.MAX_VALUE >>> 8)) throw new IOException(source + ": entry '" + name + "' at byte " + offset + " has a " + what + " too large");
                v = (v << 8) | (h[i] & 0xFF);
            }
            return v;
        }
        long v = 0;
        int i = off;
        while (i < off + len && (h[i] == ' ' || h[i] == 0)) i++;
        int digits = 0;
        for (; i < off + len && h[i] != 0 && h[i] != ' '; i++, digits++) {
            if (h[i] < '0' || h[i] > '7') {
                throw new IOException(source + ": entry '" + name + "' at byte " + offset + " has a malformed " + what + " field '"
                        + new String(h, off, len, StandardCharsets.ISO_8859_1).trim() + "'; the archive is corrupt or not a tar file");
            }
            v = v * 8 + (h[i] - '0');
        }
        if (digits == 0 && !what.equals("size")) {
            throw new IOException(source + ": tar header at byte " + offset + " has an empty " + what + " field; the archive is corrupt or not a tar file");
        }
        return v;
    }

    /** Returns {path, size} from pax records "LEN key=value\n"; other keys are ignored. */
    private String[] parsePax(byte[] data, String name, long offset) throws IOException {
        String[] out = new String[2];
        int i = 0;
        while (i < data.length) {
            int sp = i;
            while (sp < data.length && data[sp] != ' ') sp++;
            int len;
            try {
                len = Integer.parseInt(new String(data, i, sp - i, StandardCharsets.US_ASCII));
            } catch (NumberFormatException e) {
                throw new IOException(source + ": pax header '" + name + "' at byte " + offset + " has a malformed record length", e);
            }
            if (len <= sp - i + 1 || i + len > data.length || data[i + len - 1] != '\n') {
                throw new IOException(source + ": pax header '" + name + "' at byte " + offset + " has a record of length " + len + " that does not fit");
            }
            String rec = new String(data, sp + 1, i + len - sp - 2, StandardCharsets.UTF_8);
            int eq = rec.indexOf('=');
            if (eq > 0) {
                String key = rec.substring(0, eq);
                if (key.equals("path")) out[0] = rec.substring(eq + 1);
                else if (key.equals("size")) out[1] = rec.substring(eq + 1);
            }
            i += len;
        }
        return out;
    }

    private long parsePaxSize(String s, String name, long offset) throws IOException {
        try {
            long v = Long.parseLong(s);
            if (v >= 0) return v;
        } catch (NumberFormatException e) { /* reported below */ }
        throw new IOException(source + ": pax header '" + name + "' at byte " + offset + " has an invalid size '" + s + "'");
    }

    /** Reads a metadata entry's data (long name, pax records), which must be small. */
    private byte[] readSmall(InputStream in, long size, String name, long dataStart) throws IOException {
        if (size > 1 << 20) throw new IOException(source + ": metadata entry '" + name + "' at byte " + dataStart + " is " + size + " bytes, over 1 MiB");
        byte[] b = in.readNBytes((int) size);
        if (b.length != size) throw new EOFException(source + ": metadata entry '" + name + "' is truncated at byte " + (dataStart + b.length));
        return b;
    }

    private boolean readBlock(InputStream in, byte[] block, long offset) throws IOException {
        int n = in.readNBytes(block, 0, BLOCK);
        if (n == 0) return false;
        if (n != BLOCK) throw new EOFException(source + ": tar stream ends inside the header at byte " + offset + " (truncated download?)");
        return true;
    }

    private void skip(InputStream in, long n, long at) throws IOException {
        long left = n;
        while (left > 0) {
            long s = in.skip(left);
            if (s <= 0) {
                if (in.read() < 0) throw new EOFException(source + ": tar stream ends inside an entry near byte " + at + " (truncated download?)");
                s = 1;
            }
            left -= s;
        }
    }

    private static boolean isZero(byte[] b) {
        for (byte x : b) if (x != 0) return false;
        return true;
    }

    private static String field(byte[] h, int off, int len) {
        int end = off;
        while (end < off + len && h[end] != 0) end++;
        return new String(h, off, end - off, StandardCharsets.UTF_8);
    }

    private static String trimNul(String s) {
        int i = s.indexOf('\0');
        return i >= 0 ? s.substring(0, i) : s;
    }

    private static String typeName(char type) {
        switch (type) {
            case '1': return "hard link";
            case '2': return "symbolic link";
            case '3': return "character device";
            case '4': return "block device";
            case '6': return "FIFO";
            case 'K': return "GNU long link name";
            case 'S': return "GNU sparse file";
            default: return "entry of unsupported type '" + (type >= 32 && type < 127 ? String.valueOf(type) : "\\" + (int) type) + "'";
        }
    }
}
