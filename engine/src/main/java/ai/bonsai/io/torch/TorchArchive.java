package ai.bonsai.io.torch;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A TorchScript archive ({@code torch.jit.save}), read safely: the module tree of {@code data.pkl}, the
 * constants table of {@code constants.pkl} (the tensors that tracing froze, referenced from the code as
 * {@code CONSTANTS.c<i>}), and the TorchScript source under {@code code/}. Layout, under one root folder:
 *
 * <pre>
 *   root/version            format version, a decimal number
 *   root/data.pkl           pickle (protocol 2) of the root module object; storages are persistent ids
 *   root/data/N             raw little-endian storage N of data.pkl
 *   root/constants.pkl      pickle of a tuple of constants; storages in root/constants/N
 *   root/code/**.py         TorchScript source of every class ({@code .debug_pkl} files are ignored)
 * </pre>
 *
 * <p>This is a reader of data, not of programs: nothing in the archive is executed; the pickles go through
 * {@link TorchUnpickler}'s allowlist, and the code is returned as text for importers that parse the few
 * patterns they need. Storages are read lazily, each checked against its declared size and CRC. Every error
 * is a {@link TorchFormatException} naming the file and entry. Not thread-safe during {@link #read}; the
 * result may be shared.
 */
public final class TorchArchive {
    private final String source;
    private final String root;
    private final long version;
    private final TorchModule model;
    private final List<Object> constants;
    private final Map<String, String> code;

    private TorchArchive(String source, String root, long version, TorchModule model, List<Object> constants, Map<String, String> code) {
        this.source = source;
        this.root = root;
        this.version = version;
        this.model = model;
        this.constants = constants;
        this.code = code;
    }

    public static TorchArchive open(Path file) throws IOException { return open(file, TorchLimits.DEFAULT); }

    /** Reads {@code file} (at most {@link TorchLimits#maxArchiveBytes()} bytes) and parses it. */
    public static TorchArchive open(Path file, TorchLimits limits) throws IOException {
        byte[] bytes;
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size > limits.maxArchiveBytes()) throw new TorchFormatException(file + ": " + size + " bytes is more than the limit of " + limits.maxArchiveBytes());
            bytes = new byte[(int) size];
            ByteBuffer buf = ByteBuffer.wrap(bytes);
            while (buf.hasRemaining()) {
                if (ch.read(buf) < 0) throw new TorchFormatException(file + ": file ended after " + buf.position() + " of " + size + " bytes while reading");
            }
        }
        return read(bytes, file.toString(), limits);
    }

    /** Parses an archive held in memory; {@code source} names it in messages. */
    public static TorchArchive read(byte[] bytes, String source, TorchLimits limits) throws TorchFormatException {
        TorchZip zip = TorchZip.read(bytes, source, limits);
        String where = source + ":" + zip.root() + "/";
        long version = parseVersion(zip, where);
        Object top = TorchUnpickler.load(zip.read("data.pkl"), where + "data.pkl", limits, resolver(zip, "data", where));
        if (top instanceof Map<?, ?>) {
            // The same zip layout as torch.save's: say which one this is, since the file names alone do not.
            throw new TorchFormatException(where + "data.pkl: the root value is a dict, as torch.save(model.state_dict(), f) writes, not a TorchScript "
                    + "module (torch.jit.save); state dicts are read by TorchStateDict ('bonsai import --from FILE --arch NAME --save CKPT')");
        }
        if (!(top instanceof TorchObject rootObject)) throw new TorchFormatException(where + "data.pkl: the root value is not a TorchScript module object");
        TorchModule model = TorchModule.of(rootObject, where + "data.pkl", limits.maxModuleDepth());
        Object c = TorchUnpickler.load(zip.read("constants.pkl"), where + "constants.pkl", limits, resolver(zip, "constants", where));
        if (!(c instanceof List<?> cl) || c instanceof java.util.ArrayList<?>) throw new TorchFormatException(where + "constants.pkl: the root value is not a tuple");
        List<Object> constants = Collections.unmodifiableList(new java.util.ArrayList<>(cl));
        Map<String, String> code = new LinkedHashMap<>();
        for (String name : zip.names("code/")) {
            if (!name.endsWith(".py")) continue;
            code.put(name.substring("code/".length()), utf8(zip.read(name), where + name));
        }
        return new TorchArchive(source, zip.root(), version, model, constants, Collections.unmodifiableMap(code));
    }

    private static long parseVersion(TorchZip zip, String where) throws TorchFormatException {
        if (zip.entry("version") == null) throw new TorchFormatException(where + "version: missing (not a TorchScript archive)");
        if (zip.entry("version").size() > 32) throw new TorchFormatException(where + "version: " + zip.entry("version").size() + " bytes, expected a short decimal number");
        String v = new String(zip.read("version"), StandardCharsets.US_ASCII).trim();
        if (v.isEmpty() || v.length() > 9 || !v.chars().allMatch(ch -> ch >= '0' && ch <= '9')) throw new TorchFormatException(where + "version: '" + v + "' is not a decimal number");
        return Long.parseLong(v);
    }

    /** Storages of one pickle: key N is entry {@code folder/N}, which must hold exactly numel elements. */
    static TorchUnpickler.StorageResolver resolver(TorchZip zip, String folder, String where) {
        Map<String, TorchStorage> cache = new HashMap<>();
        return (dtype, key, numel) -> {
            String entry = folder + "/" + key;
            TorchStorage s = cache.get(key);
            if (s != null) {
                if (s.dtype() != dtype || s.numel() != numel) {
                    throw new TorchFormatException(where + entry + ": referenced as " + numel + " x " + dtype + " and as " + s.numel() + " x " + s.dtype());
                }
                return s;
            }
            TorchZip.Entry e = zip.entry(entry);
            if (e == null) throw new TorchFormatException(where + entry + ": missing (a pickle references storage " + key + ")");
            if (numel > e.size() / dtype.bytes() || e.size() != numel * dtype.bytes()) {
                throw new TorchFormatException(where + entry + ": " + e.size() + " bytes, but the pickle declares " + numel + " " + dtype + " elements (" + numel * dtype.bytes() + " bytes)");
            }
            s = new TorchStorage(dtype, where + entry, numel, () -> zip.read(entry));
            cache.put(key, s);
            return s;
        };
    }

    private static String utf8(byte[] b, String where) throws TorchFormatException {
        try {
            return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(b)).toString();
        } catch (CharacterCodingException e) {
            throw new TorchFormatException(where + ": not valid UTF-8");
        }
    }

    /** The file this archive came from, as given. */
    public String source() { return source; }

    /** The root folder of the zip entries (such as {@code resnet20_g4}). */
    public String root() { return root; }

    /** The number in {@code version}. */
    public long version() { return version; }

    /** The module tree of {@code data.pkl}. */
    public TorchModule model() { return model; }

    /** The values of {@code constants.pkl}, in order: {@code CONSTANTS.c<i>} is element i. */
    public List<Object> constants() { return constants; }

    /** Constant {@code i}, which must be a tensor. */
    public TorchTensor constantTensor(int i) throws TorchFormatException {
        if (i < 0 || i >= constants.size()) throw new TorchFormatException(source + ":" + root + "/constants.pkl: no constant c" + i + " (the table has " + constants.size() + ")");
        if (!(constants.get(i) instanceof TorchTensor t)) throw new TorchFormatException(source + ":" + root + "/constants.pkl: constant c" + i + " is not a tensor");
        return t;
    }

    /** TorchScript sources by path under {@code code/}, such as {@code __torch__/cifar_model.py}. */
    public Map<String, String> code() { return code; }
}
