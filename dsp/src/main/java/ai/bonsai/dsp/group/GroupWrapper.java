package ai.bonsai.dsp.group;

import ai.bonsai.autograd.GradMode;
import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.dsp.prune.PrunableLayer;
import ai.bonsai.dsp.train.Trainer;
import ai.bonsai.dsp.train.TrainingRun;
import ai.bonsai.nn.Conv2d;
import ai.bonsai.nn.Functional;
import ai.bonsai.nn.Module;
import ai.bonsai.optim.Adam;
import ai.bonsai.optim.SGD;
import ai.bonsai.tensor.Device;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.BiFunction;

/**
 * Differentiable group learning (spec sections 2 to 4), the reference's {@code GroupWrapper}: learns group
 * logits A (G, N) for every prunable convolution while the network trains as a dense CNN.
 *
 * <p>Per iteration: {@link #initialize()} before the forward pass samples soft assignments
 * P = softmax_g(A / tau + Gumbel) from the wrapper's generator; after {@code optimizer.step()},
 * {@link #afterStep} runs steps 1 to 12 of spec section 4 (a one-step look-ahead at the regularised weights
 * W', a second forward/backward and step with a copy of the optimiser, the group-logit update through Adam,
 * and the hard-assignment penalty on W). The look-ahead leaves no trace: parameters, buffers (BN statistics)
 * and the user's optimiser state are exactly as before it, apart from the final penalty step on the prunable
 * weights and the Adam step on A. Parameter gradients are cleared (they belonged to the look-ahead).
 *
 * <p>The logits live on each prunable {@link Conv2d} as a buffer named {@code group} of shape (G, N), so they
 * are saved with the model ({@code stage_1.0.conv_a.group}); pruning reads them from there. An existing
 * {@code group} buffer of the right shape (for example loaded from a checkpoint) is kept, otherwise zeros are
 * registered.
 *
 * <p>Devices: build the wrapper after {@code model.to(device)} (and the optimiser after that too). Everything it
 * creates (assignments, dR/dp, the look-ahead copies, the regularisers' outputs, the group optimiser's moments) lives
 * on each prunable weight's device, and an iteration runs there: the host only draws the Gumbel noise from the
 * generator (uploaded, so every device sees the same draws) and reads the logits once per progress update
 * ({@link #stats()}). A model moved after the wrapper was built is reported by the next {@link #afterStep}.
 *
 * <p>The generator is the wrapper's own: pass one used for nothing else. Resuming ({@link #restore}) replaces it
 * with a generator at the saved state, so a resumed run draws the same Gumbel noise as an uninterrupted one.
 */
public final class GroupWrapper implements Trainer.Hooks, TrainingRun.Extra {
    /** The reference's group-logit optimiser: Adam, lr 1e-3, eps 1e-12, other defaults. */
    public static final float DEFAULT_GROUP_LR = 1e-3f;
    static final String BUFFER = "group";
    private static final String ADAM_PREFIX = "group_optimizer.", META_T = "group_t", META_GENERATOR = "group_generator";

    private final Module model;
    private final SGD optimizer;
    private final SGD lookAhead;
    private final BiFunction<Tensor, Tensor, Tensor> criterion;
    private final float lambda;
    private final long totalIterations;
    private final int numGroups;
    private final float temperature;
    private Generator generator;
    private final List<PrunableLayer> layers;
    private final GroupRegularizer[] regs;
    private final Tensor[] logits, soft, pgrad, adapted, diff, weightSnapshot;
    private final Adam groupOptimizer;
    private final Snapshot snapshot;
    private long t;
    private boolean sampled;

    /** Seed of the Gumbel noise when the reference's seven-argument constructor is used. */
    public static final long DEFAULT_SEED = 0;

