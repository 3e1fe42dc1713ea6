package ai.bonsai.dsp.cli;

import picocli.CommandLine.Option;

/** --resume and --stop-after, shared by the training commands. */
public final class ResumeOptions {
    @Option(names = "--resume", description = "Continue from <save-dir>/<run>.last.safetensors, written after every epoch.")
    boolean resume;

    @Option(names = "--stop-after", paramLabel = "EPOCH", description = "Stop after this epoch, keeping the schedule of --epochs; continue later with --resume.")
    Integer stopAfter;

    /** The epoch to stop after, for a run of {@code epochs} epochs. */
    int stopAfter(int epochs) {
        if (stopAfter != null && stopAfter < 1) throw new IllegalArgumentException("--stop-after: expected a positive epoch, got " + stopAfter);
        return stopAfter == null ? epochs : stopAfter;
    }
}
