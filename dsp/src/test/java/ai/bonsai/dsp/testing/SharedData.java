package ai.bonsai.dsp.testing;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** Finds ../shared (beside the repository) for tests that use its real data; they skip when it is absent. */
public final class SharedData {
    private SharedData() {}

    /** The path of a file under shared/, or a skipped test when it is not there. */
    public static Path require(String relative) {
        for (Path p = Path.of("").toAbsolutePath(); p != null; p = p.getParent()) {
            Path candidate = p.resolveSibling("shared").resolve(relative);
            if (Files.exists(candidate)) return candidate;
        }
        assumeTrue(false, "../shared/" + relative + " is not present; skipping");
        return null;
    }
}