    /**
     * The reference's signature exactly: {@code GroupWrapper(model, optimizer, criterion, regularization_power,
     * total_num_iterations, num_groups, temperature)}. The Gumbel noise comes from a generator seeded with
     * {@link #DEFAULT_SEED}; pass the run's own {@link Generator} with the eight-argument form instead.
     */
    public GroupWrapper(Module model, SGD optimizer, BiFunction<Tensor, Tensor, Tensor> criterion, float regularizationPower,
                        long totalIterations, int numGroups, float temperature) {
        this(model, optimizer, criterion, regularizationPower, totalIterations, numGroups, temperature, new Generator(DEFAULT_SEED));
    }

    /** The reference's constructor, for a {@link CifarResNet}; group lr 1e-3, layers printed to stdout. */
    public GroupWrapper(Module model, SGD optimizer, BiFunction<Tensor, Tensor, Tensor> criterion, float regularizationPower,
                        long totalIterations, int numGroups, float temperature, Generator g) {
        this(model, optimizer, criterion, regularizationPower, totalIterations, numGroups, temperature, g, DEFAULT_GROUP_LR);
    }

    /** As the reference's constructor, with the group optimiser's learning rate. */
    public GroupWrapper(Module model, SGD optimizer, BiFunction<Tensor, Tensor, Tensor> criterion, float regularizationPower,
                        long totalIterations, int numGroups, float temperature, Generator g, float groupLr) {
        this(model, discover(model), optimizer, criterion, regularizationPower, totalIterations, numGroups, temperature, g, groupLr,
                System.out);
    }

    /**
     * The general form: the prunable {@code layers} of {@code model} are given (for models other than
     * {@link CifarResNet}), and the layer table goes to {@code log} (null: not printed).
     */
    public GroupWrapper(Module model, List<PrunableLayer> layers, SGD optimizer, BiFunction<Tensor, Tensor, Tensor> criterion,
                        float regularizationPower, long totalIterations, int numGroups, float temperature, Generator g,
                        float groupLr, PrintStream log) {
        require(model != null && layers != null && optimizer != null && criterion != null && g != null,
                "GroupWrapper: model, layers, optimizer, criterion and generator must not be null");
        require(!layers.isEmpty(), "GroupWrapper: no prunable layers");
        require(regularizationPower >= 0 && Float.isFinite(regularizationPower), "GroupWrapper: regularizationPower must be finite and >= 0, got " + regularizationPower);
        require(totalIterations >= 1, "GroupWrapper: totalIterations must be >= 1, got " + totalIterations);
        require(numGroups >= 1, "GroupWrapper: numGroups must be >= 1, got " + numGroups);
        require(temperature > 0 && Float.isFinite(temperature), "GroupWrapper: temperature must be finite and > 0, got " + temperature);
        require(groupLr > 0 && Float.isFinite(groupLr), "GroupWrapper: groupLr must be finite and > 0, got " + groupLr);
        this.model = model;
        this.optimizer = optimizer;
        this.criterion = criterion;
        this.lambda = regularizationPower;
        this.totalIterations = totalIterations;
        this.numGroups = numGroups;
        this.temperature = temperature;
        this.generator = g;
        this.layers = List.copyOf(layers);
        int n = layers.size();
        regs = new GroupRegularizer[n];
        logits = new Tensor[n];
        soft = new Tensor[n];
        pgrad = new Tensor[n];
        adapted = new Tensor[n];
        diff = new Tensor[n];
        weightSnapshot = new Tensor[n];
        for (int l = 0; l < n; l++) {
            PrunableLayer layer = layers.get(l);
            Conv2d conv = layer.conv();
            require(conv.groups() == 1, "GroupWrapper: layer " + layer.name() + " is a grouped convolution (groups=" + conv.groups() + ")");
            regs[l] = new GroupRegularizer(layer, numGroups);
            logits[l] = groupBuffer(conv, numGroups);
            require(logits[l].device().equals(conv.weight().device()), "GroupWrapper: layer " + layer.name() + " has its weight on "
                    + conv.weight().device() + " but its group logits on " + logits[l].device() + "; move the whole model with model.to(device)");
            pgrad[l] = Tensor.zeros(conv.weight().device(), numGroups, layer.filters());
            adapted[l] = conv.weight().detach().copy();
            diff[l] = conv.weight().detach().copy();
        }
        // Built after the group buffers exist, so that it covers the whole state; step 8 reads W from it.
        snapshot = new Snapshot(model);
        for (int l = 0; l < n; l++) weightSnapshot[l] = snapshot.copyOf(layers.get(l).name() + ".weight");
        lookAhead = new SGD(optimizer.params(), optimizer.lr(), optimizer.momentum(), optimizer.dampening(), optimizer.weightDecay(),
                optimizer.nesterov());
        groupOptimizer = new Adam(List.of(logits), groupLr, 0.9f, 0.999f, 1e-12f, 0f);
        if (log != null) printLayers(log);
    }

