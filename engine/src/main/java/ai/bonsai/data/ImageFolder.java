package ai.bonsai.data;

import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Shape;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.awt.image.ColorModel;
import java.awt.image.IndexColorModel;
import java.awt.image.Raster;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.stream.Stream;

/**
 * Images in folders, as torchvision's {@code ImageFolder}: {@code root/<class>/<image>}, classes are the sorted names
 * of root's sub-folders (label = position), images are every file under a class folder (nested folders included)
 * with an image extension, sorted by folder then name. Or a list file, {@link #fromList}: one {@code path label} per
 * line, relative paths resolved against the list file's folder.
 *
 * <p>Images are decoded with the JDK's ImageIO (JPEG, PNG, BMP, TIFF, GIF) each time they are read, converted to RGB
 * (grey replicated, alpha dropped, as Pillow's convert("RGB")), scaled to [0, 1], and cropped to a fixed size by an
 * {@link ImageCrop}: {@link #dataset(ImageCrop)} gives the {@link Dataset}. A file that does not decode throws
 * {@link UnreadableExampleException}; the {@link DataLoader} reports and skips it.
 */
public final class ImageFolder {
    /** torchvision's IMG_EXTENSIONS; files with other extensions are not images and are left out (and counted). */
    public static final List<String> EXTENSIONS = List.of(".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp");

    /** One image: its file and its class. */
    public record Sample(Path path, int label) {}

    private final String source;
    private final List<String> classes;
    private final List<Sample> samples;
    private final int ignored;

    private ImageFolder(String source, List<String> classes, List<Sample> samples, int ignored) {
        this.source = source;
        this.classes = List.copyOf(classes);
        this.samples = List.copyOf(samples);
        this.ignored = ignored;
    }

    /** Reads the layout {@code root/<class>/<image>}; decodes nothing. */
    public static ImageFolder open(Path root) throws IOException {
        if (!Files.exists(root)) throw new NoSuchFileException(root.toAbsolutePath() + ": no such folder (expected an image folder root/<class>/<image>)");
        if (!Files.isDirectory(root)) throw new IOException(root.toAbsolutePath() + ": not a folder (expected an image folder root/<class>/<image>)");
        List<Path> classDirs;
        try (Stream<Path> s = Files.list(root)) {
            classDirs = s.filter(Files::isDirectory).sorted(Comparator.comparing(p -> p.getFileName().toString())).toList();
        }
        if (classDirs.isEmpty()) {
            throw new IOException(root.toAbsolutePath() + ": no class folders (expected an image folder root/<class>/<image>)");
        }
        List<String> classes = new ArrayList<>();
        List<Sample> samples = new ArrayList<>();
        int ignored = 0;
        for (Path dir : classDirs) {
            int label = classes.size();
            classes.add(dir.getFileName().toString());
            List<Path> files;
            try (Stream<Path> s = Files.walk(dir, java.nio.file.FileVisitOption.FOLLOW_LINKS)) {
                files = s.filter(Files::isRegularFile).toList();
            }
            // As sorted(os.walk(...)) then sorted(file names): by folder, then by name.
            files = files.stream().sorted(Comparator.comparing((Path p) -> p.getParent().toString()).thenComparing(p -> p.getFileName().toString())).toList();
            int before = samples.size();
            for (Path f : files) {
                if (hasImageExtension(f)) samples.add(new Sample(f, label));
                else ignored++;
            }
            if (samples.size() == before) {
                throw new IOException(dir.toAbsolutePath() + ": class folder '" + dir.getFileName() + "' holds no image files (expected files ending in "
                        + String.join(" ", EXTENSIONS) + ")");
            }
        }
        return new ImageFolder("image folder " + root.toAbsolutePath(), classes, samples, ignored);
    }

