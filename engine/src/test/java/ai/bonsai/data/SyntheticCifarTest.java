package ai.bonsai.data;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** The synthetic dataset: deterministic, labelled as synthetic, balanced, and not solvable from colour alone. */
class SyntheticCifarTest {
    @Test void sameSeedSameDataDifferentSeedDifferentData() {
        SyntheticCifar a = new SyntheticCifar(7, 50), b = new SyntheticCifar(7, 50), c = new SyntheticCifar(8, 50);
        float[] x = new float[3072], y = new float[3072], z = new float[3072];
        int labelDiffs = 0;
        for (int i = 0; i < 50; i++) {
            assertEquals(a.label(i), b.label(i));
            a.image(i, x, 0);
            b.image(i, y, 0);
            c.image(i, z, 0);
            assertArrayEquals(x, y);
            assertFalse(java.util.Arrays.equals(x, z), "seed 8 differs from seed 7 at example " + i);
            if (a.label(i) != c.label(i)) labelDiffs++;
        }
        assertTrue(labelDiffs > 20, "labels of different seeds mostly differ: " + labelDiffs + " of 50");
    }

    @Test void saysItIsNotCifar() {
        SyntheticCifar d = new SyntheticCifar(3, 100);
        assertEquals("synthetic CIFAR-shaped data (not CIFAR-10), seed 3, 100 images", d.description());
        assertEquals(ai.bonsai.tensor.Shape.of(3, 32, 32), d.imageShape());
        assertEquals(10, d.numClasses());
        TrainSplit s = SyntheticCifar.forTraining(3, 80, 20);
        assertEquals(80, s.train().size());
        assertEquals(20, s.heldOut().size());
        assertTrue(s.heldOut().description().contains("not CIFAR-10"), s.heldOut().description());
        assertEquals(new SyntheticCifar(3, 100).label(85), s.heldOut().label(5), "held-out examples continue the stream");
    }

    @Test void pixelsAreQuantisedIntensitiesAndLabelsAreBalanced() {
        SyntheticCifar d = new SyntheticCifar(11, 2000);
        int[] counts = new int[10];
        float[] img = new float[3072];
        for (int i = 0; i < d.size(); i++) {
            counts[d.label(i)]++;
            if (i < 20) {
                d.image(i, img, 0);
                for (float v : img) {
                    assertTrue(v >= 0 && v <= 1);
                    assertEquals(Math.round(v * 255) / 255f, v, 0f, "a byte value / 255");
                }
            }
        }
        for (int k = 0; k < 10; k++) assertTrue(counts[k] > 140 && counts[k] < 260, "class " + k + ": " + counts[k] + " of 2000");
    }

    /**
     * Nearest class mean on the three channel means, trained on 2000 images and tested on 1000 others, must stay
     * near chance (10 %): the classes are shapes, not colours.
     */
    @Test void channelMeansCarryAlmostNoClassInformation() {
        TrainSplit s = SyntheticCifar.forTraining(21, 2000, 1000);
        double[][] centroid = new double[10][3];
        int[] count = new int[10];
        for (int i = 0; i < s.train().size(); i++) {
            double[] m = channelMeans(s.train(), i);
            int k = s.train().label(i);
            for (int c = 0; c < 3; c++) centroid[k][c] += m[c];
            count[k]++;
        }
        for (int k = 0; k < 10; k++) for (int c = 0; c < 3; c++) centroid[k][c] /= count[k];
        int correct = 0;
        for (int i = 0; i < s.heldOut().size(); i++) {
            double[] m = channelMeans(s.heldOut(), i);
            int best = 0;
            double bestD = Double.MAX_VALUE;
            for (int k = 0; k < 10; k++) {
                double d = 0;
                for (int c = 0; c < 3; c++) d += (m[c] - centroid[k][c]) * (m[c] - centroid[k][c]);
                if (d < bestD) { bestD = d; best = k; }
            }
            if (best == s.heldOut().label(i)) correct++;
        }
        assertTrue(correct < 200, "nearest-centroid on channel means got " + correct + " of 1000 right; expected near 100");
    }

    private static double[] channelMeans(Dataset d, int i) {
        float[] img = new float[3072];
        d.image(i, img, 0);
        double[] m = new double[3];
        for (int c = 0; c < 3; c++) {
            for (int k = 0; k < 1024; k++) m[c] += img[c * 1024 + k];
            m[c] /= 1024;
        }
        return m;
    }
}
