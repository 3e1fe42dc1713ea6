package ai.bonsai.tensor;

import ai.bonsai.backend.cpu.Parallel;
import ai.bonsai.nn.Functional;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/**
 * The same seed and thread count give bitwise-identical results, and the CPU kernels give bitwise-identical
 * results for one thread and many (their partitioning never changes an accumulation order).
 */
class DeterminismTest {

    /** A forward and backward pass touching every kind of kernel; returns all outputs and gradients. */
    static float[][] run(long seed) {
        Generator g = new Generator(seed);
        Tensor x = Tensor.randn(g, 8, 3, 12, 12).requiresGrad(true);
        Tensor w = Tensor.randn(g, 16, 3, 3, 3).mul(0.3f).requiresGrad(true);
        Tensor gamma = Tensor.rand(g, 0.5f, 1.5f, 16).requiresGrad(true), beta = Tensor.randn(g, 16).requiresGrad(true);
        Tensor lw = Tensor.randn(g, 10, 16).mul(0.2f).requiresGrad(true);
        Tensor rm = Tensor.zeros(16), rv = Tensor.ones(16);
        Tensor h = Functional.conv2d(x, w, null, 1, 1, 1);
        h = Functional.batchNorm(h, rm, rv, gamma, beta, true, 0.1f, 1e-5f).relu();
        h = Functional.maxPool2d(h, 2, 2, 0);
        h = Functional.adaptiveAvgPool2d(h, 1, 1).flatten(1);
        Tensor logits = Functional.linear(h, lw, null);
        long[] y = new long[8];
        for (int i = 0; i < 8; i++) y[i] = g.nextInt(10);
        Tensor loss = Functional.crossEntropy(logits, Tensor.ofLongs(y, 8), 0.1f);
        loss.backward();
        return new float[][] {loss.toFloatArray(), logits.toFloatArray(), x.grad().toFloatArray(), w.grad().toFloatArray(),
                gamma.grad().toFloatArray(), lw.grad().toFloatArray(), rm.toFloatArray(), rv.toFloatArray()};
    }

    @Test
    void sameSeedSameBits() {
        float[][] a = run(11), b = run(11);
        for (int i = 0; i < a.length; i++) assertArrayEquals(a[i], b[i], "output " + i);
    }

    @Test
    void oneThreadAndManyThreadsAgreeBitwise() {
        int saved = Parallel.threads();
        try {
            Parallel.setThreads(1);
            float[][] one = run(5);
            Parallel.setThreads(4);
            float[][] many = run(5);
            for (int i = 0; i < one.length; i++) assertArrayEquals(one[i], many[i], "output " + i);
        } finally {
            Parallel.setThreads(saved);
        }
    }
}
