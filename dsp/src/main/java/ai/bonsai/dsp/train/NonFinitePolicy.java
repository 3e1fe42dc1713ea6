package ai.bonsai.dsp.train;

/**
 * What a training step does when its loss, a gradient or a weight is NaN or infinite ({@code --on-nonfinite}).
 * {@link #STOP} ends the run with one message naming the epoch, the step, the first non-finite tensor and the
 * learning rate, leaving the checkpoints on disk as they were. {@link #SKIP_STEP} drops that step's update (weights,
 * batch-norm statistics and optimiser state are put back as they were before it), logs it, and gives up with the
 * same message after a number of consecutive skips.
 */
public enum NonFinitePolicy {
    STOP, SKIP_STEP;

    /** Parses the command-line spelling: {@code stop} or {@code skip-step}. */
    public static NonFinitePolicy parse(String s) {
        return switch (s) {
            case "stop" -> STOP;
            case "skip-step" -> SKIP_STEP;
            default -> throw new IllegalArgumentException("--on-nonfinite: expected stop or skip-step, got '" + s + "'");
        };
    }
}
