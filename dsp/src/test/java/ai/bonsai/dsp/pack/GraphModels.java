package ai.bonsai.dsp.pack;

import ai.bonsai.dsp.prune.PrunableLayer;
import ai.bonsai.dsp.prune.PruneWrapper;
import ai.bonsai.dsp.testing.RandomBatchNorm;
import ai.bonsai.nn.AdaptiveAvgPool2d;
import ai.bonsai.nn.BatchNorm2d;
import ai.bonsai.nn.Conv2d;
import ai.bonsai.nn.Functional;
import ai.bonsai.nn.Linear;
import ai.bonsai.nn.MaxPool2d;
import ai.bonsai.nn.Module;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;

/**
 * Small hand-built models standing in for the torchvision-style ones (ResNet bottlenecks, VGG, MobileNetV2): each
 * exercises one graph shape the packer must handle, and {@link #prune} masks them as PruneWrapper would a real one.
 */
final class GraphModels {
    private GraphModels() {}

    static Conv2d conv(int in, int out, int k, int stride, Generator g) { return new Conv2d(in, out, k, stride, k / 2, 1, false, g); }

    /** Random BN statistics and group logits, then PruneWrapper.initialize(rate) on the model's discovered layers; eval mode. */
    static <M extends Module> M prune(M model, int[] inputDims, int groups, int fpEveryNth, double rate, Generator g) {
        RandomBatchNorm.apply(model, g);
        PruneWrapper pw = new PruneWrapper(model, PrunableLayer.discover(model, inputDims), groups, fpEveryNth, null);
        for (int l = 0; l < pw.layers().size(); l++) {
            Tensor a = pw.groupLogits(l);
            a.copyFrom(Tensor.randn(g, a.dims()));
        }
        pw.initialize(rate);
        model.eval();
        return model;
    }

    /** stem; two branches (3x3 and 1x1) concatenated; 3x3 conv; pool; linear. */
    static final class ConcatNet extends Module {
        final Conv2d stem, a, b, c;
        final BatchNorm2d bnStem, bnA, bnB, bnC;
        final Linear fc;

        ConcatNet(Generator g) {
            stem = registerModule("stem", conv(3, 8, 3, 1, g));
            bnStem = registerModule("bn_stem", new BatchNorm2d(8));
            a = registerModule("a", conv(8, 6, 3, 1, g));
            bnA = registerModule("bn_a", new BatchNorm2d(6));
            b = registerModule("b", conv(8, 5, 1, 1, g));
            bnB = registerModule("bn_b", new BatchNorm2d(5));
            c = registerModule("c", conv(11, 12, 3, 2, g));
            bnC = registerModule("bn_c", new BatchNorm2d(12));
            fc = registerModule("fc", new Linear(12, 5, g));
        }

        @Override public Tensor forward(Tensor x) {
            Tensor h = bnStem.forward(stem.forward(x)).relu();
            Tensor cat = Tensor.cat(1, bnA.forward(a.forward(h)).relu(), bnB.forward(b.forward(h)).relu());
            h = bnC.forward(c.forward(cat)).relu();
            return fc.forward(Functional.adaptiveAvgPool2d(h, 1, 1).flatten(1));
        }
    }

    /** MobileNetV2-style: stem; inverted residual (1x1 expand, depthwise 3x3, 1x1 project, add); a strided one; head. */
    static final class InvertedResidualNet extends Module {
        final Conv2d stem, expand, dw, project, expand2, dw2, project2, head;
        final BatchNorm2d bnStem, bnExpand, bnDw, bnProject, bnExpand2, bnDw2, bnProject2, bnHead;
        final Linear fc;
        final float cap;

