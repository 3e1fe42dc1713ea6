package ai.bonsai.dsp.prune;

/**
 * What {@link PruneWrapper#prune()} and {@link PruneWrapper#initialize(double)} return: the pruned percentages of
 * FLOPs and parameters over the prunable layers, in the published accounting (spec section 5).
 */
public record PruneRates(double prunedFlopsPercent, double prunedParamsPercent) {
    @Override public String toString() {
        return String.format("pruned FLOPs %.2f%%, pruned params %.2f%%", prunedFlopsPercent, prunedParamsPercent);
    }
}
