package ai.bonsai.optim;

/**
 * The rate times {@code factor} for the first {@code steps} steps, then the rate itself, PyTorch's
 * {@code ConstantLR}. Chained in front of another schedule it is a constant warm-up.
 */
public final class ConstantLR implements LrSchedule {
    private final double factor;
    private final long steps;

    public ConstantLR(double factor, long steps) {
        if (!(factor >= 0 && factor <= 1)) throw new IllegalArgumentException("ConstantLR: factor must be in [0, 1], got " + factor);
        if (steps < 0) throw new IllegalArgumentException("ConstantLR: steps must be >= 0, got " + steps);
        this.factor = factor;
        this.steps = steps;
    }

    @Override public double lr(long t, double baseLr) { return t < steps ? baseLr * factor : baseLr; }

    @Override public String toString() { return "ConstantLR(factor=" + factor + ", steps=" + steps + ")"; }
}
