package ai.bonsai.data;

import ai.bonsai.tensor.Shape;

import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;

/**
 * CIFAR-10 in the official binary format, held in memory as bytes.
 *
 * <p>Each record is 3073 bytes: one label byte (0-9), then 1024 red, 1024 green and 1024 blue pixel bytes,
 * rows top to bottom. That is exactly the (C, H, W) order the loader wants, so an image is converted with one
 * pass over 3072 bytes. The 50,000 training images take 150 MB as bytes (600 MB as floats, which is why the
 * conversion happens per batch).
 *
 * <p>Where the data can come from:
 * <ul>
 *   <li>a folder in the official layout: {@code data_batch_1.bin} ... {@code data_batch_5.bin} (train) and
 *       {@code test_batch.bin} (test), either directly in the folder or in its {@code cifar-10-batches-bin}
 *       subfolder, as the official archive unpacks;</li>
 *   <li>a single file of records, such as a slice of a batch. Training on one file holds out its last
 *       fraction for evaluation ({@link #forTraining}); evaluating a file uses all of it.</li>
 * </ul>
 *
 * <p>Not here: downloading ({@link Cifar10Download}), augmentation ({@link Transform}).
 */
public final class Cifar10 implements Dataset {
    public static final int IMAGE_BYTES = 3 * 32 * 32;
    public static final int RECORD_BYTES = 1 + IMAGE_BYTES;
    public static final int CLASSES = 10;
    public static final List<String> CLASS_NAMES = List.of(
            "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck");
    public static final List<String> TRAIN_FILES = List.of(
            "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin");
    public static final String TEST_FILE = "test_batch.bin";
    /** The folder the official archive unpacks into. */
    public static final String ARCHIVE_FOLDER = "cifar-10-batches-bin";
    public static final double DEFAULT_HELD_OUT_FRACTION = 0.10;

    private static final Shape IMAGE_SHAPE = Shape.of(3, 32, 32);
    private static final String HOW_TO_GET =
            "run `bonsai download cifar10` to fetch CIFAR-10, or pass --data <folder or file of CIFAR-10 binary records>";

    /** Which part of an official folder to read. */
    public enum Split { TRAIN, TEST }

    private final byte[] labels;
    private final byte[] pixels;     // size() * IMAGE_BYTES, records' pixel bytes back to back
    private final List<Path> files;
    private final String description;

    private Cifar10(byte[] labels, byte[] pixels, List<Path> files, String what) {
        this.labels = labels;
        this.pixels = pixels;
        this.files = List.copyOf(files);
        this.description = what + " " + files.stream().map(Path::toString).collect(Collectors.joining(", "))
                + " (" + labels.length + " images)";
    }

    /**
     * Reads the given split. A folder gives the official files of that split; a single file is read whole
     * whatever the split (use {@link #forTraining} to hold part of it out).
     */
    public static Cifar10 read(Path path, Split split) throws IOException {
        if (Files.isRegularFile(path)) return readFiles(List.of(path), "CIFAR-10 file");
        Path folder = officialFolder(path);
        List<Path> files = new ArrayList<>();
        for (String name : split == Split.TRAIN ? TRAIN_FILES : List.of(TEST_FILE)) {
            Path f = folder.resolve(name);
            if (!Files.isRegularFile(f)) {
                throw new NoSuchFileException(f.toString(), null,
                        "missing from the CIFAR-10 folder (the " + split.name().toLowerCase(java.util.Locale.ROOT)
                                + " split needs " + String.join(", ", split == Split.TRAIN ? TRAIN_FILES : List.of(TEST_FILE))
                                + "); " + HOW_TO_GET);
            }
            files.add(f);
        }
        return readFiles(files, "CIFAR-10 " + split.name().toLowerCase(java.util.Locale.ROOT) + " split");
    }

    /** Reads and concatenates files of records, in the order given. */
    public static Cifar10 readFiles(List<Path> files) throws IOException {
        return readFiles(files, "CIFAR-10 records from");
    }

    /**
     * The data for training and the data to evaluate on while training. A folder gives (the five training
     * batches, the test batch). A single file gives (its first records, its last {@code heldOutFraction} of
     * records, rounded to the nearest record).
     */
    public static TrainSplit forTraining(Path path, double heldOutFraction) throws IOException {
        if (!(heldOutFraction >= 0 && heldOutFraction < 1)) {
            throw new IllegalArgumentException("held-out fraction: expected a value in [0, 1), got " + heldOutFraction);
        }
        if (Files.isRegularFile(path)) {
            Cifar10 all = readFiles(List.of(path), "CIFAR-10 file");
            int heldOut = (int) Math.round(all.size() * heldOutFraction);
            int cut = all.size() - heldOut;
            return new TrainSplit(all.subset(0, cut), all.subset(cut, all.size()));
        }
        return new TrainSplit(read(path, Split.TRAIN), read(path, Split.TEST));
    }

    public static TrainSplit forTraining(Path path) throws IOException {
        return forTraining(path, DEFAULT_HELD_OUT_FRACTION);
    }

    /** The data to evaluate a trained model on: the test batch of a folder, or all of a single file. */
    public static Cifar10 forEval(Path path) throws IOException {
        return read(path, Split.TEST);
    }

    /**
     * Whether {@code folder} (or its {@code cifar-10-batches-bin} subfolder) holds all six official files;
     * the downloader uses it to skip work already done.
     */
    public static boolean isCompleteFolder(Path folder) {
        Path f = Files.isRegularFile(folder.resolve(TRAIN_FILES.get(0))) ? folder : folder.resolve(ARCHIVE_FOLDER);
        if (!Files.isRegularFile(f.resolve(TEST_FILE))) return false;
        for (String name : TRAIN_FILES) if (!Files.isRegularFile(f.resolve(name))) return false;
        return true;
    }

