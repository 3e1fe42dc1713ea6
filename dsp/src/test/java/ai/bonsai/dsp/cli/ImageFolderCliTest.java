package ai.bonsai.dsp.cli;

import ai.bonsai.io.Checkpoint;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static ai.bonsai.dsp.cli.CliTest.run;
import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code --data imagefolder:DIR} and {@code imagelist:FILE} through the commands, on folders generated here: each class
 * has its own colour, so a tiny ResNet learns them; a corrupt JPEG and a zero-byte PNG are skipped with a report.
 */
class ImageFolderCliTest {
    @TempDir static Path tmp;
    static Path folder, model;
    static CliTest.Run pretrain;

    /** Three classes (red, green, blue) of 6 images each, awkward sizes, PNG and JPEG, one nested; plus two bad files. */
    static Path makeFolder(Path root, String... classes) throws IOException {
        int[][] sizes = {{23, 17}, {40, 9}, {12, 31}, {16, 16}, {7, 50}, {33, 21}};
        for (int c = 0; c < classes.length; c++) {
            Path dir = root.resolve(classes[c]);
            Files.createDirectories(dir.resolve("nested"));
            for (int i = 0; i < sizes.length; i++) {
                int w = sizes[i][0], h = sizes[i][1];
                BufferedImage img = new BufferedImage(w, h, BufferedImage.TYPE_3BYTE_BGR);
                for (int y = 0; y < h; y++) {
                    for (int x = 0; x < w; x++) {
                        int v = 200 + ((x * 7 + y * 3 + i) % 40);
                        img.setRGB(x, y, v << (8 * (2 - c % 3)));
                    }
                }
                boolean png = i % 2 == 0;
                Path f = (i == 5 ? dir.resolve("nested") : dir).resolve("img" + i + (png ? ".png" : ".jpg"));
                assertTrue(ImageIO.write(img, png ? "png" : "jpg", f.toFile()));
            }
        }
        return root;
    }

    @BeforeAll
    static void trainTinyModel() throws IOException {
        folder = makeFolder(tmp.resolve("colours"), "blue", "green", "red");
        Files.write(folder.resolve("green").resolve("corrupt.jpg"), new byte[] {(byte) 0xFF, (byte) 0xD8, (byte) 0xFF, 1, 2, 3, 4, 5});
        Files.write(folder.resolve("red").resolve("empty.png"), new byte[0]);
        Files.writeString(folder.resolve("red").resolve("notes.txt"), "not an image");
        pretrain = run(new CifarPretrain(), "--data", "imagefolder:" + folder, "--image-size", "16", "--holdout", "0.34",
                "--epochs", "2", "--batch-size", "4", "--save-dir", tmp.resolve("run").toString(), "--seed", "3", "-l", "8", "--lr", "0.05");
        model = tmp.resolve("run").resolve("resnet8.safetensors");
    }

    @Test
    void pretrainTakesItsClassesFromTheFolder() {
        assertEquals(0, pretrain.code(), pretrain.out() + pretrain.err());
        assertTrue(pretrain.out().contains("3 classes"), pretrain.out());
        assertTrue(pretrain.err().contains("unreadable image") && pretrain.err().contains("skipped"), "the run's summary: " + pretrain.err());
        Checkpoint ck = Checkpoint.load(model);
        assertEquals("3", ck.metadata().get("numClasses"));
        assertEquals("16", ck.metadata().get("imageSize"));
        assertEquals(3, ck.tensors().get("classifier.weight").shape().dim(0), "one output per class folder");
    }

