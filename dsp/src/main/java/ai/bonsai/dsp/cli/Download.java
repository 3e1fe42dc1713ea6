package ai.bonsai.dsp.cli;

import ai.bonsai.data.Cifar10Download;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.nio.file.Path;
import java.util.concurrent.Callable;

/** {@code bonsai download cifar10}: fetches, verifies and safely unpacks the official CIFAR-10 binary archive. */
@Command(name = "download", mixinStandardHelpOptions = true,
        description = "Download a dataset. An interrupted download resumes where it stopped.")
public final class Download implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "DATASET", description = "Only 'cifar10'.")
    String dataset;

    @Option(names = "--dir", defaultValue = "data/cifar10", description = "Target folder (default: ${DEFAULT-VALUE}).")
    Path dir;

    @Option(names = "--url", description = "Archive URL (default: the official CIFAR-10 binary archive).")
    URI url;

    @Option(names = "--md5", description = "Expected MD5 of the archive (default: the official one).")
    String md5;

    public static void main(String[] args) { System.exit(Bonsai.execute(new Download(), args)); }

    @Override public Integer call() {
        if (!dataset.equalsIgnoreCase("cifar10")) throw new IllegalArgumentException("DATASET: only 'cifar10' is supported, got '" + dataset + "'");
        Cifar10Download.Builder b = Cifar10Download.builder();
        if (url != null) b.url(url);
        if (md5 != null) b.md5(md5);
        Path result;
        try (ProgressBar bar = new ProgressBarBuilder().setTaskName("cifar10").setStyle(ProgressBarStyle.ASCII)
                .setUnit(" MiB", 1 << 20).setInitialMax(-1).build()) {
            b.progress((done, total) -> {
                if (total > 0 && bar.getMax() != total) bar.maxHint(total);
                bar.stepTo(done);
            });
            result = b.build().download(dir);
        } catch (IOException e) {
            throw new UncheckedIOException(e.getMessage(), e);
        }
        System.out.println("CIFAR-10 is in " + result.toAbsolutePath() + " (MD5 verified); train with --data " + result);
        return 0;
    }
}
