package ai.bonsai.dsp.pack;

import ai.bonsai.backend.Backend;
import ai.bonsai.backend.StepArena;
import ai.bonsai.backend.BinaryOp;
import ai.bonsai.backend.BranchConv;
import ai.bonsai.backend.UnaryOp;
import ai.bonsai.nn.Module;
import ai.bonsai.tensor.Buffer;
import ai.bonsai.tensor.DType;
import ai.bonsai.tensor.Device;
import ai.bonsai.tensor.Shape;
import ai.bonsai.tensor.Tensor;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;
import java.util.Locale;

/**
 * A packed CIFAR ResNet (spec section 6): an inference-only network whose pruned basic blocks are multi-branch
 * convolutions, running on {@link Backend#branchConv2d} (stem, projections) and {@link Backend#branchConv2dPair}
 * (each block's conv_a then conv_b). Built by {@link Packer} from a masked model, by
 * {@link #load(Path)} from a packed file ({@link PackedFormat}), or by an importer from plain arrays through
 * {@link #of(Structure)}; all three go through the same validation.
 *
 * <p>A block computes, with x its input and BN folded into per-channel scale and shift:
 * <pre>
 *   t        = concat_b relu(bnA_b(conv(x[:, convA_b.in], WA_b)))        position of filter convA_b.out[j] in t: the map
 *   residual = shortcut == null ? x : bnS(conv1x1(x))  (+ residualBias)
 *   residual[:, convB_b.out] += bnB_b(conv(t[:, map(convB_b.in)], WB_b))  for every conv_b branch
 *   y        = relu(residual)
 * </pre>
 * Channels that no conv_b branch writes pass the residual through. The stem, the shortcut projections and the
 * classifier are dense (the stem and projections run as one-branch plans, which fuses their BN).
 *
 * <p>It is a {@link Module} so that evaluation loops take it, but it has no parameters and no training mode:
 * {@code train(true)} throws.
 *
 * <p>Thread safety: once built, a packed model is immutable apart from its reusable workspace, which a forward takes
 * atomically (a concurrent forward allocates its own). Any number of threads may call {@link #forward} on one shared
 * instance; each output depends only on its input and equals, bit for bit, what a single thread computes
 * ({@code ConcurrentInferenceTest}, {@code benchmarks/concurrent-inference}).
 */
public final class PackedModel extends Module {
    /** Per-channel affine map y = scale * x + shift: an eval-mode batch norm folded. */
    public record Affine(float[] scale, float[] shift) {
        public Affine {
            if (scale == null || shift == null || scale.length != shift.length) {
                throw new IllegalArgumentException("Affine: scale and shift must be non-null and of equal length, got "
                        + (scale == null ? "null" : scale.length) + " and " + (shift == null ? "null" : shift.length));
            }
        }

        /** Folds eval-mode batch norm: scale = gamma / sqrt(var + eps), shift = beta - mean * scale (as the CPU kernel does). */
        public static Affine fromBatchNorm(float[] gamma, float[] beta, float[] mean, float[] var, float eps) {
            int c = gamma.length;
            if (beta.length != c || mean.length != c || var.length != c) {
                throw new IllegalArgumentException("Affine.fromBatchNorm: gamma, beta, mean and var must have equal lengths, got "
                        + c + ", " + beta.length + ", " + mean.length + ", " + var.length);
            }
            float[] scale = new float[c], shift = new float[c];
            for (int i = 0; i < c; i++) {
                float inv = (float) (1.0 / Math.sqrt(var[i] + eps));
                scale[i] = gamma[i] * inv;
                shift[i] = beta[i] - mean[i] * scale[i];
            }
            return new Affine(scale, shift);
        }

        /** The entries at {@code idx}. */
        public Affine select(int[] idx) {
            float[] s = new float[idx.length], t = new float[idx.length];
            for (int i = 0; i < idx.length; i++) {
                s[i] = scale[idx[i]];
                t[i] = shift[idx[i]];
            }
            return new Affine(s, t);
        }