    private static Path officialFolder(Path path) throws NoSuchFileException {
        if (!Files.isDirectory(path)) {
            throw new NoSuchFileException(path.toString(), null, "no such CIFAR-10 file or folder; " + HOW_TO_GET);
        }
        boolean direct = Files.exists(path.resolve(TEST_FILE));
        for (String name : TRAIN_FILES) direct |= Files.exists(path.resolve(name));
        if (direct) return path;
        Path sub = path.resolve(ARCHIVE_FOLDER);
        if (Files.isDirectory(sub)) return sub;
        throw new NoSuchFileException(path.toString(), null,
                "folder holds no CIFAR-10 batches (expected " + TRAIN_FILES.get(0) + " ... " + TEST_FILE
                        + " in it or in its " + ARCHIVE_FOLDER + " subfolder); " + HOW_TO_GET);
    }

    private static Cifar10 readFiles(List<Path> files, String what) throws IOException {
        if (files.isEmpty()) throw new IllegalArgumentException("CIFAR-10: no files given");
        long total = 0;
        for (Path f : files) {
            if (!Files.isRegularFile(f)) throw new NoSuchFileException(f.toString(), null, "no such CIFAR-10 file; " + HOW_TO_GET);
            long size = Files.size(f);
            if (size % RECORD_BYTES != 0) {
                long partialAt = size / RECORD_BYTES * RECORD_BYTES;
                throw new IOException(f + ": size " + size + " bytes is not a whole number of " + RECORD_BYTES
                        + "-byte CIFAR-10 records (1 label + " + IMAGE_BYTES + " pixel bytes); " + (size / RECORD_BYTES)
                        + " whole records, then a partial record of " + (size - partialAt) + " bytes at byte offset " + partialAt);
            }
            if (size == 0) throw new IOException(f + ": empty file, expected CIFAR-10 records of " + RECORD_BYTES + " bytes each");
            total += size / RECORD_BYTES;
        }
        if (total * IMAGE_BYTES > Integer.MAX_VALUE - 8) {
            throw new IOException("CIFAR-10: " + total + " records in " + files + " is more than one byte array holds ("
                    + ((Integer.MAX_VALUE - 8) / IMAGE_BYTES) + " records at most)");
        }
        byte[] labels = new byte[(int) total];
        byte[] pixels = new byte[(int) total * IMAGE_BYTES];
        int n = 0;
        byte[] record = new byte[RECORD_BYTES];
        for (Path f : files) {
            long records = Files.size(f) / RECORD_BYTES;
            try (InputStream in = new BufferedInputStream(Files.newInputStream(f), 1 << 16)) {
                for (long r = 0; r < records; r++, n++) {
                    int got = in.readNBytes(record, 0, RECORD_BYTES);
                    if (got != RECORD_BYTES) {
                        // The size was checked above, so this means the file shrank while we read it.
                        throw new IOException(f + ": ended after " + (r * RECORD_BYTES + got) + " bytes while reading record " + r
                                + "; expected " + (records * RECORD_BYTES) + " bytes (did the file change while it was read?)");
                    }
                    int label = record[0] & 0xFF;
                    if (label >= CLASSES) {
                        throw new IOException(f + ": record " + r + " (byte offset " + (r * RECORD_BYTES) + ") has label " + label
                                + ", expected 0-" + (CLASSES - 1) + "; is this a CIFAR-10 binary file (not CIFAR-100 or the Python pickle)?");
                    }
                    labels[n] = (byte) label;
                    System.arraycopy(record, 1, pixels, n * IMAGE_BYTES, IMAGE_BYTES);
                }
            }
        }
        return new Cifar10(labels, pixels, files, what);
    }

    /** The files this data was read from, in order. */
    public List<Path> files() { return files; }

    @Override public int size() { return labels.length; }

    @Override public Shape imageShape() { return IMAGE_SHAPE; }

    @Override public int numClasses() { return CLASSES; }

    @Override public int label(int i) { return labels[checkIndex(i)]; }

    @Override public void image(int i, float[] dst, int offset) {
        int base = checkIndex(i) * IMAGE_BYTES;
        if (offset < 0 || offset > dst.length - IMAGE_BYTES) {
            throw new IndexOutOfBoundsException("image: " + IMAGE_BYTES + " floats at offset " + offset + " do not fit an array of " + dst.length);
        }
        for (int k = 0; k < IMAGE_BYTES; k++) dst[offset + k] = (pixels[base + k] & 0xFF) / 255f;
    }

    /** One raw pixel value of image {@code i}, 0-255; channel 0 is red. */
    public int pixel(int i, int channel, int row, int col) {
        if (channel < 0 || channel >= 3 || row < 0 || row >= 32 || col < 0 || col >= 32) {
            throw new IndexOutOfBoundsException("pixel: (" + channel + ", " + row + ", " + col + ") is outside (3, 32, 32)");
        }
        return pixels[checkIndex(i) * IMAGE_BYTES + channel * 1024 + row * 32 + col] & 0xFF;
    }

    private int checkIndex(int i) {
        if (i < 0 || i >= labels.length) throw new IndexOutOfBoundsException("example " + i + " is out of range [0, " + labels.length + ") of " + description);
        return i;
    }

    @Override public String description() { return description; }

    @Override public String toString() { return description; }
}
