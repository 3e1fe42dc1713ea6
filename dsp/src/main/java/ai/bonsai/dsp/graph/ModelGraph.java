package ai.bonsai.dsp.graph;

import ai.bonsai.autograd.GradMode;
import ai.bonsai.autograd.Node;
import ai.bonsai.nn.BatchNorm2d;
import ai.bonsai.nn.Conv2d;
import ai.bonsai.nn.Functional;
import ai.bonsai.nn.Linear;
import ai.bonsai.nn.MaxPool2d;
import ai.bonsai.nn.Module;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Deque;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The op graph of a model, traced from one forward pass on a probe input of the model's own input size: every
 * convolution, batch norm, activation, residual add, concat, pooling, flatten and linear layer, with its inputs
 * and output shape. Ops that are none of these (a slice, an element-wise product of two activations, ...) are
 * kept as {@link Kind#OPAQUE}: whatever reads or feeds them is treated conservatively by the analyses.
 *
 * <p>Why trace rather than read the module tree: which convolution feeds which, and what a residual add sums, is
 * written in each model's {@code forward}, not in its modules. The forward runs with the probe marked as
 * requiring a gradient, so every op downstream records an autograd {@link Node}; the graph is read from those
 * nodes, and parameters are matched to their modules by identity. The model runs in eval mode for the probe
 * (batch norm must not update its running statistics) and gets its train/eval flags back afterwards.
 *
 * <p>Op {@code i} produces value {@code i}; op 0 is the input. Ops are in execution order, which is a
 * topological order.
 */
public final class ModelGraph {
    /** What an op does, as far as channel analyses are concerned. */
    public enum Kind { INPUT, CONV, BATCH_NORM, ACTIVATION, ADD, CONCAT, POOL, FLATTEN, LINEAR, OPAQUE }

    /**
     * One op. {@code name} is the module path for convolutions, batch norms and linear layers, otherwise the
     * autograd op and its id (for example {@code add#12}); {@code module} is null for ops without a module;
     * {@code inputs} are value ids; {@code shape} is the output's, batch 1; {@code detail} says more
     * (the activation's function, {@code "min 6.0"} for a clamp, the concat axis, {@code "maxPool2d k3 s2 p1"} for
     * a max pooling's window).
     */
    public record Op(int id, Kind kind, String name, Module module, int[] inputs, int[] shape, String detail) {
        public Op {
            inputs = inputs.clone();
            shape = shape.clone();
        }

        @Override public int[] inputs() { return inputs.clone(); }

        @Override public int[] shape() { return shape.clone(); }

        public int input(int i) { return inputs[i]; }

        /** The channel (rank 4) or feature (rank 2) count of the output. */
        public int channels() { return shape.length >= 2 ? shape[1] : shape[0]; }

        /** H * W of a rank-4 output, 1 otherwise. */
        public int spatial() { return shape.length == 4 ? shape[2] * shape[3] : 1; }

        public Conv2d conv() { return (Conv2d) module; }

        public BatchNorm2d batchNorm() { return (BatchNorm2d) module; }

        public Linear linear() { return (Linear) module; }
    }

    private final List<Op> ops;
    private final int output;
    private final int[] inputDims;
    private final List<List<Integer>> consumers;

    private ModelGraph(List<Op> ops, int output, int[] inputDims) {
        this.ops = List.copyOf(ops);
        this.output = output;
        this.inputDims = inputDims.clone();
        List<List<Integer>> c = new ArrayList<>();
        for (int i = 0; i < ops.size(); i++) c.add(new ArrayList<>());
        for (Op op : ops) for (int in : op.inputs) if (!c.get(in).contains(op.id)) c.get(in).add(op.id);
        List<List<Integer>> frozen = new ArrayList<>();
        for (List<Integer> l : c) frozen.add(Collections.unmodifiableList(l));
        this.consumers = Collections.unmodifiableList(frozen);
    }

    /**
     * Traces {@code model} on one random input of shape (1, inputDims...), for example {@code 3, 224, 224}.
     *
     * @throws IllegalArgumentException when the model rejects the probe (its message says why) or the output is
     *                                  not computed from the input
     */
    public static ModelGraph trace(Module model, int... inputDims) {
        if (model == null) throw new IllegalArgumentException("ModelGraph.trace: model is null");
        if (inputDims == null || inputDims.length == 0) throw new IllegalArgumentException("ModelGraph.trace: inputDims is empty (expected e.g. 3, 32, 32)");
        for (int d : inputDims) if (d < 1) throw new IllegalArgumentException("ModelGraph.trace: inputDims " + Arrays.toString(inputDims) + " must be positive");
        Map<Tensor, Module> owner = new IdentityHashMap<>();
        Map<Module, String> names = new IdentityHashMap<>();
        for (Map.Entry<String, Module> e : model.namedModules().entrySet()) {
            names.putIfAbsent(e.getValue(), e.getKey());
        }
        for (Map.Entry<String, Tensor> e : model.namedParameters().entrySet()) {
            String k = e.getKey();
            int dot = k.lastIndexOf('.');
            Module m = dot < 0 ? model : model.submodule(k.substring(0, dot));
            owner.putIfAbsent(e.getValue(), m);
        }
        // Eval mode for the probe; every module's own flag back afterwards (train(b) recurses, so parents first).
        Map<Module, Boolean> modes = new LinkedHashMap<>();
        for (Module m : model.namedModules().values()) modes.putIfAbsent(m, m.isTraining());
        int[] dims = new int[inputDims.length + 1];
        dims[0] = 1;
        System.arraycopy(inputDims, 0, dims, 1, inputDims.length);
        model.eval();
        try (GradMode.Scope s = GradMode.enableGrad()) {
            Tensor x = Tensor.randn(new Generator(0), dims).to(model.device()).requiresGrad(true);
            Tensor y;
            try {
                y = model.forward(x);
            } catch (RuntimeException e) {
                throw new IllegalArgumentException("ModelGraph.trace: the model's forward failed on a probe of shape " + Arrays.toString(dims)
                        + " (is that its input size?): " + e.getMessage(), e);
            }
            return new Builder(x, owner, names, inputDims).build(y);
        } finally {
            for (Map.Entry<Module, Boolean> e : modes.entrySet()) e.getKey().train(e.getValue());
        }
    }

    /** Reads autograd nodes into ops. */
    private static final class Builder {
        private final Tensor input;
        private final Map<Tensor, Module> owner;
        private final Map<Module, String> names;
        private final int[] inputDims;
        private final Map<Tensor, Integer> ids = new IdentityHashMap<>();
        private final List<Op> ops = new ArrayList<>();
        /** Linear ops still open for their bias add: op id to its module. */
        private final Map<Integer, Linear> linearWithoutBias = new LinkedHashMap<>();

        Builder(Tensor input, Map<Tensor, Module> owner, Map<Module, String> names, int[] inputDims) {
            this.input = input;
            this.owner = owner;
            this.names = names;
            this.inputDims = inputDims;
        }

        ModelGraph build(Tensor y) {
            ids.put(input, 0);
            ops.add(new Op(0, Kind.INPUT, "input", null, new int[0], input.dims(), ""));
            // Post-order over the autograd graph, iteratively (a ResNet-110 is deep).
            Deque<Tensor> stack = new ArrayDeque<>();
            Map<Tensor, Boolean> expanded = new IdentityHashMap<>();
            stack.push(y);
            while (!stack.isEmpty()) {
                Tensor t = stack.peek();
                if (ids.containsKey(t) || t.gradFn() == null) {
                    stack.pop();
                    continue;
                }
                if (expanded.put(t, Boolean.TRUE) == null) {
                    Tensor[] in = t.gradFn().inputs();
                    for (int i = in.length - 1; i >= 0; i--) if (in[i] != null && !ids.containsKey(in[i]) && in[i].gradFn() != null) stack.push(in[i]);
                    continue;
                }
                stack.pop();
                boolean fromInput = false;       // a transposed weight, say, is computed but is no activation
                for (Tensor i : t.gradFn().inputs()) fromInput |= value(i) >= 0;
                ids.put(t, fromInput ? add(t) : -1);
            }
            Integer out = ids.get(y);
            if (out == null || out == 0 && y != input) {
                throw new IllegalArgumentException("ModelGraph.trace: the model's output is not computed from its input");
            }
            return new ModelGraph(ops, out, inputDims);
        }

        private int value(Tensor t) {
            if (t == null) return -1;
            Integer id = ids.get(t);
            return id == null ? -1 : id;
        }

        private int op(Kind kind, String name, Module module, int[] inputs, Tensor out, String detail) {
            int id = ops.size();
            ops.add(new Op(id, kind, name, module, inputs, out.dims(), detail));
            return id;
        }

        private int opaque(Tensor t, String why) {
            Node n = t.gradFn();
            List<Integer> in = new ArrayList<>();
            for (Tensor i : n.inputs()) {
                int v = value(i);
                if (v >= 0 && !in.contains(v)) in.add(v);
            }
            return op(Kind.OPAQUE, n.op() + "#" + ops.size(), null, in.stream().mapToInt(Integer::intValue).toArray(), t, why);
        }

        /** The op for tensor t (whose inputs all have ids), or the id of the value it merely renames. */
        private int add(Tensor t) {
            Node n = t.gradFn();
            Tensor[] in = n.inputs();
            String op = n.op();
            switch (op) {
                case "conv2d": {
                    int x = value(in[0]);
                    if (x >= 0 && owner.get(in[1]) instanceof Conv2d c && c.weight() == in[1]) {
                        return op(Kind.CONV, names.get(c), c, new int[] {x}, t, "k" + c.kernelSize() + " s" + c.stride() + " p" + c.padding()
                                + (c.groups() == 1 ? "" : " groups " + c.groups()));
                    }
                    return opaque(t, "convolution with a weight that is no Conv2d's");
                }
                case "batchNorm": {
                    int x = value(in[0]);
                    if (x >= 0 && in.length > 1 && owner.get(in[1]) instanceof BatchNorm2d b && b.weight() == in[1]) {
                        return op(Kind.BATCH_NORM, names.get(b), b, new int[] {x}, t, "");
                    }
                    return opaque(t, "batch norm without a BatchNorm2d's weight");
                }
                case "maxPool2d":
                    return op(Kind.POOL, op + "#" + ops.size(), null, new int[] {value(in[0])}, t, maxPoolDetail(in[0], t));
                case "adaptiveAvgPool2d":
                case "avgPool2d":
                    return op(Kind.POOL, op + "#" + ops.size(), null, new int[] {value(in[0])}, t, op);
                case "to":
                    return value(in[0]);
                case "reshape": {
                    int x = value(in[0]);
                    int[] a = in[0].dims(), b = t.dims();
                    if (Arrays.equals(a, b)) return x;
                    if (a.length == 4 && b.length == 2 && a[0] == b[0] && b[1] == a[1] * a[2] * a[3]) {
                        return op(Kind.FLATTEN, "flatten#" + ops.size(), null, new int[] {x}, t, "");
                    }
                    return opaque(t, "reshape " + Arrays.toString(a) + " -> " + Arrays.toString(b));
                }
                case "matMul": {
                    int x = value(in[0]);
                    Tensor w = in[1];
                    Tensor param = w.gradFn() != null && w.gradFn().op().equals("permute") && w.gradFn().inputs().length == 1 ? w.gradFn().inputs()[0] : null;
                    if (x >= 0 && param != null && owner.get(param) instanceof Linear l && l.weight() == param && value(in[1]) < 0) {
                        int id = op(Kind.LINEAR, names.get(l), l, new int[] {x}, t, "");
                        if (l.bias() != null) linearWithoutBias.put(id, l);
                        return id;
                    }
                    return opaque(t, "matrix product that is no Linear layer");
                }
                case "cat": {
                    int[] vs = new int[in.length];
                    for (int i = 0; i < in.length; i++) {
                        vs[i] = value(in[i]);
                        if (vs[i] < 0) return opaque(t, "concat of a constant");
                    }
                    int axis = concatAxis(in, t.dims());
                    if (axis != 1) return opaque(t, "concat along axis " + axis);
                    return op(Kind.CONCAT, "cat#" + ops.size(), null, vs, t, "axis 1");
                }
                default:
                    break;
            }
            if (in.length == 1) {          // element-wise functions of one argument (relu, sigmoid, affine, ...)
                int x = value(in[0]);
                if (x >= 0 && Arrays.equals(in[0].dims(), t.dims())) return op(Kind.ACTIVATION, op + "#" + ops.size(), null, new int[] {x}, t, op);
                return opaque(t, op);
            }
            if (in.length == 2 && isBinary(op)) {
                int a = value(in[0]), b = value(in[1]);
                if (a >= 0 && b >= 0) {
                    if (op.equals("add") && Arrays.equals(in[0].dims(), t.dims()) && Arrays.equals(in[1].dims(), t.dims())) {
                        return op(Kind.ADD, "add#" + ops.size(), null, new int[] {a, b}, t, "");
                    }
                    return opaque(t, op + " of two activations");
                }
                int v = a >= 0 ? a : b;
                Tensor constant = a >= 0 ? in[1] : in[0];
                if (v < 0) return opaque(t, op + " of constants");
                // A linear layer's bias add closes the linear op.
                Linear open = linearWithoutBias.get(v);
                if (op.equals("add") && open != null && constant == open.bias()) {
                    linearWithoutBias.remove(v);
                    Op lin = ops.get(v);
                    ops.set(v, new Op(v, Kind.LINEAR, lin.name(), lin.module(), lin.inputs(), t.dims(), "bias"));
                    return v;
                }
                if (!Arrays.equals(ops.get(v).shape(), t.dims()) || !broadcastsPerChannelOrScalar(constant, t.dims())) return opaque(t, op + " with a constant of shape " + Arrays.toString(constant.dims()));
                String detail = op;
                if (constant.numel() == 1 && (op.equals("min") || op.equals("max"))) detail = op + " " + constant.toFloatArray()[0];
                return op(Kind.ACTIVATION, op + "#" + ops.size(), null, new int[] {v}, t, detail + (a >= 0 ? "" : " (constant first)"));
            }
            return opaque(t, op);
        }

        /**
         * "maxPool2d k3 s2 p1": the autograd node does not keep the window, and a packed replay needs it. The
         * window is found by running candidates on the probe's own input and keeping the first that reproduces the
         * traced output exactly: the windows of the model's MaxPool2d modules first (the usual case), then every
         * small window (a forward that calls Functional.maxPool2d directly). Plain "maxPool2d" when none matches.
         */
        private String maxPoolDetail(Tensor x, Tensor y) {
            if (x.rank() != 4 || y.rank() != 4) return "maxPool2d";
            List<int[]> candidates = new ArrayList<>();
            for (Module m : names.keySet()) if (m instanceof MaxPool2d p) candidates.add(new int[] {p.kernel(), p.stride(), p.padding()});
            int side = Math.max(x.dim(2), x.dim(3));
            for (int k = 1; k <= Math.min(side + 2, 16); k++) {
                for (int s = 1; s <= k; s++) for (int p = 0; 2 * p <= k; p++) candidates.add(new int[] {k, s, p});
            }
            float[] want = null;
            try (GradMode.Scope noGrad = GradMode.noGrad()) {
                for (int[] c : candidates) {
                    int k = c[0], s = c[1], p = c[2];
                    if ((x.dim(2) + 2 * p - k) / s + 1 != y.dim(2) || (x.dim(3) + 2 * p - k) / s + 1 != y.dim(3) || x.dim(2) + 2 * p < k || x.dim(3) + 2 * p < k) continue;
                    if (want == null) want = y.toFloatArray();
                    if (Arrays.equals(Functional.maxPool2d(x.detach(), k, s, p).toFloatArray(), want)) return "maxPool2d k" + k + " s" + s + " p" + p;
                }
            }
            return "maxPool2d";
        }

        private static boolean isBinary(String op) {
            return switch (op) {
                case "add", "sub", "mul", "div", "max", "min", "pow" -> true;
                default -> false;
            };
        }

        /** A constant that is a scalar or varies only along the channel axis never mixes channels. */
        private static boolean broadcastsPerChannelOrScalar(Tensor c, int[] out) {
            if (c.numel() == 1) return true;
            int[] d = c.dims();
            int offset = out.length - d.length;
            if (offset < 0) return false;
            for (int i = 0; i < d.length; i++) {
                int axis = i + offset;
                if (d[i] != 1 && axis != 1) return false;
            }
            return true;
        }

        private static int concatAxis(Tensor[] in, int[] out) {
            for (int axis = 0; axis < out.length; axis++) {
                int sum = 0;
                boolean othersEqual = true;
                for (Tensor t : in) {
                    if (t.rank() != out.length) return -1;
                    sum += t.dim(axis);
                    for (int j = 0; j < out.length; j++) if (j != axis && t.dim(j) != out[j]) othersEqual = false;
                }
                if (othersEqual && sum == out[axis]) return axis;
            }
            return -1;
        }
    }

    // ---------------------------------------------------------------- queries

    public List<Op> ops() { return ops; }

    public Op op(int id) { return ops.get(id); }

    /** The value the model returns. */
    public int output() { return output; }

    /** The probe's shape without the batch axis, e.g. {3, 224, 224}. */
    public int[] inputDims() { return inputDims.clone(); }

    /** The ops that read value {@code id}, in execution order. */
    public List<Integer> consumers(int id) { return consumers.get(id); }

    /** The ops of one kind, in execution order. */
    public List<Op> ops(Kind kind) {
        List<Op> out = new ArrayList<>();
        for (Op op : ops) if (op.kind == kind) out.add(op);
        return out;
    }

    /** The op of a module (a convolution, batch norm or linear layer); null when the forward never ran it. */
    public Op opOf(Module m) {
        for (Op op : ops) if (op.module == m) return op;
        return null;
    }

    /** How many times the forward ran module {@code m}. */
    public int uses(Module m) {
        int n = 0;
        for (Op op : ops) if (op.module == m) n++;
        return n;
    }

    /** One line per op: id, kind, name, inputs, output shape and detail. */
    @Override public String toString() {
        StringBuilder sb = new StringBuilder("ModelGraph (input " + Arrays.toString(inputDims) + ", output value " + output + ")\n");
        for (Op op : ops) {
            sb.append(String.format("%4d %-11s %-32s <- %-12s %s%s%n", op.id, op.kind, op.name, Arrays.toString(op.inputs),
                    Arrays.toString(op.shape), op.detail.isEmpty() ? "" : "  " + op.detail));
        }
        return sb.toString();
    }
}