    private static List<PrunableLayer> discover(Module model) {
        if (model instanceof CifarResNet r) return PrunableLayer.find(r);
        throw new IllegalArgumentException("GroupWrapper: cannot find the prunable layers of a " + (model == null ? "null model" : model.getClass().getSimpleName())
                + "; pass PrunableLayer.discover(model, inputDims...).layers() to the constructor that takes a List<PrunableLayer>");
    }

    private static Tensor groupBuffer(Conv2d conv, int groups) {
        Tensor existing = conv.namedBuffers().get(BUFFER);
        int n = conv.outChannels();
        if (existing != null && existing.rank() == 2 && existing.dim(0) == groups && existing.dim(1) == n) return existing;
        return conv.registerBuffer(BUFFER, Tensor.zeros(conv.weight().device(), groups, n));
    }

    private void printLayers(PrintStream out) {
        out.println("prunable layers (index, name, filters, channels, kernel):");
        for (PrunableLayer l : layers) out.printf("%3d %-22s %4d %4d %2d%n", l.index(), l.name(), l.filters(), l.channels(), l.kernel());
    }

    // ---------------------------------------------------------------- the iteration

    /** Before the forward pass: samples soft P for every layer from the generator and zeroes pgrad. */
    public void initialize() {
        try (var scope = GradMode.noGrad()) {
            for (int l = 0; l < logits.length; l++) {
                soft[l] = Functional.gumbelSoftmax(logits[l], temperature, 0, generator);
                pgrad[l].fill(0f);
            }
        }
        sampled = true;
    }

    /** The regularisation step size of the current iteration: lambda * lr * (t + 1) / T. */
    public float alpha() { return (float) ((double) lambda * optimizer.lr() * (t + 1) / totalIterations); }

    /** After {@code optimizer.step()}: steps 1 to 12 of spec section 4 on the batch (x, y) just trained on. */
    @Override public void afterStep(Tensor x, Tensor y) {
        if (!sampled) throw new IllegalStateException("GroupWrapper.afterStep: call initialize() before the forward pass of every iteration");
        // First, so that a model moved or re-registered since construction is named as such, not as a device or shape
        // mismatch deep in step 1.
        snapshot.checkCurrent();
        float alpha = alpha();
        int n = layers.size();
        try (var scope = GradMode.noGrad()) {
            for (int l = 0; l < n; l++) regs[l].compute(weight(l), soft[l], null, false, true);        // 1
            snapshot.save();                                                                          // 2
            lookAhead.copyStateFrom(optimizer);
            lookAhead.setLr(optimizer.lr());
            for (int l = 0; l < n; l++) {
                regs[l].applyStep(weight(l), alpha);                                                  // 3
                adapted[l].copyFrom(weight(l));                                                       // 4
            }
        }
        model.zeroGrad();                                                                             // 5
        Tensor loss = criterion.apply(model.forward(x), y);
        loss.backward();
        lookAhead.step();
        try (var scope = GradMode.noGrad()) {
            for (int l = 0; l < n; l++) {
                Tensor w = weight(l);
                regs[l].compute(w, soft[l], pgrad[l], true, false);                                   // 6
                regs[l].applyStep(w, alpha);                                                          // 7
                diff[l].copyFrom(w).subi(adapted[l]);                                                 // 8
                regs[l].secondOrderAdd(weightSnapshot[l], diff[l], soft[l], pgrad[l]);
            }
            snapshot.restore();                                                                       // 9
            model.zeroGrad();
            for (int l = 0; l < n; l++) logits[l].setGrad(softmaxBackward(soft[l], pgrad[l]));         // 10
            groupOptimizer.step();
            groupOptimizer.zeroGrad();
            for (int l = 0; l < n; l++) {                                                             // 11
                Tensor w = weight(l);
                regs[l].hardPenalty(w, logits[l]);
                regs[l].applyStep(w, alpha);
            }
        }
        t++;                                                                                          // 12
        sampled = false;
    }

