package ai.bonsai.tensor;

import ai.bonsai.nn.Functional;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class SmokeTest {
    @Test
    void forwardBackwardThroughACnn() {
        Generator g = new Generator(1);
        Tensor x = Tensor.randn(g, 4, 3, 8, 8);
        Tensor w = Tensor.randn(g, 5, 3, 3, 3).mul(0.2f).requiresGrad(true);
        Tensor gamma = Tensor.ones(5).requiresGrad(true), beta = Tensor.zeros(5).requiresGrad(true);
        Tensor rm = Tensor.zeros(5), rv = Tensor.ones(5);
        Tensor lw = Tensor.randn(g, 10, 5).mul(0.1f).requiresGrad(true);
        Tensor h = Functional.conv2d(x, w, null, 1, 1, 1);
        h = Functional.batchNorm(h, rm, rv, gamma, beta, true, 0.1f, 1e-5f).relu();
        h = Functional.adaptiveAvgPool2d(h, 1, 1).flatten(1);
        Tensor logits = Functional.linear(h, lw, null);
        Tensor loss = Functional.crossEntropy(logits, Tensor.ofLongs(new long[] {1, 2, 3, 4}, 4));
        loss.backward();
        assertTrue(Float.isFinite(loss.item()));
        assertNotNull(w.grad());
        assertNotNull(gamma.grad());
        assertEquals(w.shape(), w.grad().shape());
    }
}
