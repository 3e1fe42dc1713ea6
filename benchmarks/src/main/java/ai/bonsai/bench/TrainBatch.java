package ai.bonsai.bench;

import ai.bonsai.tensor.Generator;

/**
 * The fixed CIFAR-shaped batch that every training-step benchmark trains on (Bonsai's {@link TrainStep}, the
 * DJL/PyTorch peer and {@link PeakHeap}), so all engines see the same numbers, plus the shared hyper-parameters
 * and the "does it learn" check their {@code @Setup}s run before anything is timed.
 *
 * <p>The images are standard-normal noise and the labels uniform over the classes: what is timed does not
 * depend on the values, and a network can still memorise a fixed batch, so the loss must fall over a few steps.
 */
public final class TrainBatch {
    public static final int BATCH = 128, CHANNELS = 3, SIZE = 32, CLASSES = 10;
    /** The usual CIFAR ResNet recipe: SGD, momentum 0.9, weight decay 1e-4; lr 0.1 is its starting rate. */
    public static final float LR = 0.1f, MOMENTUM = 0.9f, WEIGHT_DECAY = 1e-4f;
    /** Steps of the learning check; the last loss must be below the first. */
    public static final int CHECK_STEPS = 5;

    /** (BATCH, CHANNELS, SIZE, SIZE) row-major. */
    public final float[] images;
    /** BATCH labels in [0, CLASSES). */
    public final long[] labels;

    private TrainBatch(float[] images, long[] labels) {
        this.images = images;
        this.labels = labels;
    }

    public static TrainBatch random(long seed) {
        Generator g = new Generator(seed);
        float[] x = new float[BATCH * CHANNELS * SIZE * SIZE];
        for (int i = 0; i < x.length; i++) x[i] = (float) g.nextGaussian();
        long[] y = new long[BATCH];
        for (int i = 0; i < y.length; i++) y[i] = g.nextInt(CLASSES);
        return new TrainBatch(x, y);
    }

    public int[] imageDims() { return new int[] {BATCH, CHANNELS, SIZE, SIZE}; }

    /**
     * Throws unless every loss is finite and the last is below the first: a step that computes garbage (NaN,
     * a gradient that is never applied, a sign error) must not produce a throughput number.
     */
    public static void checkLearns(String engine, float[] losses) {
        StringBuilder trace = new StringBuilder();
        for (float l : losses) trace.append(trace.length() == 0 ? "" : ", ").append(l);
        for (float l : losses) {
            if (!Float.isFinite(l)) throw new IllegalStateException(engine + ": non-finite training loss: " + trace);
        }
        if (!(losses[losses.length - 1] < losses[0])) {
            throw new IllegalStateException(engine + ": the loss did not decrease over " + losses.length + " steps on a fixed batch: " + trace);
        }
        System.out.println(engine + ": loss over " + losses.length + " steps on the fixed batch: " + trace);
    }
}