        public int size() { return scale.length; }
    }

    /** A dense convolution without bias followed by a folded BN: the stem and the shortcut projections. weight is (out, in, k, k). */
    public record DenseConv(int inChannels, int outChannels, int kernel, int stride, int padding, float[] weight, Affine bn) {}

    /**
     * One branch. {@code in}: for conv_a, channels of the block input; for conv_b, original conv_a filter indices
     * (each must be the output of some conv_a branch). {@code out}: for conv_a, original conv_a filter indices; for
     * conv_b, residual channels (the scatter-add indices). weight is (out.length, in.length, k, k); bn has
     * out.length entries.
     */
    public record Branch(int[] in, int[] out, float[] weight, Affine bn) {}

    /**
     * A basic block. {@code planes} is the width of conv_a's filter index space and of the block output;
     * {@code shortcut} is null for an identity residual (then inChannels == planes and stride 1);
     * {@code residualBias} (planes, may be null) is a constant added to the residual: the BN output of conv_b
     * filters whose inputs were all pruned.
     */
    public record Block(String name, int inChannels, int planes, int stride, int kernel, List<Branch> convA,
                        List<Branch> convB, DenseConv shortcut, float[] residualBias) {
        public Block {
            convA = List.copyOf(convA);
            convB = List.copyOf(convB);
        }

        public int padding() { return kernel / 2; }
    }

    /** The linear classifier: weight (classes, features), bias (classes). */
    public record Classifier(int features, int classes, float[] weight, float[] bias) {}

    /**
     * Everything a packed model is made of, as plain arrays: what {@link Packer} produces, what the packed file
     * stores, and what an importer builds. {@code inputSize} is the side of the square input that {@link #macs()}
     * counts for (32 for CIFAR); other sizes still run.
     */
    public record Structure(String architecture, int depth, int inputChannels, int inputSize, DenseConv stem,
                            List<Block> blocks, Classifier classifier) {
        public Structure {
            blocks = List.copyOf(blocks);
        }
    }

    /**
     * Per-block figures for the structure report: multiply-adds per image, packed and dense, shortcut included;
     * {@code shortcutMacs}/{@code shortcutParams} are the projection's share (not prunable).
     */
    public record BlockStats(String name, long macs, long denseMacs, long params, long denseParams, int outSize,
                             long shortcutMacs, long shortcutParams) {}

    private final Structure structure;
    private final int[] inSize;                 // input side of each block at structure.inputSize
    /** The weights and plans on the model's device; {@link #to} swaps in a new set. */
    private volatile Plans plans;

    /**
     * The block activations of one forward, by length and slot, reused across forwards: every
     * intermediate is fully overwritten before it is read (the stem and shortcut plans write all their
     * output channels), so stale contents never matter and nothing needs zeroing. Slots 0 and 1 hold the block
     * activations (the current one and a projection's output).
     */
    private static final class Workspace {
        private final Backend be;
        private final Map<Long, Buffer> buffers = new HashMap<>();

        Workspace(Backend be) { this.be = be; }

        private final java.util.Set<Long> used = new java.util.HashSet<>();

        Buffer get(int slot, int length) {
            long key = ((long) length << 2) | slot;
            used.add(key);
            return buffers.computeIfAbsent(key, k -> {
                // Kept across forwards, so never from a StepArena that a caller has open around one.
                try (var outside = StepArena.suspend()) {
                    return be.allocate(DType.FLOAT32, length);
                }
            });
        }

        /**
         * Keeps only the buffers of the forward just done, so that a model serving many batch sizes holds one
         * forward's activations, not one set per size seen (a load test with batches of 1 to 64 images once left
         * about 270 MB here for a ResNet-8).
         */
        Workspace trim() {
            buffers.keySet().retainAll(used);
            used.clear();
            return this;
        }
    }

