package ai.bonsai.dsp.testing;

import java.nio.file.Path;
import java.util.List;

/**
 * The six packed models the reference implementation publishes (../shared/reference) and the facts its README
 * states about each: the pruning rates of the reference's table, the whole-network multiply-adds, and how many
 * of the 4,000 shared CIFAR-10 images the model classifies correctly.
 */
public final class PublishedModels {
    private PublishedModels() {}

    public record Model(String name, int depth, double prunedFlopsPercent, double prunedParamsPercent,
                        long denseMacs, long packedMacs, int correct) {
        /** The archive, or a skipped test when ../shared is absent. */
        public Path file() { return SharedData.require("reference/" + name + ".pt"); }

        /** Accuracy in percent on the 4,000 shared images. */
        public double accuracy() { return 100.0 * correct / 4000; }

        @Override public String toString() { return name; }
    }

    public static final List<Model> ALL = List.of(
            new Model("resnet20_g4", 20, 63.57, 50.45, 40_813_184, 15_318_272, 3967),
            new Model("resnet20_g3", 20, 62.43, 49.15, 40_813_184, 15_775_040, 3969),
            new Model("resnet20_g2", 20, 61.23, 48.35, 40_813_184, 16_254_848, 3979),
            new Model("resnet56_g4", 56, 65.11, 56.30, 125_747_840, 44_334_848, 3999),
            new Model("resnet56_g3", 56, 64.14, 55.01, 125_747_840, 45_545_600, 3998),
            new Model("resnet56_g2", 56, 63.26, 56.24, 125_747_840, 46_646_336, 3998));

    /** For {@code @MethodSource}. */
    public static List<Model> all() { return ALL; }
}
