package ai.bonsai.io.torch;

import ai.bonsai.tensor.Tensor;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A state dict saved by {@code torch.save(model.state_dict(), f)} (PyTorch 1.6 and later), read safely into
 * Bonsai tensors by name. The file is the zip layout of a TorchScript archive without the code:
 *
 * <pre>
 *   root/data.pkl     pickle (protocol 2) of an OrderedDict: name -> torch._utils._rebuild_tensor_v2(...)
 *   root/data/N       raw little-endian storage N
 *   root/version      format version, a decimal number
 *   root/byteorder    "little" or "big" (written by newer PyTorch; absent means little)
 * </pre>
 *
 * <p>The pickle goes through {@link TorchUnpickler}'s allowlist, so nothing the file names is ever called or
 * instantiated: a file naming {@code os.system} or {@code builtins.eval} fails with that name. Floating tensors
 * (float32, float64, float16, bfloat16) become FLOAT32 tensors, int64 ones (such as {@code num_batches_tracked})
 * INT64. Every error is a {@link TorchFormatException} naming the file. Not for the legacy pre-1.6 format (a
 * bare pickle stream), which is recognised and refused with a hint.
 *
 * <p>It lives here, beside {@link TorchArchive}, because it is the same container and pickle dialect and shares
 * the package-private zip reader and storage resolver; what the names mean is for the callers (dsp's
 * TorchvisionWeights).
 */
public final class TorchStateDict {
    private TorchStateDict() {}

    public static Map<String, Tensor> read(Path file) throws IOException { return read(file, TorchLimits.DEFAULT); }

    /** Reads {@code file} (at most {@link TorchLimits#maxArchiveBytes()} bytes) whole and parses it. */
    public static Map<String, Tensor> read(Path file, TorchLimits limits) throws IOException {
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

    /** Parses a state dict held in memory; {@code source} names it in messages. Tensors keep the file's order. */
    public static Map<String, Tensor> read(byte[] bytes, String source, TorchLimits limits) throws TorchFormatException {
        if (bytes.length >= 2 && (bytes[0] & 0xFF) == 0x80 && bytes[1] <= 5) {
            throw new TorchFormatException(source + ": a bare pickle stream (torch.save's legacy format from before PyTorch 1.6, or "
                    + "_use_new_zipfile_serialization=False) is not supported; save it again with torch.save(state_dict, f) from PyTorch 1.6 or later");
        }
        TorchZip zip;
        try {
            zip = TorchZip.read(bytes, source, limits);
        } catch (TorchFormatException e) {
            // A zip's directory is at its end, so a cut-off download loses it first: say so rather than "not a zip".
            if (isZip(bytes) && e.getMessage().contains("no end-of-central-directory")) {
                throw new TorchFormatException(source + ": truncated: it starts as a zip archive (torch.save format) but its " + bytes.length
                        + " bytes end without the zip directory; download or copy it again", e);
            }
            throw e;
        }
        String where = source + ":" + zip.root() + "/";
        if (zip.entry("byteorder") != null) {
            String order = zip.entry("byteorder").size() > 16 ? "?" : new String(zip.read("byteorder"), StandardCharsets.US_ASCII).trim();
            if (!order.equals("little")) throw new TorchFormatException(where + "byteorder: '" + order + "', expected 'little' (big-endian files are not supported)");
        }
        if (zip.entry("data.pkl") == null) {
            throw new TorchFormatException(where + "data.pkl: missing; not a torch.save file (entries under " + zip.root() + "/: " + zip.names("") + ")");
        }
        Object top = TorchUnpickler.load(zip.read("data.pkl"), where + "data.pkl", limits, TorchArchive.resolver(zip, "data", where));
        if (!(top instanceof Map<?, ?> dict)) {
            throw new TorchFormatException(where + "data.pkl: the saved value is " + kind(top) + ", expected a state dict (a dict of tensors, "
                    + "as torch.save(model.state_dict(), f) writes)");
        }
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (Map.Entry<?, ?> e : dict.entrySet()) {
            if (!(e.getKey() instanceof String k)) throw new TorchFormatException(where + "data.pkl: key " + e.getKey() + " is not a string; a state dict's keys are names");
            if (!(e.getValue() instanceof TorchTensor t)) {
                throw new TorchFormatException(where + "data.pkl: '" + k + "' is " + kind(e.getValue()) + ", expected a tensor (is this a training checkpoint "
                        + "with the state dict nested inside? save its state dict alone: torch.save(ckpt['state_dict'], f))");
            }
            out.put(k, t.toTensor());
        }
        return Collections.unmodifiableMap(out);
    }

    /** Whether {@code head} (the first bytes of a file) starts a zip archive, as every torch.save file since 1.6 does. */
    public static boolean isZip(byte[] head) {
        return head.length >= 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4;
    }

    private static String kind(Object v) {
        if (v == null) return "None";
        if (v instanceof TorchTensor) return "a tensor";
        if (v instanceof TorchObject o) return "an object of " + o.className();
        if (v instanceof Map<?, ?> m) return "a dict of " + m.size();
        if (v instanceof java.util.List<?> l) return "a sequence of " + l.size();
        return "a " + v.getClass().getSimpleName().toLowerCase(java.util.Locale.ROOT) + " (" + v + ")";
    }
}
