package ai.bonsai.io;

/**
 * A test aid for crash-recovery harnesses, off unless {@code -Dbonsai.crashpoints.pauseMs=MS} is set. Then every
 * write a run must survive a kill in announces itself on stderr as {@code bonsai-crashpoint PHASE WHERE} and
 * pauses for MS milliseconds in its middle, so that a harness can SIGKILL the process exactly inside it:
 * <ul>
 * <li>{@code checkpoint}: a safetensors write, after its header is in the temporary file and before its data;</li>
 * <li>{@code metrics}: a metrics JSON line, half written and flushed;</li>
 * <li>{@code plot}: a PNG's temporary file written, not yet moved into place;</li>
 * <li>{@code step}: a training step between backward and the optimiser step.</li>
 * </ul>
 * The code paths are the production ones; only the pause is added. With the property unset each call is one test
 * of a static final field.
 */
public final class CrashPoints {
    private static final long PAUSE_MS = Long.getLong("bonsai.crashpoints.pauseMs", 0L);

    private CrashPoints() {}

    /** Whether pauses are on (writers that must split a write to expose its middle check this first). */
    public static boolean enabled() { return PAUSE_MS > 0; }

    /** Announces {@code phase} at {@code where} and pauses, when enabled. */
    public static void reached(String phase, Object where) {
        if (PAUSE_MS <= 0) return;
        System.err.println("bonsai-crashpoint " + phase + " " + where);
        System.err.flush();
        try {
            Thread.sleep(PAUSE_MS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
