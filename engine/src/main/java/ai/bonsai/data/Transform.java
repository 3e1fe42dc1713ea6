package ai.bonsai.data;

import ai.bonsai.tensor.Generator;

import java.util.Arrays;

/**
 * An in-place change to one image of floats, (C, H, W) at an offset in a batch array: augmentation and
 * normalisation. Transforms compose with {@link #andThen}; the standard CIFAR-10 training pipeline is
 * {@link #cifarTrain()}, and evaluation uses {@link #cifarEval()}.
 *
 * <p>Randomness comes only from the {@link Generator} passed in, and each transform draws a fixed number of
 * values per image, so the result is a function of the image and the generator's state. The data loader
 * hands each batch a generator derived from (seed, epoch, batch), which makes augmentation independent of
 * thread scheduling.
 *
 * <p>Implementations keep no mutable state, so one transform may serve several loader threads.
 */
@FunctionalInterface
public interface Transform {
    /** CIFAR-10 channel means of pixel/255 (R, G, B), as the reference training recipe uses them; a fresh array. */
    static float[] cifarMean() { return new float[] {0.4914f, 0.4822f, 0.4465f}; }

    /** CIFAR-10 channel standard deviations of pixel/255 (R, G, B); a fresh array. */
    static float[] cifarStd() { return new float[] {0.2470f, 0.2435f, 0.2616f}; }

    /** ImageNet channel means (R, G, B) of pixel/255, as torchvision's models use them; a fresh array. */
    static float[] imagenetMean() { return new float[] {0.485f, 0.456f, 0.406f}; }

    /** ImageNet channel standard deviations (R, G, B); a fresh array. */
    static float[] imagenetStd() { return new float[] {0.229f, 0.224f, 0.225f}; }

    /** After {@link ImageCrop#randomResized}: random horizontal flip, then ImageNet normalisation. */
    static Transform imagenetTrain() {
        return compose(randomHorizontalFlip(), normalize(imagenetMean(), imagenetStd()));
    }

    /** After {@link ImageCrop#resizeCenter}: ImageNet normalisation alone. */
    static Transform imagenetEval() {
        return normalize(imagenetMean(), imagenetStd());
    }

    /**
     * Transforms the image of {@code c} channels of {@code h} x {@code w} floats at {@code img[offset]}.
     * {@code rng} is the only source of randomness.
     */
    void apply(float[] img, int offset, int c, int h, int w, Generator rng);

    /** This transform, then {@code next}, on the same generator. */
    default Transform andThen(Transform next) {
        Transform first = this;
        return (img, offset, c, h, w, rng) -> {
            first.apply(img, offset, c, h, w, rng);
            next.apply(img, offset, c, h, w, rng);
        };
    }

    /** Leaves the image as it is. */
    static Transform identity() {
        return (img, offset, c, h, w, rng) -> { };
    }

    /** Applies the transforms in order. */
    static Transform compose(Transform... transforms) {
        Transform t = identity();
        for (Transform next : transforms) t = t.andThen(next);
        return t;
    }

    /** Random crop of 32x32 after 4 pixels of zero padding, random horizontal flip, then CIFAR normalisation. */
    static Transform cifarTrain() {
        return compose(randomCrop(4), randomHorizontalFlip(), normalize(cifarMean(), cifarStd()));
    }

    /** CIFAR normalisation alone. */
    static Transform cifarEval() {
        return normalize(cifarMean(), cifarStd());
    }

    /**
     * Pads the image with {@code padding} zeros on every side and crops an h x w window at a uniformly random
     * position, i.e. shifts the image by (dy, dx) in [-padding, padding] each and fills the uncovered border
     * with zeros. Draws two values per image (dy, then dx).
     */
    static Transform randomCrop(int padding) {
        if (padding < 0) throw new IllegalArgumentException("randomCrop: padding must be non-negative, got " + padding);
        return (img, offset, c, h, w, rng) -> {
            int dy = rng.nextInt(2 * padding + 1) - padding;
            int dx = rng.nextInt(2 * padding + 1) - padding;
            shift(img, offset, c, h, w, dy, dx);
        };
    }

    /**
     * Output pixel (y, x) takes input pixel (y + dy, x + dx), or zero where that is outside the image; this is
     * the crop at offset (padding + dy, padding + dx) of the zero-padded image.
     */
    static void shift(float[] img, int offset, int c, int h, int w, int dy, int dx) {
        if (dy == 0 && dx == 0) return;
        float[] src = Arrays.copyOfRange(img, offset, offset + c * h * w);
        Arrays.fill(img, offset, offset + c * h * w, 0f);
        int y0 = Math.max(0, -dy), y1 = Math.min(h, h - dy);     // output rows whose source row exists
        int x0 = Math.max(0, -dx), x1 = Math.min(w, w - dx);
        if (y0 >= y1 || x0 >= x1) return;                        // shifted entirely out: all zeros
        for (int ch = 0; ch < c; ch++) {
            for (int y = y0; y < y1; y++) {
                System.arraycopy(src, ch * h * w + (y + dy) * w + x0 + dx, img, offset + ch * h * w + y * w + x0, x1 - x0);
            }
        }
    }

    /** Mirrors the image left to right with probability 1/2. Draws one value per image. */
    static Transform randomHorizontalFlip() {
        return (img, offset, c, h, w, rng) -> {
            if (rng.nextBoolean()) flipHorizontal(img, offset, c, h, w);
        };
    }

    static void flipHorizontal(float[] img, int offset, int c, int h, int w) {
        for (int row = 0; row < c * h; row++) {
            int a = offset + row * w;
            for (int i = 0, j = w - 1; i < j; i++, j--) {
                float t = img[a + i];
                img[a + i] = img[a + j];
                img[a + j] = t;
            }
        }
    }

    /** (x - mean[ch]) / std[ch] per channel. Draws nothing. */
    static Transform normalize(float[] mean, float[] std) {
        if (mean.length != std.length) {
            throw new IllegalArgumentException("normalize: " + mean.length + " means but " + std.length + " standard deviations");
        }
        for (int i = 0; i < std.length; i++) {
            if (!(std[i] > 0)) throw new IllegalArgumentException("normalize: std[" + i + "] must be positive, got " + std[i]);
        }
        float[] m = mean.clone();
        float[] s = std.clone();
        return (img, offset, c, h, w, rng) -> {
            if (c != m.length) {
                throw new IllegalArgumentException("normalize: image has " + c + " channels, expected " + m.length + " (one mean and std per channel)");
            }
            for (int ch = 0; ch < c; ch++) {
                int a = offset + ch * h * w;
                for (int k = 0; k < h * w; k++) img[a + k] = (img[a + k] - m[ch]) / s[ch];   // divide, not multiply by 1/std: matches the reference bit for bit
            }
        };
    }
}
