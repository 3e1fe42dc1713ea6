package ai.bonsai.optim;

/**
 * A learning-rate schedule as a pure function of the step count: {@code lr(t, baseLr)} is the rate after
 * {@code t} scheduler steps (t = 0 before the first). Whether a step is an epoch or an iteration is up to
 * whoever drives it ({@link LrScheduler}); milestones and lengths are counted in the same unit.
 *
 * <p>Schedules compose. {@link #chain} feeds one schedule's rate to the next as its base, which for the
 * multiplicative schedules here multiplies their factors (PyTorch's ChainedScheduler). The CIFAR pretrain
 * recipe (a quarter of the rate for the first two epochs, then x0.1 at 50% and 75% of E epochs) is
 * <pre>{@code
 *   LrSchedule.chain(new ConstantLR(0.25, 2), new MultiStepLR(List.of(E / 2, 3 * E / 4), 0.1))
 * }</pre>
 * Closed forms make a schedule restartable from any step: the only state is the counter.
 */
@FunctionalInterface
public interface LrSchedule {

    /** The learning rate after {@code t} steps, for a base rate {@code baseLr}. */
    double lr(long t, double baseLr);

    /** This schedule's rate used as the base of {@code next}. */
    default LrSchedule then(LrSchedule next) {
        LrSchedule self = this;
        return (t, base) -> next.lr(t, self.lr(t, base));
    }

    /** The schedules applied in turn, each to the rate the previous one produced. */
    static LrSchedule chain(LrSchedule... schedules) {
        if (schedules.length == 0) throw new IllegalArgumentException("LrSchedule.chain: no schedules");
        LrSchedule s = schedules[0];
        for (int i = 1; i < schedules.length; i++) s = s.then(schedules[i]);
        return s;
    }

    /** The base rate throughout. */
    static LrSchedule constant() { return (t, base) -> base; }
}