    private PackedModel(Structure s) {
        this.structure = s;
        int n = s.blocks().size();
        inSize = new int[n];
        int size = outSize(s.inputSize(), s.stem().kernel(), s.stem().stride(), s.stem().padding());
        for (int i = 0; i < n; i++) {
            Block b = s.blocks().get(i);
            inSize[i] = size;
            size = outSize(size, b.kernel(), b.stride(), b.padding());
        }
        plans = new Plans(s, Device.cpu());
        super.train(false);
    }

    /**
     * The packed weights as device buffers and the branch-convolution plans over them, built once per device:
     * conv_a's branches write a concatenation (pos maps an original conv_a filter to its place there), conv_b's read
     * it, and the block's residual constant and final ReLU ride on conv_b's output stage.
     */
    private static final class Plans {
        final Device device;
        final Backend be;
        final BranchConv stemPlan;
        final BranchConv[] planA, planB, planShortcut;
        final Buffer[] residualBias;
        final Buffer fcWeight, fcBias;
        /** Intermediate buffers of the last forward, taken by the next one (a concurrent forward allocates its own). */
        final AtomicReference<Workspace> spare = new AtomicReference<>();

        Plans(Structure s, Device device) {
            this.device = device;
            this.be = ai.bonsai.backend.Backends.of(device);
            stemPlan = fullPlan(s.stem(), true);
            int n = s.blocks().size();
            planA = new BranchConv[n];
            planB = new BranchConv[n];
            planShortcut = new BranchConv[n];
            residualBias = new Buffer[n];
            for (int i = 0; i < n; i++) {
                Block b = s.blocks().get(i);
                if (b.shortcut() != null) planShortcut[i] = fullPlan(b.shortcut(), false);
                if (b.residualBias() != null) residualBias[i] = be.fromFloats(b.residualBias());
                if (b.convA().isEmpty() || b.convB().isEmpty()) continue;
                // conv_a writes the concatenation of its branches; pos maps an original conv_a filter to its place there.
                int[] pos = new int[b.planes()];
                List<BranchConv.Branch> a = new ArrayList<>();
                int width = 0;
                for (Branch br : b.convA()) {
                    int[] out = new int[br.out().length];
                    for (int j = 0; j < out.length; j++) {
                        pos[br.out()[j]] = width;
                        out[j] = width++;
                    }
                    a.add(new BranchConv.Branch(br.in(), out, be.fromFloats(br.weight()), be.fromFloats(br.bn().scale()),
                            be.fromFloats(br.bn().shift()), true));
                }
                planA[i] = new BranchConv(b.inChannels(), width, b.kernel(), b.stride(), b.padding(), a);
                List<BranchConv.Branch> c = new ArrayList<>();
                for (Branch br : b.convB()) {
                    int[] in = new int[br.in().length];
                    for (int j = 0; j < in.length; j++) in[j] = pos[br.in()[j]];
                    c.add(new BranchConv.Branch(in, br.out(), be.fromFloats(br.weight()), be.fromFloats(br.bn().scale()),
                            be.fromFloats(br.bn().shift()), false));
                }
                // The block's residual constant and final ReLU ride on conv_b's output stage: no extra pass over it.
                planB[i] = new BranchConv(width, b.planes(), b.kernel(), 1, b.padding(), c, residualBias[i], true);
            }
            fcWeight = be.fromFloats(s.classifier().weight());
            fcBias = be.fromFloats(s.classifier().bias());
        }

        private BranchConv fullPlan(DenseConv d, boolean relu) {
            int[] in = iota(d.inChannels()), out = iota(d.outChannels());
            return new BranchConv(d.inChannels(), d.outChannels(), d.kernel(), d.stride(), d.padding(),
                    List.of(new BranchConv.Branch(in, out, be.fromFloats(d.weight()), be.fromFloats(d.bn().scale()),
                            be.fromFloats(d.bn().shift()), relu)));
        }
    }

    /**
     * Moves the packed weights to {@code device} (a CUDA device runs the same plans on the CUDA backend's
     * branch-convolution kernels); inputs to {@link #forward} must then be on that device. Returns this.
     */
    @Override public PackedModel to(Device device) {
        if (!plans.device.equals(device)) plans = new Plans(structure, device);
        return this;
    }

