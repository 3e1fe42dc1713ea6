package ai.bonsai.dsp.prune;

import ai.bonsai.dsp.graph.DependencyGroups;
import ai.bonsai.dsp.graph.ModelGraph;
import ai.bonsai.dsp.graph.ModelGraph.Kind;
import ai.bonsai.dsp.graph.ModelGraph.Op;
import ai.bonsai.nn.BatchNorm2d;

import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Finds and removes the structure that masks leave dead, on any traced graph (rules in {@link PruneWrapper}'s class
 * comment). Two analyses run until nothing changes:
 * <ul>
 * <li>forward, per channel of every value: the constant it is known to hold (a filter with no kernel left outputs
 *     its bias; a batch norm with weight 0 outputs its bias whatever it reads; ReLU, clamps, pooling, adds and
 *     concats carry constants through). A prunable convolution's input channel that is constantly zero only ever
 *     multiplies zeros: its column is zeroed and masked (rule 2);</li>
 * <li>per {@link DependencyGroups dependency group}: when no consumer in a group reads any of its channels (every
 *     consumer's weight column is zero) and the group is not pinned, every prunable filter that writes it and every
 *     batch-norm channel on it is dead: zeroed and masked (rule 3). The groups carry this across residual adds,
 *     concats, depthwise convolutions and flattens, so it holds for any graph, not named blocks.</li>
 * </ul>
 */
final class DeadStructure {
    private final ModelGraph graph;
    private final DependencyGroups groups;
    private final List<PrunableLayer> layers;
    private final Map<Integer, Integer> layerOfOp = new HashMap<>();     // conv op id -> prunable layer
    private final Map<String, Integer> layerByName = new HashMap<>();
    private final int[] bnOpAfter;                                       // per layer, the BN op after it or -1
    private final Map<String, Op> weighted = new HashMap<>();           // convolutions and linear layers by name

    DeadStructure(ModelGraph graph, List<PrunableLayer> layers) {
        this.graph = graph;
        this.groups = new DependencyGroups(graph);
        this.layers = layers;
        for (Op o : graph.ops()) if (o.kind() == Kind.CONV || o.kind() == Kind.LINEAR) weighted.put(o.name(), o);
        bnOpAfter = new int[layers.size()];
        Arrays.fill(bnOpAfter, -1);
        for (PrunableLayer p : layers) {
            Op op = graph.opOf(p.conv());
            if (op == null) throw new IllegalStateException("PruneWrapper: prunable layer " + p.name() + " is not in the traced graph");
            layerOfOp.put(op.id(), p.index());
            layerByName.put(p.name(), p.index());
            List<Integer> next = graph.consumers(op.id());
            if (next.size() == 1 && graph.op(next.get(0)).kind() == Kind.BATCH_NORM && graph.uses(graph.op(next.get(0)).module()) == 1) {
                bnOpAfter[p.index()] = next.get(0);
            }
        }
    }

    /** The batch norm that directly and only follows prunable layer {@code l}, or null. */
    BatchNorm2d bnAfter(int l) { return bnOpAfter[l] < 0 ? null : graph.op(bnOpAfter[l]).batchNorm(); }

    /**
     * Applies the rules to host copies of the prunable layers' weights {@code w} and masks (indexed by prunable
     * layer), and to the weight and bias of every batch norm of the graph, which it writes back where they changed.
     */
    PruneSummary.DeadStructure remove(float[][] w, float[][] masks) {
        int emptyBn = 0, deadFilters = 0, deadInputs = 0;
        Map<Integer, float[]> gamma = new HashMap<>(), bias = new HashMap<>();      // by BN op id
        for (Op op : graph.ops(Kind.BATCH_NORM)) {
            gamma.put(op.id(), op.batchNorm().weight().toFloatArray());
            bias.put(op.id(), op.batchNorm().bias().toFloatArray());
        }
        // Rule 1's first half: a filter with no kernel left is masked whole.
        for (PrunableLayer p : layers) {
            int l = p.index(), rowLen = rowLength(p);
            for (int f = 0; f < p.filters(); f++) {
                if (allZero(w[l], f * rowLen, (f + 1) * rowLen)) Arrays.fill(masks[l], f * p.channels(), (f + 1) * p.channels(), 0f);
            }
        }
        Map<Integer, float[]> fixed = new HashMap<>();      // weights of the layers this never changes
        boolean changed = true;
        while (changed) {
            changed = false;
            // Rule 1: a batch-norm channel whose input is constantly zero (an empty filter, or a depthwise filter that
            // reads only dead channels) is zeroed: the reference's semantics, its weight gradient is exactly zero.
            double[][] k = constants(w, gamma, bias, fixed);
            for (Op op : graph.ops(Kind.BATCH_NORM)) {
                double[] in = k[op.input(0)];
                float[] g = gamma.get(op.id()), b = bias.get(op.id());
                for (int c = 0; c < in.length; c++) {
                    if (in[c] == 0.0 && (g[c] != 0f || b[c] != 0f)) {
                        g[c] = 0f;
                        b[c] = 0f;
                        emptyBn++;
                        changed = true;
                    }
                }
            }
            // A batch-norm channel with weight 0 and bias <= 0 that only ReLUs read outputs 0 either way: bias 0.
            for (Op op : graph.ops(Kind.BATCH_NORM)) {
                if (!onlyReluReads(op.id())) continue;
                float[] g = gamma.get(op.id()), b = bias.get(op.id());
                for (int c = 0; c < g.length; c++) if (g[c] == 0f && b[c] < 0f) b[c] = 0f;
            }
            // Rule 2: columns that read a channel which is constantly zero.
            k = constants(w, gamma, bias, fixed);
            for (PrunableLayer p : layers) {
                int l = p.index(), c = p.channels(), kk = p.kernel() * p.kernel();
                double[] in = k[graph.opOf(p.conv()).input(0)];
                for (int ch = 0; ch < c; ch++) {
                    if (in[ch] != 0.0) continue;
                    boolean any = false;
                    for (int o = 0; o < p.filters(); o++) {
                        int at = (o * c + ch) * kk;
                        if (!allZero(w[l], at, at + kk)) {
                            Arrays.fill(w[l], at, at + kk, 0f);
                            any = true;
                        }
                        masks[l][o * c + ch] = 0f;
                    }
                    if (any) {
                        deadInputs++;
                        changed = true;
                    }
                }
            }
            // Rule 3: groups that nothing reads.
            for (DependencyGroups.Group g : groups.groups()) {
                if (g.pinned() || g.members().isEmpty() || read(g, w, fixed)) continue;
                boolean hasPrunableProducer = false;
                for (DependencyGroups.Member m : g.members()) {
                    Integer l = layerByName.get(m.layer());
                    if (l != null && m.role() == DependencyGroups.Role.PRODUCER) hasPrunableProducer = true;
                }
                if (!hasPrunableProducer) continue;
                for (DependencyGroups.Member m : g.members()) {
                    if (m.role() == DependencyGroups.Role.PRODUCER && layerByName.containsKey(m.layer())) {
                        PrunableLayer p = layers.get(layerByName.get(m.layer()));
                        int l = p.index(), rowLen = rowLength(p);
                        for (int f : m.indices()) {
                            boolean live = !allZero(w[l], f * rowLen, (f + 1) * rowLen);
                            Arrays.fill(w[l], f * rowLen, (f + 1) * rowLen, 0f);
                            Arrays.fill(masks[l], f * p.channels(), (f + 1) * p.channels(), 0f);
                            if (bnOpAfter[l] >= 0) {
                                float[] bg = gamma.get(bnOpAfter[l]), bb = bias.get(bnOpAfter[l]);
                                live |= bg[f] != 0f || bb[f] != 0f;
                                bg[f] = 0f;
                                bb[f] = 0f;
                            }
                            if (live) {
                                deadFilters++;
                                changed = true;
                            }
                        }
                    }
                }
            }
        }
        for (Op op : graph.ops(Kind.BATCH_NORM)) {
            BatchNorm2d bn = op.batchNorm();
            if (!Arrays.equals(gamma.get(op.id()), bn.weight().toFloatArray())) write(bn.weight(), gamma.get(op.id()));
            if (!Arrays.equals(bias.get(op.id()), bn.bias().toFloatArray())) write(bn.bias(), bias.get(op.id()));
        }
        return new PruneSummary.DeadStructure(emptyBn, deadFilters, deadInputs);
    }

    private static void write(ai.bonsai.tensor.Tensor t, float[] values) {
        t.copyFrom(ai.bonsai.tensor.Tensor.of(values, t.device(), t.dims()));
    }

    private boolean onlyReluReads(int bnOp) {
        List<Integer> next = graph.consumers(bnOp);
        if (next.isEmpty()) return false;
        for (int c : next) {
            Op op = graph.op(c);
            if (op.kind() != Kind.ACTIVATION || !op.detail().equals("relu")) return false;
        }
        return true;
    }

    /** Whether any consumer of the group has a nonzero weight in a column it reads. */
    private boolean read(DependencyGroups.Group g, float[][] w, Map<Integer, float[]> fixed) {
        for (DependencyGroups.Member m : g.members()) {
            if (m.role() != DependencyGroups.Role.CONSUMER) continue;
            Op op = weighted.get(m.layer());
            if (op == null) return true;
            float[] wt = weights(op, w, fixed);
            int out = op.kind() == Kind.CONV ? op.conv().outChannels() : op.linear().weight().dim(0);
            int in = op.kind() == Kind.CONV ? op.conv().inChannels() : op.linear().weight().dim(1);
            int kk = wt.length / (out * in);
            for (int c : m.indices()) {
                for (int o = 0; o < out; o++) {
                    int at = (o * in + c) * kk;
                    if (!allZero(wt, at, at + kk)) return true;
                }
            }
        }
        return false;
    }

    private float[] weights(Op op, float[][] w, Map<Integer, float[]> fixed) {
        Integer l = layerOfOp.get(op.id());
        if (l != null) return w[l];
        return fixed.computeIfAbsent(op.id(), id -> op.kind() == Kind.CONV ? op.conv().weight().toFloatArray() : op.linear().weight().toFloatArray());
    }

    /** The constant each channel of each value is known to hold; NaN where it is not constant (or not known to be). */
    private double[][] constants(float[][] w, Map<Integer, float[]> gamma, Map<Integer, float[]> bias, Map<Integer, float[]> fixed) {
        double[][] k = new double[graph.ops().size()][];
        for (Op op : graph.ops()) {
            double[] out = new double[op.channels()];
            Arrays.fill(out, Double.NaN);
            switch (op.kind()) {
                case CONV -> {
                    // Filter f outputs its bias when every kernel it has reads a channel that is constantly zero (zero
                    // padding keeps a zero plane zero; a nonzero constant plane would not stay constant at the borders).
                    float[] wt = weights(op, w, fixed);
                    double[] in = k[op.input(0)];
                    int groupsOfConv = op.conv().groups(), inPer = in.length / groupsOfConv, outPer = op.channels() / groupsOfConv;
                    int kk = wt.length / (op.channels() * inPer);
                    float[] b = op.conv().bias() == null ? null : op.conv().bias().toFloatArray();
                    for (int f = 0; f < op.channels(); f++) {
                        int first = (f / outPer) * inPer;
                        boolean constant = true;
                        for (int i = 0; i < inPer && constant; i++) {
                            int at = (f * inPer + i) * kk;
                            constant = in[first + i] == 0.0 || allZero(wt, at, at + kk);
                        }
                        if (constant) out[f] = b == null ? 0 : b[f];
                    }
                }
                case BATCH_NORM -> {
                    float[] g = gamma.get(op.id()), b = bias.get(op.id());
                    for (int c = 0; c < out.length; c++) if (g[c] == 0f) out[c] = b[c];
                }
                case ACTIVATION -> {
                    double[] in = k[op.input(0)];
                    String d = op.detail();
                    for (int c = 0; c < out.length; c++) {
                        if (d.equals("relu")) out[c] = Math.max(in[c], 0);          // NaN stays NaN
                        else if (d.startsWith("min ") && !d.endsWith("(constant first)")) out[c] = Math.min(in[c], Double.parseDouble(d.substring(4)));
                        else if (d.startsWith("max ") && !d.endsWith("(constant first)")) out[c] = Math.max(in[c], Double.parseDouble(d.substring(4)));
                    }
                }
                case POOL -> System.arraycopy(k[op.input(0)], 0, out, 0, out.length);
                case ADD -> {
                    Arrays.fill(out, 0);
                    for (int in : op.inputs()) for (int c = 0; c < out.length; c++) out[c] += k[in][c];
                }
                case CONCAT -> {
                    int at = 0;
                    for (int in : op.inputs()) {
                        System.arraycopy(k[in], 0, out, at, k[in].length);
                        at += k[in].length;
                    }
                }
                default -> { }
            }
            k[op.id()] = out;
        }
        return k;
    }

    private static int rowLength(PrunableLayer p) { return p.channels() * p.kernel() * p.kernel(); }

    private static boolean allZero(float[] a, int from, int to) {
        for (int i = from; i < to; i++) if (a[i] != 0f) return false;
        return true;
    }
}
