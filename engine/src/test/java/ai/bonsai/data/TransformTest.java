package ai.bonsai.data;

import ai.bonsai.tensor.Generator;
import org.junit.jupiter.api.Test;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.*;

/** Augmentation and normalisation, checked against direct definitions on small and CIFAR-sized images. */
class TransformTest {
    private static final int C = 3, H = 32, W = 32;

    /** Distinct positive values, so a moved or zeroed pixel is recognisable: value = 1 + index. */
    private static float[] ramp(int offset) {
        float[] a = new float[offset + C * H * W];
        for (int i = 0; i < C * H * W; i++) a[offset + i] = 1 + i;
        return a;
    }

    @Test void shiftTakesPixelsFromThePaddedImageAndZerosTheBorder() {
        for (int dy = -4; dy <= 4; dy++) {
            for (int dx = -4; dx <= 4; dx++) {
                float[] img = ramp(7);
                Transform.shift(img, 7, C, H, W, dy, dx);
                for (int c = 0; c < C; c++) {
                    for (int y = 0; y < H; y++) {
                        for (int x = 0; x < W; x++) {
                            int sy = y + dy, sx = x + dx;
                            float expect = (sy < 0 || sy >= H || sx < 0 || sx >= W) ? 0f : 1 + c * H * W + sy * W + sx;
                            assertEquals(expect, img[7 + c * H * W + y * W + x], "shift (" + dy + ", " + dx + ") at " + c + "," + y + "," + x);
                        }
                    }
                }
                for (int i = 0; i < 7; i++) assertEquals(0f, img[i], "bytes before the offset untouched");
            }
        }
    }

    @Test void randomCropCoversAllShiftsAndKeepsPaddedPixels() {
        Transform crop = Transform.randomCrop(4);
        Generator g = new Generator(1);
        boolean[][] seen = new boolean[9][9];
        for (int t = 0; t < 400; t++) {
            float[] img = ramp(0);
            crop.apply(img, 0, C, H, W, g);
            // Recover the shift from a pixel that is inside for every shift: output (16,16) holds input (16+dy, 16+dx).
            int src = (int) img[16 * W + 16] - 1;
            int dy = src / W - 16, dx = src % W - 16;
            assertTrue(Math.abs(dy) <= 4 && Math.abs(dx) <= 4, "shift within the padding");
            seen[dy + 4][dx + 4] = true;
            float[] expect = ramp(0);
            Transform.shift(expect, 0, C, H, W, dy, dx);
            assertArrayEquals(expect, img);
        }
        for (boolean[] row : seen) for (boolean s : row) assertTrue(s, "all 81 crop positions occur in 400 draws");
    }

    @Test void flipTwiceIsIdentityAndFlipMirrorsRows() {
        float[] img = ramp(3);
        Transform.flipHorizontal(img, 3, C, H, W);
        for (int c = 0; c < C; c++) {
            for (int y = 0; y < H; y++) {
                for (int x = 0; x < W; x++) assertEquals(1 + c * H * W + y * W + (W - 1 - x), img[3 + c * H * W + y * W + x]);
            }
        }
        Transform.flipHorizontal(img, 3, C, H, W);
        assertArrayEquals(ramp(3), img);

        // An odd width keeps its middle column.
        float[] odd = {1, 2, 3, 4, 5, 6};
        Transform.flipHorizontal(odd, 0, 1, 2, 3);
        assertArrayEquals(new float[] {3, 2, 1, 6, 5, 4}, odd);
    }

    @Test void randomFlipFlipsAboutHalfTheTime() {
        Transform flip = Transform.randomHorizontalFlip();
        Generator g = new Generator(5);
        int flipped = 0;
        for (int t = 0; t < 1000; t++) {
            float[] img = ramp(0);
            flip.apply(img, 0, C, H, W, g);
            if (img[0] != 1f) flipped++;
        }
        assertTrue(flipped > 430 && flipped < 570, "flipped " + flipped + " of 1000");
    }

    @Test void normalisationUsesTheCifarStatistics() {
        float[] img = new float[C * H * W];
        for (int c = 0; c < C; c++) Arrays.fill(img, c * H * W, (c + 1) * H * W, 128 / 255f);
        img[5] = 0f;
        img[H * W + 9] = 1f;
        Transform.cifarEval().apply(img, 0, C, H, W, new Generator(0));
        assertEquals((128 / 255f - 0.4914f) / 0.2470f, img[0], 0f);
        assertEquals((0f - 0.4914f) / 0.2470f, img[5], 0f);
        assertEquals((1f - 0.4822f) / 0.2435f, img[H * W + 9], 0f);
        assertEquals((128 / 255f - 0.4465f) / 0.2616f, img[2 * H * W + 100], 0f);
        assertEquals(-1.9894737f, (0f - 0.4914f) / 0.2470f, 1e-6f);   // the value a black red pixel takes

        var e = assertThrows(IllegalArgumentException.class, () -> Transform.cifarEval().apply(new float[4], 0, 1, 2, 2, new Generator(0)));
        assertEquals("normalize: image has 1 channels, expected 3 (one mean and std per channel)", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Transform.normalize(new float[] {0}, new float[] {0}));
        assertEquals("normalize: std[0] must be positive, got 0.0", e.getMessage());
    }

    @Test void pipelineIsDeterministicForAGeneratorStateAndComposesInOrder() {
        Transform t = Transform.cifarTrain();
        float[] a = ramp(0), b = ramp(0);
        for (int i = 0; i < a.length; i++) { a[i] /= 4000f; b[i] /= 4000f; }
        t.apply(a, 0, C, H, W, new Generator(99));
        t.apply(b, 0, C, H, W, new Generator(99));
        assertArrayEquals(a, b);

        // crop draws two values, flip one: compose = crop, then flip, then normalise, on one generator.
        float[] manual = ramp(0);
        for (int i = 0; i < manual.length; i++) manual[i] /= 4000f;
        Generator g = new Generator(99);
        Transform.randomCrop(4).apply(manual, 0, C, H, W, g);
        Transform.randomHorizontalFlip().apply(manual, 0, C, H, W, g);
        Transform.cifarEval().apply(manual, 0, C, H, W, g);
        assertArrayEquals(manual, a);

        float[] c = ramp(0);
        Transform.identity().apply(c, 0, C, H, W, new Generator(1));
        assertArrayEquals(ramp(0), c);
    }
}
