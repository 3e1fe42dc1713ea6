package ai.bonsai.data;

import ai.bonsai.tensor.Generator;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Antialiased bilinear resizing and the ImageNet crops against PyTorch/torchvision and Pillow. The constants were
 * produced by {@code /usr/bin/python3 scripts/imagefolder-reference.py} (torch 1.13.0a0, torchvision 0.14.1a0, Pillow 9.4.0) on images given by the formula
 * {@link #source}; Pillow's values come from mode "F" (float) images, torch's from float32 tensors.
 */
class ResampleTest {
    /** Agreement wanted: the two references differ by up to 4e-6 (torch keeps its weights in float32). */
    private static final float TOL = 1e-5f;

    /** {srcH, srcW, outH, outW, c, y, x, torch, Pillow}: interpolate(bilinear, antialias=True) and Image.resize(BILINEAR). */
    private static final float[][] RESIZE = {
            {375, 500, 256, 341, 0, 0, 0, 0.181972936f, 0.181972921f},  // photoToEval
            {375, 500, 256, 341, 0, 255, 0, 0.648743689f, 0.648743689f},  // photoToEval
            {375, 500, 256, 341, 1, 0, 340, 0.413836688f, 0.413835615f},  // photoToEval
            {375, 500, 256, 341, 1, 255, 340, 0.471903682f, 0.471902639f},  // photoToEval
            {375, 500, 256, 341, 2, 128, 113, 0.455393821f, 0.455393881f},  // photoToEval
            {375, 500, 256, 341, 2, 170, 255, 0.613233149f, 0.613236785f},  // photoToEval
            {7, 5, 3, 2, 0, 0, 0, 0.395671010f, 0.395671010f},  // oddTinyDown
            {7, 5, 3, 2, 0, 2, 0, 0.519671559f, 0.519671500f},  // oddTinyDown
            {7, 5, 3, 2, 1, 0, 1, 0.431066960f, 0.431066990f},  // oddTinyDown
            {7, 5, 3, 2, 1, 2, 1, 0.563356221f, 0.563356280f},  // oddTinyDown
            {7, 5, 3, 2, 2, 1, 0, 0.558687270f, 0.558687210f},  // oddTinyDown
            {7, 5, 3, 2, 2, 2, 1, 0.608225107f, 0.608225107f},  // oddTinyDown
            {3, 4, 9, 11, 0, 0, 0, 0.000000000f, 0.000000000f},  // upscale
            {3, 4, 9, 11, 0, 8, 0, 0.713725507f, 0.713725507f},  // upscale
            {3, 4, 9, 11, 1, 0, 10, 0.643137276f, 0.643137276f},  // upscale
            {3, 4, 9, 11, 1, 8, 10, 0.376470596f, 0.376470596f},  // upscale
            {3, 4, 9, 11, 2, 4, 3, 0.887700558f, 0.887700558f},  // upscale
            {3, 4, 9, 11, 2, 6, 8, 0.399405897f, 0.399405807f},  // upscale
            {2, 300, 5, 17, 0, 0, 0, 0.424095541f, 0.424095511f},  // wideMixed
            {2, 300, 5, 17, 0, 4, 0, 0.549412072f, 0.549412131f},  // wideMixed
            {2, 300, 5, 17, 1, 0, 16, 0.537489057f, 0.537489057f},  // wideMixed
            {2, 300, 5, 17, 1, 4, 16, 0.511831522f, 0.511831641f},  // wideMixed
            {2, 300, 5, 17, 2, 2, 5, 0.501395464f, 0.501395583f},  // wideMixed
            {2, 300, 5, 17, 2, 3, 12, 0.483369827f, 0.483369857f},  // wideMixed
            {1, 1, 4, 4, 0, 0, 0, 0.000000000f, 0.000000000f},  // onePixel
            {1, 1, 4, 4, 0, 3, 0, 0.000000000f, 0.000000000f},  // onePixel
            {1, 1, 4, 4, 1, 0, 3, 0.207843140f, 0.207843140f},  // onePixel
            {1, 1, 4, 4, 1, 3, 3, 0.207843140f, 0.207843140f},  // onePixel
            {1, 1, 4, 4, 2, 2, 1, 0.415686280f, 0.415686280f},  // onePixel
            {1, 1, 4, 4, 2, 2, 3, 0.415686280f, 0.415686280f},  // onePixel
            {101, 77, 13, 29, 0, 0, 0, 0.459396034f, 0.459396064f},  // oddDown
            {101, 77, 13, 29, 0, 12, 0, 0.489424556f, 0.489424527f},  // oddDown
            {101, 77, 13, 29, 1, 0, 28, 0.528582513f, 0.528582513f},  // oddDown
            {101, 77, 13, 29, 1, 12, 28, 0.472189307f, 0.472189218f},  // oddDown
            {101, 77, 13, 29, 2, 6, 9, 0.511083007f, 0.511083126f},  // oddDown
            {101, 77, 13, 29, 2, 8, 21, 0.536359787f, 0.536359668f},  // oddDown
    };

    /** {srcH, srcW, c, y, x, value}: Resize(256, antialias=True), CenterCrop(224), Normalize(ImageNet mean, std). */
    private static final float[][] EVAL = {
            {375, 500, 0, 0, 0, 0.898030639f},
            {375, 500, 0, 223, 0, 0.145829663f},
            {375, 500, 1, 0, 223, 0.167861447f},
            {375, 500, 1, 223, 223, -0.263260931f},
            {375, 500, 2, 112, 74, 0.372688383f},
            {375, 500, 2, 149, 168, 0.312942684f},
            {333, 211, 0, 0, 0, -0.926300406f},
            {333, 211, 0, 223, 0, 0.479633898f},
            {333, 211, 1, 0, 223, -1.476476431f},
            {333, 211, 1, 223, 223, -0.252985120f},
            {333, 211, 2, 112, 74, -0.357068002f},
            {333, 211, 2, 149, 168, -0.045108400f},
    };

    /** {srcH, srcW, top, left, boxH, boxW, c, y, x, value}: torchvision's resized_crop(..., [32, 32], antialias=True). */
    private static final float[][] RESIZED_CROP = {
            {375, 500, 17, 101, 211, 163, 0, 0, 0, 0.482186288f},
            {375, 500, 17, 101, 211, 163, 0, 31, 0, 0.505662620f},
            {375, 500, 17, 101, 211, 163, 1, 0, 31, 0.482870817f},
            {375, 500, 17, 101, 211, 163, 1, 31, 31, 0.506825149f},
            {375, 500, 17, 101, 211, 163, 2, 16, 10, 0.508664608f},
            {375, 500, 17, 101, 211, 163, 2, 21, 24, 0.493195951f},
            {40, 30, 3, 5, 9, 21, 0, 0, 0, 0.850980401f},
            {40, 30, 3, 5, 9, 21, 0, 31, 0, 0.650980413f},
            {40, 30, 3, 5, 9, 21, 1, 0, 31, 0.917647064f},
            {40, 30, 3, 5, 9, 21, 1, 31, 31, 0.745098054f},
            {40, 30, 3, 5, 9, 21, 2, 16, 10, 0.588757098f},
            {40, 30, 3, 5, 9, 21, 2, 21, 24, 0.460248202f},
    };

    /** v(c, y, x) = ((37 x + 91 y + 53 c + (x y) % 17) % 256) / 255, as the script builds it. */
    static float[] source(int h, int w) {
        float[] px = new float[3 * h * w];
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) px[(c * h + y) * w + x] = ((37 * x + 91 * y + 53 * c + (x * y) % 17) % 256) / 255f;
        return px;
    }

    @Test void resizeMatchesTorchAndPillowOnAwkwardSizes() {
        for (float[] r : RESIZE) {
            int h = (int) r[0], w = (int) r[1], oh = (int) r[2], ow = (int) r[3], c = (int) r[4], y = (int) r[5], x = (int) r[6];
            float[] out = new float[3 * oh * ow];
            Resample.resize(source(h, w), 3, h, w, 0, 0, w, h, ow, oh, 0, 0, ow, oh, out, 0);
            float v = out[(c * oh + y) * ow + x];
            String what = h + "x" + w + " -> " + oh + "x" + ow + " at (" + c + ", " + y + ", " + x + ")";
            assertEquals(r[7], v, TOL, "torch, " + what);
            assertEquals(r[8], v, TOL, "Pillow, " + what);
        }
    }

    @Test void aWindowEqualsTheSameRegionOfTheFullResize() {
        int h = 37, w = 53, oh = 20, ow = 31;
        float[] full = new float[3 * oh * ow];
        Resample.resize(source(h, w), 3, h, w, 0, 0, w, h, ow, oh, 0, 0, ow, oh, full, 0);
        float[] win = new float[3 * 7 * 9];
        Resample.resize(source(h, w), 3, h, w, 0, 0, w, h, ow, oh, 5, 11, 9, 7, win, 0);
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 7; y++)
                for (int x = 0; x < 9; x++) assertEquals(full[(c * oh + y + 11) * ow + x + 5], win[(c * 7 + y) * 9 + x], 0f);
    }

    @Test void sameSizeIsTheIdentity() {
        float[] src = source(5, 9), out = new float[src.length];
        Resample.resize(src, 3, 5, 9, 0, 0, 9, 5, 9, 5, 0, 0, 9, 5, out, 0);
        assertArrayEquals(src, out, 1e-7f);
    }

    @Test void evalPipelineMatchesTorchvision() {
        ImageCrop crop = ImageCrop.resizeCenter(256, 224);
        for (float[] r : EVAL) {
            int h = (int) r[0], w = (int) r[1], c = (int) r[2], y = (int) r[3], x = (int) r[4];
            float[] out = new float[3 * 224 * 224];
            crop.apply(source(h, w), 3, h, w, out, 0, new Generator(0));
            Transform.imagenetEval().apply(out, 0, 3, 224, 224, new Generator(0));
            assertEquals(r[5], out[(c * 224 + y) * 224 + x], 4e-5f, h + "x" + w + " at (" + c + ", " + y + ", " + x + ")");
        }
    }

    @Test void resizedCropMatchesTorchvision() {
        for (float[] r : RESIZED_CROP) {
            int h = (int) r[0], w = (int) r[1], top = (int) r[2], left = (int) r[3], bh = (int) r[4], bw = (int) r[5];
            int c = (int) r[6], y = (int) r[7], x = (int) r[8];
            float[] out = new float[3 * 32 * 32];
            Resample.resize(source(h, w), 3, h, w, left, top, bw, bh, 32, 32, 0, 0, 32, 32, out, 0);
            assertEquals(r[9], out[(c * 32 + y) * 32 + x], TOL, "box " + bh + "x" + bw + " at (" + top + ", " + left + ") of " + h + "x" + w);
        }
    }

    @Test void centerCropPadsWithZerosWhenTheResizedImageIsSmaller() {
        // resize 8, crop 10 on a 16x24 image: resized to 8x12, crop rows padded by (10 - 8) / 2 = 1 on top.
        float[] out = new float[3 * 10 * 10];
        ImageCrop.resizeCenter(8, 10).apply(source(16, 24), 3, 16, 24, out, 0, new Generator(0));
        for (int x = 0; x < 10; x++) {
            assertEquals(0f, out[x], 0f, "padded top row");
            assertEquals(0f, out[9 * 10 + x], 0f, "padded bottom row");
        }
        float[] full = new float[3 * 8 * 12];
        Resample.resize(source(16, 24), 3, 16, 24, 0, 0, 24, 16, 12, 8, 0, 0, 12, 8, full, 0);
        assertEquals(full[3 * 12 + 1], out[4 * 10], 0f, "row 3 of the resize, columns from round((12 - 10) / 2) = 1");
    }

    @Test void randomResizedCropFollowsTorchvisionsRules() {
        ImageCrop.RandomResized rrc = (ImageCrop.RandomResized) ImageCrop.randomResized(224);
        Generator g = new Generator(7);
        for (int t = 0; t < 2000; t++) {
            int h = 1 + g.nextInt(600), w = 1 + g.nextInt(600);
            int[] b = rrc.box(h, w, g);
            assertTrue(b[0] >= 0 && b[1] >= 0 && b[2] >= 1 && b[3] >= 1 && b[0] + b[2] <= h && b[1] + b[3] <= w, "box within " + h + "x" + w);
        }
        // A 1 x 1000 image can never fit a box of ratio 3/4..4/3 with area >= 8 %: the fallback crops the center, h = 1,
        // w = round(1 * 4/3) = 1, at left (1000 - 1) / 2.
        assertArrayEquals(new int[] {0, 499, 1, 1}, rrc.box(1, 1000, new Generator(3)));
        // A 300 x 1 image: w = 1, h = round(1 / (3/4)) = 1, top (300 - 1) / 2.
        assertArrayEquals(new int[] {149, 0, 1, 1}, rrc.box(300, 1, new Generator(3)));
        // Same generator state, same box: the crop is a function of the loader's seed.
        assertArrayEquals(rrc.box(375, 500, new Generator(11)), rrc.box(375, 500, new Generator(11)));
        // Scale 1 and ratio 1 on a square image: always the whole image.
        ImageCrop.RandomResized whole = new ImageCrop.RandomResized(8, 1, 1, 1, 1);
        assertArrayEquals(new int[] {0, 0, 50, 50}, whole.box(50, 50, new Generator(5)));
    }

    @Test void badArgumentsAreNamed() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ImageCrop.resizeCenter(0, 224));
        assertTrue(e.getMessage().contains("resize 0"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> Resample.resize(new float[12], 3, 2, 2, 1, 0, 2, 2, 4, 4, 0, 0, 4, 4, new float[48], 0));
        assertTrue(e.getMessage().contains("not within the 2x2 image"), e.getMessage());
    }
}
