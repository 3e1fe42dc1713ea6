package ai.bonsai.tensor;

import ai.bonsai.autograd.GradMode;
import ai.bonsai.nn.Functional;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** The autograd contract: accumulation into leaves, noGrad scopes, detach, shared subexpressions. */
class AutogradTest {

    @Test
    void gradientsAccumulateAcrossBackwardCalls() {
        Tensor x = Tensor.of(new float[] {1, 2, 3}, 3).requiresGrad(true);
        x.mul(x).sum().backward();                                  // d/dx x^2 = 2x
        assertArrayEquals(new float[] {2, 4, 6}, x.grad().toFloatArray());
        x.mul(3f).sum().backward();                                 // adds 3
        assertArrayEquals(new float[] {5, 7, 9}, x.grad().toFloatArray());
        x.zeroGrad();
        assertNull(x.grad());
    }

    @Test
    void sharedSubexpressionsSumTheirGradients() {
        Tensor x = Tensor.of(new float[] {2}, 1).requiresGrad(true);
        Tensor y = x.mul(x);                // y = x^2, used twice
        y.add(y.mul(y)).sum().backward();   // d/dx (x^2 + x^4) = 2x + 4x^3 = 4 + 32
        assertEquals(36f, x.grad().item(), 1e-5);
    }

    @Test
    void noGradRecordsNothingAndRestoresTheMode() {
        Tensor x = Tensor.ones(2).requiresGrad(true);
        try (var scope = GradMode.noGrad()) {
            Tensor y = x.mul(2f);
            assertFalse(y.requiresGrad());
            assertNull(y.gradFn());
            try (var inner = GradMode.enableGrad()) {
                assertTrue(x.mul(2f).requiresGrad());
            }
            assertFalse(GradMode.isEnabled());
        }
        assertTrue(GradMode.isEnabled());
        assertTrue(x.mul(2f).requiresGrad());
    }

    @Test
    void detachCutsTheGraph() {
        Tensor x = Tensor.of(new float[] {3}, 1).requiresGrad(true);
        Tensor y = x.mul(x.detach());       // only the first factor carries gradient: dy/dx = 3
        y.sum().backward();
        assertEquals(3f, x.grad().item(), 1e-6);
        assertFalse(x.detach().requiresGrad());
    }

