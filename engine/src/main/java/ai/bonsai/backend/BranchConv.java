package ai.bonsai.backend;

import ai.bonsai.tensor.Buffer;
import ai.bonsai.tensor.DType;

import java.util.List;

/**
 * The plan of one multi-branch convolution, {@link Backend#branchConv2d}: several dense convolutions of one
 * kernel size, stride and padding that read arbitrary (possibly overlapping) subsets of one source tensor's
 * channels and write arbitrary channels of one destination, each followed by a per-channel affine map (a folded
 * eval-mode batch norm) and an optional ReLU. A packed DSP block is two of these: conv_a's branches writing a
 * concatenation, conv_b's branches scatter-adding into the residual.
 *
 * <p>This is not a grouped convolution: branch widths differ and input sets overlap.
 *
 * <p>A plan is immutable and validated here, once, so the kernels need not check it per call. Backends may keep
 * derived forms of its weights (the CPU backend packs them into register-tile order on first use), so the
 * contents of the weight, scale and shift buffers must not change after the plan's first run.
 */
public final class BranchConv {
    /**
     * One branch. {@code weight} is (out.length, in.length, kernel, kernel) row-major; {@code scale} and
     * {@code shift} have one entry per output channel. Output channel {@code j} of the branch is
     * {@code act(scale[j] * sum_{i,r,s} weight[j,i,r,s] * x[inChannels[i]](tap r,s) + shift[j])}, written to
     * destination channel {@code outChannels[j]}.
     */
    public record Branch(int[] inChannels, int[] outChannels, Buffer weight, Buffer scale, Buffer shift, boolean relu) {
        public Branch {
            if (inChannels == null || outChannels == null || weight == null || scale == null || shift == null) {
                throw new IllegalArgumentException("BranchConv.Branch: inChannels, outChannels, weight, scale and shift are required");
            }
            inChannels = inChannels.clone();
            outChannels = outChannels.clone();
        }

        @Override public int[] inChannels() { return inChannels.clone(); }

        @Override public int[] outChannels() { return outChannels.clone(); }

        public int inWidth() { return inChannels.length; }

        public int outWidth() { return outChannels.length; }
    }

    private final int inChannels, outChannels, kernel, stride, padding;
    private final List<Branch> branches;
    private final boolean disjointOutputs;
    private final Buffer outputShift;
    private final boolean outputRelu;

    /**
     * @param inChannels  channels of the source tensor x (N, inChannels, H, W)
     * @param outChannels channels of the destination y (N, outChannels, outH, outW)
     */
    public BranchConv(int inChannels, int outChannels, int kernel, int stride, int padding, List<Branch> branches) {
        this(inChannels, outChannels, kernel, stride, padding, branches, null, false);
    }

    /**
     * A plan with an output stage, applied after all branches to <b>every</b> channel of y, including channels no
     * branch writes: {@code y[:, c] = act(y[:, c] + outputShift[c])}. A packed DSP block's conv_b uses it for the
     * block's residual constant and final ReLU, so they cost no extra pass over the output.
     *
     * @param outputShift one float per output channel, or null for none
     * @param outputRelu  whether the output stage ends with a ReLU
     */
    public BranchConv(int inChannels, int outChannels, int kernel, int stride, int padding, List<Branch> branches,
                      Buffer outputShift, boolean outputRelu) {
        if (inChannels < 1 || outChannels < 1 || kernel < 1 || stride < 1 || padding < 0) {
            throw new IllegalArgumentException("BranchConv: invalid geometry inChannels=" + inChannels + " outChannels=" + outChannels
                    + " kernel=" + kernel + " stride=" + stride + " padding=" + padding);
        }
        if (branches == null) throw new IllegalArgumentException("BranchConv: branches is null");
        this.inChannels = inChannels;
        this.outChannels = outChannels;
        this.kernel = kernel;
        this.stride = stride;
        this.padding = padding;
        this.branches = List.copyOf(branches);
        boolean[] written = new boolean[outChannels];
        boolean disjoint = true;
        for (int b = 0; b < this.branches.size(); b++) {
            Branch br = this.branches.get(b);
            String where = "BranchConv branch " + b;
            if (br.inWidth() == 0 || br.outWidth() == 0) {
                throw new IllegalArgumentException(where + ": needs at least one input and one output channel, got "
                        + br.inWidth() + " inputs and " + br.outWidth() + " outputs");
            }
            checkIndices(where + " inChannels", br.inChannels, inChannels, true);
            checkIndices(where + " outChannels", br.outChannels, outChannels, true);
            for (int c : br.outChannels) {
                if (written[c]) disjoint = false;
                written[c] = true;
            }
            long wLen = (long) br.outWidth() * br.inWidth() * kernel * kernel;
            checkBuffer(where + " weight", br.weight, wLen, "(" + br.outWidth() + "," + br.inWidth() + "," + kernel + "," + kernel + ")");
            checkBuffer(where + " scale", br.scale, br.outWidth(), "(" + br.outWidth() + ")");
            checkBuffer(where + " shift", br.shift, br.outWidth(), "(" + br.outWidth() + ")");
        }
        this.disjointOutputs = disjoint;
        if (outputShift != null) checkBuffer("BranchConv outputShift", outputShift, outChannels, "(" + outChannels + ")");
        this.outputShift = outputShift;
        this.outputRelu = outputRelu;
    }

