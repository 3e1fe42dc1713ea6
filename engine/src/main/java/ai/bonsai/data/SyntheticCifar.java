package ai.bonsai.data;

import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Shape;

/**
 * Procedurally generated, CIFAR-shaped data: 3x32x32 images in 10 classes, for runs and tests that must not
 * depend on downloading CIFAR-10. It is NOT CIFAR-10, and {@link #description()} says so, so that no result
 * on it is mistaken for a CIFAR-10 result.
 *
 * <p>Each class is a shape or an oriented pattern: stripes at 0, 90, 45 and 135 degrees, a disc, a ring, a
 * square outline, a plus, an X and a triangle. Every image draws its own position, size, small rotation,
 * background and foreground colours, and per-pixel noise. Colours are independent of the class, so the
 * channel means carry almost no class information and a linear model on them stays near chance (a test checks
 * this); the classes differ only in shape and orientation, which is what convolutional features capture. How fast
 * a given network learns it is for the training code to measure.
 *
 * <p>Example {@code i} is a pure function of (seed, i): nothing is stored, any number of threads may render
 * at once, and the same seed gives the same images on every machine and JDK (all randomness is
 * {@link Generator}; the float arithmetic uses only basic operations and {@link StrictMath}).
 */
public final class SyntheticCifar implements Dataset {
    public static final int CLASSES = 10;
    public static final java.util.List<String> CLASS_NAMES = java.util.List.of(
            "horizontal stripes", "vertical stripes", "diagonal stripes", "anti-diagonal stripes",
            "disc", "ring", "square outline", "plus", "X", "triangle");

    private static final int C = 3;
    private static final int H = 32;
    private static final int W = 32;
    private static final Shape IMAGE_SHAPE = Shape.of(C, H, W);
    /** Amplitude of the uniform per-pixel noise, in [0, 1] intensity units. */
    private static final float NOISE = 0.12f;
    /** Stream identifiers: labels and images draw from separate streams of the same seed. */
    private static final long LABEL_STREAM = 1;
    private static final long IMAGE_STREAM = 2;

    private final long seed;
    private final int size;

    /** The first {@code size} examples of the stream for {@code seed}. */
    public SyntheticCifar(long seed, int size) {
        if (size < 0) throw new IllegalArgumentException("SyntheticCifar: size must be non-negative, got " + size);
        this.seed = seed;
        this.size = size;
    }

    /**
     * A training set of {@code trainSize} examples and a held-out set of the next {@code heldOutSize}
     * examples of the same stream, so the two never share an image.
     */
    public static TrainSplit forTraining(long seed, int trainSize, int heldOutSize) {
        if (trainSize < 0 || heldOutSize < 0) {
            throw new IllegalArgumentException("SyntheticCifar.forTraining: sizes must be non-negative, got train " + trainSize + ", held out " + heldOutSize);
        }
        SyntheticCifar all = new SyntheticCifar(seed, Math.addExact(trainSize, heldOutSize));
        return new TrainSplit(all.subset(0, trainSize), all.subset(trainSize, all.size()));
    }

    public long seed() { return seed; }

    @Override public int size() { return size; }

    @Override public Shape imageShape() { return IMAGE_SHAPE; }

    @Override public int numClasses() { return CLASSES; }

    @Override public int label(int i) {
        checkIndex(i);
        // Its own stream, so a label costs one hash rather than a rendering.
        return new Generator(Seeds.derive(seed, LABEL_STREAM, i)).nextInt(CLASSES);
    }

