package ai.bonsai.backend.cpu;

import ai.bonsai.backend.ConvGeometry;

/**
 * Which convolution method a kernel call uses: the default choice ({@link Conv2dWinograd#preferred}), or one forced
 * (tests hold both methods to the same references on every geometry they can compute).
 */
enum ConvMethod {
    AUTO, DIRECT, WINOGRAD;

    /** Whether a call on {@code g} takes the Winograd path under this method. */
    boolean winograd(ConvGeometry g) {
        return switch (this) {
            case AUTO -> Conv2dWinograd.preferred(g);
            case DIRECT -> false;
            case WINOGRAD -> Conv2dWinograd.applies(g);
        };
    }
}
