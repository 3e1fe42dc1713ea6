package ai.bonsai.dsp.models;

import ai.bonsai.nn.Conv2d;
import ai.bonsai.nn.Linear;

import java.util.ArrayList;
import java.util.List;

/**
 * Multiply-adds and parameters of a CIFAR ResNet, per convolution and in total, for one 32x32 image.
 * Counts follow the DSP paper's convention: convolution and classifier weights (and the classifier bias);
 * batch-norm parameters are not counted.
 */
public final class ModelStats {
    /** One convolution or linear layer: its dotted name, its input and output spatial size, MACs and weights. */
    public record Layer(String name, int inChannels, int outChannels, int kernel, int inSize, int outSize, long macs, long params) {}

    private final List<Layer> layers;

    private ModelStats(List<Layer> layers) { this.layers = layers; }

    public static ModelStats of(CifarResNet model) {
        List<Layer> out = new ArrayList<>();
        int size = 32;
        size = conv(out, "conv_1_3x3", model.stemConv(), size);
        for (int s = 0; s < 3; s++) {
            int b = 0;
            for (CifarResNet.BasicBlock block : model.stage(s)) {
                String prefix = "stage_" + (s + 1) + "." + b + ".";
                int mid = conv(out, prefix + "conv_a", block.convA(), size);
                if (block.downsample() != null) conv(out, prefix + "downsample.0", (Conv2d) block.downsample().get(0), size);
                size = conv(out, prefix + "conv_b", block.convB(), mid);
                b++;
            }
        }
        Linear fc = model.classifier();
        long p = fc.weight().numel() + (fc.bias() == null ? 0 : fc.bias().numel());
        out.add(new Layer("classifier", fc.weight().dim(1), fc.weight().dim(0), 1, 1, 1, fc.weight().numel(), p));
        return new ModelStats(out);
    }

    private static int conv(List<Layer> out, String name, Conv2d c, int inSize) {
        int o = (inSize + 2 * c.padding() - c.kernelSize()) / c.stride() + 1;
        long w = c.weight().numel();
        out.add(new Layer(name, c.inChannels(), c.outChannels(), c.kernelSize(), inSize, o, w * o * o, w));
        return o;
    }

    public List<Layer> layers() { return layers; }

    public long macs() { return layers.stream().mapToLong(Layer::macs).sum(); }

    public long params() { return layers.stream().mapToLong(Layer::params).sum(); }
}
