package ai.bonsai.dsp.prune;

import java.util.List;

/**
 * The state of a pruned network as numbers, made by {@link PruneWrapper#summary(boolean)}: per prunable layer
 * the kept kernels and each group's structure, the totals over the prunable layers in the published accounting
 * (spec section 5), and the whole-network figures. Nothing here is measured by running the network: every number
 * is counted from the weights, so it equals a direct count.
 *
 * <p>Published accounting: a kernel {@code W[n, c]} is kept when {@code ||W[n, c]|| > 0};
 * {@code frac_l = kept_l / (N_l * C_l)}; remaining FLOPs {@code = sum_l flops_l * frac_l}, remaining params
 * {@code = sum_l |W_l| * frac_l}; pruned % {@code = 100 * (1 - remaining / total)} over the prunable layers only.
 *
 * @param beta                   the cumulative-importance threshold the masks were made with
 * @param layers                 one row per prunable layer, in index order
 * @param totalFlops             dense multiply-adds of the prunable layers for one image
 * @param remainingFlops         {@code sum_l flops_l * frac_l}
 * @param totalParams            dense weights of the prunable layers
 * @param remainingParams        {@code sum_l |W_l| * frac_l}
 * @param networkMacs            dense multiply-adds of the whole network (stem, shortcut projections, classifier
 *                               included; batch norm not counted, as in {@link ai.bonsai.dsp.models.ModelStats})
 * @param networkParams          dense parameters of the whole network, same convention
 * @param removal                what the dead-structure analysis of the last {@code prune()} zeroed
 */
public record PruneSummary(double beta, List<Layer> layers, long totalFlops, double remainingFlops,
                           long totalParams, double remainingParams, long networkMacs, long networkParams,
                           DeadStructure removal) {
    public PruneSummary {
        layers = List.copyOf(layers);
    }

    /**
     * One group of one layer after pruning.
     *
     * @param filters  filters assigned to the group (hard assignment) that keep at least one kernel
     * @param channels input channels that at least one of the group's filters still reads
     */
    public record Group(int filters, int channels) {
        @Override public String toString() { return "(" + filters + ", " + channels + ")"; }
    }

    /**
     * One prunable layer.
     *
     * @param keptKernels  #(n, c) with {@code ||W[n, c]|| > 0}
     * @param flops        dense multiply-adds of the layer for one image
     * @param params       dense weights {@code N * C * k * k}
     * @param filterPruned whether the filter rule applies to this layer
     * @param groups       one entry per group g = 0 .. G-1
     */
    public record Layer(int index, String name, int filters, int channels, int kernel, boolean filterPruned,
                        long keptKernels, long flops, long params, List<Group> groups) {
        public Layer {
            groups = List.copyOf(groups);
        }

        /** {@code kept / (N * C)}. */
        public double keptFraction() { return keptKernels / ((double) filters * channels); }

        public double prunedPercent() { return 100 * (1 - keptFraction()); }

        public double remainingFlops() { return flops * keptFraction(); }

        public double remainingParams() { return params * keptFraction(); }
    }

    /**
     * Counts of what {@link PruneWrapper#prune()}'s dead-structure analysis zeroed beyond the masks of the channel
     * and filter rules (all zero before the first prune).
     *
     * @param emptyFilterBnChannels BN channels (weight and bias) zeroed behind a filter whose kernels were all pruned
     * @param deadFilters           conv_a filters zeroed because conv_b reads their output nowhere
     * @param deadInputChannels     conv_b input columns zeroed because their input is identically zero
     */
    public record DeadStructure(int emptyFilterBnChannels, int deadFilters, int deadInputChannels) {
        public static final DeadStructure NONE = new DeadStructure(0, 0, 0);
    }

    public double prunedFlopsPercent() { return 100 * (1 - remainingFlops / totalFlops); }

    public double prunedParamsPercent() { return 100 * (1 - remainingParams / totalParams); }

    /** Whole-network multiply-adds left: the dense count less what was pruned from the prunable layers. */
    public double networkRemainingMacs() { return networkMacs - (totalFlops - remainingFlops); }

    public double networkRemainingParams() { return networkParams - (totalParams - remainingParams); }

    public double networkPrunedMacsPercent() { return 100 * (1 - networkRemainingMacs() / networkMacs); }

    public double networkPrunedParamsPercent() { return 100 * (1 - networkRemainingParams() / networkParams); }

    public PruneRates rates() { return new PruneRates(prunedFlopsPercent(), prunedParamsPercent()); }

    /**
     * The reference's summary: with {@code perLayer}, first one line per prunable layer (kept and pruned
     * percent, and each group's (filters, channels)), then beta and the totals, each block labelled.
     */
    public String format(boolean perLayer) {
        StringBuilder sb = new StringBuilder();
        String rule = "=".repeat(100) + "\n";
        if (perLayer) {
            int nameWidth = layers.stream().mapToInt(l -> l.name().length()).max().orElse(4);
            sb.append(String.format("%-4s %-" + nameWidth + "s %9s %2s %7s %8s  %s%n", "idx", "layer", "NxC", "fp", "kept%", "pruned%",
                    "structure: (filters, channels) per group"));
            for (Layer l : layers) {
                StringBuilder groups = new StringBuilder();
                for (Group g : l.groups()) groups.append(groups.length() == 0 ? "" : " ").append(g);
                sb.append(String.format("[%2d] %-" + nameWidth + "s %9s %2s %7.2f %8.2f  %s%n", l.index(), l.name(),
                        l.filters() + "x" + l.channels(), l.filterPruned() ? "F" : "", 100 * l.keptFraction(), l.prunedPercent(), groups));
            }
        }
        sb.append(rule).append("Summary\n");
        sb.append(String.format("Beta: %.6f%n", beta));
        sb.append(String.format("Prunable layers (published accounting): FLOPs %,.0f of %,d remain (%.2f%% pruned); params %,.0f of %,d remain (%.2f%% pruned)%n",
                remainingFlops, totalFlops, prunedFlopsPercent(), remainingParams, totalParams, prunedParamsPercent()));
        sb.append(String.format("Whole network (stem, shortcut projections and classifier included, BN not counted): MACs %,.0f of %,d (%.2f%% pruned); params %,.0f of %,d (%.2f%% pruned)%n",
                networkRemainingMacs(), networkMacs, networkPrunedMacsPercent(), networkRemainingParams(), networkParams, networkPrunedParamsPercent()));
        sb.append(String.format("Dead structure zeroed by the last prune: %d BN channels behind empty filters, %d dead filters (nothing reads them), %d dead input channels (constantly zero)%n",
                removal.emptyFilterBnChannels(), removal.deadFilters(), removal.deadInputChannels()));
        sb.append(rule);
        return sb.toString();
    }

    @Override public String toString() { return format(true); }
}
