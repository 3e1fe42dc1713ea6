package ai.bonsai.bench;

import ai.bonsai.backend.StepArena;
import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.nn.Functional;
import ai.bonsai.optim.SGD;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;

/**
 * One Bonsai training step of the CIFAR ResNet-20 on a {@link TrainBatch}: forward, mean cross-entropy,
 * backward, SGD with momentum and weight decay. Shared by {@link TrainStep} (throughput) and {@link PeakHeap}
 * (memory), which splits it in two to look at the heap while the autograd graph is alive.
 */
final class BonsaiTrainStep {
    final CifarResNet model;
    final SGD optimizer;
    private final TrainBatch batch;
    private final Tensor labels;
    private StepArena arena = new StepArena();

    BonsaiTrainStep(TrainBatch batch, long seed) {
        this.batch = batch;
        model = new CifarResNet(20, TrainBatch.CLASSES, new Generator(seed));
        model.train();
        optimizer = new SGD(model.parameters(), TrainBatch.LR, TrainBatch.MOMENTUM, TrainBatch.WEIGHT_DECAY);
        labels = Tensor.ofLongs(batch.labels, TrainBatch.BATCH);
    }

    /**
     * The forward pass and the loss, with the graph attached. The images are copied into a fresh tensor every
     * step, as a data loader hands over a new batch (the DJL peer does the same).
     */
    Tensor forwardLoss() {
        return Functional.crossEntropy(model.forward(input()), labels);
    }

    /** The batch's images, copied into a fresh tensor. */
    Tensor input() {
        return Tensor.of(batch.images, batch.imageDims());
    }

    Tensor labels() { return labels; }

    void backwardAndStep(Tensor loss) {
        optimizer.zeroGrad();
        loss.backward();
        optimizer.step();
    }

    /**
     * One full step, as the Trainer runs it: forward, loss and backward inside a {@link StepArena} scope (the
     * default), or with {@code reuseBuffers(false)} allocating every buffer afresh; returns the loss before the update.
     */
    float step() {
        float value;
        try (var scope = arena == null ? null : arena.open()) {
            Tensor loss = forwardLoss();
            optimizer.zeroGrad();
            loss.backward();
            value = loss.item();
        }
        optimizer.step();
        return value;
    }

    /** Whether {@link #step()} reuses buffers from step to step (default true). */
    BonsaiTrainStep reuseBuffers(boolean on) {
        arena = on ? new StepArena() : null;
        return this;
    }

    StepArena arena() { return arena; }

    /** Runs {@link TrainBatch#CHECK_STEPS} steps and checks that the loss is finite and falls. */
    void checkLearns() {
        float[] losses = new float[TrainBatch.CHECK_STEPS];
        for (int i = 0; i < losses.length; i++) losses[i] = step();
        TrainBatch.checkLearns("Bonsai ResNet-20", losses);
    }
}
