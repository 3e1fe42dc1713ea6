package ai.bonsai.dsp.train;

import java.nio.file.Path;

/**
 * A training run stopped on request (SIGINT, SIGTERM, {@link GracefulStop#request}) after saving its resume
 * checkpoint. The command line turns it into its exit code and prints the {@code --resume} command.
 */
public final class RunStoppedException extends RuntimeException {
    private final int exitCode;
    private final Path resumeCheckpoint;

    public RunStoppedException(String message, int exitCode, Path resumeCheckpoint) {
        super(message);
        this.exitCode = exitCode;
        this.resumeCheckpoint = resumeCheckpoint;
    }

    public int exitCode() { return exitCode; }

    public Path resumeCheckpoint() { return resumeCheckpoint; }
}
