package ai.bonsai.io;

import ai.bonsai.nn.Module;
import ai.bonsai.optim.LrScheduler;
import ai.bonsai.optim.Optimizer;
import ai.bonsai.tensor.Tensor;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A training checkpoint in safetensors: the model's state dict under its own names (so Python's
 * {@code safetensors.torch.load_file} gives a state dict directly), the optimiser's and scheduler's state
 * under {@code optimizer.} and {@code scheduler.}, extension state (for example DSP group logits) under
 * {@code extra.}, and string metadata (architecture, depth, epoch, accuracy, seed, ...).
 *
 * <p>Saving is atomic ({@link SafeTensors#write}): a crash leaves the previous file intact.
 */
public final class Checkpoint {
    public static final String OPTIMIZER = "optimizer.", SCHEDULER = "scheduler.", EXTRA = "extra.";
    private final Path file;
    private final Map<String, Tensor> tensors;
    private final Map<String, String> metadata;

    private Checkpoint(Path file, Map<String, Tensor> tensors, Map<String, String> metadata) {
        this.file = file;
        this.tensors = tensors;
        this.metadata = metadata;
    }

    /** Writes model, optimiser, scheduler (each may be null) and extra tensors with the given metadata. */
    public static void save(Path file, Module model, Optimizer optimizer, LrScheduler scheduler,
                            Map<String, Tensor> extra, Map<String, String> metadata) {
        List<NamedArray> out = new ArrayList<>();
        if (model != null) model.stateDict().forEach((k, v) -> out.add(toArray(k, v)));
        if (optimizer != null) optimizer.stateDict().forEach((k, v) -> out.add(toArray(OPTIMIZER + k, v)));
        if (scheduler != null) scheduler.stateDict().forEach((k, v) -> out.add(toArray(SCHEDULER + k, v)));
        if (extra != null) extra.forEach((k, v) -> out.add(toArray(EXTRA + k, v)));
        try {
            SafeTensors.write(file, out, metadata == null ? Map.of() : metadata);
        } catch (IOException e) {
            throw new UncheckedIOException("checkpoint " + file + ": write failed, the previous file (if any) is unchanged: " + cause(e), e);
        }
    }

    /** The cause of a failed write in words: the exception types that carry only a path get their meaning spelled out. */
    static String cause(IOException e) {
        String what = e instanceof java.nio.file.AccessDeniedException ? "permission denied"
                : e instanceof java.nio.file.NoSuchFileException ? "no such file or folder"
                : e instanceof java.nio.file.FileSystemException f && f.getReason() != null ? f.getReason()
                : null;
        if (what == null) return e.getMessage() == null ? e.toString() : e.getMessage();
        return what + ": " + ((java.nio.file.FileSystemException) e).getFile();
    }

    /** Reads a checkpoint; a corrupt file gets an error naming the file and what is wrong. */
    public static Checkpoint load(Path file) {
        SafeTensors.Contents c;
        try {
            c = SafeTensors.read(file);
        } catch (IOException e) {
            throw new UncheckedIOException(e.getMessage() == null ? "checkpoint " + file + ": " + e : e.getMessage(), e);
        }
        Map<String, Tensor> ts = new LinkedHashMap<>();
        for (NamedArray a : c.tensors()) ts.put(a.name(), toTensor(a));
        return new Checkpoint(file, ts, new LinkedHashMap<>(c.metadata()));
    }

    public Path file() { return file; }

    public Map<String, String> metadata() { return metadata; }

    /** Every tensor in the file under its stored name. */
    public Map<String, Tensor> tensors() { return tensors; }

    /** The model's entries: everything outside the optimiser, scheduler and extra namespaces. */
    public Map<String, Tensor> modelState() {
        Map<String, Tensor> m = new LinkedHashMap<>();
        tensors.forEach((k, v) -> {
            if (!k.startsWith(OPTIMIZER) && !k.startsWith(SCHEDULER) && !k.startsWith(EXTRA)) m.put(k, v);
        });
        return m;
    }

    /** Entries under {@code prefix}, with the prefix removed. */
    public Map<String, Tensor> tensorsWithPrefix(String prefix) {
        Map<String, Tensor> m = new LinkedHashMap<>();
        tensors.forEach((k, v) -> {
            if (k.startsWith(prefix)) m.put(k.substring(prefix.length()), v);
        });
        return m;
    }

    /** Loads the model's entries into {@code model}; a strict mismatch names the file and every bad entry. */
    public Module.LoadResult loadModel(Module model, boolean strict) {
        try {
            return model.loadStateDict(modelState(), strict);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("checkpoint " + file + " does not fit the model: " + e.getMessage(), e);
        }
    }

    public void loadOptimizer(Optimizer optimizer) {
        Map<String, Tensor> s = tensorsWithPrefix(OPTIMIZER);
        if (s.isEmpty()) throw new IllegalArgumentException("checkpoint " + file + ": holds no optimizer state");
        try {
            optimizer.loadStateDict(s);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("checkpoint " + file + ": optimizer state does not fit: " + e.getMessage(), e);
        }
    }

    public void loadScheduler(LrScheduler scheduler) {
        Map<String, Tensor> s = tensorsWithPrefix(SCHEDULER);
        if (s.isEmpty()) throw new IllegalArgumentException("checkpoint " + file + ": holds no scheduler state");
        try {
            scheduler.loadStateDict(s);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("checkpoint " + file + ": scheduler state does not fit: " + e.getMessage(), e);
        }
    }

    /** A metadata value that must be present. */
    public String require(String key) {
        String v = metadata.get(key);
        if (v == null) throw new IllegalArgumentException("checkpoint " + file + ": metadata has no '" + key + "' (keys: " + metadata.keySet() + ")");
        return v;
    }

    public int requireInt(String key) {
        String v = require(key);
        try {
            return Integer.parseInt(v.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("checkpoint " + file + ": metadata '" + key + "' should be an integer, got '" + v + "'");
        }
    }

    static NamedArray toArray(String name, Tensor t) {
        return switch (t.dtype()) {
            case FLOAT32 -> NamedArray.ofFloats(name, t.shape(), t.toFloatArray());
            case INT64 -> NamedArray.ofLongs(name, t.shape(), t.toLongArray());
            case INT32 -> {
                long[] l = t.toLongArray();
                int[] a = new int[l.length];
                for (int i = 0; i < l.length; i++) a[i] = (int) l[i];
                yield NamedArray.ofInts(name, t.shape(), a);
            }
        };
    }

    static Tensor toTensor(NamedArray a) {
        int[] d = a.shape().dims();
        return switch (a.dtype()) {
            case FLOAT32 -> Tensor.of(a.floats(), d);
            case INT64 -> Tensor.ofLongs(a.longs(), d);
            case INT32 -> Tensor.ofInts(a.ints(), d);
        };
    }

}
