package ai.bonsai.optim;

/**
 * Linear warm-up in front of another schedule: for t < warmupSteps the wrapped schedule's rate is scaled by
 * startFactor + (1 - startFactor) * t / warmupSteps, afterwards it is used unchanged. The wrapped schedule
 * sees the global step count (it is not shifted by the warm-up), which equals PyTorch's
 * {@code ChainedScheduler([LinearLR(startFactor, 1.0, warmupSteps), after])}.
 */
public final class LinearWarmup implements LrSchedule {
    private final double startFactor;
    private final long warmupSteps;
    private final LrSchedule after;

    /** Warm-up to the constant base rate. */
    public LinearWarmup(double startFactor, long warmupSteps) { this(startFactor, warmupSteps, LrSchedule.constant()); }

    public LinearWarmup(double startFactor, long warmupSteps, LrSchedule after) {
        if (!(startFactor > 0 && startFactor <= 1)) throw new IllegalArgumentException("LinearWarmup: startFactor must be in (0, 1], got " + startFactor);
        if (warmupSteps < 0) throw new IllegalArgumentException("LinearWarmup: warmupSteps must be >= 0, got " + warmupSteps);
        if (after == null) throw new IllegalArgumentException("LinearWarmup: the wrapped schedule is null");
        this.startFactor = startFactor;
        this.warmupSteps = warmupSteps;
        this.after = after;
    }

    @Override public double lr(long t, double baseLr) {
        double f = t >= warmupSteps ? 1 : startFactor + (1 - startFactor) * t / warmupSteps;
        return f * after.lr(t, baseLr);
    }

    @Override public String toString() { return "LinearWarmup(startFactor=" + startFactor + ", warmupSteps=" + warmupSteps + ", then " + after + ")"; }
}