        /** {@code cap} is ReLU6's 6; a test may lower it so that the clamp bites on random weights. */
        InvertedResidualNet(Generator g, float cap) {
            this.cap = cap;
            stem = registerModule("stem", conv(3, 8, 3, 1, g));
            bnStem = registerModule("bn_stem", new BatchNorm2d(8));
            expand = registerModule("block1_expand", conv(8, 16, 1, 1, g));
            bnExpand = registerModule("block1_bn_expand", new BatchNorm2d(16));
            dw = registerModule("block1_dw", new Conv2d(16, 16, 3, 1, 1, 16, false, g));
            bnDw = registerModule("block1_bn_dw", new BatchNorm2d(16));
            project = registerModule("block1_project", conv(16, 8, 1, 1, g));
            bnProject = registerModule("block1_bn_project", new BatchNorm2d(8));
            expand2 = registerModule("block2_expand", conv(8, 24, 1, 1, g));
            bnExpand2 = registerModule("block2_bn_expand", new BatchNorm2d(24));
            dw2 = registerModule("block2_dw", new Conv2d(24, 24, 3, 2, 1, 24, true, g));
            bnDw2 = registerModule("block2_bn_dw", new BatchNorm2d(24));
            project2 = registerModule("block2_project", conv(24, 12, 1, 1, g));
            bnProject2 = registerModule("block2_bn_project", new BatchNorm2d(12));
            head = registerModule("head", conv(12, 20, 1, 1, g));
            bnHead = registerModule("bn_head", new BatchNorm2d(20));
            fc = registerModule("fc", new Linear(20, 7, g));
        }

        private Tensor relu6(Tensor x) { return x.relu().minimum(Tensor.scalar(cap)); }

        @Override public Tensor forward(Tensor x) {
            Tensor h = relu6(bnStem.forward(stem.forward(x)));
            Tensor t = relu6(bnExpand.forward(expand.forward(h)));
            t = relu6(bnDw.forward(dw.forward(t)));
            h = h.add(bnProject.forward(project.forward(t)));
            t = relu6(bnExpand2.forward(expand2.forward(h)));
            t = relu6(bnDw2.forward(dw2.forward(t)));
            h = bnProject2.forward(project2.forward(t));
            h = relu6(bnHead.forward(head.forward(h)));
            return fc.forward(Functional.adaptiveAvgPool2d(h, 1, 1).flatten(1));
        }
    }

    /** ResNet-50-style: stem with max pooling; a bottleneck with a projection; an identity bottleneck; head. */
    static final class BottleneckNet extends Module {
        final Conv2d stem;
        final BatchNorm2d bnStem;
        final MaxPool2d pool = new MaxPool2d(3, 2, 1);
        final Bottleneck b1, b2;
        final Linear fc;

        BottleneckNet(Generator g) {
            stem = registerModule("conv1", conv(3, 16, 3, 1, g));
            bnStem = registerModule("bn1", new BatchNorm2d(16));
            registerModule("maxpool", pool);
            b1 = registerModule("layer1_0", new Bottleneck(16, 8, 2, g));
            b2 = registerModule("layer1_1", new Bottleneck(32, 8, 1, g));
            fc = registerModule("fc", new Linear(32, 6, g));
        }

        @Override public Tensor forward(Tensor x) {
            Tensor h = pool.forward(bnStem.forward(stem.forward(x)).relu());
            h = b2.forward(b1.forward(h));
            return fc.forward(Functional.adaptiveAvgPool2d(h, 1, 1).flatten(1));
        }
    }

    static final class Bottleneck extends Module {
        final Conv2d conv1, conv2, conv3, down;
        final BatchNorm2d bn1, bn2, bn3, bnDown;

        Bottleneck(int in, int width, int stride, Generator g) {
            int out = width * 4;
            conv1 = registerModule("conv1", conv(in, width, 1, 1, g));
            bn1 = registerModule("bn1", new BatchNorm2d(width));
            conv2 = registerModule("conv2", conv(width, width, 3, stride, g));
            bn2 = registerModule("bn2", new BatchNorm2d(width));
            conv3 = registerModule("conv3", conv(width, out, 1, 1, g));
            bn3 = registerModule("bn3", new BatchNorm2d(out));
            if (stride != 1 || in != out) {
                down = registerModule("downsample_conv", conv(in, out, 1, stride, g));
                bnDown = registerModule("downsample_bn", new BatchNorm2d(out));
            } else {
                down = null;
                bnDown = null;
            }
        }

