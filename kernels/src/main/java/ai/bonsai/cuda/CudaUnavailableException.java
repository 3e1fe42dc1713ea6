package ai.bonsai.cuda;

/** The CUDA backend cannot start on this machine; the message names what is missing. */
public final class CudaUnavailableException extends IllegalStateException {
    public CudaUnavailableException(String message, Throwable cause) { super(message, cause); }
}
