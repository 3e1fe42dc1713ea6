package ai.bonsai.backend.cpu;

import static ai.bonsai.backend.cpu.Conv2dKernels.ceilDiv;

/**
 * A batch of {@code n} images cut into the units that the convolution kernels hand to threads: {@code count} units of
 * near-equal size (they differ by at most one image), unit u holding images {@code [start(u), start(u + 1))}.
 *
 * <p>The cut depends on the geometry only, never on the thread count, because the weight gradients sum per-unit
 * partials and so their bits follow the units. Within that, the count is a multiple of {@link #BALANCE} where the
 * bounds allow, so that 1, 2 and 4 threads get equal shares. The old rule (a fixed number of images per unit, the
 * last unit taking the rest) left threads idle: ResNet-20's 8x8 layers made 9 units (8 of 15 images, one of 8), so
 * on 2 threads one took 5 units while the other took 4 (the cut into 8 units of 16 made all three passes of that layer
 * 6-10 % faster, alternated in one JVM), and its 32x32 weight gradients dealt 19 units to 10 partial sums, one of
 * them half-empty. In the ResNet-20 step, alternated with the old cut: per-pair medians 1-2 % faster.
 */
record ImageUnits(int n, int count) {
    /** Unit counts are multiples of this where the bounds allow. */
    static final int BALANCE = 4;

    /**
     * Units of at most {@code maxImages} images (a hard bound: the working set), and of at least {@code minImages}
     * where the batch allows (a soft one: per-unit costs are amortised over enough work). When both can hold, the
     * count is the largest multiple of {@link #BALANCE} they allow, or else the most units the soft bound allows;
     * when the working set needs more units than the soft bound wants, the next multiple of {@link #BALANCE} up from
     * what the working set needs. A batch of two or more images has at least two units.
     */
    static ImageUnits of(int n, int minImages, int maxImages) {
        int lo = ceilDiv(n, Math.max(1, maxImages)), hi = n / Math.max(1, minImages);
        int count;
        if (hi >= lo) {
            count = hi / BALANCE * BALANCE;
            if (count < lo || count == 0) count = hi;
        } else if (lo > 1) {
            int up = ceilDiv(lo, BALANCE) * BALANCE;
            count = up <= n ? up : lo;
        } else {
            count = lo;
        }
        return new ImageUnits(n, Math.max(count, Math.min(n, 2)));
    }

    /** The first image of unit u ({@code start(count) == n}). */
    int start(int u) { return (int) ((long) u * n / count); }

    /** The images of unit u. */
    int size(int u) { return start(u + 1) - start(u); }

    /** The images of the largest unit. */
    int maxSize() { return ceilDiv(n, count); }

    /**
     * How many partial sums the weight gradients keep for these units: at most {@code maxGroups}, each of the same
     * number of units where the count allows (ResNet-20's 20 units of its 32x32 layers make 10 groups of 2; all 16
     * groups, of one or two units, measured 4 % slower there). Group gi adds units
     * {@code [groupStart(gi, groups), groupStart(gi + 1, groups))} one after another; group sizes differ by at most
     * one unit (a fixed number of units per group used to leave the last group short).
     */
    int groups(int maxGroups) {
        int perGroup = ceilDiv(count, Math.min(count, maxGroups));
        return ceilDiv(count, perGroup);
    }

    /** The first unit of group gi of {@code groups}. */
    int groupStart(int gi, int groups) { return (int) ((long) gi * count / groups); }
}