    @Override public Device device() { return plans.device; }

    static int[] iota(int n) {
        int[] a = new int[n];
        for (int i = 0; i < n; i++) a[i] = i;
        return a;
    }

    static int outSize(int in, int kernel, int stride, int padding) { return (in + 2 * padding - kernel) / stride + 1; }

    /**
     * Validates {@code s} (channel indices in range, no output twice within a layer, conv_b inputs produced by
     * conv_a, array lengths consistent with the lists and widths) and builds the model. Errors name the block,
     * the branch and the field, with expected and actual values.
     */
    public static PackedModel of(Structure s) {
        PackedValidation.validate(s, "packed model");
        return new PackedModel(s);
    }

    /** As {@link #of(Structure)}, with {@code source} (a file name) at the start of every error message. */
    static PackedModel of(Structure s, String source) {
        PackedValidation.validate(s, source);
        return new PackedModel(s);
    }

    /** Reads a packed file written by {@link #save(Path)}; see {@link PackedFormat}. */
    public static PackedModel load(Path file) { return PackedFormat.read(file); }

    /** Writes this model as a packed file (safetensors with the structure in {@code __metadata__}). */
    public void save(Path file) { PackedFormat.write(this, file); }

    public Structure structure() { return structure; }

    @Override public Module train(boolean on) {
        if (on) throw new IllegalStateException("PackedModel is inference-only: it has no training mode");
        return super.train(false);
    }

    // ---------------------------------------------------------------- forward

    /** x is (N, inputChannels, H, W), normalised as for the dense model; returns logits (N, classes). */
    @Override public Tensor forward(Tensor x) { return forward(x, null); }

    /**
     * As {@link #forward(Tensor)}; when {@code nanos} is not null (length blocks + 2) it receives the wall time of
     * the stem, each block and the head (pool + classifier), added to what is there.
     */
    public Tensor forward(Tensor x, long[] nanos) {
        x.requireFloat("PackedModel.forward");
        int nb = structure.blocks().size();
        if (nanos != null && nanos.length != nb + 2) {
            throw new IllegalArgumentException("PackedModel.forward: nanos must have blocks + 2 = " + (nb + 2) + " entries, got " + nanos.length);
        }
        Plans pl = plans;
        if (!x.device().equals(pl.device)) {
            throw new IllegalArgumentException("PackedModel.forward: x is on " + x.device() + ", the model on " + pl.device + " (move one with .to(device))");
        }
        Backend be = pl.be;
        int c0 = structure.inputChannels();
        if (x.rank() != 4 || x.dim(1) != c0) {
            throw new IllegalArgumentException("PackedModel.forward: expected x (N," + c0 + ",H,W), got " + x.shape());
        }
        int n = x.dim(0), h = x.dim(2), w = x.dim(3);
        DenseConv st = structure.stem();
        if (outSize(h, st.kernel(), st.stride(), st.padding()) < 1 || outSize(w, st.kernel(), st.stride(), st.padding()) < 1) {
            throw new IllegalArgumentException("PackedModel.forward: input " + x.shape() + " is smaller than the stem's kernel");
        }
        long t0 = System.nanoTime();
        Workspace ws = pl.spare.getAndSet(null);
        if (ws == null) ws = new Workspace(be);
        int c = st.outChannels();
        int oh = pl.stemPlan.outSize(h), ow = pl.stemPlan.outSize(w);
        int curSlot = 0;
        Buffer cur = ws.get(curSlot, Math.multiplyExact(n, c * oh * ow));
        be.branchConv2d(pl.stemPlan, x.buffer(), n, h, w, cur, false);
        h = oh;
        w = ow;
        t0 = lap(nanos, 0, t0);
        for (int i = 0; i < nb; i++) {
            Block b = structure.blocks().get(i);
            int bh = outSize(h, b.kernel(), b.stride(), b.padding()), bw = outSize(w, b.kernel(), b.stride(), b.padding());
            if (bh < 1 || bw < 1) throw new IllegalArgumentException("PackedModel.forward: input " + x.shape() + " is too small for block " + b.name());
            Buffer res = cur;                     // identity: accumulate into the block input, which is ours
            if (pl.planShortcut[i] != null) {
                curSlot = 1 - curSlot;
                res = ws.get(curSlot, n * b.planes() * bh * bw);
                be.branchConv2d(pl.planShortcut[i], cur, n, h, w, res, false);
            }
            if (pl.planA[i] != null) {
                // conv_a then conv_b (which adds, then the block's constant and ReLU); conv_a's output t only ever
                // exists one unit of images at a time.
                be.branchConv2dPair(pl.planA[i], pl.planB[i], cur, n, h, w, res, true);
            } else {                                                   // conv_b fully pruned: the residual only
                if (pl.residualBias[i] != null) {
                    int[] dims = {n, b.planes(), bh, bw};
                    be.binary(BinaryOp.ADD, res, dims, pl.residualBias[i], new int[] {1, b.planes(), 1, 1}, res, dims);
                }
                be.unary(UnaryOp.RELU, res, res);
            }
            cur = res;
            h = bh;
            w = bw;
            t0 = lap(nanos, i + 1, t0);
        }
        Classifier fc = structure.classifier();
        int feat = fc.features();
        Buffer pooled = be.allocate(DType.FLOAT32, n * feat);
        be.adaptiveAvgPool2d(cur, n * feat, h, w, 1, 1, pooled);
        Buffer logits = be.allocate(DType.FLOAT32, n * fc.classes());
        be.gemm(false, true, 1, n, fc.classes(), feat, 1f, pooled, 0, pl.fcWeight, 0, 0f, logits);
        int[] od = {n, fc.classes()};
        be.binary(BinaryOp.ADD, logits, od, pl.fcBias, new int[] {1, fc.classes()}, logits, od);
        pl.spare.set(ws.trim());
        lap(nanos, nb + 1, t0);
        return Tensor.of(Shape.of(n, fc.classes()), logits);
    }

