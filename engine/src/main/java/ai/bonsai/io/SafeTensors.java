package ai.bonsai.io;

import ai.bonsai.tensor.DType;
import ai.bonsai.tensor.Shape;
import com.fasterxml.jackson.core.JsonEncoding;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Reads and writes the safetensors format, the checkpoint format of Bonsai and of the Hugging Face tools:
 *
 * <pre>
 *   8 bytes        N, the header length, unsigned little-endian
 *   N bytes        UTF-8 JSON: {"__metadata__": {string: string}, "name": {"dtype": "F32", "shape": [..],
 *                  "data_offsets": [begin, end]}, ...}, padded with spaces so that 8 + N is a multiple of 8
 *   the rest       the tensors' raw little-endian bytes; offsets count from here
 * </pre>
 *
 * <p>Writing follows the reference writer byte for byte for the same order: compact JSON, {@code __metadata__}
 * first (left out when empty), then the tensors in the order given, each's data right after the previous
 * one's. Files are replaced atomically: a crash leaves the old file or the new one, never a mix.
 *
 * <p>Reading treats the file as untrusted: the header length is checked against the file and a cap, the JSON
 * is read as a plain tree (no data binding, no polymorphic types) and checked field by field, and the data
 * offsets must tile the data section exactly. Every error names the file, the tensor, and what was expected.
 *
 * <p>Only F32, I32 and I64 are supported, the types Bonsai stores; files with other types are rejected with a
 * message saying so.
 */
public final class SafeTensors {
    /** Largest header accepted; real headers are kilobytes, so anything near this is a corrupt length. */
    public static final long MAX_HEADER_BYTES = 100_000_000L;
    private static final String METADATA_KEY = "__metadata__";
    /** Bytes moved per read or write call; bounds the buffer, not the tensor size. */
    private static final int CHUNK = 1 << 20;

    private static final JsonFactory JSON = new JsonFactory();
    /** Reads plain trees only; a repeated key inside an entry or the metadata is an error, not last-wins. */
    private static final ObjectMapper TREES = new ObjectMapper(JSON).enable(DeserializationFeature.FAIL_ON_READING_DUP_TREE_KEY);
    private static final AtomicLong TEMP_IDS = new AtomicLong();

    private SafeTensors() {}

    /** A file's tensors in header order and its metadata in file order. */
    public record Contents(Path source, List<NamedArray> tensors, Map<String, String> metadata) {
        public Contents {
            tensors = List.copyOf(tensors);
            metadata = Collections.unmodifiableMap(new LinkedHashMap<>(metadata));
        }

        /** The tensor called {@code name}. */
        public NamedArray get(String name) {
            for (NamedArray t : tensors) if (t.name().equals(name)) return t;
            List<String> names = tensors.stream().map(NamedArray::name).toList();
            throw new IllegalArgumentException(source + ": no tensor '" + name + "'; the file has " + names);
        }
    }

    /** Called after each chunk of the file is written; tests use it to simulate a crash part-way. */
    @FunctionalInterface
    interface WriteHook {
        void written(long bytes) throws IOException;
    }

    // ------------------------------------------------------------------------------------------ writing

    /**
     * Writes {@code tensors} (in this order) and {@code metadata} to {@code file}, replacing it atomically:
     * the bytes go to a temporary file in the same folder, which is flushed to disk and then renamed over
     * {@code file}. Missing parent folders are created.
     */
    public static void write(Path file, List<NamedArray> tensors, Map<String, String> metadata) throws IOException {
        write(file, tensors, metadata, bytes -> { });
    }

