package ai.bonsai.nn;

import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The fused batch norm + (add) + ReLU op gives the separate ops' bits: output, every gradient and the running
 * statistics, in training, on awkward shapes, with each input requiring a gradient or not. (Its gradients against
 * double-precision central differences are in OpsGradientTest.)
 */
class BatchNormActTest {

    private record Run(float[] y, float[] dx, float[] dGamma, float[] dBeta, float[] dResidual, float[] runningMean, float[] runningVar) {}

    private static Run run(boolean fused, int[] dims, boolean withResidual, boolean relu, boolean xGrad, boolean residualGrad, long seed) {
        Generator g = new Generator(seed);
        int c = dims[1];
        Tensor x = Tensor.randn(g, dims).mul(1.5f).add(0.3f).detach().requiresGrad(xGrad);
        Tensor residual = withResidual ? Tensor.randn(g, dims).detach().requiresGrad(residualGrad) : null;
        Tensor gamma = Tensor.rand(g, 0.5f, 1.5f, c).requiresGrad(true), beta = Tensor.rand(g, -1f, 1f, c).requiresGrad(true);
        Tensor rm = Tensor.rand(g, -0.5f, 0.5f, c), rv = Tensor.rand(g, 0.5f, 2f, c);
        Tensor u = Tensor.randn(g, dims);
        Tensor y;
        if (fused) {
            y = Functional.batchNormAct(x, rm, rv, gamma, beta, true, 0.1f, 1e-5f, residual, relu);
        } else {
            y = Functional.batchNorm(x, rm, rv, gamma, beta, true, 0.1f, 1e-5f);
            if (residual != null) y = residual.add(y);
            if (relu) y = y.relu();
        }
        y.mul(u).sum().backward();
        return new Run(y.toFloatArray(), x.grad() == null ? null : x.grad().toFloatArray(), gamma.grad().toFloatArray(),
                beta.grad().toFloatArray(), residual == null || residual.grad() == null ? null : residual.grad().toFloatArray(),
                rm.toFloatArray(), rv.toFloatArray());
    }

    @ParameterizedTest
    @CsvSource({"2,3,5,7", "1,1,1,2", "4,16,8,8", "3,5,13,1", "7,2,1,17", "2,24,9,11"})
    void fusedEqualsSeparateOpsBitForBit(int n, int c, int h, int w) {
        int[] dims = {n, c, h, w};
        long seed = 1000L * n + 100L * c + 10L * h + w;
        for (boolean withResidual : new boolean[] {false, true}) {
            for (boolean relu : new boolean[] {false, true}) {
                for (boolean xGrad : new boolean[] {true, false}) {
                    for (boolean residualGrad : withResidual ? new boolean[] {true, false} : new boolean[] {false}) {
                        String what = java.util.Arrays.toString(dims) + " residual " + withResidual + " (grad " + residualGrad + "), relu " + relu + ", x grad " + xGrad;
                        Run a = run(false, dims, withResidual, relu, xGrad, residualGrad, seed), b = run(true, dims, withResidual, relu, xGrad, residualGrad, seed);
                        assertArrayEquals(a.y, b.y, what + ": output");
                        assertArrayEquals(a.dx, b.dx, what + ": x gradient");
                        assertArrayEquals(a.dGamma, b.dGamma, what + ": gamma gradient");
                        assertArrayEquals(a.dBeta, b.dBeta, what + ": beta gradient");
                        assertArrayEquals(a.dResidual, b.dResidual, what + ": residual gradient");
                        assertArrayEquals(a.runningMean, b.runningMean, what + ": running mean");
                        assertArrayEquals(a.runningVar, b.runningVar, what + ": running variance");
                        if (residualGrad) assertTrue(b.dResidual != null, what + ": the residual gets a gradient");
                        if (!xGrad) assertNull(b.dx, what + ": no x gradient asked for");
                    }
                }
            }
        }
    }

    @Test
    void trainingRecordsOneNodeAndEvalRecordsTheSeparateOps() {
        Generator g = new Generator(5);
        BatchNorm2d bn = new BatchNorm2d(3);
        Tensor x = Tensor.randn(g, 2, 3, 4, 4).requiresGrad(true), r = Tensor.randn(g, 2, 3, 4, 4).requiresGrad(true);
        Tensor y = bn.forwardAddRelu(x, r);
        assertEquals("batchNormAct", y.gradFn().op());
        assertEquals(4, y.gradFn().inputs().length, "x, gamma, beta and the residual");
        bn.eval();
        // A graph traced in eval mode (DSP's ModelGraph) sees batch norm, add and ReLU, as before the fusion.
        Tensor e = bn.forwardAddRelu(x, r);
        assertEquals("relu", e.gradFn().op());
        Tensor sum = e.gradFn().inputs()[0];
        assertEquals("add", sum.gradFn().op());
        assertEquals("batchNorm", sum.gradFn().inputs()[1].gradFn().op());
        Tensor separate = r.add(bn.forward(x)).relu();
        assertArrayEquals(separate.toFloatArray(), e.toFloatArray());
    }