        @Override public Tensor forward(Tensor x) {
            Tensor y = bn1.forward(conv1.forward(x)).relu();
            y = bn2.forward(conv2.forward(y)).relu();
            y = bn3.forward(conv3.forward(y));
            Tensor identity = down == null ? x : bnDown.forward(down.forward(x));
            return y.add(identity).relu();
        }
    }

    /** VGG-style: conv-BN-ReLU pairs with max pooling, flatten into two linear layers. */
    static final class VggNet extends Module {
        final Conv2d c1, c2, c3, c4;
        final BatchNorm2d b1, b2, b3, b4;
        final Linear fc1, fc2;

        VggNet(Generator g) {
            c1 = registerModule("features_0", conv(3, 8, 3, 1, g));
            b1 = registerModule("features_1", new BatchNorm2d(8));
            c2 = registerModule("features_3", conv(8, 8, 3, 1, g));
            b2 = registerModule("features_4", new BatchNorm2d(8));
            registerModule("features_6", new MaxPool2d(2));
            c3 = registerModule("features_7", conv(8, 16, 3, 1, g));
            b3 = registerModule("features_8", new BatchNorm2d(16));
            c4 = registerModule("features_10", conv(16, 16, 3, 1, g));
            b4 = registerModule("features_11", new BatchNorm2d(16));
            fc1 = registerModule("classifier_0", new Linear(16 * 2 * 2, 10, g));
            fc2 = registerModule("classifier_3", new Linear(10, 4, g));
        }

        @Override public Tensor forward(Tensor x) {           // x is (N, 3, 8, 8)
            Tensor h = b1.forward(c1.forward(x)).relu();
            h = b2.forward(c2.forward(h)).relu();
            h = Functional.maxPool2d(h, 2, 2, 0);
            h = b3.forward(c3.forward(h)).relu();
            h = b4.forward(c4.forward(h)).relu();
            h = Functional.maxPool2d(h, 2, 2, 0);                // called directly: the trace must find the window
            return fc2.forward(fc1.forward(h.flatten(1)).relu());
        }
    }

    /**
     * Shapes the others lack: a one-convolution residual that reads its own residual (so the sum needs a copy), a
     * convolution run twice (shared weights, not prunable), a batch norm after a concat, a "max v" clamp, and a
     * last convolution with a bias and no batch norm (its vanished filters output their bias).
     */
    static final class OddNet extends Module {
        final Conv2d stem, s, shared, out;
        final BatchNorm2d bnStem, bnS, bnCat;

        OddNet(Generator g) {
            stem = registerModule("stem", new Conv2d(3, 8, 3, 1, 1, 1, true, g));
            bnStem = registerModule("bn_stem", new BatchNorm2d(8));
            s = registerModule("s", conv(8, 8, 3, 1, g));
            bnS = registerModule("bn_s", new BatchNorm2d(8));
            shared = registerModule("shared", conv(8, 8, 1, 1, g));
            bnCat = registerModule("bn_cat", new BatchNorm2d(16));
            out = registerModule("out", new Conv2d(16, 6, 3, 2, 1, 1, true, g));
        }

        @Override public Tensor forward(Tensor x) {
            Tensor h = bnStem.forward(stem.forward(x)).relu();
            Tensor r = h.add(bnS.forward(s.forward(h))).relu();
            Tensor b = shared.forward(shared.forward(r).relu());
            Tensor c = bnCat.forward(Tensor.cat(1, r, b)).maximum(Tensor.scalar(-0.25f));
            return Functional.adaptiveAvgPool2d(out.forward(c), 1, 1).flatten(1);
        }
    }
}
