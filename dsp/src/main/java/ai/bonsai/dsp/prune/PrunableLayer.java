package ai.bonsai.dsp.prune;

import ai.bonsai.dsp.graph.ModelGraph;
import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.dsp.models.ModelStats;
import ai.bonsai.nn.Conv2d;
import ai.bonsai.nn.Module;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * A convolution that DSP may prune (spec section 1), indexed in module order.
 *
 * @param index     l = 0, 1, 2, ... in module order
 * @param name      dotted module path, e.g. "stage_1.0.conv_a"
 * @param flops     multiply-adds of the dense layer for one input image at the model's own input size:
 *                  N * C * k * k * H_out * W_out
 * @param inputSize C * H_in * W_in / (16 * 32 * 32), its input volume relative to the first stage of a CIFAR ResNet,
 *                  from the probe that {@link InputSizeProbe} picks
 */
public record PrunableLayer(int index, String name, Conv2d conv, long flops, double inputSize) {

    public int filters() { return conv.outChannels(); }

    public int channels() { return conv.inChannels(); }

    public int kernel() { return conv.kernelSize(); }

    /** A convolution DSP leaves alone, and why. */
    public record NotPrunable(String name, String reason) {}

    /**
     * Which probe sizes {@code inputSize}, the regulariser's per-layer scale. {@code MODEL}: the model's own input
     * size (224 for ImageNet), so the scale follows the activation volume the layer really reads. {@code
     * REFERENCE}: 32x32 whatever the model's size, as the reference implementation always probes; at 224 pixels its
     * scales are then 49 times smaller (7 times after the square root the regulariser takes), which changes the
     * balance between the regulariser and the loss that a given lambda gives.
     */
    public enum InputSizeProbe { MODEL, REFERENCE }

    /** The outcome of {@link #discover}: the traced graph, the prunable layers, and the convolutions left alone. */
    public record Discovery(ModelGraph graph, List<PrunableLayer> layers, List<NotPrunable> notPrunable) {
        public Discovery {
            layers = List.copyOf(layers);
            notPrunable = List.copyOf(notPrunable);
        }

        /** The prunable layers, then the others with their reasons. */
        public String format() {
            StringBuilder sb = new StringBuilder("prunable layers (index, name, filters, channels, kernel, MACs):\n");
            for (PrunableLayer l : layers) sb.append(String.format("%4d %-32s %5d %5d %2d %,14d%n", l.index(), l.name(), l.filters(), l.channels(), l.kernel(), l.flops()));
            if (!notPrunable.isEmpty()) {
                sb.append("not prunable:\n");
                for (NotPrunable n : notPrunable) sb.append(String.format("     %-32s %s%n", n.name(), n.reason()));
            }
            return sb.toString();
        }
    }

    /**
     * Finds the prunable layers of any model built from the engine's modules: every {@link Conv2d} except
     * <ul>
     * <li>the first one in module order (the stem, which reads the image), and shortcut projections (paths containing
     *     {@code downsample}): the reference's rule (spec section 1);</li>
     * <li>depthwise and grouped convolutions: a group channel would cut across the convolution's own groups;</li>
     * <li>convolutions with one input channel: there is nothing to choose between;</li>
     * <li>convolutions the forward runs more than once (shared weights) or never;</li>
     * <li>the names matching one of {@code exclude} (exact module paths, or patterns with {@code *}).</li>
     * </ul>
     *
     * @param inputDims the model's input without the batch axis, e.g. {3, 224, 224}
     */
    public static Discovery discover(Module model, int[] inputDims, InputSizeProbe probe, Collection<String> exclude) {
        if (probe == null) throw new IllegalArgumentException("PrunableLayer.discover: probe is null (MODEL or REFERENCE)");
        ModelGraph graph = ModelGraph.trace(model, inputDims);
        Map<String, ModelStats.Layer> stats = new HashMap<>();
        for (ModelStats.Layer l : ModelStats.of(model, graph).layers()) stats.put(l.name(), l);
        Map<String, ModelStats.Layer> probed = stats;
        if (probe == InputSizeProbe.REFERENCE && inputDims.length == 3 && (inputDims[1] != 32 || inputDims[2] != 32)) {
            probed = new HashMap<>();
            for (ModelStats.Layer l : ModelStats.of(model, inputDims[0], 32, 32).layers()) probed.put(l.name(), l);
        }
        List<Pattern> patterns = new ArrayList<>();
        for (String e : exclude == null ? List.<String>of() : exclude) patterns.add(Pattern.compile(Arrays.stream(e.split("\\*", -1)).map(Pattern::quote).reduce((a, b) -> a + ".*" + b).orElse("")));
        List<PrunableLayer> out = new ArrayList<>();
        List<NotPrunable> skipped = new ArrayList<>();
        boolean first = true;
        for (Map.Entry<String, Module> e : model.namedModules().entrySet()) {
            if (!(e.getValue() instanceof Conv2d conv)) continue;
            String name = e.getKey();
            int uses = graph.uses(conv);
            String reason = null;
            if (first) reason = "the stem (the first convolution), as in the reference";
            else if (name.contains("downsample")) reason = "a shortcut projection ('downsample' in its path), as in the reference";
            else if (conv.groups() > 1) reason = conv.groups() == conv.inChannels() ? "a depthwise convolution" : "a grouped convolution (groups=" + conv.groups() + ")";
            else if (conv.inChannels() == 1) reason = "one input channel";
            else if (uses == 0) reason = "never run by the forward";
            else if (uses > 1) reason = "run " + uses + " times by the forward (shared weights)";
            else if (patterns.stream().anyMatch(p -> p.matcher(name).matches())) reason = "excluded by the user";
            first = false;
            if (reason != null) {
                skipped.add(new NotPrunable(name, reason));
                continue;
            }
            ModelStats.Layer s = stats.get(name), p = probed.get(name);
            if (s == null || p == null) throw new IllegalStateException("PrunableLayer: no size information for convolution " + name);
            double inputSize = (double) conv.inChannels() * p.inSize() * p.inSize() / (16.0 * 32 * 32);
            out.add(new PrunableLayer(out.size(), name, conv, s.macs(), inputSize));
        }
        for (String e : exclude == null ? List.<String>of() : exclude) {
            Pattern p = patterns.get(List.copyOf(exclude).indexOf(e));
            if (model.namedModules().keySet().stream().noneMatch(n -> p.matcher(n).matches())) {
                throw new IllegalArgumentException("PrunableLayer: exclude pattern '" + e + "' matches no module of the model");
            }
        }
        return new Discovery(graph, out, skipped);
    }

    /** {@link #discover} with the model's own input size for the probe and no exclusions. */
    public static Discovery discover(Module model, int... inputDims) {
        return discover(model, inputDims, InputSizeProbe.MODEL, List.of());
    }

    /** The prunable layers of a CIFAR ResNet (conv_a and conv_b of every basic block), for one 1x3x32x32 input. */
    public static List<PrunableLayer> find(CifarResNet model) {
        return discover(model, 3, 32, 32).layers();
    }
}