    @Test
    void backwardNeedsAScalarOrAGradient() {
        Tensor x = Tensor.ones(2, 2).requiresGrad(true);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> x.mul(2f).backward());
        assertTrue(e.getMessage().contains("[2, 2]"), e.getMessage());
        x.mul(2f).backward(Tensor.full(0.5f, 2, 2));
        assertArrayEquals(new float[] {1, 1, 1, 1}, x.grad().toFloatArray());
        assertThrows(IllegalStateException.class, () -> Tensor.ones(1).backward());
    }

    @Test
    void backwardFreesTheGraphUnlessAskedToRetainIt() {
        Tensor x = Tensor.of(new float[] {1, 2}, 2).requiresGrad(true);
        Tensor y = x.mul(x);
        Tensor loss = y.sum();
        loss.backward();
        assertArrayEquals(new float[] {2, 4}, x.grad().toFloatArray());
        assertTrue(y.gradFn().released());
        assertEquals(0, y.gradFn().inputs().length);                    // the saved inputs are dropped
        IllegalStateException e = assertThrows(IllegalStateException.class, loss::backward);
        assertTrue(e.getMessage().contains("already back-propagated"), e.getMessage());
        // Building on a freed graph fails the same way, as in PyTorch.
        assertThrows(IllegalStateException.class, () -> y.mul(2f).sum().backward());

        x.zeroGrad();
        Tensor z = x.mul(x);
        Tensor kept = z.sum();
        kept.backward(Tensor.ones(), true);
        kept.backward(Tensor.ones(), true);                              // twice through the retained graph
        z.mul(3f).sum().backward();                                      // then once more, freeing it
        assertArrayEquals(new float[] {2 * 2 + 6, 4 * 2 + 12}, x.grad().toFloatArray());
        assertTrue(z.gradFn().released());
    }

    @Test
    void branchesThatReceiveNoGradientAreReleasedToo() {
        Tensor x = Tensor.of(new float[] {1, 2}, 2).requiresGrad(true);
        Tensor w = Tensor.of(new float[] {3, 4}, 2).requiresGrad(true);
        Tensor a = x.mul(w);
        Tensor loss = a.max(new int[] {0}, false);                    // the gradient of x.mul(w) is 0 on one side
        loss.backward();
        assertArrayEquals(new float[] {0, 4}, x.grad().toFloatArray());
        assertTrue(a.gradFn().released());
    }

    @Test
    void inPlaceChangeOfALeafThatRequiresGradIsRefused() {
        Tensor w = Tensor.ones(3).requiresGrad(true);
        assertThrows(IllegalStateException.class, () -> w.addi(Tensor.ones(3)));
        try (var s = GradMode.noGrad()) {
            w.addi(Tensor.ones(3));
        }
        assertArrayEquals(new float[] {2, 2, 2}, w.toFloatArray());
    }

    @Test
    void deepGraphsDoNotOverflowTheStack() {
        Tensor x = Tensor.ones(1).requiresGrad(true);
        Tensor y = x;
        for (int i = 0; i < 20000; i++) y = y.add(1f);
        y.sum().backward();
        assertEquals(1f, x.grad().item());
    }

    /**
     * y = s * x whose backward adds into the pending gradient it is offered (recording whether it was), as the
     * convolution's data gradient does.
     */
    private static Tensor scaledAccumulating(Tensor x, float s, java.util.List<Boolean> offered) {
        Tensor y;
        try (var scope = GradMode.noGrad()) {
            y = x.mul(s);
        }
        return Tensor.fromAccumulatingOp(x.shape(), y.buffer(), "scaled", (g, into) -> {
            offered.add(into[0] != null);
            if (into[0] == null) return new Tensor[] {g.mul(s)};
            into[0].addi(g.mul(s));
            return new Tensor[] {into[0]};
        }, x);
    }

    @Test
    void anAccumulatingBackwardIsOfferedAPendingGradientThatNothingElseHolds() {
        var offered = new java.util.ArrayList<Boolean>();
        Tensor x = Tensor.of(new float[] {1, -2}, 2).requiresGrad(true);
        Tensor h = x.mul(2f);
        // b second: the traversal reaches an op's first input's branch first, h.mul(3) here, so h's gradient 3 is
        // pending when b's backward runs.
        h.mul(3f).add(scaledAccumulating(h, 5f, offered)).sum().backward();
        assertEquals(java.util.List.of(true), offered);
        assertArrayEquals(new float[] {16, 16}, x.grad().toFloatArray());   // 2 * (5 + 3)
    }

    /**
     * Where two branches from one tensor meet again, the branch of the meeting op's first input is back-propagated
     * first: in a residual block, {@code bn(conv(...)) + shortcut(x)}, the main branch then writes x's gradient and the
     * shortcut adds into it. Checked both ways round, so the order follows the inputs, not which op was made first.
     */
    @Test
    void theFirstInputsBranchIsBackPropagatedFirst() {
        for (boolean mainFirst : new boolean[] {true, false}) {
            var order = new java.util.ArrayList<String>();
            Tensor x = Tensor.of(new float[] {1, -2}, 2).requiresGrad(true);
            Tensor main = mainFirst ? recording(x, "main", order) : null;
            Tensor shortcut = recording(x, "shortcut", order);
            if (!mainFirst) main = recording(x, "main", order);
            main.add(shortcut).sum().backward();
            assertEquals(java.util.List.of("main", "shortcut"), order, "main branch made " + (mainFirst ? "first" : "second"));
            assertArrayEquals(new float[] {2, 2}, x.grad().toFloatArray());
        }
    }

    /** x passed through, recording when its backward runs. */
    private static Tensor recording(Tensor x, String name, java.util.List<String> order) {
        return Tensor.fromOp(x.shape(), x.buffer(), name, g -> {
            order.add(name);
            return new Tensor[] {g};
        }, x);
    }

    @Test
    void aPendingGradientSharedWithTheIncomingGradientIsNotOffered() {
        // add passes its gradient on as it is, to b and to h: h's pending gradient is the very tensor b's backward reads.
        var offered = new java.util.ArrayList<Boolean>();
        Tensor x = Tensor.of(new float[] {1, 2}, 2).requiresGrad(true);
        Tensor h = x.mul(2f);
        scaledAccumulating(h, 5f, offered).add(h).sum().backward();
        assertEquals(java.util.List.of(false), offered);
        assertArrayEquals(new float[] {12, 12}, x.grad().toFloatArray());   // 2 * (5 + 1)
    }

    @Test
    void theCallersGradientAndGradientsSharedByTwoInputsAreNotOffered() {
        var offered = new java.util.ArrayList<Boolean>();
        Tensor x = Tensor.of(new float[] {1, 2}, 2).requiresGrad(true);
        Tensor h = x.mul(2f);
        // h's pending gradient is the caller's gradOutput, passed on by add; b's own gradient is a fresh one.
        Tensor gradOutput = Tensor.of(new float[] {1, 1}, 2);
        scaledAccumulating(h, 5f, offered).mul(1f).add(h).backward(gradOutput);
        assertEquals(java.util.List.of(false), offered);
        assertArrayEquals(new float[] {1, 1}, gradOutput.toFloatArray());
        assertArrayEquals(new float[] {12, 12}, x.grad().toFloatArray());

        // h2 + k passes one gradient to h2 and to k, and k (an input of h2) is reached only after h2's consumers:
        // adding into h2's gradient would change k's too (x's gradient would be 36).
        offered.clear();
        x.zeroGrad();
        Tensor k = x.mul(4f), h2 = k.mul(0.5f);
        scaledAccumulating(h2, 5f, offered).mul(1f).add(h2.add(k)).sum().backward();
        assertEquals(java.util.List.of(false), offered);
        assertArrayEquals(new float[] {16, 16}, x.grad().toFloatArray());   // 4 * ((5 + 1) * 0.5 + 1)
    }

    /**
     * A convolution whose input feeds another op too (a residual block's input) adds its data gradient into the
     * pending one: the same bits as two backward passes whose gradients the leaf adds up, for a stride-1 (Winograd)
     * and a stride-2 block with a 1x1 shortcut (pixels that the 1x1 stride-2 taps miss keep the pending value), each
     * with either op reached first.
     */
    @Test
    void aConvolutionAddsItsDataGradientIntoThePendingOneBitForBit() {
        Generator gen = new Generator(3);
        Tensor x = Tensor.randn(gen, 8, 4, 9, 10).requiresGrad(true);
        Tensor w3 = Tensor.randn(gen, 4, 4, 3, 3), w3s2 = Tensor.randn(gen, 6, 4, 3, 3), w1 = Tensor.randn(gen, 6, 4, 1, 1);
        Tensor c1 = Tensor.randn(gen, 8, 4, 9, 10), c2 = Tensor.randn(gen, 8, 6, 5, 5);
        java.util.List<java.util.function.Function<Tensor, Tensor[]>> graphs = java.util.List.of(
                t -> new Tensor[] {Functional.conv2d(t, w3, null, 1, 1, 1).mul(c1), t.mul(3f).mul(c1)},
                t -> new Tensor[] {t.mul(3f).mul(c1), Functional.conv2d(t, w3, null, 1, 1, 1).mul(c1)},
                t -> new Tensor[] {Functional.conv2d(t, w3s2, null, 2, 1, 1).mul(c2), Functional.conv2d(t, w1, null, 2, 0, 1).mul(c2)},
                t -> new Tensor[] {Functional.conv2d(t, w1, null, 2, 0, 1).mul(c2), Functional.conv2d(t, w3s2, null, 2, 1, 1).mul(c2)});
        for (int i = 0; i < graphs.size(); i++) {
            x.zeroGrad();
            Tensor[] parts = graphs.get(i).apply(x);
            parts[0].add(parts[1]).sum().backward();
            float[] together = x.grad().toFloatArray();
            x.zeroGrad();
            parts = graphs.get(i).apply(x);
            parts[0].sum().backward();
            parts[1].sum().backward();
            assertArrayEquals(x.grad().toFloatArray(), together, "graph " + i);
        }
    }

    @Test
    void reshapeSharesStorageAndViewIsAnAlias() {
        Tensor x = Tensor.of(new float[] {1, 2, 3, 4, 5, 6}, 2, 3);
        Tensor v = x.view(3, 2);
        assertSame(x.buffer(), v.buffer());
        assertEquals(Shape.of(6), x.reshape(-1).shape());
    }

    @Test
    void gumbelSoftmaxHasTheRightStatistics() {
        // P(argmax of logits/tau + Gumbel noise = g) = softmax(logits/tau)[g]: the Gumbel-max property.
        float[] logits = {1.0f, 0.0f, -0.5f, 0.25f};
        float tau = 0.5f;
        Generator g = new Generator(42);
        int draws = 20000, groups = logits.length;
        int[] wins = new int[groups];
        double[] meanSoft = new double[groups];
        Tensor a = Tensor.of(logits, groups, 1).expand(groups, draws);
        Tensor p = Functional.gumbelSoftmax(a, tau, 0, g);
        float[] pv = p.toFloatArray();
        for (int n = 0; n < draws; n++) {
            int best = 0;
            double colSum = 0;
            for (int k = 0; k < groups; k++) {
                colSum += pv[k * draws + n];
                meanSoft[k] += pv[k * draws + n] / draws;
                if (pv[k * draws + n] > pv[best * draws + n]) best = k;
            }
            assertEquals(1.0, colSum, 1e-5, "each column of P sums to one");
            wins[best]++;
        }
        double z = 0;
        for (float l : logits) z += Math.exp(l / tau);
        for (int k = 0; k < groups; k++) {
            double expect = Math.exp(logits[k] / tau) / z;
            double se = Math.sqrt(expect * (1 - expect) / draws);
            assertEquals(expect, wins[k] / (double) draws, 5 * se, "argmax frequency of group " + k);
        }
        // The noise is drawn from the seeded generator: the same seed gives the same sample.
        float[] again = Functional.gumbelSoftmax(a, tau, 0, new Generator(42)).toFloatArray();
        assertArrayEquals(pv, again);
        // Standard Gumbel noise has mean Euler-Mascheroni (0.5772) and variance pi^2/6.
        float[] e = Functional.gumbelNoise(new Generator(7), 200000).toFloatArray();
        double m = 0, v = 0;
        for (float x : e) m += x;
        m /= e.length;
        for (float x : e) v += (x - m) * (x - m);
        v /= e.length;
        assertEquals(0.5772, m, 0.01);
        assertEquals(Math.PI * Math.PI / 6, v, 0.03);
    }
}
