package ai.bonsai.dsp.train;

/** A training run stopped because a loss, gradient or weight became NaN or infinite; the message says where. */
public final class NonFiniteException extends IllegalStateException {
    public NonFiniteException(String message) { super(message); }
}
