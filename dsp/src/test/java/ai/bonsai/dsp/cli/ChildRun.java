package ai.bonsai.dsp.cli;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * A bonsai command in a child JVM (this test JVM's class path), so that tests can signal or SIGKILL it. stderr lines
 * are queued for {@link #awaitLine}; with {@code pauseMs > 0} the child announces and pauses at its crash points
 * ({@link ai.bonsai.io.CrashPoints}).
 */
final class ChildRun {
    final Process process;
    final LinkedBlockingQueue<String> lines = new LinkedBlockingQueue<>();
    final StringBuffer err = new StringBuffer(), out = new StringBuffer();

    /** Every child started, so that a failing test still ends them ({@link #killAll}). */
    private static final List<Process> STARTED = java.util.Collections.synchronizedList(new ArrayList<>());

    private ChildRun(Process p) {
        this.process = p;
        STARTED.add(p);
        pump(p.getErrorStream(), err, true);
        pump(p.getInputStream(), out, false);
    }

    static List<String> javaCommand(long pauseMs, String mainClass, List<String> args) {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp", System.getProperty("java.class.path"), "--add-modules", "jdk.incubator.vector", "-Djava.awt.headless=true",
                "-Xmx512m", "-Dbonsai.crashpoints.pauseMs=" + pauseMs, mainClass));
        cmd.addAll(args);
        return cmd;
    }

    static ChildRun start(long pauseMs, String mainClass, List<String> args) throws IOException {
        return new ChildRun(new ProcessBuilder(javaCommand(pauseMs, mainClass, args)).start());
    }

    static ChildRun start(List<String> command) throws IOException {
        return new ChildRun(new ProcessBuilder(command).start());
    }

    private void pump(java.io.InputStream in, StringBuffer all, boolean queue) {
        Thread t = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
                for (String l; (l = r.readLine()) != null; ) {
                    all.append(l).append('\n');
                    if (queue) lines.add(l);
                }
            } catch (IOException e) {
                // the child was killed
            }
        }, "child-pump");
        t.setDaemon(true);
        t.start();
    }

    /** Waits for the next stderr line starting with {@code prefix}; null when the child ends first or after the timeout. */
    String awaitLine(String prefix, long timeoutMs) throws InterruptedException {
        long end = System.currentTimeMillis() + timeoutMs;
        while (System.currentTimeMillis() < end) {
            String l = lines.poll(50, TimeUnit.MILLISECONDS);
            if (l != null && l.startsWith(prefix)) return l;
            if (l == null && !process.isAlive() && lines.isEmpty()) return null;
        }
        return null;
    }

    /** Ends every child still running (call from @AfterEach). */
    static void killAll() {
        synchronized (STARTED) {
            for (Process p : STARTED) p.destroyForcibly();
            STARTED.clear();
        }
    }

    void signal(String sig) throws IOException, InterruptedException {
        new ProcessBuilder("kill", "-" + sig, Long.toString(process.pid())).start().waitFor();
    }

    int waitFor(long seconds) throws InterruptedException {
        if (!process.waitFor(seconds, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            throw new AssertionError("child did not end within " + seconds + " s; stderr:\n" + err);
        }
        Thread.sleep(100);   // let the pumps drain
        return process.exitValue();
    }
}