    static void write(Path file, List<NamedArray> tensors, Map<String, String> metadata, WriteHook hook) throws IOException {
        byte[] header = header(tensors, metadata);
        Path dir = file.toAbsolutePath().getParent();
        Files.createDirectories(dir);
        Path tmp = createTemp(dir, file.getFileName().toString());
        try {
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE)) {
                ByteBuffer buf = ByteBuffer.allocate(CHUNK).order(ByteOrder.LITTLE_ENDIAN);
                long[] written = {0};
                buf.putLong(header.length);
                flush(ch, buf, hook, written);
                for (int off = 0; off < header.length; off += CHUNK) {
                    buf.put(header, off, Math.min(CHUNK, header.length - off));
                    flush(ch, buf, hook, written);
                }
                CrashPoints.reached("checkpoint", file);
                for (NamedArray t : tensors) writeData(ch, buf, t, hook, written);
                ch.force(true);   // the data must be on disk before the rename makes it the file
            }
            try {
                Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                throw new IOException(file + ": the file system cannot rename " + tmp + " over it atomically; write checkpoints to a local disk", e);
            }
        } catch (IOException | RuntimeException | Error e) {
            Files.deleteIfExists(tmp);
            throw e;
        }
        syncDirectory(dir);
    }

    /** A new empty file next to the target, named so that it is clearly ours and clearly temporary. */
    private static Path createTemp(Path dir, String name) throws IOException {
        while (true) {
            Path tmp = dir.resolve("." + name + "." + ProcessHandle.current().pid() + "-" + TEMP_IDS.incrementAndGet() + ".tmp");
            try {
                Files.newByteChannel(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE).close();
                return tmp;
            } catch (FileAlreadyExistsException e) {
                // left by a crashed run with the same pid: take the next number
            }
        }
    }

    /** Makes the rename itself durable. Not every platform can open a folder for this (Windows cannot), so best effort. */
    private static void syncDirectory(Path dir) {
        try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
            d.force(true);
        } catch (IOException | UnsupportedOperationException e) {
            // the file is complete and renamed; only its durability across a power cut is weaker here
        }
    }

    private static void writeData(FileChannel ch, ByteBuffer buf, NamedArray t, WriteHook hook, long[] written) throws IOException {
        int n = t.shape().numel();
        int per = CHUNK / t.dtype().bytes();
        for (int off = 0; off < n; off += per) {
            int len = Math.min(per, n - off);
            switch (t.dtype()) {
                case FLOAT32: buf.asFloatBuffer().put(t.floats(), off, len); break;
                case INT32: buf.asIntBuffer().put(t.ints(), off, len); break;
                case INT64: buf.asLongBuffer().put(t.longs(), off, len); break;
                default: throw new AssertionError(t.dtype());
            }
            buf.position(len * t.dtype().bytes());
            flush(ch, buf, hook, written);
        }
    }

    private static void flush(FileChannel ch, ByteBuffer buf, WriteHook hook, long[] written) throws IOException {
        buf.flip();
        while (buf.hasRemaining()) written[0] += ch.write(buf);
        buf.clear();
        hook.written(written[0]);
    }

    /** The header as written: length-prefix excluded, JSON padded with spaces to a multiple of 8 bytes. */
    static byte[] header(List<NamedArray> tensors, Map<String, String> metadata) {
        Set<String> names = new HashSet<>();
        for (NamedArray t : tensors) {
            if (t == null) throw new IllegalArgumentException("safetensors: null entry in the tensor list");
            if (t.name().equals(METADATA_KEY)) throw new IllegalArgumentException("safetensors: '" + METADATA_KEY + "' is reserved and cannot name a tensor");
            if (!names.add(t.name())) throw new IllegalArgumentException("safetensors: tensor name '" + t.name() + "' appears twice");
        }
        for (Map.Entry<String, String> e : metadata.entrySet()) {
            if (e.getKey() == null || e.getValue() == null) throw new IllegalArgumentException("safetensors: metadata keys and values must not be null, got " + e);
        }
        ByteArrayOutputStream bos = new ByteArrayOutputStream();
        try (JsonGenerator g = JSON.createGenerator(bos, JsonEncoding.UTF8)) {
            g.writeStartObject();
            if (!metadata.isEmpty()) {
                g.writeObjectFieldStart(METADATA_KEY);
                for (Map.Entry<String, String> e : metadata.entrySet()) g.writeStringField(e.getKey(), e.getValue());
                g.writeEndObject();
            }
            long offset = 0;
            for (NamedArray t : tensors) {
                g.writeObjectFieldStart(t.name());
                g.writeStringField("dtype", code(t.dtype()));
                g.writeArrayFieldStart("shape");
                for (int d : t.shape().dims()) g.writeNumber(d);
                g.writeEndArray();
                g.writeArrayFieldStart("data_offsets");
                g.writeNumber(offset);
                offset += t.byteSize();
                g.writeNumber(offset);
                g.writeEndArray();
                g.writeEndObject();
            }
            g.writeEndObject();
        } catch (IOException e) {
            throw new IllegalStateException("safetensors: writing JSON to memory failed", e);
        }
        int pad = (8 - bos.size() % 8) % 8;
        for (int i = 0; i < pad; i++) bos.write(' ');
        return bos.toByteArray();
    }

    private static String code(DType t) {
        switch (t) {
            case FLOAT32: return "F32";
            case INT32: return "I32";
            case INT64: return "I64";
            default: throw new AssertionError(t);
        }
    }

    // ------------------------------------------------------------------------------------------ reading

    /** One header entry, checked on its own; offsets are checked against each other afterwards. */
    private record Entry(String name, DType dtype, Shape shape, long begin, long end) {}

    /** Reads every tensor and the metadata of {@code file}; see the class comment for what is checked. */
    public static Contents read(Path file) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size < 8) throw fail(file, "file is " + size + " bytes, too short for the 8-byte header length");
            ByteBuffer lenBuf = readFully(ch, 0, 8, file);
            long n = lenBuf.order(ByteOrder.LITTLE_ENDIAN).getLong();
            if (n < 0 || n > MAX_HEADER_BYTES) {
                throw fail(file, "header length " + Long.toUnsignedString(n) + " (the first 8 bytes) is over the limit of " + MAX_HEADER_BYTES
                        + " bytes; not a safetensors file, or a corrupt one");
            }
            if (n > size - 8) {
                throw fail(file, "header length " + n + " (the first 8 bytes) is more than the " + (size - 8)
                        + " bytes after them; the file is truncated or not a safetensors file");
            }
            byte[] headerBytes = readFully(ch, 8, (int) n, file).array();
            long dataStart = 8 + n;
            long dataSize = size - dataStart;

            Map<String, String> metadata = new LinkedHashMap<>();
            List<Entry> entries = parseHeader(file, headerBytes, metadata);
            checkLayout(file, entries, dataSize);

            List<NamedArray> tensors = new ArrayList<>(entries.size());
            for (Entry e : entries) tensors.add(readData(ch, file, e, dataStart));
            return new Contents(file, tensors, metadata);
        }
    }

    private static List<Entry> parseHeader(Path file, byte[] bytes, Map<String, String> metadata) throws IOException {
        String text;
        try {
            // Strict decoding: a malformed byte is an error, not a silent replacement character.
            text = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {
            throw fail(file, "header is not valid UTF-8 (" + e + ")");
        }
        List<Entry> entries = new ArrayList<>();
        Set<String> seen = new HashSet<>();
        boolean metadataSeen = false;
        try (JsonParser p = JSON.createParser(text)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                throw fail(file, "header must be a JSON object, found " + describe(p.currentToken()) + " at its start");
            }
            // The top level is walked by hand so that a repeated tensor name gets its own message and so that
            // entries keep the file's order; each value is then read as a plain JSON tree.
            for (JsonToken t = p.nextToken(); t != JsonToken.END_OBJECT; t = p.nextToken()) {
                String key = p.currentName();
                p.nextToken();
                JsonNode value;
                try {
                    value = TREES.readTree(p);
                } catch (JsonProcessingException e) {
                    throw fail(file, "header entry '" + key + "' is not valid JSON: " + jsonError(e));
                }
                if (key.equals(METADATA_KEY)) {
                    if (metadataSeen) throw fail(file, "header has two '" + METADATA_KEY + "' entries");
                    metadataSeen = true;
                    parseMetadata(file, value, metadata);
                } else {
                    if (!seen.add(key)) throw fail(file, "tensor '" + key + "' appears twice in the header");
                    entries.add(parseEntry(file, key, value));
                }
            }
            if (p.nextToken() != null) {
                throw fail(file, "header has " + describe(p.currentToken()) + " after its JSON object; only space padding may follow");
            }
        } catch (JsonProcessingException e) {
            throw fail(file, "header is not valid JSON: " + jsonError(e));
        }
        return entries;
    }

    private static void parseMetadata(Path file, JsonNode value, Map<String, String> metadata) throws IOException {
        if (!value.isObject()) throw fail(file, "'" + METADATA_KEY + "' must be an object of strings, got " + kind(value));
        for (Iterator<Map.Entry<String, JsonNode>> it = value.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            if (!e.getValue().isTextual()) {
                throw fail(file, "metadata '" + e.getKey() + "' must be a string, got " + kind(e.getValue()) + " " + e.getValue());
            }
            metadata.put(e.getKey(), e.getValue().textValue());
        }
    }

    private static Entry parseEntry(Path file, String name, JsonNode v) throws IOException {
        String where = "tensor '" + name + "'";
        if (!v.isObject()) throw fail(file, where + ": expected an object with dtype, shape and data_offsets, got " + kind(v));
        for (Iterator<String> it = v.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            if (!f.equals("dtype") && !f.equals("shape") && !f.equals("data_offsets")) {
                throw fail(file, where + ": unexpected field '" + f + "'; expected only dtype, shape and data_offsets");
            }
        }
        JsonNode dt = v.get("dtype");
        if (dt == null || !dt.isTextual()) throw fail(file, where + ": dtype must be a string, got " + kind(dt));
        DType dtype;
        switch (dt.textValue()) {
            case "F32": dtype = DType.FLOAT32; break;
            case "I32": dtype = DType.INT32; break;
            case "I64": dtype = DType.INT64; break;
            default: throw fail(file, where + ": dtype '" + dt.textValue() + "' is not supported; expected F32, I32 or I64");
        }
        JsonNode sh = v.get("shape");
        if (sh == null || !sh.isArray()) throw fail(file, where + ": shape must be an array of non-negative integers, got " + kind(sh));
        int[] dims = new int[sh.size()];
        for (int i = 0; i < dims.length; i++) {
            JsonNode d = sh.get(i);
            if (!d.isIntegralNumber() || !d.canConvertToLong() || d.longValue() < 0) {
                throw fail(file, where + ": shape[" + i + "] must be a non-negative integer, got " + d);
            }
            if (d.longValue() > Integer.MAX_VALUE) throw fail(file, where + ": shape[" + i + "] = " + d + " is larger than a Java array can hold");
            dims[i] = d.intValue();
        }
        Shape shape;
        try {
            shape = Shape.of(dims);
        } catch (IllegalArgumentException | ArithmeticException e) {
            throw fail(file, where + ": shape " + Arrays.toString(dims) + " has too many elements for a Java array");
        }
        JsonNode off = v.get("data_offsets");
        if (off == null || !off.isArray() || off.size() != 2) throw fail(file, where + ": data_offsets must be [begin, end], got " + (off == null ? "nothing" : off.toString()));
        long[] be = new long[2];
        for (int i = 0; i < 2; i++) {
            JsonNode o = off.get(i);
            if (!o.isIntegralNumber() || !o.canConvertToLong() || o.longValue() < 0) {
                throw fail(file, where + ": data_offsets[" + i + "] must be a non-negative integer, got " + o);
            }
            be[i] = o.longValue();
        }
        if (be[1] < be[0]) throw fail(file, where + ": data_offsets [" + be[0] + ", " + be[1] + "] end before they begin");
        long need = (long) shape.numel() * dtype.bytes();
        if (be[1] - be[0] != need) {
            throw fail(file, where + ": data_offsets [" + be[0] + ", " + be[1] + "] span " + (be[1] - be[0]) + " bytes, but "
                    + dt.textValue() + " shape " + shape + " needs " + need);
        }
        return new Entry(name, dtype, shape, be[0], be[1]);
    }

    /** The tensors, in offset order, must cover the data section exactly: no gaps, no overlaps, nothing after. */
    private static void checkLayout(Path file, List<Entry> entries, long dataSize) throws IOException {
        List<Entry> byOffset = new ArrayList<>(entries);
        byOffset.sort(Comparator.comparingLong(Entry::begin).thenComparingLong(Entry::end));
        long expected = 0;
        Entry previous = null;
        for (Entry e : byOffset) {
            if (e.begin() < expected) {
                throw fail(file, "tensor '" + e.name() + "': data_offsets [" + e.begin() + ", " + e.end() + "] overlap tensor '"
                        + previous.name() + "' [" + previous.begin() + ", " + previous.end() + "]");
            }
            if (e.begin() > expected) {
                throw fail(file, "tensor '" + e.name() + "': data begins at " + e.begin() + ", expected " + expected
                        + " (tensors must be laid out without gaps)");
            }
            expected = e.end();
            previous = e;
        }
        if (expected != dataSize) {
            String last = previous == null ? "no tensors" : "tensor '" + previous.name() + "' ends at " + expected;
            throw fail(file, "the data section holds " + dataSize + " bytes, but " + last + "; expected them to match");
        }
    }

    private static NamedArray readData(FileChannel ch, Path file, Entry e, long dataStart) throws IOException {
        int n = e.shape().numel();
        int per = CHUNK / e.dtype().bytes();
        long pos = dataStart + e.begin();
        switch (e.dtype()) {
            case FLOAT32: {
                float[] a = new float[n];
                for (int off = 0; off < n; off += per) {
                    int len = Math.min(per, n - off);
                    readFully(ch, pos + 4L * off, 4 * len, file).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(a, off, len);
                }
                return NamedArray.ofFloats(e.name(), e.shape(), a);
            }
            case INT32: {
                int[] a = new int[n];
                for (int off = 0; off < n; off += per) {
                    int len = Math.min(per, n - off);
                    readFully(ch, pos + 4L * off, 4 * len, file).order(ByteOrder.LITTLE_ENDIAN).asIntBuffer().get(a, off, len);
                }
                return NamedArray.ofInts(e.name(), e.shape(), a);
            }
            case INT64: {
                long[] a = new long[n];
                for (int off = 0; off < n; off += per) {
                    int len = Math.min(per, n - off);
                    readFully(ch, pos + 8L * off, 8 * len, file).order(ByteOrder.LITTLE_ENDIAN).asLongBuffer().get(a, off, len);
                }
                return NamedArray.ofLongs(e.name(), e.shape(), a);
            }
            default: throw new AssertionError(e.dtype());
        }
    }

    private static ByteBuffer readFully(FileChannel ch, long pos, int len, Path file) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(len);
        while (b.hasRemaining()) {
            int r = ch.read(b, pos + b.position());
            if (r < 0) throw fail(file, "file ended at byte " + (pos + b.position()) + " while reading " + len + " bytes from byte " + pos + " (did it change while being read?)");
        }
        return b.flip();
    }

    private static IOException fail(Path file, String message) {
        return new IOException(file + ": " + message);
    }

    private static String jsonError(JsonProcessingException e) {
        long at = e.getLocation() == null ? -1 : e.getLocation().getCharOffset();
        return e.getOriginalMessage() + (at < 0 ? "" : " (at character " + at + " of the header)");
    }

    private static String kind(JsonNode n) {
        if (n == null) return "nothing";
        return n.getNodeType().name().toLowerCase(java.util.Locale.ROOT);
    }

    private static String describe(JsonToken t) {
        return t == null ? "nothing" : t.asString() != null ? "'" + t.asString() + "'" : t.name().toLowerCase(java.util.Locale.ROOT);
    }
}
