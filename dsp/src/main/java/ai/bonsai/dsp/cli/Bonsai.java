package ai.bonsai.dsp.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * The {@code bonsai} command: one entry point for every subcommand. Each subcommand is also a main class
 * of its own ({@code java -cp bonsai.jar ai.bonsai.dsp.cli.CifarPretrain --help}).
 */
@Command(name = "bonsai", mixinStandardHelpOptions = true, version = "bonsai 0.1.0",
        description = "Train CIFAR ResNets and compress them with Dynamic Structure Pruning, on the JVM.",
        subcommands = {Demo.class, Download.class, CifarPretrain.class, CifarDsp.class, CifarFinetune.class, Evaluate.class,
                PackModel.class, Bench.class, Export.class, Import.class,
                CommandLine.HelpCommand.class})
public final class Bonsai implements Runnable {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Override public void run() {
        spec.commandLine().usage(System.out);
    }

    public static void main(String[] args) {
        System.exit(execute(new Bonsai(), args));
    }

    /**
     * Runs a command with Bonsai's error handling: a user error (bad flag, missing or corrupt file) prints one
     * line naming what is wrong instead of a stack trace; BONSAI_DEBUG=1 shows the trace.
     */
    static int execute(Object command, String[] args) {
        CommandLine cl = new CommandLine(command);
        cl.setUsageHelpWidth(110);
        cl.setExecutionExceptionHandler((ex, line, parsed) -> {
            if (ex instanceof ai.bonsai.dsp.train.RunStoppedException stopped) {
                line.getErr().println("bonsai " + line.getCommandName() + ": " + stopped.getMessage());
                line.getErr().println("continue with: " + resumeCommand(command, line.getCommandName(), args));
                return stopped.exitCode();
            }
            Throwable t = ex;
            if ((t instanceof java.io.UncheckedIOException || t instanceof RuntimeException) && t.getCause() instanceof java.io.IOException
                    && t.getMessage() == null) {
                t = t.getCause();
            }
            line.getErr().println("bonsai " + line.getCommandName() + ": " + (t.getMessage() == null ? t.toString() : t.getMessage()));
            if (System.getenv("BONSAI_DEBUG") != null) t.printStackTrace(line.getErr());
            return 1;
        });
        return cl.execute(args);
    }

    /** The command line that continues a stopped run: the same arguments plus --resume, quoted for a POSIX shell. */
    static String resumeCommand(Object command, String name, String[] args) {
        StringBuilder sb = new StringBuilder("bonsai");
        if (!(command instanceof Bonsai)) sb.append(' ').append(name);
        boolean hasResume = false;
        for (String a : args) {
            hasResume |= a.equals("--resume");
            sb.append(' ').append(a.matches("[A-Za-z0-9_./=:,+@%-]+") ? a : "'" + a.replace("'", "'\\''") + "'");
        }
        if (!hasResume) sb.append(" --resume");
        return sb.toString();
    }
}
