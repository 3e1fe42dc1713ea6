package ai.bonsai.dsp.testing;

import ai.bonsai.nn.BatchNorm2d;
import ai.bonsai.nn.Module;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;

/** Test fixture shared by the pruning and packing tests. */
public final class RandomBatchNorm {
    private RandomBatchNorm() {}

    /**
     * Gives every BN non-trivial parameters and running statistics (weights in [0.5, 1.5], biases of both signs,
     * means and variances away from 0 and 1), so that eval and train mode differ, folding matters, and constant
     * channels matter.
     */
    public static void apply(Module model, Generator g) {
        for (Module m : model.namedModules().values()) {
            if (!(m instanceof BatchNorm2d bn)) continue;
            int c = bn.numFeatures();
            bn.weight().copyFrom(Tensor.rand(g, 0.5f, 1.5f, c));
            bn.bias().copyFrom(Tensor.rand(g, -0.5f, 0.5f, c));
            bn.runningMean().copyFrom(Tensor.rand(g, -0.5f, 0.5f, c));
            bn.runningVar().copyFrom(Tensor.rand(g, 0.5f, 2f, c));
        }
    }
}
