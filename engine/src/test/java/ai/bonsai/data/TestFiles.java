package ai.bonsai.data;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/** Test helpers: locating the shared CIFAR-10 sample and writing small files of CIFAR-10 records. */
final class TestFiles {
    static final String SAMPLE = "first4000_of_data_batch_1.bin";

    private TestFiles() {}

    /**
     * The shared sample, found by walking up from the working directory to a folder with a
     * {@code shared/data/cifar10} child (the repository root's sibling); empty where it is absent.
     */
    static Optional<Path> sharedSample() {
        for (Path dir = Path.of("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
            Path f = dir.resolve("shared").resolve("data").resolve("cifar10").resolve(SAMPLE);
            if (Files.isRegularFile(f)) return Optional.of(f);
        }
        return Optional.empty();
    }

    /**
     * Records whose label is {@code labels[r]} and whose pixel k (0..3071) is {@code (r * 7 + k) & 0xFF}, so
     * every byte is predictable in tests.
     */
    static byte[] records(int... labels) {
        byte[] b = new byte[labels.length * Cifar10.RECORD_BYTES];
        for (int r = 0; r < labels.length; r++) {
            int base = r * Cifar10.RECORD_BYTES;
            b[base] = (byte) labels[r];
            for (int k = 0; k < Cifar10.IMAGE_BYTES; k++) b[base + 1 + k] = (byte) (r * 7 + k);
        }
        return b;
    }

    static Path write(Path file, byte[] bytes) throws IOException {
        Files.createDirectories(file.getParent());
        return Files.write(file, bytes);
    }
}
