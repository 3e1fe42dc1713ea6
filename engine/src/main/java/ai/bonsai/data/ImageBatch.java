package ai.bonsai.data;

import ai.bonsai.tensor.Shape;

/**
 * One batch from a {@link DataLoader}: {@code n} images as floats, (N, C, H, W) row-major, and their labels.
 * The arrays are exactly {@code n * C * H * W} and {@code n} long, fresh for each batch, so the consumer may
 * keep or modify them.
 *
 * @param epoch  the epoch it belongs to
 * @param index  its position in that epoch, from 0
 * @param images (n, C, H, W)
 * @param labels (n), class indices (long, as the loss functions' index tensors take them)
 * @param n      number of examples; the last batch of an epoch may be smaller than the batch size
 * @param shape  (n, C, H, W)
 * @param examples (n), the dataset index of each image (examples left out as unreadable leave gaps), or null
 */
public record ImageBatch(int epoch, int index, float[] images, long[] labels, int n, Shape shape, int[] examples) {
    public ImageBatch(int epoch, int index, float[] images, long[] labels, int n, Shape shape) {
        this(epoch, index, images, labels, n, shape, null);
    }

    public ImageBatch {
        if (examples != null && examples.length != n) throw new IllegalArgumentException("ImageBatch: " + examples.length + " example indices for n = " + n);
        if (shape.rank() != 4 || shape.dim(0) != n || images.length != shape.numel() || labels.length != n) {
            throw new IllegalArgumentException("ImageBatch: expected images of shape " + shape + " (" + shape.numel()
                    + " floats) and " + n + " labels with n = " + n + ", got " + images.length + " floats and " + labels.length + " labels");
        }
    }

    @Override public String toString() {
        return "ImageBatch[epoch " + epoch + ", batch " + index + ", shape " + shape + "]";
    }
}
