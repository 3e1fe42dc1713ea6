package ai.bonsai.cuda;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The second backend does not import the first: the CUDA module's sources reach the engine through
 * {@code ai.bonsai.backend} (Backend, Backends, ConvGeometry, BranchConv) and never name {@code ai.bonsai.backend.cpu}.
 */
class ModuleBoundaryTest {
    @Test void cudaSourcesNeverImportTheCpuBackend() throws IOException {
        Path src = Path.of("src/main/java");
        List<Path> offenders;
        try (Stream<Path> files = Files.walk(src)) {
            offenders = files.filter(p -> p.toString().endsWith(".java")).filter(p -> {
                try {
                    return Files.readString(p).contains("ai.bonsai.backend.cpu");
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            }).toList();
        }
        assertTrue(Files.isDirectory(src.resolve("ai/bonsai/cuda")), "run from the kernels module");
        assertEquals(List.of(), offenders, "kernels sources that name the CPU backend");
    }
}
