package ai.bonsai.nn;

import ai.bonsai.autograd.GradMode;
import ai.bonsai.optim.CosineAnnealingLR;
import ai.bonsai.optim.LrScheduler;
import ai.bonsai.optim.SGD;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * End to end: a small CNN (conv, batch norm, ReLU, pooling, linear) trained with SGD and a cosine schedule
 * learns which quadrant of a noisy 8x8 image is bright, and is evaluated in eval mode on held-out images.
 */
class ToyCnnTrainingTest {
    private static final int SIZE = 8, CLASSES = 4;

    /** n noisy RGB images; image i's class is the quadrant that is brighter by +1 in every channel. */
    private static float[] images(Generator g, int n, long[] labels) {
        float[] x = new float[n * 3 * SIZE * SIZE];
        for (int i = 0; i < n; i++) {
            int cls = g.nextInt(CLASSES);
            labels[i] = cls;
            int r0 = (cls / 2) * SIZE / 2, c0 = (cls % 2) * SIZE / 2;
            for (int c = 0; c < 3; c++) {
                for (int r = 0; r < SIZE; r++) {
                    for (int col = 0; col < SIZE; col++) {
                        boolean bright = r >= r0 && r < r0 + SIZE / 2 && col >= c0 && col < c0 + SIZE / 2;
                        x[((i * 3 + c) * SIZE + r) * SIZE + col] = (float) (0.7 * g.nextGaussian() + (bright ? 1 : 0));
                    }
                }
            }
        }
        return x;
    }

    private static Tensor rows(float[] x, int[] idx, int from, int to) {
        int per = 3 * SIZE * SIZE;
        float[] out = new float[(to - from) * per];
        for (int i = from; i < to; i++) System.arraycopy(x, idx[i] * per, out, (i - from) * per, per);
        return Tensor.of(out, to - from, 3, SIZE, SIZE);
    }

    @Test
    void learnsQuadrantTask() {
        Generator g = new Generator(2024);
        int nTrain = 512, nTest = 256, batch = 32, epochs = 6;
        long[] yTrain = new long[nTrain], yTest = new long[nTest];
        float[] xTrain = images(g, nTrain, yTrain), xTest = images(g, nTest, yTest);

        Sequential model = new Sequential(
                new Conv2d(3, 8, 3, 1, 1, 1, false, g), new BatchNorm2d(8), new ReLU(), new MaxPool2d(2),
                new Conv2d(8, 16, 3, 1, 1, 1, false, g), new BatchNorm2d(16), new ReLU(),
                new AdaptiveAvgPool2d(2), new Flatten(), new Linear(16 * 4, CLASSES, g));
        SGD opt = new SGD(model.parameters(), 0.05f, 0.9f, 5e-4f);
        LrScheduler sched = new LrScheduler(opt, new CosineAnnealingLR(epochs, 0));

        int[] order = new int[nTrain];
        for (int i = 0; i < nTrain; i++) order[i] = i;
        float firstLoss = Float.NaN, lastLoss = Float.NaN;
        for (int e = 0; e < epochs; e++) {
            model.train();
            for (int i = nTrain - 1; i > 0; i--) {           // Fisher-Yates with the run's generator
                int j = g.nextInt(i + 1), t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
            for (int b = 0; b < nTrain; b += batch) {
                long[] y = new long[batch];
                for (int k = 0; k < batch; k++) y[k] = yTrain[order[b + k]];
                Tensor loss = Functional.crossEntropy(model.forward(rows(xTrain, order, b, b + batch)), Tensor.ofLongs(y, batch));
                opt.zeroGrad();
                loss.backward();
                opt.step();
                if (Float.isNaN(firstLoss)) firstLoss = loss.item();
                lastLoss = loss.item();
            }
            sched.step();
        }

        model.eval();
        int[] all = new int[nTest];
        for (int i = 0; i < nTest; i++) all[i] = i;
        long[] pred;
        try (var scope = GradMode.noGrad()) {
            pred = model.forward(rows(xTest, all, 0, nTest)).argmax(1).toLongArray();
        }
        int correct = 0;
        for (int i = 0; i < nTest; i++) if (pred[i] == yTest[i]) correct++;
        double accuracy = correct / (double) nTest;
        assertTrue(accuracy > 0.95, "held-out accuracy " + accuracy + " (loss " + firstLoss + " -> " + lastLoss + ")");
        assertTrue(lastLoss < firstLoss);
    }
}
