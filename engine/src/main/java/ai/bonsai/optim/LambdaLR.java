package ai.bonsai.optim;

import java.util.function.LongToDoubleFunction;

/** lr(t) = base * factor(t), PyTorch's {@code LambdaLR}, for recipes the other schedules do not express. */
public final class LambdaLR implements LrSchedule {
    private final LongToDoubleFunction factor;

    public LambdaLR(LongToDoubleFunction factor) {
        if (factor == null) throw new IllegalArgumentException("LambdaLR: factor function is null");
        this.factor = factor;
    }

    @Override public double lr(long t, double baseLr) {
        double f = factor.applyAsDouble(t);
        if (!(f >= 0) || Double.isInfinite(f)) throw new IllegalStateException("LambdaLR: factor(" + t + ") = " + f + " is not a finite value >= 0");
        return baseLr * f;
    }
}