    private static long lap(long[] nanos, int slot, long since) {
        if (nanos == null) return since;
        long now = System.nanoTime();
        nanos[slot] += now - since;
        return now;
    }

    // ---------------------------------------------------------------- counts and report

    /** Per-block multiply-adds and weights for one image of inputSize x inputSize, packed and dense. */
    public List<BlockStats> blockStats() {
        List<BlockStats> out = new ArrayList<>();
        for (int i = 0; i < structure.blocks().size(); i++) {
            Block b = structure.blocks().get(i);
            int s = inSize[i], o = outSize(s, b.kernel(), b.stride(), b.padding());
            long kk = (long) b.kernel() * b.kernel();
            long params = 0;
            for (Branch br : b.convA()) params += (long) br.in().length * br.out().length * kk;
            for (Branch br : b.convB()) params += (long) br.in().length * br.out().length * kk;
            long dense = (long) b.planes() * b.inChannels() * kk + (long) b.planes() * b.planes() * kk;
            long sc = 0;
            if (b.shortcut() != null) sc = (long) b.shortcut().outChannels() * b.shortcut().inChannels() * b.shortcut().kernel() * b.shortcut().kernel();
            long area = (long) o * o;
            out.add(new BlockStats(b.name(), (params + sc) * area, (dense + sc) * area, params + sc, dense + sc, o, sc * area, sc));
        }
        return out;
    }

    /** Multiply-adds of the stem for one image. */
    private long stemMacs() {
        DenseConv st = structure.stem();
        long o = outSize(structure.inputSize(), st.kernel(), st.stride(), st.padding());
        return stemParams() * o * o;
    }

    private long stemParams() {
        DenseConv st = structure.stem();
        return (long) st.outChannels() * st.inChannels() * st.kernel() * st.kernel();
    }

