package ai.bonsai.optim;

import java.util.Arrays;
import java.util.List;

/**
 * Multiplies the rate by {@code gamma} at each milestone, PyTorch's {@code MultiStepLR}:
 * lr(t) = base * gamma^(number of milestones <= t). A milestone listed twice counts twice, as in PyTorch.
 */
public final class MultiStepLR implements LrSchedule {
    private final long[] milestones;
    private final double gamma;

    public MultiStepLR(List<? extends Number> milestones, double gamma) {
        this.milestones = new long[milestones.size()];
        for (int i = 0; i < this.milestones.length; i++) {
            long ms = milestones.get(i).longValue();
            if (ms < 0) throw new IllegalArgumentException("MultiStepLR: milestone " + ms + " is negative (milestones " + milestones + ")");
            if (i > 0 && ms < this.milestones[i - 1]) throw new IllegalArgumentException("MultiStepLR: milestones must be non-decreasing, got " + milestones);
            this.milestones[i] = ms;
        }
        if (!(gamma >= 0)) throw new IllegalArgumentException("MultiStepLR: gamma must be >= 0, got " + gamma);
        this.gamma = gamma;
    }

    @Override public double lr(long t, double baseLr) {
        int passed = 0;
        while (passed < milestones.length && milestones[passed] <= t) passed++;
        return baseLr * Math.pow(gamma, passed);
    }

    @Override public String toString() { return "MultiStepLR(milestones=" + Arrays.toString(milestones) + ", gamma=" + gamma + ")"; }
}
