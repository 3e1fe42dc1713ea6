package ai.bonsai.dsp.prune;

import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.dsp.models.ModelStats;
import ai.bonsai.nn.Conv2d;
import ai.bonsai.nn.Module;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * A convolution that DSP may prune (spec section 1): every 2-D convolution except the first one (the stem)
 * and except shortcut projections (paths containing "downsample"), indexed in module order.
 *
 * @param index     l = 0, 1, 2, ... in module order
 * @param name      dotted module path, e.g. "stage_1.0.conv_a"
 * @param flops     multiply-adds of the dense layer for one input image: N * C * k * k * H_out * W_out
 * @param inputSize C * H_in * W_in / (16 * 32 * 32), its input volume relative to the first stage
 */
public record PrunableLayer(int index, String name, Conv2d conv, long flops, double inputSize) {

    public int filters() { return conv.outChannels(); }

    public int channels() { return conv.inChannels(); }

    public int kernel() { return conv.kernelSize(); }

    /**
     * Finds the prunable layers of a CIFAR ResNet, with FLOPs and input sizes measured for one 1x3x32x32 input.
     */
    public static List<PrunableLayer> find(CifarResNet model) {
        Map<String, ModelStats.Layer> stats = new java.util.HashMap<>();
        for (ModelStats.Layer l : ModelStats.of(model).layers()) stats.put(l.name(), l);
        List<PrunableLayer> out = new ArrayList<>();
        boolean first = true;
        for (Map.Entry<String, Module> e : model.namedModules().entrySet()) {
            if (!(e.getValue() instanceof Conv2d conv)) continue;
            if (first) {            // the stem
                first = false;
                continue;
            }
            if (e.getKey().contains("downsample")) continue;
            ModelStats.Layer s = stats.get(e.getKey());
            if (s == null) throw new IllegalStateException("PrunableLayer: no size information for convolution " + e.getKey());
            double inputSize = (double) conv.inChannels() * s.inSize() * s.inSize() / (16.0 * 32 * 32);
            out.add(new PrunableLayer(out.size(), e.getKey(), conv, s.macs(), inputSize));
        }
        return out;
    }
}
