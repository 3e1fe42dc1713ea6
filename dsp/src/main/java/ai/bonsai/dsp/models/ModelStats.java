package ai.bonsai.dsp.models;

import ai.bonsai.dsp.graph.ModelGraph;
import ai.bonsai.nn.Conv2d;
import ai.bonsai.nn.Linear;
import ai.bonsai.nn.Module;
import ai.bonsai.tensor.Tensor;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * Multiply-adds and parameters of a model, per convolution and linear layer and in total, for one image.
 * Counts follow the DSP paper's convention: convolution and classifier weights (and the classifier bias);
 * batch-norm parameters are not counted.
 */
public final class ModelStats {
    /** One convolution or linear layer: its dotted name, its input and output spatial size, MACs and weights. */
    public record Layer(String name, int inChannels, int outChannels, int kernel, int inSize, int outSize, long macs, long params) {}

    private final List<Layer> layers;
    private final long allParams;

    private ModelStats(List<Layer> layers, long allParams) {
        this.layers = layers;
        this.allParams = allParams;
    }

    /**
     * Every convolution and linear layer of any model, from its traced graph (batch 1 at {@code inputDims}, e.g.
     * 3, 224, 224), in module order. A layer's params are its weight and bias; {@link #allParams} adds the rest.
     */
    public static ModelStats of(Module model, int... inputDims) {
        return of(model, ModelGraph.trace(model, inputDims));
    }

    /** As {@link #of(Module, int...)}, from a graph already traced. */
    public static ModelStats of(Module model, ModelGraph graph) {
        Map<Module, Layer> byModule = new IdentityHashMap<>();
        for (ModelGraph.Op op : graph.ops()) {
            if (byModule.containsKey(op.module())) continue;         // a module run twice is counted once
            if (op.kind() == ModelGraph.Kind.CONV) {
                Conv2d c = op.conv();
                int[] in = graph.op(op.input(0)).shape(), out = op.shape();
                long w = c.weight().numel();
                long b = c.bias() == null ? 0 : c.bias().numel();
                byModule.put(c, new Layer(op.name(), c.inChannels(), c.outChannels(), c.kernelSize(), in[2], out[2], w * out[2] * out[3], w + b));
            } else if (op.kind() == ModelGraph.Kind.LINEAR) {
                Linear fc = op.linear();
                long p = fc.weight().numel() + (fc.bias() == null ? 0 : fc.bias().numel());
                byModule.put(fc, new Layer(op.name(), fc.weight().dim(1), fc.weight().dim(0), 1, 1, 1, fc.weight().numel(), p));
            }
        }
        List<Layer> out = new ArrayList<>();
        for (Module m : model.namedModules().values()) if (byModule.containsKey(m)) out.add(byModule.remove(m));
        long all = 0;
        for (Tensor t : model.parameters()) all += t.numel();
        return new ModelStats(out, all);
    }

    /** A CIFAR ResNet at its 32x32 input. */
    public static ModelStats of(CifarResNet model) { return of(model, 3, 32, 32); }

    public List<Layer> layers() { return layers; }

    public long macs() { return layers.stream().mapToLong(Layer::macs).sum(); }

    /** Weights and biases of the convolutions and linear layers: the DSP paper's convention (no batch norm). */
    public long params() { return layers.stream().mapToLong(Layer::params).sum(); }

    /** Every parameter of the model, batch norm included: torchvision's convention ({@code sum(p.numel())}). */
    public long allParams() { return allParams; }
}
