package ai.bonsai.dsp.train;

import sun.misc.Signal;
import sun.misc.SignalHandler;

import java.io.PrintStream;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Ctrl-C and SIGTERM for a training run. The first SIGINT or SIGTERM asks the run to stop: the step in flight
 * finishes, the resume checkpoint is written (atomically, by the training thread itself), and the command exits
 * with 128 + the signal's number (130 for INT, 143 for TERM). A second signal halts the JVM at once; every
 * checkpoint already on disk stays valid because each was renamed into place whole.
 *
 * <p>Why {@code sun.misc.Signal} and not a shutdown hook: a hook runs only once the JVM has decided to exit. The
 * training thread would race the hooks, the process would end as soon as the hook returned, and a second Ctrl-C
 * could not cut the shutdown short (the JVM ignores further exit requests while its hooks run). Replacing the
 * JVM's INT and TERM handlers for the duration of the run instead turns the first signal into a flag that the
 * training loop polls between steps, so saving happens in order on the thread that owns the model, and lets the
 * second one call {@link Runtime#halt}. The previous handlers come back on {@link #close()}, so in-process callers
 * (tests, {@code bonsai demo}) see the JVM's usual behaviour afterwards. {@code sun.misc.Signal} lives in the
 * {@code jdk.unsupported} module, which every JDK since 9 exports to the class path. Where a signal cannot be
 * handled (no TERM on Windows, {@code -Xrs}, or INT ignored because a non-interactive shell started the process in
 * the background) it keeps its default behaviour and {@link #notes()} says so.
 */
public final class GracefulStop implements AutoCloseable {
    private final AtomicReference<String> requested = new AtomicReference<>();
    private volatile int exitCode;
    private final Map<Signal, SignalHandler> previous = new LinkedHashMap<>();
    private final StringBuilder notes = new StringBuilder();
    private final PrintStream err;

    private GracefulStop(PrintStream err) { this.err = err; }

    /** A stop that only {@link #request} triggers (library use, tests): no signal handlers. */
    public static GracefulStop manual() { return new GracefulStop(System.err); }

    /** Handles SIGINT and SIGTERM until {@link #close()}; messages go to {@code err}. */
    public static GracefulStop install(PrintStream err) {
        GracefulStop s = new GracefulStop(err);
        for (String name : new String[] {"INT", "TERM"}) {
            try {
                Signal sig = new Signal(name);
                SignalHandler old = Signal.handle(sig, s::onSignal);
                if (old == SignalHandler.SIG_IGN) {
                    Signal.handle(sig, SignalHandler.SIG_IGN);   // ignored by whoever started us: keep it so
                    s.notes.append("SIG").append(name).append(" is ignored by this process (started in the background?); ");
                } else {
                    s.previous.put(sig, old);
                }
            } catch (IllegalArgumentException | UnsupportedOperationException e) {
                s.notes.append("SIG").append(name).append(" cannot be handled here (").append(e.getMessage()).append("); ");
            }
        }
        return s;
    }

    private void onSignal(Signal sig) {
        int code = 128 + sig.getNumber();
        if (requested.compareAndSet(null, "SIG" + sig.getName())) {
            exitCode = code;
            err.println();
            err.println("bonsai: SIG" + sig.getName() + " received: finishing the current step, then saving the resume checkpoint "
                    + "(send it again to stop at once)");
        } else {
            err.println("bonsai: SIG" + sig.getName() + " again: stopping at once; checkpoints already written stay valid");
            err.flush();
            Runtime.getRuntime().halt(code);
        }
    }

    /** Asks the run to stop after the current step, as a signal would; {@code exitCode} is what the command returns. */
    public void request(String reason, int exitCode) {
        if (requested.compareAndSet(null, reason)) this.exitCode = exitCode;
    }

    public boolean requested() { return requested.get() != null; }

    /** What asked for the stop ("SIGINT", "SIGTERM" or a {@link #request} reason), or null. */
    public String reason() { return requested.get(); }

    public int exitCode() { return exitCode; }

    /** Signals that could not be handled, or "". */
    public String notes() { return notes.toString().trim(); }

    @Override public void close() {
        previous.forEach(Signal::handle);
        previous.clear();
    }
}
