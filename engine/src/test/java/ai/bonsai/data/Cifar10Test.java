package ai.bonsai.data;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** The CIFAR-10 binary reader: known values of the shared sample, folder layouts, splits and every rejection. */
class Cifar10Test {
    @TempDir Path tmp;

    private static Path sample() {
        var f = TestFiles.sharedSample();
        assumeTrue(f.isPresent(), "shared/data/cifar10/" + TestFiles.SAMPLE + " not found above the working directory");
        return f.get();
    }

    @Test void sampleHasTheKnownLabelsAndPixels() throws IOException {
        Cifar10 d = Cifar10.readFiles(List.of(sample()));
        assertEquals(4000, d.size());
        int[] first = new int[10];
        for (int i = 0; i < 10; i++) first[i] = d.label(i);
        assertArrayEquals(new int[] {6, 9, 9, 4, 1, 1, 2, 7, 8, 3}, first);
        assertEquals(59, d.pixel(0, 0, 0, 0));
        assertEquals(62, d.pixel(0, 1, 0, 0));
        assertEquals(63, d.pixel(0, 2, 0, 0));
        int[] redRow0 = new int[10];
        for (int x = 0; x < 10; x++) redRow0[x] = d.pixel(0, 0, 0, x);
        assertArrayEquals(new int[] {59, 43, 50, 68, 98, 119, 139, 145, 149, 149}, redRow0);

        float[] img = new float[5 + 3072];
        d.image(0, img, 5);
        assertEquals(59 / 255f, img[5]);
        assertEquals(62 / 255f, img[5 + 1024]);
        assertEquals(63 / 255f, img[5 + 2048]);
        assertEquals(43 / 255f, img[6]);
        assertTrue(d.description().contains(TestFiles.SAMPLE), d.description());
    }

    @Test void singleFileTrainingHoldsOutTheLastTenth() throws IOException {
        Path f = sample();
        TrainSplit s = Cifar10.forTraining(f);
        assertEquals(3600, s.train().size());
        assertEquals(400, s.heldOut().size());
        Cifar10 all = Cifar10.forEval(f);
        assertEquals(4000, all.size());
        assertEquals(all.label(3600), s.heldOut().label(0));
        assertEquals(all.label(3599), s.train().label(3599));
        float[] a = new float[3072], b = new float[3072];
        all.image(3999, a, 0);
        s.heldOut().image(399, b, 0);
        assertArrayEquals(a, b);
        assertTrue(s.heldOut().description().startsWith("examples [3600, 4000) of CIFAR-10 file"), s.heldOut().description());
    }

    @Test void heldOutFractionIsConfigurable() throws IOException {
        Path f = TestFiles.write(tmp.resolve("ten.bin"), TestFiles.records(0, 1, 2, 3, 4, 5, 6, 7, 8, 9));
        TrainSplit s = Cifar10.forTraining(f, 0.25);   // 2.5 rounds to 3
        assertEquals(7, s.train().size());
        assertEquals(3, s.heldOut().size());
        assertEquals(7, s.heldOut().label(0));
        assertEquals(10, Cifar10.forTraining(f, 0).train().size());
        var e = assertThrows(IllegalArgumentException.class, () -> Cifar10.forTraining(f, 1.0));
        assertEquals("held-out fraction: expected a value in [0, 1), got 1.0", e.getMessage());
    }

    @Test void readsTheOfficialFolderLayoutAndItsSubfolder() throws IOException {
        for (Path root : List.of(tmp.resolve("flat"), tmp.resolve("nested"))) {
            Path dir = root.getFileName().toString().equals("flat") ? root : root.resolve(Cifar10.ARCHIVE_FOLDER);
            for (int b = 0; b < 5; b++) TestFiles.write(dir.resolve(Cifar10.TRAIN_FILES.get(b)), TestFiles.records(b, b + 1));
            TestFiles.write(dir.resolve(Cifar10.TEST_FILE), TestFiles.records(9, 8, 7));
            assertTrue(Cifar10.isCompleteFolder(root));

            Cifar10 train = Cifar10.read(root, Cifar10.Split.TRAIN);
            assertEquals(10, train.size());
            int[] labels = new int[10];
            for (int i = 0; i < 10; i++) labels[i] = train.label(i);
            assertArrayEquals(new int[] {0, 1, 1, 2, 2, 3, 3, 4, 4, 5}, labels, "batches in order 1..5");
            assertEquals(5, train.files().size());
            assertEquals(dir.resolve("data_batch_1.bin"), train.files().get(0));
            assertTrue(train.description().startsWith("CIFAR-10 train split " + dir.resolve("data_batch_1.bin")), train.description());

            Cifar10 test = Cifar10.forEval(root);
            assertEquals(3, test.size());
            assertEquals(9, test.label(0));
            // pixel k of record r is (r * 7 + k) & 0xFF
            assertEquals(((2 * 7 + 1030) & 0xFF), test.pixel(2, 1, 0, 6));

            TrainSplit s = Cifar10.forTraining(root);
            assertEquals(10, s.train().size());
            assertEquals(3, s.heldOut().size(), "a folder holds out the official test batch");
        }
    }