    @ParameterizedTest
    @CsvSource({"2,3,5,7", "1,1,1,1", "3,16,8,8", "5,2,1,13"})
    void inferenceRunsOneFusedPassWithTheSeparateOpsBits(int n, int c, int h, int w) {
        Generator g = new Generator(77L * n + c);
        BatchNorm2d bn = new BatchNorm2d(c);
        bn.runningMean().copyFrom(Tensor.randn(g, c));
        bn.runningVar().copyFrom(Tensor.rand(g, 0.5f, 2f, c));
        bn.weight().copyFrom(Tensor.rand(g, 0.5f, 1.5f, c));
        bn.bias().copyFrom(Tensor.randn(g, c));
        bn.eval();
        Tensor x = Tensor.randn(g, n, c, h, w), r = Tensor.randn(g, n, c, h, w);
        try (var noGrad = ai.bonsai.autograd.GradMode.noGrad()) {
            assertArrayEquals(r.add(bn.forward(x)).relu().toFloatArray(), bn.forwardAddRelu(x, r).toFloatArray(), "bn, add, relu");
            assertArrayEquals(bn.forward(x).relu().toFloatArray(), bn.forwardRelu(x).toFloatArray(), "bn, relu");
        }
        // Outside noGrad the parameters need gradients, so the separate ops are recorded, with the same bits.
        Tensor recorded = bn.forwardAddRelu(x, r);
        assertEquals("relu", recorded.gradFn().op());
        assertArrayEquals(r.add(bn.forward(x)).relu().toFloatArray(), recorded.toFloatArray());
    }

    @Test
    void sequentialRunsBatchNormThenReluAsOneFusedOp() {
        Generator g = new Generator(6);
        Sequential seq = new Sequential(new Conv2d(3, 4, 3, 1, 1, 1, false, g), new BatchNorm2d(4), new ReLU(), new BatchNorm2d(4));
        Tensor x = Tensor.randn(g, 2, 3, 5, 5);
        Tensor y = seq.forward(x);
        assertEquals("batchNorm", y.gradFn().op(), "a batch norm with no ReLU after it stays as it was");
        assertEquals("batchNormAct", y.gradFn().inputs()[0].gradFn().op());
        Tensor u = Tensor.randn(g, y.dims());
        y.mul(u).sum().backward();
        Tensor w = ((Conv2d) seq.get(0)).weight();
        float[] gw = w.grad().toFloatArray();
        seq.zeroGrad();
        // The same modules run one by one give the same bits, forward and backward (in training mode the output
        // depends on the batch statistics only, so the second update of the running statistics changes nothing).
        Tensor h = x;
        for (Module m : seq) h = m.forward(h);
        h.mul(u).sum().backward();
        assertArrayEquals(h.toFloatArray(), y.toFloatArray(), "forward");
        assertArrayEquals(gw, w.grad().toFloatArray(), "conv weight gradient");
    }

    @Test
    void aResidualOfAnotherShapeIsRefused() {
        Tensor x = Tensor.zeros(2, 3, 4, 4), r = Tensor.zeros(2, 3, 4, 5);
        BatchNorm2d bn = new BatchNorm2d(3);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> bn.forwardAddRelu(x, r));
        assertTrue(e.getMessage().contains("[2, 3, 4, 5]") || e.getMessage().contains("(2, 3, 4, 5)"), e.getMessage());
    }

    /**
     * The backward pass of batch norm + ReLU recomputes ReLU's mask from x, gamma and beta: it uses the values of the
     * forward pass, so gradients are unchanged when the parameters are overwritten in between (here with values that
     * flip the sign of the affine, and so the mask, almost everywhere).
     */
    @Test
    void backwardUsesTheParametersOfItsForwardPass() {
        int[] dims = {3, 4, 5, 6};
        float[][] grads = new float[2][];
        for (int k = 0; k < 2; k++) {
            Generator g = new Generator(77);
            Tensor x = Tensor.randn(g, dims).detach().requiresGrad(true);
            Tensor gamma = Tensor.rand(g, 0.5f, 1.5f, 4).requiresGrad(true), beta = Tensor.rand(g, -0.5f, 0.5f, 4).requiresGrad(true);
            Tensor u = Tensor.randn(g, dims);
            Tensor y = Functional.batchNormAct(x, Tensor.zeros(4), Tensor.ones(4), gamma, beta, true, 0.1f, 1e-5f, null, true);
            if (k == 1) {
                gamma.copyFrom(gamma.neg().detach());
                beta.copyFrom(beta.neg().detach());
            }
            y.mul(u).sum().backward();
            grads[k] = x.grad().toFloatArray();
        }
        assertArrayEquals(grads[0], grads[1]);
    }
}
