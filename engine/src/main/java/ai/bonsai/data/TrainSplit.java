package ai.bonsai.data;

/** A training set and the examples held out of it to evaluate on while training. */
public record TrainSplit(Dataset train, Dataset heldOut) {
    public TrainSplit {
        if (train == null || heldOut == null) throw new IllegalArgumentException("TrainSplit: train and heldOut must not be null");
    }
}