    @Test
    void evalReportsAccuracyAndSkipsUnreadableImages() throws IOException {
        Path preds = tmp.resolve("preds.txt");
        CliTest.Run r = run(new Evaluate(), "--ckpt", model.toString(), "--data", "imagefolder:" + folder, "--image-size", "16",
                "--json", "--predictions", preds.toString(), "--batch-size", "5");
        assertEquals(0, r.code(), r.out() + r.err());
        JsonNode j = new ObjectMapper().readTree(r.out());
        assertEquals(18, j.get("images").asInt(), "20 image files, 2 unreadable");
        assertTrue(j.get("accuracy").isNumber(), r.out());
        assertEquals(3, j.get("dataClasses").asInt());
        assertTrue(r.err().contains("corrupt.jpg") && r.err().contains("empty.png"), r.err());
        assertTrue(r.err().contains("2 unreadable images were skipped"), r.err());
        List<String> lines = Files.readAllLines(preds, StandardCharsets.UTF_8);
        assertEquals(20, lines.size(), "one line per image file, in the folder's order");
        long bad = lines.stream().filter(l -> l.equals("-1")).count();
        assertEquals(2, bad, "the unreadable images are -1: " + lines);
        // Folder order: blue img0-4, blue/nested/img5 (0-5); green corrupt.jpg (6), img0-4, nested/img5; red empty.png (13), ...
        assertEquals("-1", lines.get(6), "corrupt.jpg's line: " + lines);
        assertEquals("-1", lines.get(13), "empty.png's line: " + lines);
        for (String l : lines) assertTrue(l.matches("-1|[0-2]"), l);
    }

    @Test
    void otherClassesNeedPredictionsAndAreNotScored() throws IOException {
        Path two = makeFolder(tmp.resolve("two"), "cats", "dogs");
        CliTest.Run refused = run(new Evaluate(), "--ckpt", model.toString(), "--data", "imagefolder:" + two, "--image-size", "16");
        assertNotEquals(0, refused.code());
        assertTrue(refused.err().contains("has 2 classes but the model has 3 outputs") && refused.err().contains("--predictions"), refused.err());

        Path preds = tmp.resolve("two.txt");
        CliTest.Run r = run(new Evaluate(), "--ckpt", model.toString(), "--data", "imagefolder:" + two, "--image-size", "16",
                "--predictions", preds.toString());
        assertEquals(0, r.code(), r.out() + r.err());
        assertTrue(r.err().contains("accuracy and loss are meaningless"), r.err());
        assertTrue(r.out().contains("accuracy: meaningless"), r.out());
        List<String> lines = Files.readAllLines(preds, StandardCharsets.UTF_8);
        assertEquals(12, lines.size());
        for (String l : lines) assertTrue(l.matches("[0-2]"), "the model's class indices: " + l);
    }

    @Test
    void listFilesWorkAndBadLabelsAreNamed() throws IOException {
        Path list = folder.resolve("list.txt");
        Files.writeString(list, "# path label\nblue/img0.png 0\ngreen/img1.jpg 1\nred/img2.png 2\nred/nested/img5.jpg 2\n");
        CliTest.Run r = run(new Evaluate(), "--ckpt", model.toString(), "--data", "imagelist:" + list, "--image-size", "16", "--json");
        assertEquals(0, r.code(), r.out() + r.err());
        assertEquals(4, new ObjectMapper().readTree(r.out()).get("images").asInt());

        Files.writeString(list, "blue/img0.png 0\nred/img2.png 3\n");
        CliTest.Run bad = run(new Evaluate(), "--ckpt", model.toString(), "--data", "imagelist:" + list, "--image-size", "16");
        assertNotEquals(0, bad.code());
        assertTrue(bad.err().contains("line 2") && bad.err().contains("label 3"), bad.err());
    }

    @Test
    void missingFoldersAreNamed() {
        Path missing = tmp.resolve("nowhere");
        CliTest.Run r = run(new Evaluate(), "--ckpt", model.toString(), "--data", "imagefolder:" + missing);
        assertNotEquals(0, r.code());
        assertTrue(r.err().contains(missing.toAbsolutePath().toString()), r.err());
        CliTest.Run e = run(new Evaluate(), "--ckpt", model.toString(), "--data", "imagefolder:");
        assertTrue(e.err().contains("expected a path after 'imagefolder:'"), e.err());
    }
}
