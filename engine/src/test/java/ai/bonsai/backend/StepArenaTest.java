package ai.bonsai.backend;

import ai.bonsai.nn.AdaptiveAvgPool2d;
import ai.bonsai.nn.BatchNorm2d;
import ai.bonsai.nn.Conv2d;
import ai.bonsai.nn.Flatten;
import ai.bonsai.nn.Functional;
import ai.bonsai.nn.Linear;
import ai.bonsai.nn.MaxPool2d;
import ai.bonsai.nn.Module;
import ai.bonsai.nn.ReLU;
import ai.bonsai.nn.Sequential;
import ai.bonsai.optim.SGD;
import ai.bonsai.tensor.DType;
import ai.bonsai.tensor.Device;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.*;

/** Buffer reuse across training steps: what is recycled, when, and that training gives the same bits with it. */
class StepArenaTest {
    private final Backend cpu = Backends.of(Device.cpu());

    @AfterEach
    void restorePoison() { StepArena.poisonReleased(Boolean.getBoolean("bonsai.arena.poison")); }

    @Test
    void buffersOfAClosedScopeServeTheNextOneAndAllocateStillGivesZeros() {
        StepArena arena = new StepArena();
        try (var s = arena.open()) {
            Tensor.zeros(1000).fill(5f);
            cpu.empty(DType.INT64, 7);
        }
        assertEquals(2, arena.allocated());
        assertEquals(1000 * 4 + 7 * 8, arena.freeBytes());
        try (var s = arena.open()) {
            Tensor z = Tensor.zeros(1000);
            assertEquals(1, arena.reused(), "the 1000-float buffer comes back");
            for (float v : z.toFloatArray()) assertEquals(0f, v);
            Tensor.zeros(999);                                  // no buffer of that length: a new one
            assertEquals(3, arena.allocated());
        }
    }

    @Test
    void emptyHandsBackTheOldContentsAndPoisonMakesThemNaN() {
        StepArena arena = new StepArena();
        StepArena.poisonReleased(false);
        try (var s = arena.open()) { Tensor.zeros(64).fill(3f); }
        try (var s = arena.open()) {
            assertEquals(3f, Tensor.of(ai.bonsai.tensor.Shape.of(64), cpu.empty(DType.FLOAT32, 64)).toFloatArray()[17]);
            StepArena.poisonReleased(true);             // poisoned as this scope releases it
        }
        try (var s = arena.open()) {
            assertTrue(Float.isNaN(Tensor.of(ai.bonsai.tensor.Shape.of(64), cpu.empty(DType.FLOAT32, 64)).toFloatArray()[5]));
        }
    }

    @Test
    void aTensorKeptPastItsScopeFailsLoudlyInsteadOfReadingTheNextStep() {
        StepArena arena = new StepArena();
        Tensor kept;
        try (var s = arena.open()) {
            kept = Tensor.zeros(8, 8).add(1f);
        }
        IllegalStateException e = assertThrows(IllegalStateException.class, kept::toFloatArray);
        assertTrue(e.getMessage().contains("used after its step arena closed"), e.getMessage());
        assertThrows(IllegalStateException.class, () -> kept.add(1f));
        // The shape is still known, so an error message that names it can be built.
        assertEquals(64, kept.numel());
    }

    @Test
    void leafGradientsAndSuspendedAllocationsOutliveTheScope() {
        StepArena arena = new StepArena();
        Tensor w = Tensor.of(new float[] {1, 2, 3}, 3).requiresGrad(true);
        Tensor kept;
        try (var s = arena.open()) {
            Tensor x = Tensor.of(new float[] {4, 5, 6}, 3);
            w.mul(x).sum().backward();
            try (var outside = StepArena.suspend()) {
                kept = Tensor.zeros(3).add(7f);
            }
            assertSame(arena, StepArena.current(), "the scope is current again after the suspension");
        }
        assertArrayEquals(new float[] {4, 5, 6}, w.grad().toFloatArray());
        assertArrayEquals(new float[] {7, 7, 7}, kept.toFloatArray());
        assertNull(StepArena.current());
    }

    @Test
    void otherThreadsAllocateOutsideTheArena() throws Exception {
        StepArena arena = new StepArena();
        AtomicReference<Tensor> fromOther = new AtomicReference<>();
        try (var s = arena.open()) {
            Thread t = new Thread(() -> fromOther.set(Tensor.zeros(16).add(2f)));
            t.start();
            t.join();
        }
        assertEquals(0, arena.allocated());
        assertEquals(2f, fromOther.get().toFloatArray()[3]);
    }

