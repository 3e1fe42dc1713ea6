package ai.bonsai.dsp.models;

import ai.bonsai.io.Checkpoint;
import ai.bonsai.io.torch.TorchStateDict;
import ai.bonsai.nn.Module;
import ai.bonsai.tensor.Tensor;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Loads a torchvision state dict into the models of this package ({@link TorchvisionResNet}, {@link MobileNetV2},
 * {@link Vgg16Bn}), whose keys are torchvision's. The only keys Bonsai does not have are the batch-norm counters
 * {@code <bn>.num_batches_tracked}: Bonsai's BatchNorm2d keeps none, because the count only matters for
 * momentum=None (cumulative averages), which it does not support. Those are ignored (and named in the
 * {@link Match} report); everything else is matched by name, shape and dtype.
 *
 * <p>{@link #match} compares without copying and says what matched, what is missing, unexpected or mis-shaped;
 * {@link #load(Module, Map, boolean)} copies the matches, refusing any mismatch when strict. {@code bonsai import}
 * and {@code bonsai pretrain --init} go through these, as does the torchvision cross-check. {@link #read} reads a
 * {@code torch.save} state dict (zip) or a safetensors file, telling them apart by their first bytes.
 */
public final class TorchvisionWeights {
    static final String NUM_BATCHES_TRACKED = "num_batches_tracked";

    private TorchvisionWeights() {}

    /**
     * How a state dict fits a model. {@code matched}: names present in both with equal shape and dtype (parameters
     * and buffers); {@code missing}: the model's names absent from the file; {@code unexpected}: the file's names
     * the model lacks; {@code mismatched}: present in both with another shape or dtype, each as
     * "name: file (..) F32, model (..) F32"; {@code ignored}: the file's num_batches_tracked counters.
     */
    public record Match(List<String> matched, int matchedParameters, List<String> missing, List<String> unexpected,
                        List<String> mismatched, List<String> ignored) {
        public Match {
            matched = List.copyOf(matched);
            missing = List.copyOf(missing);
            unexpected = List.copyOf(unexpected);
            mismatched = List.copyOf(mismatched);
            ignored = List.copyOf(ignored);
        }

        /** Nothing missing, unexpected or mis-shaped: a strict load would succeed. */
        public boolean isExact() { return missing.isEmpty() && unexpected.isEmpty() && mismatched.isEmpty(); }

        /** The report, one heading per kind with every name under it; matched entries are counted, not listed. */
        public String report() {
            StringBuilder sb = new StringBuilder();
            sb.append(String.format("matched:    %d tensors (%d parameters, %d buffers)%n", matched.size(), matchedParameters, matched.size() - matchedParameters));
            section(sb, "missing:    ", missing, "in the model, not in the file");
            section(sb, "unexpected: ", unexpected, "in the file, not in the model");
            section(sb, "mismatched: ", mismatched, "shape or dtype differs");
            section(sb, "ignored:    ", ignored, "batch-norm step counters, which Bonsai does not keep");
            return sb.toString();
        }

        private static void section(StringBuilder sb, String head, List<String> names, String what) {
            sb.append(head).append(names.size()).append(names.isEmpty() ? "" : " (" + what + ")").append(System.lineSeparator());
            for (String n : names) sb.append("  ").append(n).append(System.lineSeparator());
        }

        /** One line for error messages: the counts and the first names of each problem. */
        public String summary() {
            List<String> parts = new ArrayList<>();
            if (!missing.isEmpty()) parts.add(missing.size() + " missing " + head(missing));
            if (!unexpected.isEmpty()) parts.add(unexpected.size() + " unexpected " + head(unexpected));
            if (!mismatched.isEmpty()) parts.add(mismatched.size() + " mismatched " + head(mismatched));
            return parts.isEmpty() ? "exact match" : String.join("; ", parts);
        }

        private static String head(List<String> l) {
            return l.size() <= 5 ? l.toString() : l.subList(0, 5) + " and " + (l.size() - 5) + " more";
        }
    }

    /** Compares {@code state} with {@code model}'s state dict by name, shape and dtype; copies nothing. */
    public static Match match(Module model, Map<String, Tensor> state) {
        if (model == null || state == null) throw new IllegalArgumentException("TorchvisionWeights.match: model and state must not be null");
        Map<String, Tensor> own = model.stateDict();
        Set<String> params = model.namedParameters().keySet();
        List<String> matched = new ArrayList<>(), missing = new ArrayList<>(), unexpected = new ArrayList<>(), mismatched = new ArrayList<>(), ignored = new ArrayList<>();
        int matchedParams = 0;
        for (Map.Entry<String, Tensor> e : own.entrySet()) {
            Tensor src = state.get(e.getKey());
            Tensor dst = e.getValue();
            if (src == null) {
                missing.add(e.getKey());
            } else if (!src.shape().equals(dst.shape()) || src.dtype() != dst.dtype()) {
                mismatched.add(e.getKey() + ": file " + src.shape() + " " + src.dtype() + ", model " + dst.shape() + " " + dst.dtype());
            } else {
                matched.add(e.getKey());
                if (params.contains(e.getKey())) matchedParams++;
            }
        }
        for (String k : state.keySet()) {
            if (own.containsKey(k)) continue;
            if (isNumBatchesTracked(k)) ignored.add(k);
            else unexpected.add(k);
        }
        return new Match(matched, matchedParams, missing, unexpected, mismatched, ignored);
    }

    /**
     * Copies the entries of {@code state} that match {@code model} (see {@link #match}); with {@code strict}, any
     * missing, unexpected or mis-shaped entry refuses the whole load (nothing is copied) with every name listed.
     */
    public static Match load(Module model, Map<String, Tensor> state, boolean strict) {
        Match m = match(model, state);
        if (strict && !m.isExact()) {
            throw new IllegalArgumentException("the weights do not fit " + model.getClass().getSimpleName() + ": " + m.summary() + System.lineSeparator() + m.report());
        }
        Map<String, Tensor> kept = new LinkedHashMap<>();
        for (String k : m.matched()) kept.put(k, state.get(k));
        model.loadStateDict(kept, false);
        return m;
    }

    /** Copies {@code state} into {@code model} by name, ignoring {@code num_batches_tracked} entries; strict otherwise. */
    public static void load(Module model, Map<String, Tensor> state) {
        if (model == null || state == null) throw new IllegalArgumentException("TorchvisionWeights.load: model and state must not be null");
        load(model, state, true);
    }

    /** Loads a safetensors or torch.save file holding a torchvision state dict (keys as torchvision writes them, no prefix). */
    public static void load(Module model, Path file) {
        Map<String, Tensor> state = read(file);
        try {
            load(model, state);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(file + " does not fit " + model.getClass().getSimpleName() + ": " + e.getMessage(), e);
        }
    }

    /** The formats {@link #read} tells apart. */
    public enum Format { TORCH_ZIP, SAFETENSORS }

    /**
     * What {@code file} is, from its first bytes: a zip (every {@code torch.save} since PyTorch 1.6) or else
     * safetensors (whose reader then checks the header). A missing file is an error naming it.
     */
    public static Format formatOf(Path file) {
        byte[] head = new byte[4];
        int n;
        try (InputStream in = Files.newInputStream(file)) {
            n = in.readNBytes(head, 0, 4);
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot read: " + e, e);
        }
        return n == 4 && TorchStateDict.isZip(head) ? Format.TORCH_ZIP : Format.SAFETENSORS;
    }

    /**
     * The tensors of a state dict file by name: a {@code torch.save} zip through the allow-listed unpickler, or
     * safetensors (all its tensors; a Bonsai checkpoint's optimiser and scheduler entries are left out). Any error
     * names the file.
     */
    public static Map<String, Tensor> read(Path file) {
        if (!Files.isRegularFile(file)) throw new IllegalArgumentException(file + ": no such file");
        if (formatOf(file) == Format.TORCH_ZIP) {
            try {
                return TorchStateDict.read(file);
            } catch (IOException e) {
                throw new UncheckedIOException(e.getMessage(), e);
            }
        }
        Checkpoint c = Checkpoint.load(file);
        return "bonsai-checkpoint-1".equals(c.metadata().get("format")) ? c.modelState() : c.tensors();
    }

    /** Whether {@code key} is a batch-norm step counter, which Bonsai's state dicts leave out. */
    static boolean isNumBatchesTracked(String key) {
        return key.equals(NUM_BATCHES_TRACKED) || key.endsWith("." + NUM_BATCHES_TRACKED);
    }
}