    /** Every index in [0, limit); with {@code distinct}, no index twice. */
    private static void checkIndices(String what, int[] idx, int limit, boolean distinct) {
        boolean[] seen = new boolean[limit];
        for (int i = 0; i < idx.length; i++) {
            int v = idx[i];
            if (v < 0 || v >= limit) {
                throw new IllegalArgumentException(what + ": index " + v + " at position " + i + " is outside [0, " + limit + ")");
            }
            if (distinct && seen[v]) throw new IllegalArgumentException(what + ": channel " + v + " appears twice (position " + i + ")");
            seen[v] = true;
        }
    }

    private static void checkBuffer(String what, Buffer b, long need, String shape) {
        if (b.dtype() != DType.FLOAT32) throw new IllegalArgumentException(what + ": expected FLOAT32, got " + b.dtype());
        if (b.length() != need) {
            throw new IllegalArgumentException(what + ": expected " + shape + " = " + need + " floats, got " + b.length());
        }
    }

    public int inChannels() { return inChannels; }

    public int outChannels() { return outChannels; }

    public int kernel() { return kernel; }

    public int stride() { return stride; }

    public int padding() { return padding; }

    public List<Branch> branches() { return branches; }

    /** The output stage's per-channel constant, or null. */
    public Buffer outputShift() { return outputShift; }

    /** Whether the output stage applies a ReLU to every output channel. */
    public boolean outputRelu() { return outputRelu; }

    /** True when the plan has an output stage. */
    public boolean hasOutputStage() { return outputShift != null || outputRelu; }

    /** True when no destination channel is written by two branches (required by the overwriting mode). */
    public boolean disjointOutputs() { return disjointOutputs; }

    /**
     * Checks that {@code second} can run on the output of {@code first} as {@link Backend#branchConv2dPair} does:
     * its input channels are {@code first}'s output channels, {@code first} may overwrite (disjoint outputs), and
     * every channel {@code second} reads is written by a branch of {@code first} (so the intermediate needs no
     * initial value). Errors name the plan, the channel and the branch.
     */
    public static void requireChainable(BranchConv first, BranchConv second) {
        if (second.inChannels != first.outChannels) {
            throw new IllegalArgumentException("branchConv2dPair: second plan reads " + second.inChannels
                    + " channels but the first writes " + first.outChannels + " (" + first + " then " + second + ")");
        }
        if (!first.disjointOutputs) {
            throw new IllegalArgumentException("branchConv2dPair: the first plan overwrites the intermediate, so its branch outputs must be disjoint: " + first);
        }
        boolean[] written = new boolean[first.outChannels];
        for (Branch b : first.branches) for (int c : b.outChannels) written[c] = true;
        for (int bi = 0; bi < second.branches.size(); bi++) {
            for (int c : second.branches.get(bi).inChannels) {
                if (!written[c]) {
                    throw new IllegalArgumentException("branchConv2dPair: branch " + bi + " of the second plan reads channel " + c
                            + ", which no branch of the first plan writes (" + first + " then " + second + ")");
                }
            }
        }
    }

    /** Output height (or width) for an input of this size. */
    public int outSize(int inSize) { return (inSize + 2 * padding - kernel) / stride + 1; }

    /** Multiply-adds for one image of h x w. */
    public long macs(int h, int w) {
        long perPixel = 0;
        for (Branch b : branches) perPixel += (long) b.outWidth() * b.inWidth() * kernel * kernel;
        return perPixel * outSize(h) * outSize(w);
    }

    @Override public String toString() {
        StringBuilder sb = new StringBuilder("BranchConv(" + inChannels + " -> " + outChannels + ", k" + kernel + " s" + stride
                + " p" + padding + ", branches");
        for (Branch b : branches) sb.append(' ').append(b.inWidth()).append("->").append(b.outWidth());
        if (outputShift != null) sb.append(", output shift");
        if (outputRelu) sb.append(", output relu");
        return sb.append(')').toString();
    }
}
