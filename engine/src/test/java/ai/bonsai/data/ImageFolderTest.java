package ai.bonsai.data;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The image folder reader on folders generated here (PNG and JPEG written with ImageIO, plus a corrupt file, a
 * zero-byte file and a non-image file): class order, file order, decoding, skipping unreadable images through the
 * loader, list files, errors, the held-out split, and crop determinism under a seed.
 */
class ImageFolderTest {
    @TempDir Path dir;

    /** Pixel (x, y) of image {@code id}: a predictable, non-uniform RGB pattern. */
    static int rgb(int id, int x, int y) {
        int r = (x * 9 + id * 40) & 0xff, g = (y * 7 + 3 * id) & 0xff, b = (x * y + 11 * id) & 0xff;
        return (r << 16) | (g << 8) | b;
    }

    static BufferedImage pattern(int id, int w, int h) {
        BufferedImage img = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < h; y++) for (int x = 0; x < w; x++) img.setRGB(x, y, rgb(id, x, y));
        return img;
    }

    static Path write(Path file, BufferedImage img, String format) throws IOException {
        Files.createDirectories(file.getParent());
        assertTrue(ImageIO.write(img, format, file.toFile()), "ImageIO wrote " + format);
        return file;
    }

    /**
     * root/cat: 2 PNG + 1 JPEG + a zero-byte .jpg + a text file named .png + readme.txt (ignored);
     * root/ant: 1 PNG in a nested folder + 1 PNG + a corrupt PNG (valid header, garbage after);
     * root/bee: 1 JPEG. Classes sort as ant, bee, cat.
     */
    Path makeFolder() throws IOException {
        Path root = dir.resolve("root");
        write(root.resolve("cat/b.png"), pattern(1, 40, 30), "png");
        write(root.resolve("cat/a.png"), pattern(2, 17, 23), "png");
        write(root.resolve("cat/c.jpg"), pattern(3, 50, 20), "jpg");
        Files.write(root.resolve("cat/empty.jpg"), new byte[0]);
        Files.writeString(root.resolve("cat/notes.png"), "this is not an image\n");
        Files.writeString(root.resolve("cat/readme.txt"), "ignored: not an image extension\n");
        write(root.resolve("ant/zz/deep.png"), pattern(4, 31, 33), "png");
        write(root.resolve("ant/m.png"), pattern(5, 12, 9), "png");
        ByteArrayOutputStream png = new ByteArrayOutputStream();
        ImageIO.write(pattern(6, 20, 20), "png", png);
        byte[] corrupt = Arrays.copyOf(png.toByteArray(), png.size());
        for (int i = 40; i < corrupt.length; i++) corrupt[i] = (byte) (i * 31);
        Files.write(root.resolve("ant/corrupt.png"), corrupt);
        write(root.resolve("bee/x.jpeg"), pattern(7, 64, 48), "jpg");
        return root;
    }

    static List<String> names(ImageFolder f, Path root) {
        List<String> out = new ArrayList<>();
        for (ImageFolder.Sample s : f.samples()) out.add(root.relativize(s.path()).toString().replace('\\', '/') + ":" + s.label());
        return out;
    }

    @Test void classesSortByNameAndFilesByFolderThenName() throws IOException {
        Path root = makeFolder();
        ImageFolder f = ImageFolder.open(root);
        assertEquals(List.of("ant", "bee", "cat"), f.classes());
        assertEquals(List.of("ant/corrupt.png:0", "ant/m.png:0", "ant/zz/deep.png:0", "bee/x.jpeg:1",
                "cat/a.png:2", "cat/b.png:2", "cat/c.jpg:2", "cat/empty.jpg:2", "cat/notes.png:2"), names(f, root));
        assertEquals(1, f.ignoredFiles(), "readme.txt");
        Dataset ds = f.dataset(ImageCrop.resizeCenter(16, 16));
        assertEquals(9, ds.size());
        assertEquals(3, ds.numClasses());
        assertEquals(ai.bonsai.tensor.Shape.of(3, 16, 16), ds.imageShape());
    }

    @Test void pngDecodesExactlyAndJpegClosely() throws IOException {
        Path png = write(dir.resolve("p.png"), pattern(9, 13, 7), "png");
        ImageFolder.Decoded d = ImageFolder.decode(png);
        assertEquals(7, d.height());
        assertEquals(13, d.width());
        for (int[] xy : new int[][] {{0, 0}, {12, 0}, {5, 3}, {12, 6}}) {
            int v = rgb(9, xy[0], xy[1]);
            int plane = 7 * 13, k = xy[1] * 13 + xy[0];
            assertEquals(((v >> 16) & 0xff) / 255f, d.pixels()[k], 0f, "R at " + Arrays.toString(xy));
            assertEquals(((v >> 8) & 0xff) / 255f, d.pixels()[plane + k], 0f, "G at " + Arrays.toString(xy));
            assertEquals((v & 0xff) / 255f, d.pixels()[2 * plane + k], 0f, "B at " + Arrays.toString(xy));
        }
        // Grey PNG: the byte itself in all three channels (no sRGB conversion of linear grey).
        BufferedImage grey = new BufferedImage(5, 4, BufferedImage.TYPE_BYTE_GRAY);
        for (int y = 0; y < 4; y++) for (int x = 0; x < 5; x++) grey.getRaster().setSample(x, y, 0, x * 50 + y);
        ImageFolder.Decoded g = ImageFolder.decode(write(dir.resolve("g.png"), grey, "png"));
        for (int ch = 0; ch < 3; ch++) assertEquals((3 * 50 + 2) / 255f, g.pixels()[ch * 20 + 2 * 5 + 3], 0f, "grey channel " + ch);
        // A flat-coloured JPEG decodes to (nearly) that colour, in R, G, B order.
        BufferedImage flat = new BufferedImage(16, 16, BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < 16; y++) for (int x = 0; x < 16; x++) flat.setRGB(x, y, 0xC81E64);   // (200, 30, 100)
        ImageFolder.Decoded j = ImageFolder.decode(write(dir.resolve("f.jpg"), flat, "jpg"));
        assertEquals(200 / 255f, j.pixels()[8 * 16 + 8], 4 / 255f);
        assertEquals(30 / 255f, j.pixels()[256 + 8 * 16 + 8], 4 / 255f);
        assertEquals(100 / 255f, j.pixels()[512 + 8 * 16 + 8], 4 / 255f);
        // The in-place path for ImageIO's JPEG rasters (3-byte BGR) equals the general per-sample path.
        BufferedImage bgr = ImageIO.read(write(dir.resolve("q.jpg"), pattern(4, 23, 11), "jpg").toFile());
        assertEquals(BufferedImage.TYPE_3BYTE_BGR, bgr.getType());
        BufferedImage copy = new BufferedImage(23, 11, BufferedImage.TYPE_INT_RGB);
        copy.getGraphics().drawImage(bgr, 0, 0, null);
        assertArrayEquals(ImageFolder.toRgb(copy).pixels(), ImageFolder.toRgb(bgr).pixels());
        assertArrayEquals(ImageFolder.toRgb(copy).pixels(), ImageFolder.decode(dir.resolve("q.jpg")).pixels());
    }

    @Test void unreadableFilesAreReportedWithTheirPathAndThrowTheirOwnException() throws IOException {
        Path root = makeFolder();
        for (String bad : List.of("cat/empty.jpg", "cat/notes.png", "ant/corrupt.png")) {
            Path p = root.resolve(bad);
            UnreadableExampleException e = assertThrows(UnreadableExampleException.class, () -> ImageFolder.decode(p), bad);
            assertEquals(p.toString(), e.source());
            assertTrue(e.getMessage().startsWith(p.toString()), e.getMessage());
        }
        assertTrue(assertThrows(UnreadableExampleException.class, () -> ImageFolder.decode(root.resolve("cat/empty.jpg")))
                .getMessage().endsWith("empty file (0 bytes)"));
        assertTrue(assertThrows(UnreadableExampleException.class, () -> ImageFolder.decode(root.resolve("cat/notes.png")))
                .getMessage().contains("not a format ImageIO reads"));
        assertTrue(assertThrows(UnreadableExampleException.class, () -> ImageFolder.decode(root.resolve("ant/corrupt.png")))
                .getMessage().contains("cannot be decoded"));
    }

    @Test void theLoaderSkipsUnreadableImagesAndFinishesTheEpoch() throws IOException {
        Path root = makeFolder();
        Dataset ds = ImageFolder.open(root).dataset(ImageCrop.resizeCenter(12, 10));
        for (int workers : new int[] {0, 2}) {
            try (DataLoader loader = DataLoader.builder(ds).batchSize(2).workers(workers).prefetch(2)
                    .transform(Transform.imagenetEval()).build()) {
                List<Integer> seen = new ArrayList<>();
                List<Long> labels = new ArrayList<>();
                for (ImageBatch b : loader.epoch(0)) {
                    assertEquals(b.n() * 3 * 10 * 10, b.images().length);
                    for (int k = 0; k < b.n(); k++) {
                        seen.add(b.examples()[k]);
                        labels.add(b.labels()[k]);
                    }
                }
                // Examples 0 (corrupt.png), 7 (empty.jpg) and 8 (notes.png) are left out; batch 4 (7, 8) vanishes.
                assertEquals(List.of(1, 2, 3, 4, 5, 6), seen, "workers " + workers);
                assertEquals(List.of(0L, 0L, 1L, 2L, 2L, 2L), labels);
                assertEquals(Set.of(0, 7, 8), loader.skipped().keySet());
                assertTrue(loader.skipped().get(0).contains("corrupt.png"), loader.skipped().get(0));
                assertTrue(loader.skipped().get(7).contains("empty.jpg"), loader.skipped().get(7));
                String summary = loader.skippedSummary();
                assertNotNull(summary);
                assertTrue(summary.startsWith("3 unreadable images"), summary);
                // A second epoch skips the same files again and reports nothing new.
                int n = 0;
                for (ImageBatch b : loader.epoch(1)) n += b.n();
                assertEquals(6, n);
                assertEquals(3, loader.skipped().size());
            }
        }
    }

    @Test void aGoodFolderSkipsNothingAndPixelsMatchTheDirectPipeline() throws IOException {
        Path root = dir.resolve("good");
        write(root.resolve("a/1.png"), pattern(1, 40, 30), "png");
        write(root.resolve("b/2.png"), pattern(2, 30, 40), "png");
        Dataset ds = ImageFolder.open(root).dataset(ImageCrop.resizeCenter(20, 16));
        try (DataLoader loader = DataLoader.builder(ds).batchSize(4).transform(Transform.imagenetEval()).build()) {
            List<ImageBatch> batches = new ArrayList<>();
            loader.epoch(0).forEach(batches::add);
            assertEquals(1, batches.size());
            assertEquals(2, batches.get(0).n());
            assertNull(loader.skippedSummary());
            // Same as decoding, cropping and normalising by hand.
            ImageFolder.Decoded d = ImageFolder.decode(root.resolve("b/2.png"));
            float[] want = new float[3 * 16 * 16];
            ImageCrop.resizeCenter(20, 16).apply(d.pixels(), 3, d.height(), d.width(), want, 0, null);
            Transform.imagenetEval().apply(want, 0, 3, 16, 16, null);
            assertArrayEquals(want, Arrays.copyOfRange(batches.get(0).images(), 3 * 256, 6 * 256));
        }
    }

    @Test void randomCropsAreDeterministicUnderASeedWhateverTheWorkers() throws IOException {
        Path root = dir.resolve("crops");
        for (int i = 0; i < 6; i++) write(root.resolve((i % 2 == 0 ? "a/" : "b/") + i + ".png"), pattern(i, 37 + i, 29 + 2 * i), "png");
        Dataset ds = ImageFolder.open(root).dataset(ImageCrop.randomResized(12));
        List<float[]> first = epoch(ds, 5, 0), again = epoch(ds, 5, 2), other = epoch(ds, 6, 0);
        assertEquals(first.size(), again.size());
        for (int i = 0; i < first.size(); i++) assertArrayEquals(first.get(i), again.get(i), "batch " + i);
        boolean differs = false;
        for (int i = 0; i < first.size(); i++) differs |= !Arrays.equals(first.get(i), other.get(i));
        assertTrue(differs, "another seed gives other crops");
        // Without a loader (no generator): a fixed crop per index, the same on every read.
        float[] a = new float[3 * 144], b = new float[3 * 144];
        ds.image(3, a, 0);
        ds.image(3, b, 0);
        assertArrayEquals(a, b);
    }

    private static List<float[]> epoch(Dataset ds, long seed, int workers) {
        List<float[]> out = new ArrayList<>();
        try (DataLoader loader = DataLoader.builder(ds).batchSize(4).shuffle(true).seed(seed).workers(workers)
                .transform(Transform.imagenetTrain()).build()) {
            for (ImageBatch b : loader.epoch(1)) out.add(b.images());
        }
        return out;
    }

    @Test void listFileResolvesRelativePathsAgainstItsFolder() throws IOException {
        Path lists = dir.resolve("lists");
        write(lists.resolve("img/one.png"), pattern(1, 20, 10), "png");
        write(dir.resolve("elsewhere/two words.png"), pattern(2, 10, 20), "png");
        Path abs = write(dir.resolve("abs.png"), pattern(3, 8, 8), "png");
        Path list = lists.resolve("train.txt");
        Files.writeString(list, "# path label\n\nimg/one.png 2\n../elsewhere/two words.png\t0\n" + abs + " 1\n", StandardCharsets.UTF_8);
        ImageFolder f = ImageFolder.fromList(list, 0);
        assertEquals(List.of("0", "1", "2"), f.classes());
        assertEquals(3, f.size());
        assertEquals(lists.resolve("img/one.png").toAbsolutePath().normalize(), f.samples().get(0).path().toAbsolutePath().normalize());
        assertEquals(dir.resolve("elsewhere/two words.png").toAbsolutePath().normalize(), f.samples().get(1).path().toAbsolutePath().normalize());
        assertEquals(List.of(2, 0, 1), f.samples().stream().map(ImageFolder.Sample::label).toList());
        assertEquals(List.of("0", "1", "2", "3", "4"), ImageFolder.fromList(list, 5).classes());
        Dataset ds = f.dataset(ImageCrop.resizeCenter(8, 8));
        float[] img = new float[3 * 64];
        ds.image(1, img, 0);   // decodes the file with a space in its name
        assertEquals(2, ds.label(0));
        // A listed file that is missing is an unreadable example (skipped by the loader), named with its path.
        Files.writeString(list, "img/one.png 0\nimg/gone.png 1\n");
        Dataset gone = ImageFolder.fromList(list, 0).dataset(ImageCrop.resizeCenter(8, 8));
        UnreadableExampleException e = assertThrows(UnreadableExampleException.class, () -> gone.image(1, img, 0));
        assertTrue(e.getMessage().contains("gone.png") && e.getMessage().endsWith("no such file"), e.getMessage());
    }

    @Test void listFileErrorsNameTheFileLineAndWhatWasExpected() throws IOException {
        Path list = dir.resolve("l.txt");
        Files.writeString(list, "a.png 0\nno-label-here\n");
        IOException e = assertThrows(IOException.class, () -> ImageFolder.fromList(list, 0));
        assertTrue(e.getMessage().contains("l.txt line 2") && e.getMessage().contains("expected 'path label'")
                && e.getMessage().contains("no-label-here"), e.getMessage());

        Files.writeString(list, "a.png 0\nb.png cat\n");
        e = assertThrows(IOException.class, () -> ImageFolder.fromList(list, 0));
        assertTrue(e.getMessage().contains("line 2") && e.getMessage().contains("integer label") && e.getMessage().contains("'cat'"), e.getMessage());

        Files.writeString(list, "a.png 0\nb.png 1\nc.png 10\n");
        e = assertThrows(IOException.class, () -> ImageFolder.fromList(list, 10));
        assertTrue(e.getMessage().contains("line 3") && e.getMessage().contains("label 10 is out of range [0, 10)"), e.getMessage());
        assertEquals(11, ImageFolder.fromList(list, 0).classes().size(), "without a class count the largest label sets it");

        Files.writeString(list, "a.png -1\n");
        e = assertThrows(IOException.class, () -> ImageFolder.fromList(list, 0));
        assertTrue(e.getMessage().contains("line 1") && e.getMessage().contains("label -1 is out of range"), e.getMessage());

        Files.writeString(list, "# only a comment\n\n");
        e = assertThrows(IOException.class, () -> ImageFolder.fromList(list, 0));
        assertTrue(e.getMessage().contains("l.txt") && e.getMessage().contains("no entries"), e.getMessage());

        e = assertThrows(IOException.class, () -> ImageFolder.fromList(dir.resolve("missing.txt"), 0));
        assertTrue(e.getMessage().contains("missing.txt") && e.getMessage().contains("no such list file"), e.getMessage());
    }

    @Test void folderErrorsNameThePathAndWhatWasExpected() throws IOException {
        IOException e = assertThrows(IOException.class, () -> ImageFolder.open(dir.resolve("nope")));
        assertTrue(e.getMessage().contains("nope") && e.getMessage().contains("no such folder"), e.getMessage());

        Path file = Files.writeString(dir.resolve("file.txt"), "x");
        e = assertThrows(IOException.class, () -> ImageFolder.open(file));
        assertTrue(e.getMessage().contains("file.txt") && e.getMessage().contains("not a folder"), e.getMessage());

        Path empty = Files.createDirectories(dir.resolve("empty"));
        Files.writeString(empty.resolve("stray.png"), "files at the root are not classes");
        e = assertThrows(IOException.class, () -> ImageFolder.open(empty));
        assertTrue(e.getMessage().contains("empty") && e.getMessage().contains("no class folders"), e.getMessage());

        Path oneEmpty = dir.resolve("oneEmpty");
        write(oneEmpty.resolve("a/1.png"), pattern(1, 4, 4), "png");
        Files.createDirectories(oneEmpty.resolve("b"));
        Files.writeString(oneEmpty.resolve("b/info.txt"), "no images");
        e = assertThrows(IOException.class, () -> ImageFolder.open(oneEmpty));
        assertTrue(e.getMessage().contains("class folder 'b'") && e.getMessage().contains("no image files"), e.getMessage());
    }

    @Test void heldOutSplitTakesEveryClassAndPartitionsTheFiles() throws IOException {
        Path root = dir.resolve("split");
        for (int i = 0; i < 10; i++) write(root.resolve("a/" + i + ".png"), pattern(i, 3, 3), "png");
        for (int i = 0; i < 4; i++) write(root.resolve("b/" + i + ".png"), pattern(i, 3, 3), "png");
        ImageFolder f = ImageFolder.open(root);
        ImageFolder[] parts = f.split(0.2, 3);
        assertEquals(f.classes(), parts[0].classes());
        assertEquals(f.classes(), parts[1].classes());
        assertEquals(2, parts[1].samples().stream().filter(s -> s.label() == 0).count(), "20 % of 10");
        assertEquals(1, parts[1].samples().stream().filter(s -> s.label() == 1).count(), "at least one of 4");
        Set<Path> all = new HashSet<>();
        for (ImageFolder p : parts) for (ImageFolder.Sample s : p.samples()) assertTrue(all.add(s.path()), "disjoint: " + s.path());
        assertEquals(14, all.size());
        assertEquals(names(parts[1], root), names(f.split(0.2, 3)[1], root), "same seed, same split");
    }
}