    @Test void missingDataTellsTheUserHowToGetIt() throws IOException {
        Path nowhere = tmp.resolve("nowhere");
        var e = assertThrows(NoSuchFileException.class, () -> Cifar10.read(nowhere, Cifar10.Split.TRAIN));
        assertEquals(nowhere + ": no such CIFAR-10 file or folder; run `bonsai download cifar10` to fetch CIFAR-10,"
                + " or pass --data <folder or file of CIFAR-10 binary records>", e.getMessage());

        Path empty = Files.createDirectories(tmp.resolve("empty"));
        e = assertThrows(NoSuchFileException.class, () -> Cifar10.forTraining(empty));
        assertTrue(e.getMessage().startsWith(empty + ": folder holds no CIFAR-10 batches"), e.getMessage());
        assertTrue(e.getMessage().contains("bonsai download cifar10"), e.getMessage());

        Path partial = tmp.resolve("partial");
        TestFiles.write(partial.resolve("data_batch_1.bin"), TestFiles.records(1));
        e = assertThrows(NoSuchFileException.class, () -> Cifar10.read(partial, Cifar10.Split.TRAIN));
        assertTrue(e.getMessage().startsWith(partial.resolve("data_batch_2.bin") + ": missing from the CIFAR-10 folder"), e.getMessage());
        assertTrue(e.getMessage().contains("bonsai download cifar10"), e.getMessage());
        assertFalse(Cifar10.isCompleteFolder(partial));
    }

    @Test void truncatedFileNamesItsSizeAndThePartialRecord() throws IOException {
        byte[] two = TestFiles.records(3, 4);
        Path f = TestFiles.write(tmp.resolve("cut.bin"), Arrays.copyOf(two, two.length - 100));
        var e = assertThrows(IOException.class, () -> Cifar10.forEval(f));
        assertEquals(f + ": size 6046 bytes is not a whole number of 3073-byte CIFAR-10 records (1 label + 3072 pixel bytes);"
                + " 1 whole records, then a partial record of 2973 bytes at byte offset 3073", e.getMessage());

        Path empty = TestFiles.write(tmp.resolve("empty.bin"), new byte[0]);
        e = assertThrows(IOException.class, () -> Cifar10.forEval(empty));
        assertEquals(empty + ": empty file, expected CIFAR-10 records of 3073 bytes each", e.getMessage());
    }

    @Test void badLabelNamesTheRecordOffsetAndValue() throws IOException {
        byte[] b = TestFiles.records(1, 2, 3);
        b[2 * Cifar10.RECORD_BYTES] = (byte) 200;
        Path f = TestFiles.write(tmp.resolve("bad.bin"), b);
        var e = assertThrows(IOException.class, () -> Cifar10.forTraining(f));
        assertEquals(f + ": record 2 (byte offset 6146) has label 200, expected 0-9;"
                + " is this a CIFAR-10 binary file (not CIFAR-100 or the Python pickle)?", e.getMessage());
    }

    @Test void indicesAreChecked() throws IOException {
        Cifar10 d = Cifar10.readFiles(List.of(TestFiles.write(tmp.resolve("two.bin"), TestFiles.records(1, 2))));
        var e = assertThrows(IndexOutOfBoundsException.class, () -> d.label(2));
        assertTrue(e.getMessage().startsWith("example 2 is out of range [0, 2) of CIFAR-10 records from"), e.getMessage());
        assertThrows(IndexOutOfBoundsException.class, () -> d.image(0, new float[3071], 0));
        var s = assertThrows(IllegalArgumentException.class, () -> d.subset(1, 3));
        assertTrue(s.getMessage().startsWith("subset: range [1, 3) is not within [0, 2)"), s.getMessage());
    }
}
