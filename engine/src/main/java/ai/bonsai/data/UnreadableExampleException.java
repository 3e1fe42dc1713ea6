package ai.bonsai.data;

/**
 * Thrown by {@link Dataset#image} when one example cannot be read (an image file that does not decode). The
 * {@link DataLoader} reports it with its source, leaves the example out of its batch and goes on: one bad file
 * never ends an epoch. Any other exception from a dataset still fails the batch.
 */
public final class UnreadableExampleException extends RuntimeException {
    private final String source;

    public UnreadableExampleException(String source, String reason, Throwable cause) {
        super(source + ": " + reason, cause);
        this.source = source;
    }

    /** The file (or other source) that could not be read. */
    public String source() { return source; }
}
