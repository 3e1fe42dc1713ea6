package ai.bonsai.dsp.prune;

import ai.bonsai.autograd.GradMode;
import ai.bonsai.backend.BinaryOp;
import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.dsp.models.ModelStats;
import ai.bonsai.dsp.train.Plots;
import ai.bonsai.dsp.train.Trainer;
import ai.bonsai.nn.BatchNorm2d;
import ai.bonsai.nn.Conv2d;
import ai.bonsai.nn.Module;
import ai.bonsai.tensor.Tensor;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategoryChartBuilder;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Group channel pruning, DSP's second phase (spec section 5): turns learned filter groups into masks, prunes
 * the weights with them, removes the structure the masks leave dead, finds the threshold {@code beta} that
 * reaches a requested pruned-FLOPs rate by bisection, and keeps the masks applied during fine-tuning.
 *
 * <p>State lives on the model, not here, so that checkpoints carry it: every prunable {@link Conv2d} holds its
 * group logits as buffer {@code group} (G, N) and its mask as buffer {@code mask} (N, C), float 0/1. The
 * constructor registers both when absent (group zeros, mask ones) so that a strict load of a fine-tuned
 * checkpoint fills them; a group-learned checkpoint has no masks, see {@link #loadState(Map)}.
 *
 * <p>Usage, as in the reference: construct before loading the group-learned weights, call
 * {@link #initialize(double)} once, pass the wrapper as the trainer's {@link Trainer.Hooks} (it calls
 * {@link #afterStep()} after every optimiser step).
 *
 * <p>Any model built from the engine's modules works: {@link PrunableLayer#discover} traces it and names the
 * prunable layers, and the dead-structure rules below run on the traced graph ({@link DeadStructure}), not on
 * named blocks. The constructors without a discovery take a {@link CifarResNet} at 32x32.
 *
 * <h2>Dead-structure removal</h2>
 * The reference finds dead structure with 125 forward/backward passes on random inputs in training mode and
 * zeroes every conv row/column and BN channel (weight and bias) whose accumulated gradient is exactly zero,
 * overwriting the BN running statistics as a side effect. Here the same structure is found by analysing the
 * graph; running statistics are never written. The rules, applied after masking:
 * <ol>
 * <li><b>Empty filter</b> (not function-preserving, the reference's semantics): when every kernel of a prunable
 *     conv's filter {@code n} is zero, the channel after its BN is the constant {@code beta_bn[n]} in training
 *     mode ({@code beta_bn[n] - gamma[n] * mean[n] / sqrt(var[n] + eps)} in eval mode). The reference zeroes
 *     that BN channel's weight and bias (its weight gradient is exactly zero because the normalised input is
 *     zero), so the filter is gone for good; so does this rule. It is the only function change beyond the
 *     masks: in a basic block it drops, for conv_a, the constant {@code relu(bias)} the channel fed into conv_b,
 *     for conv_b (filter pruning) the constant added to the residual, which section 6's packing also assumes is
 *     gone ("output channels of no branch pass the residual through").</li>
 * <li><b>Dead input channel</b> (exact): a channel that is constantly zero, whatever the input, only ever
 *     multiplies zeros in the prunable convolutions that read it: their columns are zeroed and masked. Constants
 *     are followed forward through the graph: a BN channel with weight 0 outputs its bias in training and eval
 *     mode alike (the batch or running statistics are multiplied by zero), a ReLU maps a bias {@code <= 0} to 0
 *     (such a bias is set to 0 when only ReLUs read the BN: relu(b) = relu(0)), adds, concats and pooling carry
 *     constants. A zero conv row alone is not enough: its BN still outputs the constant bias, which is why rule 1
 *     comes first.</li>
 * <li><b>Dead filter</b> (exact): when no layer reads a channel (every weight column that reads it is zero), the
 *     prunable filters that write it and their BN channels cannot reach the loss: rows zeroed and masked, BN weight
 *     and bias zeroed. Which filters write which channels follows the {@link ai.bonsai.dsp.graph.DependencyGroups
 *     dependency groups}: across a residual add every branch's filter goes together, and a group that reaches the
 *     model's output or an op the tracer does not understand is never removed.</li>
 * </ol>
 * Rules 2 and 3 feed each other, so they run until nothing changes (in practice one or two passes). In a CIFAR
 * ResNet the residual stream carries every block output channel to the classifier, and conv_a's inputs are ReLU
 * outputs of that stream, never identically zero, so only conv_a's filters and conv_b's columns can die. The
 * result differs from the reference's in one place: for an empty conv_a filter with a positive bn_a bias the
 * reference keeps conv_b's column at this prune (the column's gradient was nonzero during its probe, before it
 * zeroed the bias) and removes it only at the next prune; here it goes at once, so remaining FLOPs are counted a
 * little lower.
 */
public final class PruneWrapper implements Trainer.Hooks {
    public static final String GROUP_BUFFER = "group";
    public static final String MASK_BUFFER = "mask";
    /** Where the bisection of {@link #initialize(double)} starts, and its rounds (the reference's values). */
    static final double INITIAL_BETA = 0.15;
    static final int BISECTION_ROUNDS = 10;
    /** Guards the normalisation of importances, as in the reference. */
    private static final double EPS = 1e-12;

    private final Module model;
    private final int numGroups;
    private final PrunableLayer.Discovery discovery;
    private final List<PrunableLayer> layers;
    private final boolean[] filterPruned;
    private final DeadStructure deadStructure;
    private double beta;
    private PruneSummary.DeadStructure lastRemoval = PruneSummary.DeadStructure.NONE;
    private PruneRates lastRates;                  // null until the first prune

    /** Filter pruning on every {@code fpEveryNthConv}-th prunable layer ((l + 1) % n == 0); -1 disables it. */
    public PruneWrapper(Module model, int numGroups, int fpEveryNthConv) {
        this(model, numGroups, fpEveryNthConv, null);
    }

    /** Filter pruning on the listed prunable-layer indices (an empty list disables it). */
    public PruneWrapper(Module model, int numGroups, int[] fpLayerIndices) {
        this(model, numGroups, -1, requireIndices(fpLayerIndices));
    }

    /**
     * Both selections; when {@code fpLayerIndices} is not null it wins and {@code fpEveryNthConv} is ignored,
     * as in the reference. The model must be a {@link CifarResNet} (its input size is known); any other model goes
     * through {@link #PruneWrapper(Module, PrunableLayer.Discovery, int, int, int[])}.
     */
    public PruneWrapper(Module model, int numGroups, int fpEveryNthConv, int[] fpLayerIndices) {
        this(model, cifarDiscovery(model), numGroups, fpEveryNthConv, fpLayerIndices);
    }

    private static PrunableLayer.Discovery cifarDiscovery(Module model) {
        if (model instanceof CifarResNet) return PrunableLayer.discover(model, 3, 32, 32);
        throw new IllegalArgumentException("PruneWrapper: a " + (model == null ? "null model" : model.getClass().getSimpleName())
                + " has no known input size; pass PrunableLayer.discover(model, inputDims...) to the constructor that takes a Discovery");
    }

    /**
     * Any model: {@code discovery} (from {@link PrunableLayer#discover}) names the prunable layers and holds the
     * traced graph that the dead-structure analysis walks.
     */
    public PruneWrapper(Module model, PrunableLayer.Discovery discovery, int numGroups, int fpEveryNthConv, int[] fpLayerIndices) {
        if (model == null || discovery == null) throw new IllegalArgumentException("PruneWrapper: model and discovery must not be null");
        if (numGroups < 1) throw new IllegalArgumentException("PruneWrapper: numGroups must be >= 1, got " + numGroups);
        if (fpLayerIndices == null && fpEveryNthConv != -1 && fpEveryNthConv < 1) {
            throw new IllegalArgumentException("PruneWrapper: fpEveryNthConv must be >= 1 or -1 (no filter pruning), got " + fpEveryNthConv);
        }
        if (discovery.layers().isEmpty()) throw new IllegalArgumentException("PruneWrapper: the model has no prunable layers\n" + discovery.format());
        for (PrunableLayer p : discovery.layers()) {
            if (model.namedModules().get(p.name()) != p.conv()) {
                throw new IllegalArgumentException("PruneWrapper: prunable layer " + p.name() + " is not that module of this model (a discovery of another model?)");
            }
        }
        this.model = model;
        this.numGroups = numGroups;
        this.discovery = discovery;
        this.layers = discovery.layers();
        int count = layers.size();
        filterPruned = new boolean[count];
        if (fpLayerIndices != null) {
            for (int l : fpLayerIndices) {
                if (l < 0 || l >= count) {
                    throw new IllegalArgumentException("PruneWrapper: fpLayerIndices entry " + l + " is outside [0, " + count + ") (the model has " + count + " prunable layers)");
                }
                filterPruned[l] = true;
            }
        } else if (fpEveryNthConv != -1) {
            for (int l = 0; l < count; l++) filterPruned[l] = (l + 1) % fpEveryNthConv == 0;
        }
        deadStructure = new DeadStructure(discovery.graph(), layers);
        for (int l = 0; l < count; l++) {
            if (layers.get(l).conv().groups() != 1) {
                throw new IllegalArgumentException("PruneWrapper: " + layers.get(l).name() + " is a grouped convolution (groups=" + layers.get(l).conv().groups() + "); only groups=1 is supported");
            }
        }
        for (PrunableLayer p : layers) {
            ensureBuffer(p, GROUP_BUFFER, numGroups, p.filters(), 0f);
            ensureBuffer(p, MASK_BUFFER, p.filters(), p.channels(), 1f);
        }
    }

    private static int[] requireIndices(int[] fpLayerIndices) {
        if (fpLayerIndices == null) throw new IllegalArgumentException("PruneWrapper: fpLayerIndices is null; pass an empty array for no filter pruning");
        return fpLayerIndices;
    }

    /** Registers {@code name} (rows, cols) filled with {@code fill} on the layer's conv, or checks an existing one's shape. */
    private static void ensureBuffer(PrunableLayer p, String name, int rows, int cols, float fill) {
        Tensor existing = p.conv().namedBuffers().get(name);
        if (existing == null) {
            Tensor t = Tensor.zeros(p.conv().weight().device(), rows, cols);
            if (fill != 0f) t.fill(fill);
            p.conv().registerBuffer(name, t);
        } else if (existing.rank() != 2 || existing.dim(0) != rows || existing.dim(1) != cols) {
            throw new IllegalArgumentException("PruneWrapper: " + p.name() + "." + name + " has shape " + existing.shape()
                    + ", expected (" + rows + ", " + cols + ")");
        }
    }

    // ---------------------------------------------------------------- accessors

    public List<PrunableLayer> layers() { return layers; }

    /** The traced graph, the prunable layers and the convolutions left alone (with reasons). */
    public PrunableLayer.Discovery discovery() { return discovery; }

    public int numGroups() { return numGroups; }

    /** Whether the filter rule applies to prunable layer {@code l}. */
    public boolean isFilterPruned(int l) { return filterPruned[checkLayer(l)]; }

    /** The threshold on cumulative importance used by {@link #prune()}: 0 until {@link #initialize} or {@link #setBeta}. */
    public double beta() { return beta; }

    public void setBeta(double beta) {
        if (!(beta >= 0 && beta <= 1)) throw new IllegalArgumentException("PruneWrapper.setBeta: beta must be in [0, 1], got " + beta);
        this.beta = beta;
    }

    /** Layer {@code l}'s group logits A (G, N): the live buffer. */
    public Tensor groupLogits(int l) { return buffer(layers.get(checkLayer(l)), GROUP_BUFFER); }

    /** Layer {@code l}'s mask M (N, C): the live buffer. */
    public Tensor mask(int l) { return buffer(layers.get(checkLayer(l)), MASK_BUFFER); }

    /**
     * The hard assignment of layer {@code l}: the group of each filter, {@code argmax_g A[g, n]}, ties to the
     * lowest group index (all-zero logits put every filter in group 0).
     */
    public int[] hardAssignment(int l) {
        PrunableLayer p = layers.get(checkLayer(l));
        Tensor a = buffer(p, GROUP_BUFFER);
        if (a.rank() != 2 || a.dim(0) != numGroups || a.dim(1) != p.filters()) {
            throw new IllegalStateException("PruneWrapper: " + p.name() + "." + GROUP_BUFFER + " has shape " + a.shape()
                    + ", expected (" + numGroups + ", " + p.filters() + ")");
        }
        float[] logits = a.toFloatArray();
        int n = p.filters();
        int[] group = new int[n];
        for (int f = 0; f < n; f++) {
            float best = logits[f];
            for (int g = 1; g < numGroups; g++) {
                if (logits[g * n + f] > best) {      // strict: ties keep the lower index
                    best = logits[g * n + f];
                    group[f] = g;
                }
            }
        }
        return group;
    }

    private int checkLayer(int l) {
        if (l < 0 || l >= layers.size()) throw new IllegalArgumentException("PruneWrapper: layer index " + l + " is outside [0, " + layers.size() + ")");
        return l;
    }

    private static Tensor buffer(PrunableLayer p, String name) {
        Tensor t = p.conv().namedBuffers().get(name);
        if (t == null) throw new IllegalStateException("PruneWrapper: " + p.name() + " has no '" + name + "' buffer (was it replaced?)");
        return t;
    }

    // ---------------------------------------------------------------- masks

    /**
     * The masks the channel and filter rules give for the current {@code beta}, weights and group logits, one
     * (N * C) row-major array per layer; nothing is modified. The rules (spec section 5), per layer:
     * {@code I[g, c] = sum_n Phat[g, n] ||W[n, c]||^2}, normalised per group; a group keeps channel c when
     * {@code I[g, c]} exceeds the {@code count}-th smallest value, {@code count = #(cumsum < beta)} of the
     * sorted values, and keeps all channels when {@code count = 0}. On filter-pruned layers the same rule on
     * {@code J[n] = ||W[n]||^2 / sum ||W||^2} drops whole filters.
     */
    float[][] ruleMasks() {
        float[][] masks = new float[layers.size()][];
        for (PrunableLayer p : layers) {
            masks[p.index()] = layerMask(p.conv().weight().toFloatArray(), p.filters(), p.channels(), p.kernel() * p.kernel(),
                    hardAssignment(p.index()), numGroups, beta, filterPruned[p.index()]);
        }
        return masks;
    }

    /**
     * The mask (N * C, row-major) of one layer: w is (N, C, k, k) row-major with kk = k * k, {@code group[n]} the
     * hard group of filter n; {@code filterRule} adds the filter rule. Both rules read the same weights, those
     * before this prune's masks (as the reference does): the filter rule's J is not computed after the channel
     * mask. Importances are accumulated in double (the reference uses float32), which can only move channels
     * whose cumulative sum lies within rounding of beta.
     */
    static float[] layerMask(float[] w, int n, int c, int kk, int[] group, int numGroups, double beta, boolean filterRule) {
        double[] norm2 = kernelNorms2(w, n, c, kk);
        boolean[][] keep = new boolean[numGroups][];
        for (int g = 0; g < numGroups; g++) {
            double[] imp = new double[c];
            for (int f = 0; f < n; f++) {
                if (group[f] != g) continue;       // Phat[g, n]^2 is 1 for the filter's group and 0 otherwise
                for (int ch = 0; ch < c; ch++) imp[ch] += norm2[f * c + ch];
            }
            normalise(imp);
            keep[g] = keepByCumulative(imp, beta);
        }
        float[] m = new float[n * c];
        for (int f = 0; f < n; f++) {
            for (int ch = 0; ch < c; ch++) m[f * c + ch] = keep[group[f]][ch] ? 1f : 0f;
        }
        if (filterRule) {
            double[] imp = new double[n];
            for (int f = 0; f < n; f++) for (int ch = 0; ch < c; ch++) imp[f] += norm2[f * c + ch];
            normalise(imp);
            boolean[] keepFilter = keepByCumulative(imp, beta);
            for (int f = 0; f < n; f++) if (!keepFilter[f]) Arrays.fill(m, f * c, (f + 1) * c, 0f);
        }
        return m;
    }

    /** ||W[n, c]||^2 for a (N, C, k, k) weight, accumulated in double. */
    private static double[] kernelNorms2(float[] w, int n, int c, int kk) {
        double[] out = new double[n * c];
        for (int i = 0; i < n * c; i++) {
            double s = 0;
            for (int j = 0; j < kk; j++) s += (double) w[i * kk + j] * w[i * kk + j];
            out[i] = s;
        }
        return out;
    }

    private static void normalise(double[] v) {
        double sum = 0;
        for (double x : v) sum += x;
        for (int i = 0; i < v.length; i++) v[i] /= sum + EPS;
    }

    /**
     * The cumulative rule: sort ascending, {@code count = #(cumsum < beta)}; with count = 0 keep everything
     * (the reference would index -1 and prune all), otherwise keep the entries strictly above the count-th
     * smallest value, so values equal to the threshold are pruned.
     */
    static boolean[] keepByCumulative(double[] importance, double beta) {
        double[] sorted = importance.clone();
        Arrays.sort(sorted);
        int count = 0;
        double cum = 0;
        for (double v : sorted) {
            cum += v;
            if (cum < beta) count++;
        }
        boolean[] keep = new boolean[importance.length];
        if (count == 0) {
            Arrays.fill(keep, true);
            return keep;
        }
        double threshold = sorted[count - 1];
        for (int i = 0; i < keep.length; i++) keep[i] = importance[i] > threshold;
        return keep;
    }

    // ---------------------------------------------------------------- prune

    /**
     * Computes all masks for the current {@code beta}, multiplies the weights by them, removes the dead structure
     * (class comment) and returns the pruned rates over the prunable layers. BN running statistics are not
     * touched; BN weights and biases only where the rules say.
     */
    public PruneRates prune() {
        float[][] masks = ruleMasks();
        int count = layers.size();
        float[][] w = new float[count][];
        for (PrunableLayer p : layers) {
            int l = p.index(), kk = p.kernel() * p.kernel();
            w[l] = p.conv().weight().toFloatArray();
            for (int i = 0; i < masks[l].length; i++) if (masks[l][i] == 0f) Arrays.fill(w[l], i * kk, (i + 1) * kk, 0f);
        }
        lastRemoval = deadStructure.remove(w, masks);       // writes the batch norms it changes
        for (PrunableLayer p : layers) {
            int l = p.index();
            write(p.conv().weight(), w[l]);
            write(buffer(p, MASK_BUFFER), masks[l]);
        }
        lastRates = summary(false).rates();
        return lastRates;
    }

    private static void write(Tensor t, float[] values) {
        t.copyFrom(Tensor.of(values, t.device(), t.dims()));
    }

    /** What the dead-structure analysis of the last {@link #prune()} zeroed. */
    public PruneSummary.DeadStructure lastRemoval() { return lastRemoval; }

    // ---------------------------------------------------------------- initialize

    /**
     * Finds {@code beta} by bisection so that the pruned FLOPs of the prunable layers approach {@code 100 * rate}
     * percent, then prunes with it. Start 0.15, bounds [0, 1], {@value #BISECTION_ROUNDS} rounds: prune, move beta
     * halfway towards the lower bound when the pruned percentage is above the target (else towards the upper
     * one), restore every parameter and buffer. The final beta is the one after the last move, as in the
     * reference. Returns the rates of that final prune.
     */
    public PruneRates initialize(double rate) {
        if (!(rate >= 0 && rate <= 1)) throw new IllegalArgumentException("PruneWrapper.initialize: rate must be in [0, 1], got " + rate);
        Map<String, Tensor> snapshot = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : model.stateDict().entrySet()) snapshot.put(e.getKey(), e.getValue().copy());
        beta = INITIAL_BETA;
        double lower = 0, upper = 1;
        for (int round = 0; round < BISECTION_ROUNDS; round++) {
            PruneRates r = prune();
            double current = beta;
            if (r.prunedFlopsPercent() > rate * 100) {
                beta = (beta + lower) / 2;
                upper = current;
            } else {
                beta = (beta + upper) / 2;
                lower = current;
            }
            for (Map.Entry<String, Tensor> e : model.stateDict().entrySet()) e.getValue().copyFrom(snapshot.get(e.getKey()));
        }
        return prune();
    }

    /**
     * Loads a state dict strictly, except that missing {@code <layer>.mask} entries of the prunable layers are
     * allowed (a group-learned checkpoint has group logits but no masks): those masks are reset to ones.
     */
    public Module.LoadResult loadState(Map<String, Tensor> state) {
        Set<String> maskKeys = new HashSet<>();
        for (PrunableLayer p : layers) maskKeys.add(p.name() + "." + MASK_BUFFER);
        Map<String, Tensor> own = model.stateDict();
        List<String> problems = new ArrayList<>();
        for (String k : own.keySet()) if (!state.containsKey(k) && !maskKeys.contains(k)) problems.add("missing " + k);
        for (String k : state.keySet()) if (!own.containsKey(k)) problems.add("unexpected " + k);
        if (!problems.isEmpty()) throw new IllegalArgumentException("PruneWrapper.loadState: state dict does not match the model: " + problems);
        Module.LoadResult r = model.loadStateDict(state, false);
        if (!r.mismatchedKeys().isEmpty()) throw new IllegalArgumentException("PruneWrapper.loadState: shape or dtype mismatch for " + r.mismatchedKeys());
        for (PrunableLayer p : layers) if (!state.containsKey(p.name() + "." + MASK_BUFFER)) buffer(p, MASK_BUFFER).fill(1f);
        return r;
    }

    // ---------------------------------------------------------------- fine-tuning

    /**
     * After every fine-tuning step: re-applies the masks to the weights, and zeroes each BN bias whose weight is
     * zero (in every BN of the model, as the reference does), so filters removed by pruning stay removed.
     *
     * <p>This runs every step, so it runs on the weights' device with no trip through the host: a select,
     * {@code w = keep > 0 ? w : 0} (the backend's RELU_BACKWARD), with {@code keep = (mask != 0) or (w == 0)}. The
     * {@code w == 0} term leaves a masked zero exactly as it is (a -0 stays -0, as the element loop this replaces
     * only wrote non-zero entries), and a masked NaN becomes 0, so the result is bit for bit the loop's.
     * Likewise a BN bias is kept where {@code gamma != 0 or bias == 0}.
     */
    public void afterStep() {
        try (var scope = GradMode.noGrad()) {
            for (PrunableLayer p : layers) {
                Tensor weight = p.conv().weight();
                Tensor mask = buffer(p, MASK_BUFFER);
                Tensor zero = zero(weight);
                Tensor maskKept = mask.eq(zero).affine(-1f, 1f).reshape(p.filters(), p.channels(), 1, 1);
                select(weight, maskKept.maximum(weight.detach().eq(zero)));
            }
            for (Module m : model.namedModules().values()) {
                if (!(m instanceof BatchNorm2d bn)) continue;
                Tensor bias = bn.bias();
                Tensor zero = zero(bias);
                select(bias, bn.weight().detach().eq(zero).affine(-1f, 1f).maximum(bias.detach().eq(zero)));
            }
        }
    }

    /** A one-element zero on t's device, to compare with. */
    private static Tensor zero(Tensor t) { return Tensor.zeros(t.device(), 1); }

    /** {@code t = keep > 0 ? t : 0} in place, keep of t's shape and device. */
    private static void select(Tensor t, Tensor keep) {
        int[] d = t.dims();
        t.checkSameDevice("PruneWrapper.afterStep", keep);
        if (!keep.shape().equals(t.shape())) throw new IllegalStateException("PruneWrapper.afterStep: keep " + keep.shape() + " for " + t.shape());
        t.backend().binary(BinaryOp.RELU_BACKWARD, t.buffer(), d, keep.buffer(), d, t.buffer(), d);
    }

    @Override public void afterStep(Tensor x, Tensor y) { afterStep(); }

    /**
     * Recomputes the rates the progress bar shows from the masks now in the model: after they were loaded from a
     * resume checkpoint, which holds the masks of later prunes than the one this wrapper last ran.
     */
    public void refreshRates() { lastRates = summary(false).rates(); }

    /** "flops -50.1% params -40.2%" from the last prune (empty before the first). */
    @Override public String progressFields() {
        return lastRates == null ? "" : String.format("flops -%.1f%% params -%.1f%%", lastRates.prunedFlopsPercent(), lastRates.prunedParamsPercent());
    }

    // ---------------------------------------------------------------- reporting

    /** Counts the current weights (class {@link PruneSummary}); with {@code verbose}, also prints the full table. */
    public PruneSummary summary(boolean verbose) {
        List<PruneSummary.Layer> rows = new ArrayList<>();
        long totalFlops = 0, totalParams = 0;
        double remainingFlops = 0, remainingParams = 0;
        for (PrunableLayer p : layers) {
            int n = p.filters(), c = p.channels(), kk = p.kernel() * p.kernel();
            double[] norm2 = kernelNorms2(p.conv().weight().toFloatArray(), n, c, kk);
            int[] group = hardAssignment(p.index());
            long kept = 0;
            int[] groupFilters = new int[numGroups];
            boolean[][] groupChannels = new boolean[numGroups][c];
            for (int f = 0; f < n; f++) {
                boolean alive = false;
                for (int ch = 0; ch < c; ch++) {
                    if (norm2[f * c + ch] > 0) {
                        kept++;
                        alive = true;
                        groupChannels[group[f]][ch] = true;
                    }
                }
                if (alive) groupFilters[group[f]]++;
            }
            List<PruneSummary.Group> groups = new ArrayList<>();
            for (int g = 0; g < numGroups; g++) {
                int channels = 0;
                for (boolean b : groupChannels[g]) if (b) channels++;
                groups.add(new PruneSummary.Group(groupFilters[g], channels));
            }
            long params = p.conv().weight().numel();
            PruneSummary.Layer row = new PruneSummary.Layer(p.index(), p.name(), n, c, p.kernel(), filterPruned[p.index()], kept, p.flops(), params, groups);
            rows.add(row);
            totalFlops += p.flops();
            totalParams += params;
            remainingFlops += row.remainingFlops();
            remainingParams += row.remainingParams();
        }
        ModelStats dense = ModelStats.of(model, discovery.graph());
        PruneSummary s = new PruneSummary(beta, rows, totalFlops, remainingFlops, totalParams, remainingParams, dense.macs(), dense.params(), lastRemoval);
        if (verbose) System.out.print(s.format(true));
        return s;
    }

    /** A bar chart of the fraction of kernels kept in each prunable layer, written as a PNG (headless). */
    public void writeChart(Path png) {
        PruneSummary s = summary(false);
        List<String> names = new ArrayList<>();
        List<Double> kept = new ArrayList<>();
        for (PruneSummary.Layer l : s.layers()) {
            names.add(l.index() + (l.filterPruned() ? "F" : ""));
            kept.add(l.keptFraction());
        }
        CategoryChart chart = new CategoryChartBuilder().width(Math.max(600, 18 * names.size() + 150)).height(400)
                .title(String.format("Kept kernels per layer (beta %.4f, FLOPs -%.1f%%, params -%.1f%%)", s.beta(), s.prunedFlopsPercent(), s.prunedParamsPercent()))
                .xAxisTitle("prunable layer (F: filter-pruned)").yAxisTitle("fraction kept").build();
        chart.getStyler().setLegendVisible(false);
        chart.getStyler().setYAxisMin(0.0);
        chart.getStyler().setYAxisMax(1.0);
        chart.getStyler().setYAxisDecimalPattern("0.0#");
        chart.getStyler().setXAxisLabelRotation(90);
        chart.addSeries("kept", names, kept);
        Plots.writePng(png, BitmapEncoder.getBufferedImage(chart));
    }
}
