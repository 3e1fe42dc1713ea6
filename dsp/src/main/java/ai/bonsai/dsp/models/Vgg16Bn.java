package ai.bonsai.dsp.models;

import ai.bonsai.nn.BatchNorm2d;
import ai.bonsai.nn.Conv2d;
import ai.bonsai.nn.Init;
import ai.bonsai.nn.Linear;
import ai.bonsai.nn.MaxPool2d;
import ai.bonsai.nn.Module;
import ai.bonsai.nn.ReLU;
import ai.bonsai.nn.Sequential;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;

/**
 * VGG-16 with batch norm for CIFAR: torchvision's {@code vgg16_bn().features} unchanged (so its keys are
 * {@code features.<i>.weight} with torchvision's Sequential indices), then flatten and one {@code classifier} =
 * Linear(512, numClasses) in place of torchvision's 7x7 pooling and three-layer ImageNet head. At 32x32 the five
 * max pools leave the features at 512x1x1, which is why the usual CIFAR VGG needs no pooling before the classifier.
 *
 * <p>Each entry of {@link #CFG} is a 3x3 convolution (padding 1, with a bias, as torchvision's make_layers builds
 * it) followed by BatchNorm2d and ReLU, three modules; "M" (here -1) is a 2x2 max pool, one module. Init is
 * torchvision's VGG init: Kaiming normal (fan_out) and bias 0 for convolutions, BN 1/0, and N(0, 0.01) with
 * bias 0 for the classifier.
 */
public final class Vgg16Bn extends Module {
    /** torchvision's cfg "D"; -1 marks a max pool. */
    static final int[] CFG = {64, 64, -1, 128, 128, -1, 256, 256, 256, -1, 512, 512, 512, -1, 512, 512, 512, -1};
    private final int numClasses;
    private final Sequential features;
    private final Linear classifier;

    public Vgg16Bn(int numClasses, Generator g) {
        if (numClasses < 1) throw new IllegalArgumentException("Vgg16Bn: numClasses must be positive, got " + numClasses);
        if (g == null) throw new IllegalArgumentException("Vgg16Bn: generator is null");
        this.numClasses = numClasses;
        features = new Sequential();
        int in = 3;
        for (int v : CFG) {
            if (v < 0) {
                features.add(new MaxPool2d(2));
            } else {
                features.add(new Conv2d(in, v, 3, 1, 1, 1, true, g));
                features.add(new BatchNorm2d(v));
                features.add(new ReLU());
                in = v;
            }
        }
        registerModule("features", features);
        classifier = registerModule("classifier", new Linear(512, numClasses, true, g));
        apply(m -> {
            if (m instanceof Conv2d c) {
                Init.kaimingNormal(c.weight(), Init.FanMode.FAN_OUT, g);
                Init.zeros(c.bias());
            } else if (m instanceof BatchNorm2d bn) {
                Init.ones(bn.weight());
                Init.zeros(bn.bias());
            } else if (m instanceof Linear l) {
                Init.normal(l.weight(), 0f, 0.01f, g);
                Init.zeros(l.bias());
            }
        });
    }

    public int numClasses() { return numClasses; }

    /** torchvision's {@code features}: convolutions, batch norms, ReLUs and max pools at their indices. */
    public Sequential features() { return features; }

    /** The thirteen convolutions in order. */
    public List<Conv2d> convs() {
        List<Conv2d> out = new ArrayList<>();
        for (Module m : features) if (m instanceof Conv2d c) out.add(c);
        return out;
    }

    public Linear classifier() { return classifier; }

    /** x is (N, 3, H, W) with 32 <= H, W < 64 (CIFAR's 32x32); returns logits (N, numClasses). */
    @Override public Tensor forward(Tensor x) {
        if (x.rank() != 4 || x.dim(1) != 3 || x.dim(2) < 32 || x.dim(3) < 32) {
            throw new IllegalArgumentException("Vgg16Bn: expected input (N, 3, H, W) with H, W >= 32, got " + x.shape());
        }
        Tensor f = features.forward(x);
        if (f.dim(2) != 1 || f.dim(3) != 1) {
            throw new IllegalArgumentException("Vgg16Bn: the classifier takes 512x1x1 features, but input " + x.shape()
                    + " leaves " + f.shape() + " (use 32 <= H, W < 64, e.g. CIFAR's 32x32)");
        }
        return classifier.forward(f.flatten(1));
    }
}