    private long classifierParams() {
        Classifier fc = structure.classifier();
        return (long) fc.features() * fc.classes() + fc.classes();
    }

    /** Whole-network multiply-adds per image (convolutions and classifier weights, ModelStats' convention). */
    public long macs() {
        long m = stemMacs() + (long) structure.classifier().features() * structure.classifier().classes();
        for (BlockStats b : blockStats()) m += b.macs();
        return m;
    }

    /** The same count for the unpruned network of the same widths. */
    public long denseMacs() {
        long m = stemMacs() + (long) structure.classifier().features() * structure.classifier().classes();
        for (BlockStats b : blockStats()) m += b.denseMacs();
        return m;
    }

    /**
     * Multiply-adds and weights of the prunable convolutions only (every conv_a and conv_b: spec section 1),
     * packed and dense: the accounting behind the published pruned-FLOPs and pruned-params figures.
     */
    public record PrunableCounts(long macs, long denseMacs, long params, long denseParams) {
        public double prunedFlopsPercent() { return 100.0 * (1 - (double) macs / denseMacs); }

        public double prunedParamsPercent() { return 100.0 * (1 - (double) params / denseParams); }
    }

    public PrunableCounts prunableCounts() {
        long m = 0, dm = 0, p = 0, dp = 0;
        for (BlockStats b : blockStats()) {
            m += b.macs() - b.shortcutMacs();
            dm += b.denseMacs() - b.shortcutMacs();
            p += b.params() - b.shortcutParams();
            dp += b.denseParams() - b.shortcutParams();
        }
        return new PrunableCounts(m, dm, p, dp);
    }

    /** Convolution and classifier weights plus the classifier bias (BN not counted, as in ModelStats). */
    public long params() {
        long p = stemParams() + classifierParams();
        for (BlockStats b : blockStats()) p += b.params();
        return p;
    }

    public long denseParams() {
        long p = stemParams() + classifierParams();
        for (BlockStats b : blockStats()) p += b.denseParams();
        return p;
    }

    /** The structure report: per block its branches as (in, out) widths and its multiply-adds, packed vs dense. */
    public String report() {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "%s depth %d, %d blocks, input %dx%d%n", structure.architecture(), structure.depth(),
                structure.blocks().size(), structure.inputSize(), structure.inputSize()));
        List<BlockStats> stats = blockStats();
        for (int i = 0; i < stats.size(); i++) {
            Block b = structure.blocks().get(i);
            BlockStats s = stats.get(i);
            sb.append(String.format(Locale.ROOT, "  %-10s %3d->%-3d s%d %s  MACs %,11d of %,11d (%5.1f%%)%n", b.name(), b.inChannels(),
                    b.planes(), b.stride(), b.shortcut() == null ? "identity  " : "projection", s.macs(), s.denseMacs(),
                    100.0 * s.macs() / s.denseMacs()));
            sb.append("      conv_a ").append(widths(b.convA())).append(System.lineSeparator());
            sb.append("      conv_b ").append(widths(b.convB()));
            int written = 0;
            for (Branch br : b.convB()) written += br.out().length;
            sb.append(String.format(Locale.ROOT, "  (%d of %d residual channels pass through)%n", b.planes() - written, b.planes()));
        }
        sb.append(String.format(Locale.ROOT, "multiply-adds %,d packed vs %,d dense (%.2fx fewer, %.1f%% pruned); params %,d vs %,d%n",
                macs(), denseMacs(), (double) denseMacs() / macs(), 100.0 * (1 - (double) macs() / denseMacs()), params(), denseParams()));
        return sb.toString();
    }

    private static String widths(List<Branch> branches) {
        if (branches.isEmpty()) return "(no branches)";
        StringBuilder sb = new StringBuilder();
        for (Branch br : branches) {
            if (sb.length() > 0) sb.append(' ');
            sb.append('(').append(br.in().length).append(", ").append(br.out().length).append(')');
        }
        return branches.size() + " branches (in, out): " + sb;
    }
}