    /**
     * Reads a list file: one {@code path label} per line (the label is the last field, so paths may hold spaces),
     * blank lines and lines starting with '#' skipped, relative paths resolved against the list file's folder.
     * {@code numClasses} bounds the labels; 0 takes the largest label + 1. Class names are "0", "1", ...
     */
    public static ImageFolder fromList(Path listFile, int numClasses) throws IOException {
        if (!Files.isRegularFile(listFile)) throw new NoSuchFileException(listFile.toAbsolutePath() + ": no such list file (expected lines 'path label')");
        if (numClasses < 0) throw new IllegalArgumentException("fromList: numClasses must be non-negative, got " + numClasses);
        Path base = listFile.toAbsolutePath().getParent();
        List<String> lines = Files.readAllLines(listFile, StandardCharsets.UTF_8);
        List<Sample> samples = new ArrayList<>();
        int maxLabel = -1;
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i).strip();
            if (line.isEmpty() || line.startsWith("#")) continue;
            int cut = Math.max(line.lastIndexOf(' '), line.lastIndexOf('\t'));
            String where = listFile.toAbsolutePath() + " line " + (i + 1);
            if (cut <= 0) throw new IOException(where + ": expected 'path label', got '" + line + "'");
            String path = line.substring(0, cut).strip();
            String field = line.substring(cut + 1);
            int label;
            try {
                label = Integer.parseInt(field);
            } catch (NumberFormatException e) {
                throw new IOException(where + ": expected 'path label' with an integer label, got '" + field + "'");
            }
            if (label < 0 || (numClasses > 0 && label >= numClasses)) {
                throw new IOException(where + ": label " + label + " is out of range [0, " + (numClasses > 0 ? numClasses : "n") + ")");
            }
            maxLabel = Math.max(maxLabel, label);
            samples.add(new Sample(base.resolve(path), label));
        }
        if (samples.isEmpty()) throw new IOException(listFile.toAbsolutePath() + ": no entries (expected lines 'path label')");
        int n = numClasses > 0 ? numClasses : maxLabel + 1;
        List<String> classes = new ArrayList<>();
        for (int c = 0; c < n; c++) classes.add(Integer.toString(c));
        return new ImageFolder("image list " + listFile.toAbsolutePath(), classes, samples, 0);
    }

    static boolean hasImageExtension(Path p) {
        String n = p.getFileName().toString().toLowerCase(Locale.ROOT);
        for (String e : EXTENSIONS) if (n.endsWith(e)) return true;
        return false;
    }

    public List<String> classes() { return classes; }

    public List<Sample> samples() { return samples; }

    public int size() { return samples.size(); }

    /** Files under the class folders left out for not having an image extension. */
    public int ignoredFiles() { return ignored; }

    public String description() {
        return source + " (" + classes.size() + " classes, " + samples.size() + " images"
                + (ignored > 0 ? ", " + ignored + " non-image file" + (ignored == 1 ? "" : "s") + " ignored" : "") + ")";
    }

    /**
     * Splits off a held-out part: {@code heldOut} (a fraction in [0, 1)) of each class, chosen by a permutation drawn
     * from {@code seed}, so every class is represented in both parts. Both keep the classes and the file order.
     */
    public ImageFolder[] split(double heldOut, long seed) {
        if (!(heldOut >= 0 && heldOut < 1)) throw new IllegalArgumentException("split: held-out fraction must be in [0, 1), got " + heldOut);
        boolean[] out = new boolean[samples.size()];
        Generator g = new Generator(seed);
        for (int c = 0; c < classes.size(); c++) {
            List<Integer> idx = new ArrayList<>();
            for (int i = 0; i < samples.size(); i++) if (samples.get(i).label() == c) idx.add(i);
            for (int i = idx.size() - 1; i > 0; i--) java.util.Collections.swap(idx, i, g.nextInt(i + 1));
            int k = (int) Math.round(idx.size() * heldOut);
            if (heldOut > 0 && idx.size() > 1) k = Math.max(1, Math.min(k, idx.size() - 1));
            for (int i = 0; i < k; i++) out[idx.get(i)] = true;
        }
        List<Sample> a = new ArrayList<>(), b = new ArrayList<>();
        for (int i = 0; i < samples.size(); i++) (out[i] ? b : a).add(samples.get(i));
        return new ImageFolder[] {
                new ImageFolder(source + ", training part", classes, a, ignored),
                new ImageFolder(source + ", held-out part (" + heldOut + ")", classes, b, 0)};
    }

    /** The images cropped by {@code crop} to (3, size, size), as a Dataset. */
    public Dataset dataset(ImageCrop crop) {
        if (samples.isEmpty()) throw new IllegalArgumentException(description() + ": no images");
        return new Images(crop);
    }

    /** A decoded image: (3, height, width) floats in [0, 1], channels R, G, B. */
    public record Decoded(float[] pixels, int height, int width) {}

    /** Decodes an image file with ImageIO; throws {@link UnreadableExampleException} naming the file when it cannot. */
    public static Decoded decode(Path path) {
        BufferedImage img;
        try {
            if (Files.size(path) == 0) throw new UnreadableExampleException(path.toString(), "empty file (0 bytes)", null);
            img = ImageIO.read(path.toFile());   // a File, read in place: a stream would be cached in a temporary file
        } catch (UnreadableExampleException e) {
            throw e;
        } catch (NoSuchFileException e) {
            throw new UnreadableExampleException(path.toString(), "no such file", e);
        } catch (IOException | RuntimeException e) {
            throw new UnreadableExampleException(path.toString(), "cannot be decoded (" + e.getMessage() + ")", e);
        }
        if (img == null) throw new UnreadableExampleException(path.toString(), "not a format ImageIO reads (expected JPEG, PNG, BMP, TIFF or GIF)", null);
        try {
            return toRgb(img);
        } catch (RuntimeException e) {
            throw new UnreadableExampleException(path.toString(), "cannot be converted to RGB (" + e + ")", e);
        }
    }

    /** RGB planes in [0, 1]. Reads the raster's samples where it can: getRGB would gamma-convert linear grey. */
    static Decoded toRgb(BufferedImage img) {
        int w = img.getWidth(), h = img.getHeight();
        float[] px = new float[3 * h * w];
        if (img.getType() == BufferedImage.TYPE_3BYTE_BGR && img.getRaster().getDataBuffer() instanceof java.awt.image.DataBufferByte db
                && img.getRaster().getSampleModel() instanceof java.awt.image.PixelInterleavedSampleModel sm
                && sm.getPixelStride() == 3 && sm.getScanlineStride() == 3 * w && db.getNumBanks() == 1 && db.getOffset() == 0
                && img.getRaster().getSampleModelTranslateX() == 0 && img.getRaster().getSampleModelTranslateY() == 0
                && img.getRaster().getParent() == null) {
            // What ImageIO's JPEG reader gives: interleaved B, G, R bytes. Read them in place (4x faster than getPixels).
            byte[] bgr = db.getData();
            int plane = h * w;
            for (int p = 0; p < plane; p++) {
                px[p] = (bgr[3 * p + 2] & 0xff) / 255f;
                px[plane + p] = (bgr[3 * p + 1] & 0xff) / 255f;
                px[2 * plane + p] = (bgr[3 * p] & 0xff) / 255f;
            }
            return new Decoded(px, h, w);
        }
        ColorModel cm = img.getColorModel();
        Raster r = img.getRaster();
        int bands = r.getNumBands();
        boolean direct = !(cm instanceof IndexColorModel) && (bands == 1 || bands == 2 || bands == 3 || bands == 4)
                && cm.getColorSpace().getType() == (bands <= 2 ? java.awt.color.ColorSpace.TYPE_GRAY : java.awt.color.ColorSpace.TYPE_RGB);
        if (direct) {
            int[] row = new int[w * bands];
            float[] max = new float[bands];   // divide, as torchvision's to_tensor (x / 255), not multiply by 1/255
            for (int b = 0; b < bands; b++) max[b] = (1 << r.getSampleModel().getSampleSize(b)) - 1;
            for (int y = 0; y < h; y++) {
                r.getPixels(0, y, w, 1, row);
                for (int x = 0; x < w; x++) {
                    for (int ch = 0; ch < 3; ch++) {
                        int b = bands <= 2 ? 0 : ch;
                        px[(ch * h + y) * w + x] = row[x * bands + b] / max[b];
                    }
                }
            }
        } else {
            int[] argb = img.getRGB(0, 0, w, h, null, 0, w);
            for (int i = 0; i < h * w; i++) {
                px[i] = ((argb[i] >> 16) & 0xff) / 255f;
                px[h * w + i] = ((argb[i] >> 8) & 0xff) / 255f;
                px[2 * h * w + i] = (argb[i] & 0xff) / 255f;
            }
        }
        return new Decoded(px, h, w);
    }

    private final class Images implements Dataset {
        private final ImageCrop crop;

        Images(ImageCrop crop) { this.crop = crop; }

        @Override public int size() { return samples.size(); }

        @Override public Shape imageShape() { return Shape.of(3, crop.size(), crop.size()); }

        @Override public int numClasses() { return classes.size(); }

        @Override public int label(int i) { return samples.get(i).label(); }

        /** Without a generator: a random crop draws from a generator seeded by the example index. */
        @Override public void image(int i, float[] dst, int offset) { image(i, dst, offset, new Generator(i)); }

        @Override public void image(int i, float[] dst, int offset, Generator rng) {
            Decoded d = decode(samples.get(i).path());
            crop.apply(d.pixels(), 3, d.height(), d.width(), dst, offset, rng);
        }

        @Override public String description() { return ImageFolder.this.description() + ", " + crop; }

        @Override public String source(int i) { return samples.get(i).path().toString(); }
    }
}
