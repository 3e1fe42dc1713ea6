package ai.bonsai.dsp.cli;

import ai.bonsai.dsp.train.NonFinitePolicy;
import ai.bonsai.dsp.train.Trainer;
import ai.bonsai.dsp.train.TrainingRun;
import picocli.CommandLine.Option;

/**
 * What the training commands share about surviving a long run: --resume and --stop-after, the divergence guard
 * (--on-nonfinite, --max-skips), and graceful stop on SIGINT/SIGTERM, which {@link #apply} switches on.
 */
public final class ResumeOptions {
    @Option(names = "--resume", description = "Continue from <save-dir>/<run>.last.safetensors, written after every epoch and when "
            + "the run is stopped by Ctrl-C or SIGTERM (then mid-epoch).")
    boolean resume;

    @Option(names = "--stop-after", paramLabel = "EPOCH", description = "Stop after this epoch, keeping the schedule of --epochs; continue later with --resume.")
    Integer stopAfter;

    @Option(names = "--on-nonfinite", paramLabel = "stop|skip-step", defaultValue = "stop",
            description = "When the loss, a gradient or a weight becomes NaN or infinite: stop with a message naming the epoch, step, tensor "
                    + "and learning rate, leaving the checkpoints as they were; or skip-step: drop that step's update and go on "
                    + "(default: ${DEFAULT-VALUE}).")
    String onNonFinite;

    @Option(names = "--max-skips", paramLabel = "N", defaultValue = "" + Trainer.DEFAULT_MAX_SKIPS,
            description = "With --on-nonfinite skip-step: give up after N consecutive skipped steps (default: ${DEFAULT-VALUE}).")
    int maxSkips;

    /** The epoch to stop after, for a run of {@code epochs} epochs. */
    int stopAfter(int epochs) {
        if (stopAfter != null && stopAfter < 1) throw new IllegalArgumentException("--stop-after: expected a positive epoch, got " + stopAfter);
        return stopAfter == null ? epochs : stopAfter;
    }

    /** Configures {@code run}: the divergence guard, and SIGINT/SIGTERM handled as a graceful stop. */
    TrainingRun apply(TrainingRun run) {
        return run.onNonFinite(NonFinitePolicy.parse(onNonFinite), maxSkips).handleSignals(true);
    }
}
