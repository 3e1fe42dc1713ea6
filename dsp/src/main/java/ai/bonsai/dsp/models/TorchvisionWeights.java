package ai.bonsai.dsp.models;

import ai.bonsai.io.Checkpoint;
import ai.bonsai.nn.Module;
import ai.bonsai.tensor.Tensor;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Loads a torchvision state dict into the models of this package ({@link TorchvisionResNet}, {@link MobileNetV2},
 * {@link Vgg16Bn}), whose keys are torchvision's. The only keys Bonsai does not have are the batch-norm counters
 * {@code <bn>.num_batches_tracked}: Bonsai's BatchNorm2d keeps none, because the count only matters for
 * momentum=None (cumulative averages), which it does not support. Those are dropped; everything else must match
 * exactly (strict load), so a checkpoint of another architecture fails with every missing and extra key listed.
 *
 * <p>A state dict saved with {@code torch.save} is a pickle; convert it to safetensors first (for example with
 * {@code safetensors.torch.save_file(sd, path)}, or as scripts/torchvision-crosscheck.py does), then use
 * {@link #load(Module, Path)}.
 */
public final class TorchvisionWeights {
    static final String NUM_BATCHES_TRACKED = "num_batches_tracked";

    private TorchvisionWeights() {}

    /** Copies {@code state} into {@code model} by name, ignoring {@code num_batches_tracked} entries; strict otherwise. */
    public static void load(Module model, Map<String, Tensor> state) {
        if (model == null || state == null) throw new IllegalArgumentException("TorchvisionWeights.load: model and state must not be null");
        Map<String, Tensor> kept = new LinkedHashMap<>();
        state.forEach((k, v) -> {
            if (!isNumBatchesTracked(k)) kept.put(k, v);
        });
        model.loadStateDict(kept, true);
    }

    /** Loads a safetensors file holding a torchvision state dict (keys as torchvision writes them, no prefix). */
    public static void load(Module model, Path safetensors) {
        Checkpoint c = Checkpoint.load(safetensors);
        try {
            load(model, c.tensors());
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(safetensors + " does not fit " + model.getClass().getSimpleName() + ": " + e.getMessage(), e);
        }
    }

    /** Whether {@code key} is a batch-norm step counter, which Bonsai's state dicts leave out. */
    static boolean isNumBatchesTracked(String key) {
        return key.equals(NUM_BATCHES_TRACKED) || key.endsWith("." + NUM_BATCHES_TRACKED);
    }
}