    /**
     * Gradient of sum(P * pgrad) with respect to A for P = softmax_g(A / tau + E): the softmax Jacobian along
     * the group axis, P * (pgrad - sum_g P * pgrad), divided by tau (the noise is a constant).
     */
    private Tensor softmaxBackward(Tensor p, Tensor g) {
        Tensor pg = p.mul(g);
        return pg.sub(p.mul(pg.sum(0, true))).div(temperature);
    }

    private Tensor weight(int l) { return layers.get(l).conv().weight(); }

    // ---------------------------------------------------------------- observation

    /**
     * The mean over layers of the standard deviation of each layer's group logits, over all G * N elements of A,
     * unbiased (divided by G * N - 1) as torch.std by default. NaN when G * N = 1, as torch.
     *
     * <p>The progress bar asks for this after every step, so all layers' logits come to the host in one read (one
     * transfer from a device instead of one per layer); the sums are the same double sums as before.
     */
    public double stats() {
        float[] all = allLogits();
        double sum = 0;
        int off = 0;
        for (Tensor a : logits) {
            int len = a.numel();
            double mean = 0;
            for (int i = off; i < off + len; i++) mean += all[i];
            mean /= len;
            double ss = 0;
            for (int i = off; i < off + len; i++) ss += (all[i] - mean) * (all[i] - mean);
            sum += Math.sqrt(ss / (len - 1));
            off += len;
        }
        return sum / logits.length;
    }

    /** Every layer's logits, flattened and concatenated in layer order: one read from the device. */
    private float[] allLogits() {
        Device d = logits[0].device();
        for (Tensor a : logits) {
            if (!a.device().equals(d)) d = null;
        }
        if (d == null || d.kind() == Device.Kind.CPU || logits.length == 1) {
            // Mixed devices (never in a model moved as a whole) or the CPU, where a read is a plain copy: layer by layer.
            int total = 0;
            for (Tensor a : logits) total += a.numel();
            float[] all = new float[total];
            int off = 0;
            for (Tensor a : logits) {
                float[] v = a.toFloatArray();
                System.arraycopy(v, 0, all, off, v.length);
                off += v.length;
            }
            return all;
        }
        Tensor[] flat = new Tensor[logits.length];
        try (var scope = GradMode.noGrad()) {
            for (int l = 0; l < logits.length; l++) flat[l] = logits[l].detach().reshape(-1);
            return Tensor.cat(0, flat).toFloatArray();
        }
    }

    public List<PrunableLayer> layers() { return layers; }

    /** Layer l's group logits A (G, N): the live {@code group} buffer. */
    public Tensor logits(int l) { return logits[l]; }

    /** Layer l's soft assignment of the current iteration (null before the first {@link #initialize()}). */
    public Tensor assignment(int l) { return soft[l]; }

    /** Layer l's regulariser. */
    public GroupRegularizer regularizer(int l) { return regs[l]; }

    /** Group-learning steps done so far. */
    public long step() { return t; }

    public int numGroups() { return numGroups; }

    public Generator generator() { return generator; }

    // ---------------------------------------------------------------- Trainer.Hooks

    @Override public void beforeForward() { initialize(); }

    @Override public String progressFields() { return String.format("std %.4f", stats()); }

    // ---------------------------------------------------------------- TrainingRun.Extra

