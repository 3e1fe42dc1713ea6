package ai.bonsai.optim;

import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** Schedules against the values PyTorch's schedulers produce, and the stateful driver. */
class LrScheduleTest {

    private static double[] values(LrSchedule s, double base, int n) {
        double[] v = new double[n];
        for (int t = 0; t < n; t++) v[t] = s.lr(t, base);
        return v;
    }

    @Test
    void cosineAnnealing() {
        // torch: CosineAnnealingLR(SGD(lr=0.1), T_max=10, eta_min=0) gives, per epoch,
        // 0.1, 0.0975528, 0.0904508, 0.0793893, 0.0654508, 0.05, 0.0345492, 0.0206107, 0.0095492, 0.0024472, 0
        assertArrayEquals(new double[] {0.1, 0.0975528, 0.0904508, 0.0793893, 0.0654508, 0.05, 0.0345492, 0.0206107, 0.0095492, 0.0024472, 0},
                values(new CosineAnnealingLR(10, 0), 0.1, 11), 1e-7);
        // with eta_min = 0.01, half way is the midpoint
        assertEquals(0.055, new CosineAnnealingLR(10, 0.01).lr(5, 0.1), 1e-12);
        assertEquals(0.01, new CosineAnnealingLR(10, 0.01).lr(10, 0.1), 1e-12);
    }

    @Test
    void multiStepBoundaries() {
        assertArrayEquals(new double[] {1, 1, 0.1, 0.1, 0.01, 0.01, 0.01}, values(new MultiStepLR(List.of(2, 4), 0.1), 1, 7), 1e-12);
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new MultiStepLR(List.of(4, 2), 0.1)).getMessage().contains("non-decreasing"));
    }

    @Test
    void linearWarmup() {
        // torch: LinearLR(start_factor=0.25, end_factor=1.0, total_iters=4): 0.25, 0.4375, 0.625, 0.8125, 1, 1
        assertArrayEquals(new double[] {0.25, 0.4375, 0.625, 0.8125, 1, 1}, values(new LinearWarmup(0.25, 4), 1, 6), 1e-12);
        // wrapping a decay: the factors multiply, the wrapped schedule counts from 0
        LrSchedule s = new LinearWarmup(0.5, 2, new MultiStepLR(List.of(1, 3), 0.1));
        assertArrayEquals(new double[] {0.5, 0.075, 0.1, 0.01}, values(s, 1, 4), 1e-12);
    }

    @Test
    void cifarPretrainRecipe() {
        int epochs = 8;   // a quarter of the rate for 2 epochs, then x0.1 at 50% and 75%
        LrSchedule s = LrSchedule.chain(new ConstantLR(0.25, 2), new MultiStepLR(List.of(epochs / 2, 3 * epochs / 4), 0.1));
        assertArrayEquals(new double[] {0.025, 0.025, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001}, values(s, 0.1, epochs), 1e-12);
        LrSchedule lambda = new LambdaLR(e -> (e < 2 ? 0.25 : 1) * Math.pow(0.1, (e >= epochs / 2 ? 1 : 0) + (e >= 3 * epochs / 4 ? 1 : 0)));
        assertArrayEquals(values(s, 0.1, epochs), values(lambda, 0.1, epochs), 1e-15);
    }

    @Test
    void schedulerDrivesOptimiserAndRestores() {
        Tensor p = Tensor.ones(1).requiresGrad(true);
        SGD opt = new SGD(List.of(p), 0.1f, 0.9f, 0f);
        LrSchedule schedule = new CosineAnnealingLR(10, 0);
        LrScheduler sched = new LrScheduler(opt, schedule);
        assertEquals(0.1f, opt.lr());
        for (int e = 0; e < 3; e++) sched.step();
        assertEquals(3, sched.epoch());
        assertEquals((float) 0.0793893, opt.lr(), 1e-7f);
        Map<String, Tensor> state = sched.stateDict();

        SGD opt2 = new SGD(List.of(p), 0.7f, 0.9f, 0f);
        LrScheduler resumed = new LrScheduler(opt2, schedule);
        resumed.loadStateDict(state);
        assertEquals(opt.lr(), opt2.lr());
        assertEquals(0.1f, resumed.baseLr());
        sched.step();
        resumed.step();
        assertEquals(opt.lr(), opt2.lr());
        assertThrows(IllegalArgumentException.class, () -> resumed.loadStateDict(Map.of("last_epoch", Tensor.scalar(3f))));
    }
}