    @Override public void image(int i, float[] dst, int offset) {
        int label = label(i);
        if (offset < 0 || offset > dst.length - C * H * W) {
            throw new IndexOutOfBoundsException("image: " + (C * H * W) + " floats at offset " + offset + " do not fit an array of " + dst.length);
        }
        Generator g = new Generator(Seeds.derive(seed, IMAGE_STREAM, i));

        float[] bg = {g.nextFloat(), g.nextFloat(), g.nextFloat()};
        float[] fg = {g.nextFloat(), g.nextFloat(), g.nextFloat()};
        // Keep the shape visible: if the two colours are too alike, use the background's complement.
        if (Math.abs(fg[0] - bg[0]) + Math.abs(fg[1] - bg[1]) + Math.abs(fg[2] - bg[2]) < 0.6f) {
            for (int c = 0; c < C; c++) fg[c] = 1f - bg[c];
            if (Math.abs(fg[0] - bg[0]) + Math.abs(fg[1] - bg[1]) + Math.abs(fg[2] - bg[2]) < 0.6f) {
                fg[0] = bg[0] < 0.5f ? 1f : 0f;   // a mid-grey background: push one channel to the far end
            }
        }
        float radius = 6f + 5f * g.nextFloat();                  // 6..11 pixels
        float cy = 10f + 12f * g.nextFloat();                    // centre within the middle of the image
        float cx = 10f + 12f * g.nextFloat();
        float angle = (float) Math.toRadians(30 * g.nextFloat() - 15);   // +-15 degrees, under half the 45-degree gap
        float period = 3.5f + 2f * g.nextFloat();                // stripe period in pixels
        float cos = (float) StrictMath.cos(angle);
        float sin = (float) StrictMath.sin(angle);

        for (int y = 0; y < H; y++) {
            for (int x = 0; x < W; x++) {
                // (u, v): coordinates in the shape's rotated frame, v pointing down, in units of the radius.
                float dy = y + 0.5f - cy;
                float dx = x + 0.5f - cx;
                float u = (cos * dx + sin * dy) / radius;
                float v = (-sin * dx + cos * dy) / radius;
                float m = mask(label, u, v, radius / period) ? 1f : 0f;
                int p = y * W + x;
                for (int c = 0; c < C; c++) {
                    float val = bg[c] + m * (fg[c] - bg[c]) + NOISE * (2 * g.nextFloat() - 1);
                    // Quantise to bytes like a real photo, so both datasets look alike to the rest of the code.
                    int b = Math.round(Math.min(1f, Math.max(0f, val)) * 255f);
                    dst[offset + c * H * W + p] = b / 255f;
                }
            }
        }
    }

    /** Whether point (u, v) of the unit-radius frame is inside the shape of {@code label}. */
    private static boolean mask(int label, float u, float v, float stripesPerRadius) {
        float r2 = u * u + v * v;
        float au = Math.abs(u);
        float av = Math.abs(v);
        switch (label) {
            case 0: return r2 <= 1 && stripe(v, stripesPerRadius);
            case 1: return r2 <= 1 && stripe(u, stripesPerRadius);
            case 2: return r2 <= 1 && stripe((u + v) * 0.70710677f, stripesPerRadius);
            case 3: return r2 <= 1 && stripe((u - v) * 0.70710677f, stripesPerRadius);
            case 4: return r2 <= 1;
            case 5: return r2 <= 1 && r2 >= 0.36f;
            case 6: return Math.max(au, av) <= 1 && Math.max(au, av) >= 0.65f;
            case 7: return (au <= 0.28f && av <= 1) || (av <= 0.28f && au <= 1);
            case 8: {
                float a = Math.abs(u + v) * 0.70710677f;
                float b = Math.abs(u - v) * 0.70710677f;
                return (a <= 0.28f && b <= 1) || (b <= 0.28f && a <= 1);
            }
            case 9: return v <= 0.8f && v >= -1 && au <= (v + 1) * 0.5f;   // apex up, base at v = 0.8
            default: throw new AssertionError("label " + label);
        }
    }

    /** Alternating bands of half a period each along coordinate t (t in radii). */
    private static boolean stripe(float t, float stripesPerRadius) {
        float phase = t * stripesPerRadius;
        return (phase - (float) Math.floor(phase)) < 0.5f;
    }

    private void checkIndex(int i) {
        if (i < 0 || i >= size) throw new IndexOutOfBoundsException("example " + i + " is out of range [0, " + size + ") of " + description());
    }

    @Override public String description() {
        return "synthetic CIFAR-shaped data (not CIFAR-10), seed " + seed + ", " + size + " images";
    }

    @Override public String toString() { return description(); }
}