    /** The group optimiser's state (Adam moments and step counts); A itself is saved with the model. */
    @Override public Map<String, Tensor> tensors() {
        Map<String, Tensor> out = new LinkedHashMap<>();
        groupOptimizer.stateDict().forEach((k, v) -> out.put(ADAM_PREFIX + k, v));
        return out;
    }

    @Override public Map<String, String> metadata() {
        Map<String, String> m = new LinkedHashMap<>();
        m.put(META_T, Long.toString(t));
        m.put(META_GENERATOR, Long.toString(generator.state()));
        return m;
    }

    @Override public void restore(Map<String, Tensor> tensors, Map<String, String> metadata) {
        String ts = metadata.get(META_T), gs = metadata.get(META_GENERATOR);
        if (ts == null || gs == null) {
            throw new IllegalArgumentException("GroupWrapper.restore: metadata needs '" + META_T + "' and '" + META_GENERATOR + "', got keys " + metadata.keySet());
        }
        long newT;
        long state;
        try {
            newT = Long.parseLong(ts);
            state = Long.parseLong(gs);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("GroupWrapper.restore: '" + META_T + "'='" + ts + "' and '" + META_GENERATOR + "'='" + gs + "' must be integers", e);
        }
        if (newT < 0) throw new IllegalArgumentException("GroupWrapper.restore: '" + META_T + "' must be >= 0, got " + newT);
        Map<String, Tensor> adam = new LinkedHashMap<>();
        tensors.forEach((k, v) -> {
            if (k.startsWith(ADAM_PREFIX)) adam.put(k.substring(ADAM_PREFIX.length()), v);
        });
        if (adam.isEmpty()) throw new IllegalArgumentException("GroupWrapper.restore: no '" + ADAM_PREFIX + "*' tensors among " + tensors.keySet());
        groupOptimizer.loadStateDict(adam);
        t = newT;
        generator = Generator.fromState(state);
        sampled = false;
    }

    private static void require(boolean ok, String message) {
        if (!ok) throw new IllegalArgumentException(message);
    }

    /**
     * A copy of the whole model state (parameters and buffers) in preallocated tensors: save and restore are
     * plain copies, no allocation per iteration.
     */
    private static final class Snapshot {
        private final Module model;
        private final List<Tensor> live = new ArrayList<>(), copies = new ArrayList<>();
        private final Map<String, Tensor> byName = new LinkedHashMap<>();

        Snapshot(Module model) {
            this.model = model;
            for (Map.Entry<String, Tensor> e : model.stateDict().entrySet()) {
                Tensor c = e.getValue().copy();
                live.add(e.getValue());
                copies.add(c);
                byName.put(e.getKey(), c);
            }
        }

        Tensor copyOf(String name) {
            Tensor c = byName.get(name);
            if (c == null) throw new IllegalStateException("GroupWrapper: the model's state has no entry " + name);
            return c;
        }

        /** Copies the live state; {@link #checkCurrent} must have passed this iteration. */
        void save() {
            for (int i = 0; i < live.size(); i++) copies.get(i).copyFrom(live.get(i));
        }

        void restore() {
            for (int i = 0; i < live.size(); i++) live.get(i).copyFrom(copies.get(i));
        }

        /** The state's tensors must still be the ones captured (a pruned or re-registered layer would not be). */
        void checkCurrent() {
            Map<String, Tensor> now = model.stateDict();
            if (now.size() != live.size()) {
                throw new IllegalStateException("GroupWrapper: the model's state changed from " + live.size() + " to " + now.size()
                        + " entries after the wrapper was built");
            }
            int i = 0;
            for (Map.Entry<String, Tensor> e : now.entrySet()) {
                Tensor l = live.get(i++);
                if (e.getValue().buffer() != l.buffer()) {
                    throw new IllegalStateException("GroupWrapper: model state entry " + e.getKey() + " was replaced after the wrapper was built"
                            + (e.getValue().device().equals(l.device()) ? "" : " (moved from " + l.device() + " to " + e.getValue().device()
                            + ": call model.to(device) before building the GroupWrapper)"));
                }
            }
        }
    }
}
