package ai.bonsai.dsp.pack;

import ai.bonsai.dsp.graph.ModelGraph;
import ai.bonsai.dsp.graph.ModelGraph.Kind;
import ai.bonsai.dsp.graph.ModelGraph.Op;
import ai.bonsai.dsp.models.ModelStats;
import ai.bonsai.dsp.pack.PackedGraph.Branch;
import ai.bonsai.dsp.pack.PackedGraph.Plan;
import ai.bonsai.dsp.pack.PackedGraph.Step;
import ai.bonsai.dsp.pack.PackedGraph.Type;
import ai.bonsai.dsp.prune.PruneWrapper;
import ai.bonsai.nn.BatchNorm2d;
import ai.bonsai.nn.Conv2d;
import ai.bonsai.nn.Linear;
import ai.bonsai.nn.Module;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Packs any masked model into a {@link PackedGraph} (spec section 6), exactly: the packed graph computes what the
 * masked model computes in eval mode, up to float rounding. It walks the model's traced {@link ModelGraph} and
 * <ul>
 * <li>turns every groups=1 convolution into a multi-branch convolution: with M its input-channel mask (its
 *     {@code mask} buffer, or where absent the non-zero kernels of its weight), one branch per distinct row of M
 *     (filters with identical rows share a branch). A convolution without a mask whose kernels are all non-zero
 *     (the stem, projections) is one branch;</li>
 * <li>folds the batch norm that is a convolution's only consumer (eval-mode running statistics, and the conv's own
 *     bias) into the branches' scale and shift, and fuses the ReLU that is then the only consumer;</li>
 * <li>when that chain's only consumer is a residual add, scatter-adds it into the other summand (the chain runs
 *     at the add), with the ReLU after the add, if it is the add's only consumer, as the plan's output ReLU; and
 *     when a conv-BN-ReLU chain feeds only such a convolution (a basic block's conv_a then conv_b), runs the two as
 *     one {@link ai.bonsai.backend.Backend#branchConv2dPair}, the first writing only the channels the second reads;</li>
 * <li>keeps depthwise and grouped convolutions dense (BN folded, not prunable), and replays ReLU, clamps (ReLU6),
 *     max pooling, adaptive average pooling, flatten, linear layers, adds, concats and batch norms after no
 *     convolution. Any other op (opaque ops, other activations, average pooling) is an error naming it.</li>
 * </ul>
 * A filter whose row of M is empty vanishes; its output after BN (and ReLU) is a constant, which PruneWrapper makes
 * 0 and which is otherwise kept exactly in the plan's output stage. In a pair, a vanished first-plan filter that the
 * second still reads must output 0 (a constant plane is not constant after zero padding); otherwise the two
 * convolutions run as separate steps, which is exact either way.
 */
public final class GraphPacker {
    private GraphPacker() {}

    /** Traces {@code model} at {@code inputDims} (e.g. 3, 32, 32) and packs it; the model is read, never modified. */
    public static PackedGraph pack(Module model, int... inputDims) {
        ModelGraph g = ModelGraph.trace(model, inputDims);
        return PackedGraph.of(structure(model, g));
    }

    /** The packed structure of {@code model}, whose traced graph is {@code graph}, unvalidated. */
    public static PackedGraph.Structure structure(Module model, ModelGraph graph) {
        return new GraphPacker.Run(graph).run(ModelStats.of(model, graph));
    }

    /** A conv op and what is fused into it. Ops are graph op ids; -1 where absent. */
    private static final class Chain {
        final Op conv;
        int bn = -1, relu = -1, add = -1, other = -1, postRelu = -1;
        Chain first;              // a conv-BN-ReLU chain run before this one as a pair
        boolean absorbed;         // this chain is some pair's first plan

        Chain(Op conv) { this.conv = conv; }

        /** The last op of the chain: the step that replaces it produces this op's value. */
        int tail() { return max(conv.id(), bn, relu); }

        int end() { return max(tail(), add, postRelu); }

        private static int max(int... v) { return Arrays.stream(v).max().getAsInt(); }
    }

    private static final class Run {
        final ModelGraph g;
        final Map<Integer, Chain> chainOfConv = new HashMap<>();
        final Map<Integer, Chain> chainAtEnd = new HashMap<>();
        final boolean[] fused;                     // op ids whose value no step produces
        final int[] valueOf;                        // op id -> packed value
        final List<Step> steps = new ArrayList<>();

        Run(ModelGraph g) {
            this.g = g;
            fused = new boolean[g.ops().size()];
            valueOf = new int[g.ops().size()];
            Arrays.fill(valueOf, -1);
        }

        /** The op that is the only consumer of value v, or null. */
        private Op only(int v) {
            List<Integer> c = g.consumers(v);
            if (c.size() != 1 || v == g.output()) return null;
            Op op = g.op(c.get(0));
            for (int in : op.inputs()) if (in == v && countIn(op, v) > 1) return null;     // add(x, x)
            return op;
        }

        private static int countIn(Op op, int v) {
            int n = 0;
            for (int in : op.inputs()) if (in == v) n++;
            return n;
        }

        private static boolean isRelu(Op op) { return op != null && op.kind() == Kind.ACTIVATION && op.detail().equals("relu"); }

        PackedGraph.Structure run(ModelStats dense) {
            // Chains: conv [-> exclusive BN] [-> exclusive ReLU] [-> exclusive add [-> exclusive ReLU]].
            for (Op op : g.ops(Kind.CONV)) {
                Chain c = new Chain(op);
                Op next = only(op.id());
                if (next != null && next.kind() == Kind.BATCH_NORM && g.uses(next.module()) == 1) {
                    c.bn = next.id();
                    next = only(next.id());
                }
                if (op.conv().groups() == 1) {
                    if (isRelu(next)) {
                        c.relu = next.id();
                        next = only(next.id());
                    }
                    if (next != null && next.kind() == Kind.ADD) {
                        c.add = next.id();
                        c.other = next.input(0) == c.tail() ? next.input(1) : next.input(0);
                        Op after = only(next.id());
                        if (isRelu(after)) c.postRelu = after.id();
                    }
                }
                chainOfConv.put(op.id(), c);
            }
            // An add with two chains accumulates one (the masked one, else the later) into the other.
            Map<Integer, List<Chain>> byAdd = new LinkedHashMap<>();
            for (Chain c : chainOfConv.values()) if (c.add >= 0) byAdd.computeIfAbsent(c.add, k -> new ArrayList<>()).add(c);
            for (List<Chain> cs : byAdd.values()) {
                if (cs.size() < 2) continue;
                cs.sort((a, b) -> masked(a) != masked(b) ? (masked(a) ? -1 : 1) : Integer.compare(b.conv.id(), a.conv.id()));
                for (Chain c : cs.subList(1, cs.size())) {
                    c.add = c.other = c.postRelu = -1;
                }
            }
            // Pairs: a groups=1 chain ending in a ReLU whose only consumer is another groups=1 convolution. In op
            // order, and a chain already some pair's second is no first (a pair holds two convolutions, not three).
            List<Chain> inOrder = new ArrayList<>(chainOfConv.values());
            inOrder.sort((x, y) -> Integer.compare(x.conv.id(), y.conv.id()));
            for (Chain b : inOrder) {
                if (b.conv.conv().groups() != 1) continue;
                Op in = g.op(b.conv.input(0));
                Chain a = null;
                for (Chain c : inOrder) if (c.add < 0 && c.relu >= 0 && c.tail() == in.id() && c.conv.conv().groups() == 1) a = c;
                if (a != null && a.first == null && only(in.id()) == b.conv) {
                    b.first = a;
                    a.absorbed = true;
                }
            }
            for (Chain c : chainOfConv.values()) {
                for (int id : new int[] {c.conv.id(), c.bn, c.relu, c.add, c.postRelu}) if (id >= 0 && id != c.end()) fused[id] = true;
                if (c.absorbed) fused[c.end()] = true;
                else chainAtEnd.put(c.end(), c);
            }
            valueOf[0] = 0;
            for (Op op : g.ops()) {
                if (op.kind() == Kind.INPUT || fused[op.id()]) continue;
                Chain c = chainAtEnd.get(op.id());
                if (c != null) chain(c);
                else emit(op);
                valueOf[op.id()] = steps.size();
            }
            int[] dims = g.inputDims();
            if (dims.length != 3) throw new IllegalArgumentException("GraphPacker: the model's input must be (C, H, W), got " + Arrays.toString(dims));
            return new PackedGraph.Structure(dims, steps, value(g.output()), dense.macs(), dense.params());
        }

        private boolean masked(Chain c) { return c.conv.conv().namedBuffers().containsKey(PruneWrapper.MASK_BUFFER); }

        private int value(int op) {
            int v = valueOf[op];
            if (v < 0) throw new IllegalStateException("GraphPacker: value of op " + g.op(op).name() + " was fused away but is read");
            return v;
        }

        private void add(Type t, Op op, int[] inputs, int[] ints, float value, List<Plan> plans, Map<String, float[]> tensors) {
            steps.add(new Step(t, op.name(), inputs, ints, value, plans, tensors));
        }

        private void emit(Op op) {
            int x = op.inputs().length > 0 ? value(op.input(0)) : -1;
            switch (op.kind()) {
                case BATCH_NORM -> {
                    float[][] a = fold(op.batchNorm(), null);
                    add(Type.AFFINE, op, new int[] {x}, new int[0], 0, List.of(), Map.of("scale", a[0], "shift", a[1]));
                }
                case ACTIVATION -> {
                    String d = op.detail().replace(" (constant first)", "");     // min and max commute
                    if (d.equals("relu")) {
                        add(Type.RELU, op, new int[] {x}, new int[0], 0, List.of(), Map.of());
                    } else if (d.startsWith("min ") || d.startsWith("max ")) {
                        float v = Float.parseFloat(d.substring(4));
                        add(d.startsWith("min") ? Type.MIN : Type.MAX, op, new int[] {x}, new int[0], v, List.of(), Map.of());
                    } else {
                        throw unsupported(op, "the activation '" + op.detail() + "' (supported: relu, min v, max v)");
                    }
                }
                case POOL -> {
                    String d = op.detail();
                    int[] s = op.shape();
                    if (d.equals("adaptiveAvgPool2d")) {
                        add(Type.ADAPTIVE_AVG_POOL, op, new int[] {x}, new int[] {s[2], s[3]}, 0, List.of(), Map.of());
                    } else if (d.matches("maxPool2d k\\d+ s\\d+ p\\d+")) {
                        String[] p = d.split(" ");
                        int[] ints = {Integer.parseInt(p[1].substring(1)), Integer.parseInt(p[2].substring(1)), Integer.parseInt(p[3].substring(1))};
                        add(Type.MAX_POOL, op, new int[] {x}, ints, 0, List.of(), Map.of());
                    } else {
                        throw unsupported(op, "the pooling '" + d + "' (supported: adaptiveAvgPool2d, maxPool2d with a window the trace found)");
                    }
                }
                case FLATTEN -> add(Type.FLATTEN, op, new int[] {x}, new int[0], 0, List.of(), Map.of());
                case LINEAR -> {
                    Linear l = op.linear();
                    if (g.op(op.input(0)).shape().length != 2) throw unsupported(op, "a linear layer on a rank-" + g.op(op.input(0)).shape().length + " input");
                    Map<String, float[]> t = new LinkedHashMap<>();
                    t.put("weight", l.weight().toFloatArray());
                    if (l.bias() != null) t.put("bias", l.bias().toFloatArray());
                    add(Type.LINEAR, op, new int[] {x}, new int[] {l.inFeatures(), l.outFeatures()}, 0, List.of(), t);
                }
                case ADD -> add(Type.ADD, op, new int[] {x, value(op.input(1))}, new int[0], 0, List.of(), Map.of());
                case CONCAT -> {
                    int[] in = Arrays.stream(op.inputs()).map(this::value).toArray();
                    add(Type.CONCAT, op, in, new int[0], 0, List.of(), Map.of());
                }
                default -> throw unsupported(op, op.kind() == Kind.OPAQUE ? "an opaque op (" + op.detail() + ")" : "a " + op.kind() + " op");
            }
        }

        private IllegalArgumentException unsupported(Op op, String what) {
            return new IllegalArgumentException("GraphPacker: op " + op.id() + " (" + op.name() + ", " + op.kind() + ") is " + what
                    + ", which a packed graph cannot replay");
        }

        /** Scale and shift of the chain's BN (or identity), with the conv's bias folded into the shift. */
        private float[][] fold(BatchNorm2d bn, Conv2d conv) {
            int n = bn != null ? bn.numFeatures() : conv.outChannels();
            float[] scale = new float[n], shift = new float[n];
            if (bn != null) {
                PackedModel.Affine a = PackedModel.Affine.fromBatchNorm(bn.weight().toFloatArray(), bn.bias().toFloatArray(),
                        bn.runningMean().toFloatArray(), bn.runningVar().toFloatArray(), bn.eps());
                scale = a.scale();
                shift = a.shift();
            } else {
                Arrays.fill(scale, 1f);
            }
            if (conv != null && conv.bias() != null) {
                float[] b = conv.bias().toFloatArray();
                for (int i = 0; i < n; i++) shift[i] += scale[i] * b[i];
            }
            return new float[][] {scale, shift};
        }

        private float[][] fold(Chain c) { return fold(c.bn >= 0 ? g.op(c.bn).batchNorm() : null, c.conv.conv()); }

        private void chain(Chain c) {
            Conv2d conv = c.conv.conv();
            float[][] bn = fold(c);
            if (conv.groups() != 1) {
                int k = conv.kernelSize();
                add(Type.GROUPED_CONV, c.conv, new int[] {value(c.conv.input(0))},
                        new int[] {conv.inChannels(), conv.outChannels(), k, conv.stride(), conv.padding(), conv.groups()}, 0, List.of(),
                        Map.of("weight", conv.weight().toFloatArray(), "scale", bn[0], "shift", bn[1]));
                return;
            }
            boolean accumulate = c.add >= 0;
            boolean[][] mask = mask(conv);
            if (c.first != null) {
                Plan[] pair = pair(c.first, c, mask, accumulate);
                if (pair != null) {
                    int[] in = accumulate ? new int[] {value(c.first.conv.input(0)), value(c.other)} : new int[] {value(c.first.conv.input(0))};
                    steps.add(new Step(Type.CONV_PAIR, c.first.conv.name() + "+" + c.conv.name(), in, new int[0], 0, List.of(pair), Map.of()));
                    return;
                }
                single(c.first, mask(c.first.conv.conv()), false);
                valueOf[c.first.end()] = steps.size();
            }
            single(c, mask, accumulate);
        }

        /** A chain as one CONV step; its vanished filters' constants go to the output stage. */
        private void single(Chain c, boolean[][] mask, boolean accumulate) {
            Conv2d conv = c.conv.conv();
            float[][] bn = fold(c);
            boolean relu = c.relu >= 0;
            int n = conv.outChannels();
            boolean[] live = new boolean[n];
            for (int f = 0; f < n; f++) live[f] = any(mask[f]);
            List<Branch> branches = group(conv.weight().toFloatArray(), conv.inChannels(), conv.kernelSize(), mask, live, bn, relu, null);
            float[] constant = constants(bn[1], live, relu);
            boolean outputRelu = accumulate && c.postRelu >= 0;
            Plan p = new Plan(conv.inChannels(), n, conv.kernelSize(), conv.stride(), conv.padding(), branches, constant, outputRelu);
            int[] in = accumulate ? new int[] {value(c.conv.input(0)), value(c.other)} : new int[] {value(c.conv.input(0))};
            add(Type.CONV, c.conv, in, new int[0], 0, List.of(p), Map.of());
        }

        /**
         * conv_a's live filters that conv_b reads, compacted, then conv_b reading them; null when a vanished conv_a
         * filter that conv_b reads outputs a non-zero constant, or nothing is left to read.
         */
        private Plan[] pair(Chain a, Chain b, boolean[][] mb, boolean accumulate) {
            Conv2d ca = a.conv.conv(), cb = b.conv.conv();
            boolean[][] ma = mask(ca);
            float[][] bnA = fold(a), bnB = fold(b);
            int planes = ca.outChannels();
            boolean[] aKept = new boolean[planes];
            for (int f = 0; f < planes; f++) {
                boolean read = false;
                for (boolean[] row : mb) read |= row[f];
                if (!read) continue;
                if (any(ma[f])) aKept[f] = true;
                else if (Math.max(bnA[1][f], 0f) != 0f) return null;    // a constant plane: not exact after zero padding
            }
            int[] pos = new int[planes];
            int width = 0;
            for (int f = 0; f < planes; f++) pos[f] = aKept[f] ? width++ : -1;
            if (width == 0) return null;
            List<Branch> first = group(ca.weight().toFloatArray(), ca.inChannels(), ca.kernelSize(), ma, aKept, bnA, true, pos);
            Plan pa = new Plan(ca.inChannels(), width, ca.kernelSize(), ca.stride(), ca.padding(), first, null, false);
            int n = cb.outChannels();
            boolean[][] eff = new boolean[n][planes];
            boolean[] live = new boolean[n];
            for (int m = 0; m < n; m++) {
                for (int f = 0; f < planes; f++) eff[m][f] = mb[m][f] && aKept[f];
                live[m] = any(eff[m]);
            }
            boolean relu = b.relu >= 0;
            List<Branch> second = group(cb.weight().toFloatArray(), cb.inChannels(), cb.kernelSize(), eff, live, bnB, relu, null);
            // conv_b reads the compacted channels: map its input indices.
            List<Branch> mapped = new ArrayList<>();
            for (Branch br : second) {
                int[] in = Arrays.stream(br.in()).map(f -> pos[f]).toArray();
                mapped.add(new Branch(in, br.out(), br.weight(), br.scale(), br.shift(), br.relu()));
            }
            Plan pb = new Plan(width, n, cb.kernelSize(), cb.stride(), cb.padding(), mapped, constants(bnB[1], live, relu),
                    accumulate && b.postRelu >= 0);
            return new Plan[] {pa, pb};
        }

        /** Per vanished filter, its constant output (the shift, after the ReLU); null when every such constant is 0. */
        private static float[] constants(float[] shift, boolean[] live, boolean relu) {
            float[] k = new float[shift.length];
            boolean any = false;
            for (int f = 0; f < shift.length; f++) {
                if (live[f]) continue;
                k[f] = relu ? Math.max(shift[f], 0f) : shift[f];
                any |= k[f] != 0f;
            }
            return any ? k : null;
        }

        /**
         * One branch per distinct row of {@code mask} among the {@code keep} filters, in order of their first filter;
         * output channels are the filter indices, or {@code pos[f]} when given.
         */
        private static List<Branch> group(float[] w, int channels, int k, boolean[][] mask, boolean[] keep, float[][] bn, boolean relu,
                                          int[] pos) {
            int kk = k * k;
            Map<String, List<Integer>> rows = new LinkedHashMap<>();
            for (int f = 0; f < keep.length; f++) if (keep[f]) rows.computeIfAbsent(key(mask[f]), x -> new ArrayList<>()).add(f);
            List<Branch> out = new ArrayList<>();
            for (List<Integer> filters : rows.values()) {
                boolean[] row = mask[filters.get(0)];
                int[] in = java.util.stream.IntStream.range(0, row.length).filter(i -> row[i]).toArray();
                int[] fs = filters.stream().mapToInt(Integer::intValue).toArray();
                float[] weight = new float[fs.length * in.length * kk];
                float[] scale = new float[fs.length], shift = new float[fs.length];
                int[] outs = new int[fs.length];
                for (int j = 0; j < fs.length; j++) {
                    for (int i = 0; i < in.length; i++) System.arraycopy(w, (fs[j] * channels + in[i]) * kk, weight, (j * in.length + i) * kk, kk);
                    scale[j] = bn[0][fs[j]];
                    shift[j] = bn[1][fs[j]];
                    outs[j] = pos == null ? fs[j] : pos[fs[j]];
                }
                out.add(new Branch(in, outs, weight, scale, shift, relu));
            }
            return out;
        }

        /** The input-channel mask of a conv, as {@link Packer} reads it. */
        private static boolean[][] mask(Conv2d c) {
            return Packer.mask(c, c.weight().toFloatArray(), c.kernelSize() * c.kernelSize());
        }

        private static String key(boolean[] row) {
            char[] c = new char[row.length];
            for (int i = 0; i < row.length; i++) c[i] = row[i] ? '1' : '0';
            return new String(c);
        }

        private static boolean any(boolean[] row) {
            for (boolean b : row) if (b) return true;
            return false;
        }
    }
}
