package ai.bonsai.dsp.pack;

import ai.bonsai.autograd.GradMode;
import ai.bonsai.backend.Backend;
import ai.bonsai.backend.BranchConv;
import ai.bonsai.nn.Functional;
import ai.bonsai.nn.Module;
import ai.bonsai.tensor.Buffer;
import ai.bonsai.tensor.Device;
import ai.bonsai.tensor.Tensor;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Any pruned model, packed (spec section 6, beyond CIFAR ResNets): an inference-only replay of the model's traced
 * graph ({@link ai.bonsai.dsp.graph.ModelGraph}) in which every groups=1 convolution is a multi-branch
 * convolution ({@link Backend#branchConv2d}) with its batch norm folded, its ReLU fused and, where it feeds a
 * residual add, its output scatter-added into the other summand. Built by {@link GraphPacker} from a masked model,
 * or read from a file by {@link #load(Path)} ({@link PackedGraphFormat}); both go through {@link #of(Structure)}'s
 * validation.
 *
 * <p>Values are numbered as steps: value 0 is the model input, value {@code i + 1} the output of step {@code i};
 * a step reads only earlier values. What each step type does, and its {@code ints}, {@code value}, {@code plans}
 * and {@code tensors}:
 * <pre>
 *   CONV              inputs {x} or {x, r}; plans {p}: y = branchConv(p, x), or with r: y = copy(r) += branchConv(p, x)
 *                     (then p's output stage: the constants of vanished filters, the ReLU after the add)
 *   CONV_PAIR         inputs {x} or {x, r}; plans {a, b}: as CONV with plan b applied to branchConv(a, x) (a's output
 *                     is the compacted live channels that b reads), through {@link Backend#branchConv2dPair}
 *   GROUPED_CONV      inputs {x}; ints {in, out, kernel, stride, padding, groups}; tensors weight (out, in/groups, k, k),
 *                     scale, shift (out): y = scale * conv(x) + shift (a depthwise convolution, BN folded)
 *   AFFINE            inputs {x}; tensors scale, shift (C): a batch norm that follows no convolution
 *   RELU, MIN, MAX    inputs {x}; value v for MIN/MAX: relu(x), min(x, v), max(x, v)
 *   MAX_POOL          inputs {x}; ints {kernel, stride, padding}
 *   ADAPTIVE_AVG_POOL inputs {x}; ints {outH, outW}
 *   FLATTEN           inputs {x} (N, C, H, W) -&gt; (N, C*H*W)
 *   LINEAR            inputs {x}; ints {in, out}; tensors weight (out, in), bias (out, optional)
 *   ADD               inputs {a, b}
 *   CONCAT            inputs {a, b, ...}, along the channel axis
 * </pre>
 *
 * <p>It is a {@link Module} so that evaluation loops take it, but it has no parameters and no training mode. It runs
 * on the CPU. A forward allocates its activations (nothing is shared between forwards), so concurrent forwards on
 * one instance are safe; buffers of values no later step reads are dropped as the forward goes, and a residual
 * buffer that nothing reads afterwards is accumulated into in place instead of copied.
 */
public final class PackedGraph extends Module {
    /** What a step does; see the class comment. */
    public enum Type { CONV, CONV_PAIR, GROUPED_CONV, AFFINE, RELU, MIN, MAX, MAX_POOL, ADAPTIVE_AVG_POOL, FLATTEN, LINEAR, ADD, CONCAT }

    /**
     * One branch of a plan, as plain arrays: {@code in} channels of the plan's source, {@code out} channels of its
     * destination, weight (out.length, in.length, k, k), scale and shift (out.length), and whether a ReLU follows.
     */
    public record Branch(int[] in, int[] out, float[] weight, float[] scale, float[] shift, boolean relu) {}

    /** A {@link BranchConv} as plain arrays; {@code outputShift} (outChannels) may be null. */
    public record Plan(int inChannels, int outChannels, int kernel, int stride, int padding, List<Branch> branches,
                       float[] outputShift, boolean outputRelu) {
        public Plan {
            branches = List.copyOf(branches);
        }

        /** Multiply-adds per image of the given input size (spatial). */
        long macs(int h, int w) {
            long per = 0;
            for (Branch b : branches) per += (long) b.out().length * b.in().length * kernel * kernel;
            return per * outSize(h, kernel, stride, padding) * outSize(w, kernel, stride, padding);
        }

        long params() {
            long p = 0;
            for (Branch b : branches) p += b.weight().length;
            return p;
        }
    }

    /**
     * One step. {@code name} is the traced op it stands for (for reports); {@code tensors} maps the names listed for
     * its type to arrays; unused fields are empty ({@code ints}), 0 ({@code value}) or empty lists.
     */
    public record Step(Type type, String name, int[] inputs, int[] ints, float value, List<Plan> plans, Map<String, float[]> tensors) {
        public Step {
            inputs = inputs.clone();
            ints = ints.clone();
            plans = List.copyOf(plans);
            tensors = Map.copyOf(tensors);
        }

        @Override public int[] inputs() { return inputs.clone(); }

        @Override public int[] ints() { return ints.clone(); }

        int input(int i) { return inputs[i]; }
    }

    /**
     * Everything a packed graph is made of. {@code inputDims} is the (C, H, W) the figures are counted for (other
     * H, W still run); {@code output} the value returned; {@code denseMacs} and {@code denseParams} the unpruned
     * model's convolution and linear figures (ModelStats' convention), kept for reports.
     */
    public record Structure(int[] inputDims, List<Step> steps, int output, long denseMacs, long denseParams) {
        public Structure {
            inputDims = inputDims.clone();
            steps = List.copyOf(steps);
        }

        @Override public int[] inputDims() { return inputDims.clone(); }
    }

    private final Structure structure;
    private final Backend be;
    private final BranchConv[][] plans;          // per step, its built plans
    private final Tensor[][] constants;          // per step, its weight / scale / shift tensors in a fixed order
    private final int[] lastUse;                 // per value, the last step that reads it (directly or through a flatten)
    private final int[][] dims;                  // per value, its shape at inputDims, batch 1
    private final long macs, params;

    private PackedGraph(Structure s, Shapes shapes) {
        this.structure = s;
        this.be = ai.bonsai.backend.Backends.of(Device.cpu());
        this.dims = shapes.dims;
        int n = s.steps().size();
        plans = new BranchConv[n][];
        constants = new Tensor[n][];
        lastUse = new int[n + 1];
        Arrays.fill(lastUse, -1);
        long m = 0, p = 0;
        for (int i = 0; i < n; i++) {
            Step st = s.steps().get(i);
            plans[i] = new BranchConv[st.plans().size()];
            for (int j = 0; j < plans[i].length; j++) plans[i][j] = build(st.plans().get(j));
            for (int v : st.inputs) lastUse[v] = i;
            int[] in = dims[st.input(0)];
            switch (st.type()) {
                case CONV -> {
                    m += st.plans().get(0).macs(in[1], in[2]);
                    p += st.plans().get(0).params();
                }
                case CONV_PAIR -> {
                    Plan a = st.plans().get(0), b = st.plans().get(1);
                    m += a.macs(in[1], in[2]) + b.macs(outSize(in[1], a.kernel(), a.stride(), a.padding()), outSize(in[2], a.kernel(), a.stride(), a.padding()));
                    p += a.params() + b.params();
                }
                case GROUPED_CONV -> {
                    int[] out = dims[i + 1];
                    long w = st.tensors().get("weight").length;
                    m += w * out[1] * out[2];
                    p += w;
                    constants[i] = new Tensor[] {tensor(st, "weight", st.ints[1], st.ints[0] / st.ints[5], st.ints[2], st.ints[2]),
                            tensor(st, "scale", 1, st.ints[1], 1, 1), tensor(st, "shift", 1, st.ints[1], 1, 1)};
                }
                case AFFINE -> constants[i] = new Tensor[] {tensor(st, "scale", 1, in[0], 1, 1), tensor(st, "shift", 1, in[0], 1, 1)};
                case LINEAR -> {
                    float[] bias = st.tensors().get("bias");
                    m += st.tensors().get("weight").length;
                    p += st.tensors().get("weight").length + (bias == null ? 0 : bias.length);
                    constants[i] = new Tensor[] {tensor(st, "weight", st.ints[1], st.ints[0]), bias == null ? null : tensor(st, "bias", st.ints[1])};
                }
                case MIN, MAX -> constants[i] = new Tensor[] {Tensor.scalar(st.value())};
                default -> { }
            }
        }
        lastUse[s.output()] = n;                  // the result outlives every step
        // A flatten's output shares its input's buffer: the input lives as long as the flatten's output does.
        for (int i = n - 1; i >= 0; i--) {
            Step st = s.steps().get(i);
            if (st.type() == Type.FLATTEN) lastUse[st.input(0)] = Math.max(lastUse[st.input(0)], lastUse[i + 1]);
        }
        macs = m;
        params = p;
        super.train(false);
    }

    private static Tensor tensor(Step st, String name, int... shape) { return Tensor.of(st.tensors().get(name), shape); }

    private BranchConv build(Plan p) {
        List<BranchConv.Branch> out = new ArrayList<>();
        for (Branch b : p.branches()) {
            out.add(new BranchConv.Branch(b.in(), b.out(), be.fromFloats(b.weight()), be.fromFloats(b.scale()), be.fromFloats(b.shift()), b.relu()));
        }
        return new BranchConv(p.inChannels(), p.outChannels(), p.kernel(), p.stride(), p.padding(), out,
                p.outputShift() == null ? null : be.fromFloats(p.outputShift()), p.outputRelu());
    }

    static int outSize(int in, int kernel, int stride, int padding) { return (in + 2 * padding - kernel) / stride + 1; }

    /**
     * Validates {@code s} (every input an earlier value, every plan's channels and geometry consistent with the shapes
     * its inputs have at {@code inputDims}, every array of the length its shape implies) and builds the model. Errors
     * name the step, its type and name, and the field, with expected and actual values.
     */
    public static PackedGraph of(Structure s) { return of(s, "packed graph"); }

    /** As {@link #of(Structure)}, with {@code source} (a file name) at the start of every error message. */
    static PackedGraph of(Structure s, String source) {
        return new PackedGraph(s, new Shapes(s, source));
    }

    /** Reads a packed graph file written by {@link #save(Path)}; see {@link PackedGraphFormat}. */
    public static PackedGraph load(Path file) { return PackedGraphFormat.read(file); }

    /** Writes this model as a packed graph file (safetensors with the steps in {@code __metadata__}), atomically. */
    public void save(Path file) { PackedGraphFormat.write(this, file, Map.of()); }

    /** Saves with extra metadata entries (strings), read back by {@link PackedGraphFormat#metadata}. */
    public void save(Path file, Map<String, String> metadata) { PackedGraphFormat.write(this, file, metadata); }

    public Structure structure() { return structure; }

    @Override public Module train(boolean on) {
        if (on) throw new IllegalStateException("PackedGraph is inference-only: it has no training mode");
        return super.train(false);
    }

    // ---------------------------------------------------------------- forward

    /** x is (N, C, H, W) with C = inputDims[0], normalised as for the dense model. */
    @Override public Tensor forward(Tensor x) {
        x.requireFloat("PackedGraph.forward");
        if (x.device().kind() != Device.Kind.CPU) throw new IllegalArgumentException("PackedGraph.forward: x is on " + x.device() + "; packed graphs run on the CPU");
        int c0 = structure.inputDims[0];
        if (x.rank() != 4 || x.dim(1) != c0) throw new IllegalArgumentException("PackedGraph.forward: expected x (N," + c0 + ",H,W), got " + x.shape());
        List<Step> steps = structure.steps();
        Tensor[] v = new Tensor[steps.size() + 1];
        v[0] = x.detach();
        try (GradMode.Scope ng = GradMode.noGrad()) {
            for (int i = 0; i < steps.size(); i++) {
                Step st = steps.get(i);
                try {
                    v[i + 1] = run(i, st, v);
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException("PackedGraph.forward: step " + i + " (" + st.type() + " " + st.name() + ") on input "
                            + x.shape() + ": " + e.getMessage(), e);
                }
                for (int in : st.inputs) if (lastUse[in] == i && in != 0) v[in] = null;   // let the GC have it
            }
        }
        return v[structure.output()];
    }

    private Tensor run(int i, Step st, Tensor[] v) {
        Tensor x = v[st.input(0)];
        Tensor[] k = constants[i];
        return switch (st.type()) {
            case CONV, CONV_PAIR -> conv(i, st, v);
            case GROUPED_CONV -> Functional.conv2d(x, k[0], null, st.ints[3], st.ints[4], st.ints[5]).mul(k[1]).add(k[2]);
            case AFFINE -> x.mul(k[0]).add(k[1]);
            case RELU -> x.relu();
            case MIN -> x.minimum(k[0]);
            case MAX -> x.maximum(k[0]);
            case MAX_POOL -> Functional.maxPool2d(x, st.ints[0], st.ints[1], st.ints[2]);
            case ADAPTIVE_AVG_POOL -> Functional.adaptiveAvgPool2d(x, st.ints[0], st.ints[1]);
            case FLATTEN -> x.flatten(1);
            case LINEAR -> Functional.linear(x, k[0], k[1]);
            case ADD -> x.add(v[st.input(1)]);
            case CONCAT -> {
                Tensor[] parts = new Tensor[st.inputs.length];
                for (int j = 0; j < parts.length; j++) parts[j] = v[st.input(j)];
                yield Tensor.cat(1, parts);
            }
        };
    }

    /** A CONV or CONV_PAIR step: into a fresh zeroed buffer, or accumulating into the residual (a copy unless it is dead after). */
    private Tensor conv(int i, Step st, Tensor[] v) {
        Tensor x = v[st.input(0)];
        boolean pair = st.type() == Type.CONV_PAIR;
        BranchConv first = plans[i][0], last = plans[i][plans[i].length - 1];
        int n = x.dim(0), h = x.dim(2), w = x.dim(3);
        int oh = first.outSize(h), ow = first.outSize(w);
        if (pair) {
            oh = oh < 1 ? 0 : last.outSize(oh);
            ow = ow < 1 ? 0 : last.outSize(ow);
        }
        if (oh < 1 || ow < 1) throw new IllegalArgumentException("input " + x.shape() + " is smaller than the kernel of " + first);
        boolean accumulate = st.inputs.length == 2;
        Tensor y;
        if (accumulate) {
            int r = st.input(1);
            Tensor res = v[r];
            if (res.rank() != 4 || res.dim(0) != n || res.dim(1) != last.outChannels() || res.dim(2) != oh || res.dim(3) != ow) {
                throw new IllegalArgumentException("the residual is " + res.shape() + " but the convolution writes (" + n + "," + last.outChannels() + "," + oh + "," + ow + ")");
            }
            // In place only when no later step reads the residual, it is not the caller's input, and (branchConv2d
            // reads x while it writes y) it is not the convolution's own input; branchConv2dPair allows that.
            boolean inPlace = r != 0 && lastUse[r] == i && (pair || r != st.input(0));
            y = inPlace ? res : res.copy();
        } else {
            y = Tensor.zeros(n, last.outChannels(), oh, ow);   // channels no branch writes are 0 (or the output stage's constant)
        }
        if (pair) {
            be.branchConv2dPair(first, last, x.buffer(), n, h, w, y.buffer(), accumulate);
        } else if (!first.branches().isEmpty()) {
            be.branchConv2d(first, x.buffer(), n, h, w, y.buffer(), accumulate);
        } else {
            // Every filter vanished: only the output stage is left (the kernels' loop would have no branch to run).
            Buffer shift = first.outputShift();
            if (shift != null) y = y.add(Tensor.of(be.toFloats(shift), 1, first.outChannels(), 1, 1));
            if (first.outputRelu()) y = y.relu();
        }
        return y;
    }

    // ---------------------------------------------------------------- counts and report

    /** Multiply-adds per image at inputDims: the packed convolutions (live branches only) and the linear layers. */
    public long macs() { return macs; }

    /**
     * Convolution weights as packed (live branches; grouped convolutions whole) plus linear weights and biases. Folded
     * batch norms and convolution biases (now part of the shift) are not counted; {@link #denseParams()}, from
     * ModelStats, does count convolution biases, so a dense model with biased convolutions reads slightly lower here.
     */
    public long params() { return params; }

    /** The dense model's figures, from {@link ai.bonsai.dsp.models.ModelStats} at packing time. */
    public long denseMacs() { return structure.denseMacs(); }

    public long denseParams() { return structure.denseParams(); }

    /** The most branches any one convolution plan has. */
    public int maxBranches() {
        int most = 0;
        for (BranchConv[] ps : plans) for (BranchConv p : ps) most = Math.max(most, p.branches().size());
        return most;
    }

    /** One line per step: value, type, source op, inputs, output shape at inputDims, and its plans' branches. */
    @Override public String toString() {
        StringBuilder sb = new StringBuilder(String.format(Locale.ROOT, "PackedGraph (input %s, output value %d): MACs %,d of %,d dense (%.1f%%), params %,d of %,d%n",
                Arrays.toString(structure.inputDims), structure.output(), macs, denseMacs(), 100.0 * macs / Math.max(1, denseMacs()), params, denseParams()));
        for (int i = 0; i < structure.steps().size(); i++) {
            Step st = structure.steps().get(i);
            sb.append(String.format(Locale.ROOT, "%4d %-17s %-28s <- %-10s %s", i + 1, st.type(), st.name(), Arrays.toString(st.inputs),
                    Arrays.toString(dims[i + 1])));
            if (st.type() == Type.MIN || st.type() == Type.MAX) sb.append(' ').append(st.value());
            if (st.ints.length > 0 && st.type() != Type.LINEAR) sb.append(" ints ").append(Arrays.toString(st.ints));
            sb.append(System.lineSeparator());
            for (BranchConv p : plans[i]) sb.append("       ").append(p).append(System.lineSeparator());
        }
        return sb.toString();
    }

    // ---------------------------------------------------------------- validation

    /** Shape inference at inputDims (batch left out), checking every step on the way. */
    private static final class Shapes {
        final int[][] dims;
        final String source;

        Shapes(Structure s, String source) {
            this.source = source;
            int[] in = s.inputDims;
            if (in.length != 3) throw fail("inputDims", "expected (C, H, W), got " + Arrays.toString(in));
            for (int d : in) if (d < 1 || d > PackedValidation.MAX_INPUT) throw fail("inputDims", "entries must be in [1, " + PackedValidation.MAX_INPUT + "], got " + Arrays.toString(in));
            if (in[0] > PackedValidation.MAX_CHANNELS) throw fail("inputDims", "channels " + in[0] + " over the limit " + PackedValidation.MAX_CHANNELS);
            int n = s.steps().size();
            dims = new int[n + 1][];
            dims[0] = in.clone();
            for (int i = 0; i < n; i++) dims[i + 1] = step(i, s.steps().get(i));
            if (s.output() < 0 || s.output() > n) throw fail("output", "value " + s.output() + " is outside [0, " + n + "]");
        }

        IllegalArgumentException fail(String where, String what) { return PackedValidation.fail(source, where, what); }

        private int[] step(int i, Step st) {
            String where = "step " + i + " (" + st.type() + " " + st.name() + ")";
            if (st.type() == null) throw fail("step " + i, "has no type");
            int[] inputs = st.inputs;
            int want = switch (st.type()) {
                case CONV, CONV_PAIR -> inputs.length == 2 ? 2 : 1;
                case ADD -> 2;
                case CONCAT -> Math.max(inputs.length, 2);     // a one-input concat would alias its input
                default -> 1;
            };
            if (inputs.length != want) throw fail(where + " inputs", "expected " + want + " value(s), got " + inputs.length);
            for (int v : inputs) if (v < 0 || v > i) throw fail(where + " inputs", "value " + v + " is not an earlier value (expected [0, " + i + "])");
            int[] x = dims[inputs[0]];
            int[] ints = st.ints;
            int wantInts = switch (st.type()) {
                case GROUPED_CONV -> 6;
                case MAX_POOL -> 3;
                case ADAPTIVE_AVG_POOL, LINEAR -> 2;
                default -> 0;
            };
            if (ints.length != wantInts) throw fail(where + " ints", "expected " + wantInts + " integers, got " + Arrays.toString(ints));
            int wantPlans = st.type() == Type.CONV ? 1 : st.type() == Type.CONV_PAIR ? 2 : 0;
            if (st.plans().size() != wantPlans) throw fail(where + " plans", "expected " + wantPlans + ", got " + st.plans().size());
            List<String> names = switch (st.type()) {
                case GROUPED_CONV -> List.of("weight", "scale", "shift");
                case AFFINE -> List.of("scale", "shift");
                case LINEAR -> st.tensors().containsKey("bias") ? List.of("weight", "bias") : List.of("weight");
                default -> List.of();
            };
            if (!st.tensors().keySet().equals(new java.util.HashSet<>(names))) {
                throw fail(where + " tensors", "expected " + names + ", got " + st.tensors().keySet());
            }
            if (!Float.isFinite(st.value())) throw fail(where + " value", "must be finite, got " + st.value());
            switch (st.type()) {
                case CONV, CONV_PAIR -> {
                    requireRank(where, x, 3);
                    int h = x[1], w = x[2], c = x[0];
                    int[] out = null;
                    for (int j = 0; j < st.plans().size(); j++) {
                        Plan p = st.plans().get(j);
                        String pw = where + " plan " + j;
                        plan(pw, p);
                        if (p.inChannels() != c) throw fail(pw + " inChannels", "expected " + c + " (the channels of value " + (j == 0 ? inputs[0] + "" : "of plan 0's output") + "), got " + p.inChannels());
                        h = outSize(h, p.kernel(), p.stride(), p.padding());
                        w = outSize(w, p.kernel(), p.stride(), p.padding());
                        if (h < 1 || w < 1) throw fail(pw, "kernel " + p.kernel() + " is larger than its padded input at inputDims");
                        c = p.outChannels();
                        out = new int[] {c, h, w};
                    }
                    if (st.type() == Type.CONV_PAIR) {
                        try {
                            BranchConv.requireChainable(plain(st.plans().get(0)), plain(st.plans().get(1)));
                        } catch (IllegalArgumentException e) {
                            throw fail(where, e.getMessage());
                        }
                        if (st.plans().get(0).branches().isEmpty() || st.plans().get(0).outputShift() != null || st.plans().get(0).outputRelu()) {
                            throw fail(where + " plan 0", "a pair's first plan needs branches and no output stage");
                        }
                    }
                    if (inputs.length == 2 && !Arrays.equals(dims[inputs[1]], out)) {
                        throw fail(where + " inputs", "the residual value " + inputs[1] + " is " + Arrays.toString(dims[inputs[1]]) + " but the convolution writes " + Arrays.toString(out));
                    }
                    return out;
                }
                case GROUPED_CONV -> {
                    requireRank(where, x, 3);
                    int cin = ints[0], cout = ints[1], k = ints[2], stride = ints[3], pad = ints[4], g = ints[5];
                    range(where + " groups", g, 1, PackedValidation.MAX_CHANNELS);
                    if (cin != x[0]) throw fail(where + " in", "expected " + x[0] + " (the channels of value " + inputs[0] + "), got " + cin);
                    range(where + " out", cout, 1, PackedValidation.MAX_CHANNELS);
                    range(where + " kernel", k, 1, PackedValidation.MAX_KERNEL);
                    range(where + " stride", stride, 1, PackedValidation.MAX_STRIDE);
                    range(where + " padding", pad, 0, PackedValidation.MAX_KERNEL);
                    if (cin % g != 0 || cout % g != 0) throw fail(where + " groups", g + " must divide in " + cin + " and out " + cout);
                    length(where + " weight", st.tensors().get("weight"), (long) cout * (cin / g) * k * k);
                    length(where + " scale", st.tensors().get("scale"), cout);
                    length(where + " shift", st.tensors().get("shift"), cout);
                    int h = outSize(x[1], k, stride, pad), w = outSize(x[2], k, stride, pad);
                    if (h < 1 || w < 1) throw fail(where, "kernel " + k + " is larger than its padded input at inputDims");
                    return new int[] {cout, h, w};
                }
                case AFFINE -> {
                    requireRank(where, x, 3);
                    length(where + " scale", st.tensors().get("scale"), x[0]);
                    length(where + " shift", st.tensors().get("shift"), x[0]);
                    return x;
                }
                case RELU, MIN, MAX -> { return x; }
                case MAX_POOL -> {
                    requireRank(where, x, 3);
                    int k = ints[0], stride = ints[1], pad = ints[2];
                    range(where + " kernel", k, 1, PackedValidation.MAX_KERNEL);
                    range(where + " stride", stride, 1, PackedValidation.MAX_KERNEL);
                    range(where + " padding", pad, 0, k / 2);
                    int h = outSize(x[1], k, stride, pad), w = outSize(x[2], k, stride, pad);
                    if (h < 1 || w < 1) throw fail(where, "kernel " + k + " is larger than its padded input at inputDims");
                    return new int[] {x[0], h, w};
                }
                case ADAPTIVE_AVG_POOL -> {
                    requireRank(where, x, 3);
                    range(where + " outH", ints[0], 1, PackedValidation.MAX_INPUT);
                    range(where + " outW", ints[1], 1, PackedValidation.MAX_INPUT);
                    return new int[] {x[0], ints[0], ints[1]};
                }
                case FLATTEN -> {
                    requireRank(where, x, 3);
                    return new int[] {Math.multiplyExact(x[0], Math.multiplyExact(x[1], x[2]))};
                }
                case LINEAR -> {
                    requireRank(where, x, 1);
                    if (ints[0] != x[0]) throw fail(where + " in", "expected " + x[0] + " (the features of value " + inputs[0] + "), got " + ints[0]);
                    range(where + " out", ints[1], 1, 1 << 24);
                    length(where + " weight", st.tensors().get("weight"), (long) ints[1] * ints[0]);
                    if (st.tensors().containsKey("bias")) length(where + " bias", st.tensors().get("bias"), ints[1]);
                    return new int[] {ints[1]};
                }
                case ADD -> {
                    if (!Arrays.equals(x, dims[inputs[1]])) throw fail(where + " inputs", "summands differ in shape: " + Arrays.toString(x) + " and " + Arrays.toString(dims[inputs[1]]));
                    return x;
                }
                case CONCAT -> {
                    requireRank(where, x, 3);
                    long c = 0;
                    for (int v : inputs) {
                        int[] d = dims[v];
                        if (d.length != 3 || d[1] != x[1] || d[2] != x[2]) throw fail(where + " inputs", "value " + v + " is " + Arrays.toString(d) + ", expected (C, " + x[1] + ", " + x[2] + ")");
                        c += d[0];
                    }
                    range(where + " channels", c, 1, PackedValidation.MAX_CHANNELS);
                    return new int[] {(int) c, x[1], x[2]};
                }
            }
            throw new AssertionError(st.type());
        }

        private void plan(String where, Plan p) {
            range(where + " inChannels", p.inChannels(), 1, PackedValidation.MAX_CHANNELS);
            range(where + " outChannels", p.outChannels(), 1, PackedValidation.MAX_CHANNELS);
            range(where + " kernel", p.kernel(), 1, PackedValidation.MAX_KERNEL);
            range(where + " stride", p.stride(), 1, PackedValidation.MAX_STRIDE);
            range(where + " padding", p.padding(), 0, PackedValidation.MAX_KERNEL);
            if (p.branches().size() > PackedValidation.MAX_BRANCHES) throw fail(where, p.branches().size() + " branches, over the limit " + PackedValidation.MAX_BRANCHES);
            long kk = (long) p.kernel() * p.kernel();
            for (int b = 0; b < p.branches().size(); b++) {
                Branch br = p.branches().get(b);
                String bw = where + " branch " + b;
                if (br.in() == null || br.out() == null) throw fail(bw, "in and out are required");
                length(bw + " weight", br.weight(), (long) br.out().length * br.in().length * kk);
                length(bw + " scale", br.scale(), br.out().length);
                length(bw + " shift", br.shift(), br.out().length);
            }
            if (p.outputShift() != null) length(where + " outputShift", p.outputShift(), p.outChannels());
            try {
                plain(p);        // indices in range, no channel twice in a branch
            } catch (IllegalArgumentException e) {
                throw fail(where, e.getMessage());
            }
        }

        /** The plan with empty buffers of the right lengths: BranchConv's own index checks, without copying weights. */
        private static BranchConv plain(Plan p) {
            Backend be = ai.bonsai.backend.Backends.of(Device.cpu());
            List<BranchConv.Branch> bs = new ArrayList<>();
            for (Branch b : p.branches()) {
                bs.add(new BranchConv.Branch(b.in(), b.out(), be.fromFloats(b.weight()), be.fromFloats(b.scale()), be.fromFloats(b.shift()), b.relu()));
            }
            return new BranchConv(p.inChannels(), p.outChannels(), p.kernel(), p.stride(), p.padding(), bs,
                    p.outputShift() == null ? null : be.fromFloats(p.outputShift()), p.outputRelu());
        }

        private void requireRank(String where, int[] x, int rank) {
            if (x.length != rank) throw fail(where, "expects a rank-" + (rank + 1) + " input (batch included), got a value of shape (N, " + Arrays.toString(x) + ")");
        }

        private void range(String where, long v, long lo, long hi) {
            if (v < lo || v > hi) throw fail(where, "expected a value in [" + lo + ", " + hi + "], got " + v);
        }

        private void length(String where, float[] a, long need) {
            if (a == null) throw fail(where, "is missing (expected " + need + " floats)");
            if (a.length != need) throw fail(where, "expected " + need + " floats, got " + a.length);
        }
    }
}
