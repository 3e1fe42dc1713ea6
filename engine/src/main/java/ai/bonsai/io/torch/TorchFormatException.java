package ai.bonsai.io.torch;

import java.io.IOException;

/**
 * The one exception type for an archive that is not a TorchScript file Bonsai can read: a damaged or hostile
 * zip, a pickle that uses an opcode or global outside the allowlist, a storage whose size does not match, a
 * limit of {@link TorchLimits} exceeded, or (from importers built on this package) a module tree or code
 * whose shape is not the expected one. Every message names the file, the entry, and what was expected versus
 * what was found. Reading never ends in any other exception for bad input, apart from plain I/O errors of
 * the file system (also {@link IOException}s).
 */
public class TorchFormatException extends IOException {
    private static final long serialVersionUID = 1L;

    public TorchFormatException(String message) { super(message); }

    public TorchFormatException(String message, Throwable cause) { super(message, cause); }
}