    @Test
    void anInnerArenaTakesOverAndHandsBack() {
        StepArena outer = new StepArena(), inner = new StepArena();
        Tensor a, b;
        try (var s = outer.open()) {
            a = Tensor.zeros(4).add(1f);
            try (var t = inner.open()) {
                b = Tensor.zeros(4).add(2f);
            }
            assertThrows(IllegalStateException.class, b::toFloatArray);
            assertEquals(1f, a.toFloatArray()[0], "the outer scope's tensors live until it closes");
            assertSame(outer, StepArena.current());
            assertThrows(IllegalStateException.class, outer::open, "one arena's scopes do not nest");
        }
        assertThrows(IllegalStateException.class, a::toFloatArray);
    }

    @Test
    void sizesNoScopeAskedForInTwoScopesAreDropped() {
        StepArena arena = new StepArena();
        try (var s = arena.open()) { Tensor.zeros(100); }             // the last, smaller batch of an epoch, say
        try (var s = arena.open()) { Tensor.zeros(50); }
        assertEquals((100 + 50) * 4, arena.freeBytes(), "idle for one scope: kept");
        try (var s = arena.open()) { Tensor.zeros(50); }
        assertEquals(50 * 4, arena.freeBytes(), "idle for two scopes: dropped");
    }

    // ---------------------------------------------------------------- training, with and without the arena

    /** A residual CNN touching every op of a CNN training step: conv (strided too), batch norm, ReLU, add, pools, linear. */
    private static final class SmallResNet extends Module {
        final Sequential stem, branch, head;

        SmallResNet(Generator g) {
            stem = registerModule("stem", new Sequential(new Conv2d(3, 6, 3, 1, 1, 1, false, g), new BatchNorm2d(6), new ReLU()));
            branch = registerModule("branch", new Sequential(new Conv2d(6, 6, 3, 1, 1, 1, false, g), new BatchNorm2d(6), new ReLU(),
                    new Conv2d(6, 6, 3, 1, 1, 1, false, g), new BatchNorm2d(6)));
            head = registerModule("head", new Sequential(new MaxPool2d(2), new Conv2d(6, 10, 3, 2, 1, 1, true, g), new BatchNorm2d(10),
                    new ReLU(), new AdaptiveAvgPool2d(1), new Flatten(), new Linear(10, 5, g)));
        }

        @Override public Tensor forward(Tensor x) {
            Tensor s = stem.forward(x);
            return head.forward(branch.forward(s).add(s).relu());
        }
    }

    private static List<float[]> train(boolean reuse, int steps) {
        Generator g = new Generator(11);
        SmallResNet model = new SmallResNet(g);
        model.train();
        SGD opt = new SGD(model.parameters(), 0.05f, 0.9f, 5e-4f);
        StepArena arena = reuse ? new StepArena() : null;
        Generator data = new Generator(5);
        for (int step = 0; step < steps; step++) {
            int n = step == steps - 1 ? 3 : 7;                     // a smaller last batch, as at an epoch's end
            float[] x = new float[n * 3 * 11 * 11];
            for (int i = 0; i < x.length; i++) x[i] = (float) data.nextGaussian();
            long[] y = new long[n];
            for (int i = 0; i < n; i++) y[i] = data.nextInt(5);
            try (var s = arena == null ? null : arena.open()) {
                Tensor loss = Functional.crossEntropy(model.forward(Tensor.of(x, n, 3, 11, 11)), Tensor.ofLongs(y, n));
                opt.zeroGrad();
                loss.backward();
            }
            opt.step();
        }
        List<float[]> state = new ArrayList<>();
        for (Map.Entry<String, Tensor> e : model.stateDict().entrySet()) state.add(e.getValue().toFloatArray());
        // The first step and the smaller last one allocate; the four steps between reuse.
        if (arena != null) {
            assertTrue(arena.reused() > 2 * arena.allocated(), "most buffers are reused: " + arena.reused() + " vs " + arena.allocated());
            assertTrue(arena.releasedEarly() > steps, "the backward pass gives spent gradients back: " + arena.releasedEarly());
        }
        return state;
    }

    @Test
    void trainingWithReusedPoisonedBuffersGivesTheSameBitsAsFreshOnes() {
        StepArena.poisonReleased(true);     // a kernel that reads an output it did not write would see NaN
        List<float[]> fresh = train(false, 6), reused = train(true, 6);
        assertEquals(fresh.size(), reused.size());
        for (int i = 0; i < fresh.size(); i++) assertArrayEquals(fresh.get(i), reused.get(i), "state tensor " + i);
        for (float[] t : reused) for (float v : t) assertTrue(Float.isFinite(v));
    }
}
