package ai.bonsai.autograd;

/**
 * Whether operations record the autograd graph on this thread.
 * <pre>{@code
 * try (var scope = GradMode.noGrad()) {
 *     Tensor y = model.forward(x);   // no graph is recorded, no activations are kept for backward
 * }
 * }</pre>
 * Scopes nest and restore the previous mode when closed.
 */
public final class GradMode {
    private static final ThreadLocal<boolean[]> ENABLED = ThreadLocal.withInitial(() -> new boolean[] {true});

    private GradMode() {}

    public static boolean isEnabled() { return ENABLED.get()[0]; }

    /** Disables recording until the returned scope is closed. */
    public static Scope noGrad() { return set(false); }

    /** Enables recording until the returned scope is closed (inside a noGrad scope, for example). */
    public static Scope enableGrad() { return set(true); }

    private static Scope set(boolean on) {
        boolean[] cell = ENABLED.get();
        boolean previous = cell[0];
        cell[0] = on;
        return () -> cell[0] = previous;
    }

    /** A mode change that ends when closed. */
    public interface Scope extends AutoCloseable {
        @Override void close();
    }
}
