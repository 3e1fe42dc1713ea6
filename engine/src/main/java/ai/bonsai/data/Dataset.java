package ai.bonsai.data;

import ai.bonsai.tensor.Shape;

/**
 * A labelled image dataset, seen as plain arrays: the data loader asks for one image at a time as floats and
 * assembles batches itself. Implementations keep their images however is compact (CIFAR-10 keeps bytes) and
 * convert on request.
 *
 * <p>Implementations must be safe to read from several threads at once: the loader's prefetch workers call
 * {@link #image} concurrently.
 */
public interface Dataset {
    /** Number of examples. */
    int size();

    /** Shape of one image, (C, H, W); (3, 32, 32) for CIFAR-shaped data. */
    Shape imageShape();

    /** Number of classes; every label is in [0, numClasses). */
    int numClasses();

    /** Class of example {@code i}. */
    int label(int i);

    /**
     * Writes image {@code i} as {@code imageShape().numel()} floats, channel-major (C, H, W), starting at
     * {@code dst[offset]}. Values are pixel intensities scaled to [0, 1] (byte value / 255); normalisation
     * is left to a {@link Transform}.
     */
    void image(int i, float[] dst, int offset);

    /**
     * As {@link #image(int, float[], int)}, drawing any per-example randomness (a random crop of a larger image)
     * from {@code rng}; the loader passes the same per-image generator its {@link Transform} then uses. Datasets of
     * fixed-size images ignore it. May throw {@link UnreadableExampleException} for an example that cannot be read.
     */
    default void image(int i, float[] dst, int offset, ai.bonsai.tensor.Generator rng) { image(i, dst, offset); }

    /** Where example {@code i} comes from (a file), for reports of unreadable examples. */
    default String source(int i) { return description() + " example " + i; }

    /** Where the data came from, for logs and reports: file paths, or what generated it. */
    String description();

    /** Examples [from, to) of this dataset, without copying. */
    default Dataset subset(int from, int to) {
        return new Subset(this, from, to);
    }

    /** A contiguous view of another dataset. */
    final class Subset implements Dataset {
        private final Dataset base;
        private final int from;
        private final int to;

        Subset(Dataset base, int from, int to) {
            if (from < 0 || to < from || to > base.size()) {
                throw new IllegalArgumentException("subset: range [" + from + ", " + to + ") is not within [0, " + base.size() + ") of " + base.description());
            }
            this.base = base;
            this.from = from;
            this.to = to;
        }

        @Override public int size() { return to - from; }

        @Override public Shape imageShape() { return base.imageShape(); }

        @Override public int numClasses() { return base.numClasses(); }

        @Override public int label(int i) { return base.label(checkIndex(i)); }

        @Override public void image(int i, float[] dst, int offset) { base.image(checkIndex(i), dst, offset); }

        @Override public void image(int i, float[] dst, int offset, ai.bonsai.tensor.Generator rng) { base.image(checkIndex(i), dst, offset, rng); }

        @Override public String source(int i) { return base.source(checkIndex(i)); }

        private int checkIndex(int i) {
            if (i < 0 || i >= size()) throw new IndexOutOfBoundsException("example " + i + " is out of range [0, " + size() + ") of " + description());
            return from + i;
        }

        @Override public String description() {
            return "examples [" + from + ", " + to + ") of " + base.description();
        }

        @Override public Dataset subset(int a, int b) {
            if (a < 0 || b < a || b > size()) {
                throw new IllegalArgumentException("subset: range [" + a + ", " + b + ") is not within [0, " + size() + ") of " + description());
            }
            return new Subset(base, from + a, from + b);   // flatten, so descriptions stay short
        }
    }
}
