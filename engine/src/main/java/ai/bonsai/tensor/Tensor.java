package ai.bonsai.tensor;

import ai.bonsai.autograd.GradMode;
import ai.bonsai.autograd.Node;
import ai.bonsai.backend.Backend;
import ai.bonsai.backend.Backends;
import ai.bonsai.backend.BinaryOp;
import ai.bonsai.backend.ReduceOp;
import ai.bonsai.backend.StepArena;
import ai.bonsai.backend.UnaryOp;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * An n-dimensional array with autograd: a {@link Shape}, a {@link Buffer} owned by a backend, and, when it
 * takes part in a recorded computation, the {@link Node} that created it.
 *
 * <p>Storage is always dense and row-major. {@link #reshape}/{@link #view} share the buffer; permute, slice
 * and the other movement ops copy (one strided-copy primitive), which keeps every kernel free of stride
 * logic. Operations return new tensors; methods ending in {@code i} ({@link #addi}, {@link #muli}, ...)
 * work in place, record nothing, and are meant for optimisers and no-grad code.
 *
 * <p>Gradients accumulate: {@link #backward()} adds into the {@code grad} of every leaf that requires
 * one, as PyTorch does. Call {@link #zeroGrad()} (or an optimiser's) between steps.
 */
public final class Tensor {
    private final Shape shape;
    private final Buffer buffer;
    private boolean requiresGrad;
    private Tensor grad;
    private final Node gradFn;

    private Tensor(Shape shape, Buffer buffer, Node gradFn, boolean requiresGrad) {
        if (buffer.length() != shape.numel()) {
            throw new IllegalArgumentException("tensor: buffer of " + buffer.length() + " elements for shape " + shape);
        }
        this.shape = shape;
        this.buffer = buffer;
        this.gradFn = gradFn;
        this.requiresGrad = requiresGrad;
    }

    // =============================================================== creation

    /** Wraps a buffer as a leaf tensor (no copy). */
    public static Tensor of(Shape shape, Buffer buffer) { return new Tensor(shape, buffer, null, false); }

    /** Copies {@code data} into a new CPU tensor of the given shape. */
    public static Tensor of(float[] data, int... dims) { return of(data, Device.cpu(), dims); }

    public static Tensor of(float[] data, Device device, int... dims) {
        Shape s = Shape.of(dims);
        if (data.length != s.numel()) {
            throw new IllegalArgumentException("tensor: " + data.length + " values for shape " + s + " (" + s.numel() + " expected)");
        }
        return new Tensor(s, Backends.of(device).fromFloats(data), null, false);
    }

    /** An INT64 index tensor. */
    public static Tensor ofLongs(long[] data, int... dims) {
        Shape s = Shape.of(dims);
        if (data.length != s.numel()) {
            throw new IllegalArgumentException("tensor: " + data.length + " values for shape " + s + " (" + s.numel() + " expected)");
        }
        return new Tensor(s, Backends.of(Device.cpu()).fromLongs(data), null, false);
    }

    /** An INT32 index tensor. */
    public static Tensor ofInts(int[] data, int... dims) {
        Shape s = Shape.of(dims);
        if (data.length != s.numel()) {
            throw new IllegalArgumentException("tensor: " + data.length + " values for shape " + s + " (" + s.numel() + " expected)");
        }
        return new Tensor(s, Backends.of(Device.cpu()).fromInts(data), null, false);
    }

    public static Tensor scalar(float v) { return of(new float[] {v}); }

    public static Tensor zeros(int... dims) { return zeros(Device.cpu(), dims); }

    public static Tensor zeros(Device device, int... dims) {
        Shape s = Shape.of(dims);
        return new Tensor(s, Backends.of(device).allocate(DType.FLOAT32, s.numel()), null, false);
    }

    public static Tensor ones(int... dims) { return full(1f, dims); }

    public static Tensor full(float value, int... dims) {
        Tensor t = zeros(dims);
        t.backend().fill(t.buffer, value);
        return t;
    }

    /** Uniform draws in [lo, hi) from {@code g}. */
    public static Tensor rand(Generator g, float lo, float hi, int... dims) {
        Tensor t = zeros(dims);
        t.backend().uniform(t.buffer, g, lo, hi);
        return t;
    }

    /** Standard normal draws from {@code g}. */
    public static Tensor randn(Generator g, int... dims) {
        Tensor t = zeros(dims);
        t.backend().normal(t.buffer, g, 0f, 1f);
        return t;
    }

    /** A zero tensor with this tensor's shape, dtype and device. */
    public Tensor zerosLike() {
        return new Tensor(shape, backend().allocate(dtype(), shape.numel()), null, false);
    }

    /**
     * Creates the output of an operation. Op implementations (here and in {@code nn.Functional}) call this;
     * the node is attached only when grad mode is on and an input requires a gradient.
     */
    public static Tensor fromOp(Shape shape, Buffer buffer, String op, Node.BackwardFn backward, Tensor... inputs) {
        boolean needs = needsGrad(backward != null, inputs);
        return new Tensor(shape, buffer, needs ? new Node(op, inputs, backward) : null, needs);
    }

    /**
     * As {@link #fromOp}, for an op whose backward can add an input's gradient into one already pending for it (see
     * {@link Node.AccumulatingBackwardFn}).
     */
    public static Tensor fromAccumulatingOp(Shape shape, Buffer buffer, String op, Node.AccumulatingBackwardFn backward,
                                            Tensor... inputs) {
        boolean needs = needsGrad(backward != null, inputs);
        return new Tensor(shape, buffer, needs ? new Node(op, inputs, backward) : null, needs);
    }

    private static boolean needsGrad(boolean hasBackward, Tensor[] inputs) {
        if (!GradMode.isEnabled() || !hasBackward) return false;
        for (Tensor t : inputs) if (t != null && t.requiresGrad) return true;
        return false;
    }

    // =============================================================== accessors

    public Shape shape() { return shape; }

    public int[] dims() { return shape.dims(); }

    public int dim(int axis) { return shape.dim(axis); }

    public int rank() { return shape.rank(); }

    public int numel() { return shape.numel(); }

    public DType dtype() { return buffer.dtype(); }

    public Buffer buffer() { return buffer; }

    public Backend backend() { return buffer.backend(); }

    public Device device() { return buffer.backend().device(); }

    /** Copies the values to a host array. */
    public float[] toFloatArray() { return backend().toFloats(buffer); }

    /** Copies integer values (or truncated floats) to a host array. */
    public long[] toLongArray() { return backend().toLongs(buffer); }

    /** The value of a one-element tensor. */
    public float item() {
        if (numel() != 1) throw new IllegalArgumentException("item: tensor of shape " + shape + " has " + numel() + " elements, not 1");
        return toFloatArray()[0];
    }

    // =============================================================== autograd

    public boolean requiresGrad() { return requiresGrad; }

    /** Marks a leaf as needing a gradient. Returns this. */
    public Tensor requiresGrad(boolean on) {
        if (gradFn != null && !on) throw new IllegalStateException("requiresGrad(false) on a non-leaf tensor (created by " + gradFn.op() + "); use detach()");
        if (on && dtype() != DType.FLOAT32) throw new IllegalArgumentException("requiresGrad: only FLOAT32 tensors can require gradients, not " + dtype());
        requiresGrad = on;
        return this;
    }

    public boolean isLeaf() { return gradFn == null; }

    public Node gradFn() { return gradFn; }

    /** The accumulated gradient, or null before the first backward pass. */
    public Tensor grad() { return grad; }

    public void setGrad(Tensor g) {
        if (g != null && !g.shape.equals(shape)) throw new IllegalArgumentException("setGrad: gradient shape " + g.shape + " for tensor of shape " + shape);
        grad = g;
    }

    public void zeroGrad() { grad = null; }

    /** The same values, cut from the graph (shares the buffer). */
    public Tensor detach() { return new Tensor(shape, buffer, null, false); }

    /** Back-propagates from a scalar. */
    public void backward() {
        if (numel() != 1) throw new IllegalArgumentException("backward: needs a scalar output or an explicit gradient, got shape " + shape);
        backward(Tensor.full(1f, shape.dims()).to(device()));
    }

    /**
     * Back-propagates {@code gradOutput} (same shape as this) through the recorded graph, then frees it: each node
     * drops its saved tensors as soon as its backward has run, so activations can be collected during the pass (a
     * second backward through the same graph fails; see {@link #backward(Tensor, boolean)}).
     */
    public void backward(Tensor gradOutput) { backward(gradOutput, false); }

    /**
     * Back-propagates {@code gradOutput}; with {@code retainGraph} the graph is kept, so that another backward
     * can go through it again (PyTorch's {@code retain_graph}).
     */
    public void backward(Tensor gradOutput, boolean retainGraph) {
        if (!requiresGrad) throw new IllegalStateException("backward: tensor does not require grad (no input requires grad, or it was computed under noGrad)");
        checkSameShape("backward", gradOutput);
        Tensor[] order = topologicalOrder();
        Map<Tensor, Tensor> grads = new IdentityHashMap<>();
        grads.put(this, gradOutput);
        try (var scope = GradMode.noGrad()) {
            for (int k = 0; k < order.length; k++) {
                Tensor t = order[k];
                // Every consumer of t in this graph comes before it, so once t is reached nothing here needs the
                // slot any more; clearing it (and releasing t's node below) lets t's buffer go as soon as its
                // gradient has been passed on.
                if (!retainGraph && t != this) order[k] = null;
                Tensor g = grads.remove(t);
                if (g == null) {
                    if (!retainGraph && t.gradFn != null) t.gradFn.release();
                    continue;
                }
                // Gradients that this step has used up: given back to a StepArena, if one is open, unless still in use.
                List<Tensor> spent = new ArrayList<>(4);
                if (t != this) spent.add(g);                // the caller's gradOutput is the caller's
                if (t.gradFn == null) {
                    if (t.requiresGrad) t.grad = t.grad == null ? persistentCopy(g) : t.grad.addi(g);
                    releaseSpent(spent, grads);
                    continue;
                }
                Tensor[] ins = t.gradFn.inputs();
                Tensor[] into = t.gradFn.accumulates() ? offerPending(ins, grads, g, gradOutput) : NO_INPUTS;
                Tensor[] gs = t.gradFn.backward(g, into);
                if (!retainGraph) t.gradFn.release();
                for (int i = 0; i < ins.length; i++) {
                    Tensor in = ins[i];
                    if (in == null || !in.requiresGrad || gs[i] == null) continue;
                    if (!gs[i].shape.equals(in.shape)) {
                        throw new IllegalStateException("backward of " + t.gradFn.op() + ": gradient " + gs[i].shape + " for input " + i + " of shape " + in.shape);
                    }
                    Tensor prev = grads.get(in);
                    if (prev == null) {
                        grads.put(in, gs[i]);
                    } else if (gs[i] == prev && i < into.length && into[i] == prev) {
                        // The backward function added its gradient into the pending one: nothing left to do.
                    } else {
                        grads.put(in, prev.add(gs[i]));
                        spent.add(prev);
                        spent.add(gs[i]);
                    }
                }
                // A backward function may pass g on unchanged or as a view (add, reshape), or return the same
                // tensor for two inputs: whatever is still among the pending gradients stays.
                releaseSpent(spent, grads);
            }
        }
    }

    /**
     * For each input i, its pending gradient where an accumulating backward function may add into it
     * in place: the first occurrence of an input that needs a gradient, whose pending gradient shares its buffer
     * with nothing the rest of the pass reads. That excludes a buffer that another pending gradient also holds (a
     * backward function passed one gradient to two inputs, or a view), the gradient flowing into this node (the
     * function reads it while it writes), and the caller's gradOutput.
     */
    private static Tensor[] offerPending(Tensor[] ins, Map<Tensor, Tensor> grads, Tensor g, Tensor gradOutput) {
        Tensor[] into = new Tensor[ins.length];
        for (int i = 0; i < ins.length; i++) {
            Tensor in = ins[i];
            if (in == null || !in.requiresGrad) continue;
            Tensor prev = grads.get(in);
            if (prev == null || prev.buffer == g.buffer || prev.buffer == gradOutput.buffer || !prev.shape.equals(in.shape)) continue;
            boolean first = true, shared = false;
            for (int j = 0; j < i; j++) if (ins[j] == in) first = false;
            for (Map.Entry<Tensor, Tensor> e : grads.entrySet()) {
                if (e.getKey() != in && e.getValue().buffer == prev.buffer) shared = true;
            }
            if (first && !shared) into[i] = prev;
        }
        return into;
    }

    /**
     * Gives the buffers of {@code spent} gradients back to the calling thread's {@link StepArena} (a no-op without
     * one), except those that a pending gradient still uses. Only the backward pass creates these tensors and none
     * escapes it (a leaf's gradient is a copy), so nothing else can read them.
     */
    private static void releaseSpent(List<Tensor> spent, Map<Tensor, Tensor> grads) {
        if (spent.isEmpty() || StepArena.current() == null) return;
        Map<Buffer, Boolean> live = new IdentityHashMap<>();
        for (Tensor p : grads.values()) live.put(p.buffer, true);
        for (Tensor d : spent) {
            if (live.put(d.buffer, true) == null) StepArena.releaseEarly(d.buffer);
        }
    }

    /** A leaf's gradient outlives any {@link StepArena} scope around the backward pass: an optimiser reads it later. */
    private static Tensor persistentCopy(Tensor g) {
        try (var outside = StepArena.suspend()) {
            return g.copy();
        }
    }

    /**
     * Nodes reachable from this tensor, outputs before inputs. Iterative so deep graphs cannot overflow the stack.
     *
     * <p>A node's inputs are visited last to first, so the backward pass reaches its first input's branch first.
     * Where two branches meet again at a tensor, that decides which one writes its gradient and which adds into it:
     * in a residual block, {@code bn(conv_b(...)) + shortcut(x)} now writes x's gradient from the main branch's 3x3
     * convolution and adds the 1x1 stride-2 shortcut's into it, which touches a quarter of the pixels. The other way
     * round, the shortcut wrote all of dx, three quarters of it zeros, and the 3x3 convolution read it back to add
     * (ResNet-20's downsampling blocks, per pair of data gradients: 3.0-3.1 instead of 3.7-3.8 ms from 16 to 32
     * channels, 2.7-3.1 instead of 3.0-3.3 ms from 32 to 64). Two gradients add the same either way round, so results
     * do not change.
     */
    private Tensor[] topologicalOrder() {
        List<Tensor> post = new ArrayList<>();
        Map<Tensor, Boolean> seen = new IdentityHashMap<>();
        ArrayDeque<Object[]> stack = new ArrayDeque<>();
        stack.push(new Object[] {this, 0});
        seen.put(this, true);
        while (!stack.isEmpty()) {
            Object[] frame = stack.peek();
            Tensor t = (Tensor) frame[0];
            int i = (int) frame[1];
            Tensor[] ins = t.gradFn == null ? NO_INPUTS : t.gradFn.inputs();
            if (i < ins.length) {
                frame[1] = i + 1;
                Tensor in = ins[ins.length - 1 - i];
                if (in != null && in.requiresGrad && seen.put(in, true) == null) stack.push(new Object[] {in, 0});
            } else {
                stack.pop();
                post.add(t);
            }
        }
        Collections.reverse(post);
        return post.toArray(new Tensor[0]);
    }

    private static final Tensor[] NO_INPUTS = new Tensor[0];

    // =============================================================== device and copies

    /** This tensor on {@code device} (itself when already there). */
    public Tensor to(Device device) {
        if (device.equals(device())) return this;
        Backend target = Backends.of(device);
        Buffer b = switch (dtype()) {
            case FLOAT32 -> target.fromFloats(toFloatArray());
            case INT32 -> {
                long[] l = toLongArray();
                int[] a = new int[l.length];
                for (int i = 0; i < l.length; i++) a[i] = (int) l[i];
                yield target.fromInts(a);
            }
            case INT64 -> target.fromLongs(toLongArray());
        };
        return fromOp(shape, b, "to", g -> new Tensor[] {g.to(device())}, this);
    }

    /** A new tensor with a copy of the values, not recorded. */
    public Tensor copy() {
        Buffer b = backend().empty(dtype(), numel());
        backend().copy(buffer, 0, b, 0, numel());
        return new Tensor(shape, b, null, false);
    }

    /** Copies {@code src}'s values into this tensor in place. */
    public Tensor copyFrom(Tensor src) {
        checkSameShape("copyFrom", src);
        backend().copy(src.buffer, 0, buffer, 0, numel());
        return this;
    }

    public Tensor fill(float value) {
        backend().fill(buffer, value);
        return this;
    }

    // =============================================================== element-wise

    public Tensor add(Tensor o) { return binary(BinaryOp.ADD, o); }

    public Tensor sub(Tensor o) { return binary(BinaryOp.SUB, o); }

    public Tensor mul(Tensor o) { return binary(BinaryOp.MUL, o); }

    public Tensor div(Tensor o) { return binary(BinaryOp.DIV, o); }

    /** Element-wise maximum; the gradient goes to {@code this} where it is >= o. */
    public Tensor maximum(Tensor o) { return binary(BinaryOp.MAX, o); }

    public Tensor minimum(Tensor o) { return binary(BinaryOp.MIN, o); }

    /** 1 where this > o, else 0 (no gradient). */
    public Tensor gt(Tensor o) { return binary(BinaryOp.GT, o); }

    public Tensor eq(Tensor o) { return binary(BinaryOp.EQ, o); }

    public Tensor add(float v) { return affine(1f, v); }

    public Tensor sub(float v) { return affine(1f, -v); }

    public Tensor mul(float v) { return affine(v, 0f); }

    public Tensor div(float v) { return affine(1f / v, 0f); }

    /** this * scale + shift in one pass. */
    public Tensor affine(float scale, float shift) {
        requireFloat("affine");
        Buffer out = backend().empty(DType.FLOAT32, numel());
        backend().affine(buffer, scale, shift, out);
        return fromOp(shape, out, "affine", g -> new Tensor[] {g.mul(scale)}, this);
    }

    public Tensor neg() { return unary(UnaryOp.NEG); }

    public Tensor exp() { return unary(UnaryOp.EXP); }

    public Tensor log() { return unary(UnaryOp.LOG); }

    public Tensor sqrt() { return unary(UnaryOp.SQRT); }

    public Tensor abs() { return unary(UnaryOp.ABS); }

    public Tensor relu() { return unary(UnaryOp.RELU); }

    public Tensor sigmoid() { return unary(UnaryOp.SIGMOID); }

    public Tensor tanh() { return unary(UnaryOp.TANH); }

    public Tensor square() { return unary(UnaryOp.SQUARE); }

    public Tensor reciprocal() { return unary(UnaryOp.RECIPROCAL); }

    /** this ^ exponent. The gradient at 0 is taken as 0 for exponents below 1 (as the l_1/2 terms of DSP need). */
    public Tensor pow(float exponent) {
        requireFloat("pow");
        Tensor e = Tensor.full(exponent, 1).to(device());
        Buffer out = backend().allocate(DType.FLOAT32, numel());
        backend().binary(BinaryOp.POW, buffer, shape.dims(), e.buffer, ones(shape.rank()), out, shape.dims());
        Tensor self = this;
        return fromOp(shape, out, "pow", g -> {
            Tensor d = self.detach().pow(exponent - 1).mul(exponent);
            if (exponent < 1) d = d.mul(self.detach().abs().gt(Tensor.scalar(0f).to(self.device())));
            return new Tensor[] {g.mul(d)};
        }, this);
    }

    private static int[] ones(int rank) {
        int[] d = new int[rank];
        Arrays.fill(d, 1);
        return d;
    }

    private Tensor unary(UnaryOp op) {
        requireFloat(op.name().toLowerCase());
        Buffer out = backend().empty(DType.FLOAT32, numel());
        backend().unary(op, buffer, out);
        Tensor self = this;
        Node.BackwardFn fn = switch (op) {
            case NEG -> g -> new Tensor[] {g.neg()};
            case EXP -> g -> new Tensor[] {g.mul(Tensor.of(shape, out))};
            case LOG -> g -> new Tensor[] {g.div(self.detach())};
            case SQRT -> g -> new Tensor[] {g.div(Tensor.of(shape, out).mul(2f))};
            case RSQRT -> g -> new Tensor[] {g.mul(Tensor.of(shape, out).pow(3f).mul(-0.5f))};
            case ABS -> g -> new Tensor[] {g.mul(self.detach().unary(UnaryOp.SIGN))};
            case RELU -> g -> new Tensor[] {g.reluBackward(self)};
            case SIGMOID -> g -> {
                Tensor y = Tensor.of(shape, out);
                return new Tensor[] {g.mul(y.mul(y.neg().add(1f)))};
            };
            case TANH -> g -> {
                Tensor y = Tensor.of(shape, out);
                return new Tensor[] {g.mul(y.square().neg().add(1f))};
            };
            case RECIPROCAL -> g -> new Tensor[] {g.mul(Tensor.of(shape, out).square().neg())};
            case SQUARE -> g -> new Tensor[] {g.mul(self.detach().mul(2f))};
            case SIGN -> null;
        };
        return fromOp(shape, out, op.name().toLowerCase(), fn, this);
    }

    /** g where x > 0, else 0: ReLU's backward as one kernel. */
    private Tensor reluBackward(Tensor x) {
        Buffer out = backend().empty(DType.FLOAT32, numel());
        int[] d = shape.dims();
        backend().binary(BinaryOp.RELU_BACKWARD, buffer, d, x.buffer, d, out, d);
        return new Tensor(shape, out, null, false);
    }

    private Tensor binary(BinaryOp op, Tensor o) {
        String name = op.name().toLowerCase();
        requireFloat(name);
        o.requireFloat(name);
        checkSameDevice(name, o);
        Shape outShape = Shape.broadcast(name, shape, o.shape);
        int r = outShape.rank();
        Buffer out = backend().empty(DType.FLOAT32, outShape.numel());
        backend().binary(op, buffer, alignedDims(shape, r), o.buffer, alignedDims(o.shape, r), out, outShape.dims());
        Tensor a = this;
        Node.BackwardFn fn = switch (op) {
            case ADD -> g -> new Tensor[] {g.sumTo(a.shape), g.sumTo(o.shape)};
            case SUB -> g -> new Tensor[] {g.sumTo(a.shape), g.neg().sumTo(o.shape)};
            case MUL -> g -> new Tensor[] {
                    a.requiresGrad ? g.mul(o.detach()).sumTo(a.shape) : null,
                    o.requiresGrad ? g.mul(a.detach()).sumTo(o.shape) : null};
            case DIV -> g -> new Tensor[] {
                    a.requiresGrad ? g.div(o.detach()).sumTo(a.shape) : null,
                    o.requiresGrad ? g.mul(a.detach()).div(o.detach().square()).neg().sumTo(o.shape) : null};
            case MAX, MIN -> g -> {
                // The first operand wins ties, so exactly one side receives each gradient element.
                Tensor aWins = op == BinaryOp.MAX ? o.detach().gt(a.detach()).neg().add(1f) : a.detach().gt(o.detach()).neg().add(1f);
                return new Tensor[] {g.mul(aWins).sumTo(a.shape), g.mul(aWins.neg().add(1f)).sumTo(o.shape)};
            };
            case POW, GT, EQ, RELU_BACKWARD -> null;
        };
        return fromOp(outShape, out, name, fn, this, o);
    }

    private static int[] alignedDims(Shape s, int rank) {
        int[] d = new int[rank];
        Arrays.fill(d, 1);
        int off = rank - s.rank();
        for (int i = 0; i < s.rank(); i++) d[off + i] = s.dim(i);
        return d;
    }

    /** Sums a broadcast gradient back down to {@code target} (the adjoint of broadcasting). */
    public Tensor sumTo(Shape target) {
        if (shape.equals(target)) return this;
        int r = shape.rank();
        int[] t = alignedDims(target, r);
        boolean[] red = new boolean[r];
        boolean any = false;
        for (int i = 0; i < r; i++) {
            if (t[i] == 1 && shape.dim(i) != 1) { red[i] = true; any = true; }
            else if (t[i] != shape.dim(i)) throw new IllegalArgumentException("sumTo: can't reduce " + shape + " to " + target);
        }
        Tensor s = any ? reduce(ReduceOp.SUM, red) : this;
        return s.reshape(target.dims());
    }

    // =============================================================== in place (not recorded)

    /** this += o (broadcasting o). */
    public Tensor addi(Tensor o) { return inPlace(BinaryOp.ADD, o); }

    public Tensor subi(Tensor o) { return inPlace(BinaryOp.SUB, o); }

    public Tensor muli(Tensor o) { return inPlace(BinaryOp.MUL, o); }

    public Tensor muli(float v) {
        checkInPlace("muli");
        backend().affine(buffer, v, 0f, buffer);
        return this;
    }

    public Tensor addi(float v) {
        checkInPlace("addi");
        backend().affine(buffer, 1f, v, buffer);
        return this;
    }

    /** this += alpha * o. */
    public Tensor addScaledi(Tensor o, float alpha) { return addi(o.mul(alpha)); }

    private Tensor inPlace(BinaryOp op, Tensor o) {
        String name = op.name().toLowerCase() + "i";
        checkInPlace(name);
        checkSameDevice(name, o);
        Shape out = Shape.broadcast(name, shape, o.shape);
        if (!out.equals(shape)) throw new IllegalArgumentException(name + ": result shape " + out + " differs from the target's " + shape);
        int r = shape.rank();
        backend().binary(op, buffer, shape.dims(), o.buffer, alignedDims(o.shape, r), buffer, shape.dims());
        return this;
    }

    private void checkInPlace(String op) {
        requireFloat(op);
        if (GradMode.isEnabled() && requiresGrad && gradFn == null) {
            throw new IllegalStateException(op + ": in-place change of a leaf that requires grad; wrap it in GradMode.noGrad()");
        }
    }

    // =============================================================== reductions

    /** Sum of all elements. */
    public Tensor sum() { return sum(allAxes(), false); }

    public Tensor sum(int[] axes, boolean keepDims) { return reduceAxes(ReduceOp.SUM, axes, keepDims); }

    public Tensor sum(int axis, boolean keepDims) { return sum(new int[] {axis}, keepDims); }

    public Tensor mean() { return mean(allAxes(), false); }

    public Tensor mean(int[] axes, boolean keepDims) { return reduceAxes(ReduceOp.MEAN, axes, keepDims); }

    public Tensor mean(int axis, boolean keepDims) { return mean(new int[] {axis}, keepDims); }

    public Tensor max() { return max(allAxes(), false); }

    /** Maximum over axes; the gradient is split evenly among tied maxima. */
    public Tensor max(int[] axes, boolean keepDims) { return reduceAxes(ReduceOp.MAX, axes, keepDims); }

    public Tensor max(int axis, boolean keepDims) { return max(new int[] {axis}, keepDims); }

    /** Index of the maximum along {@code axis} (INT64, that axis removed). */
    public Tensor argmax(int axis) {
        requireFloat("argmax");
        int a = shape.normalizeAxis(axis);
        int[] od = removeAxis(shape.dims(), a);
        Buffer out = backend().empty(DType.INT64, Shape.of(od).numel());
        backend().argmax(buffer, shape.dims(), a, out);
        return new Tensor(Shape.of(od), out, null, false);
    }

    private int[] allAxes() {
        int[] a = new int[rank()];
        for (int i = 0; i < a.length; i++) a[i] = i;
        return a;
    }

    private Tensor reduceAxes(ReduceOp op, int[] axes, boolean keepDims) {
        String name = op.name().toLowerCase();
        requireFloat(name);
        boolean[] red = new boolean[rank()];
        for (int ax : axes) {
            int a;
            try {
                a = shape.normalizeAxis(ax);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(name + ": axis " + ax + " is out of range for shape " + shape);
            }
            if (red[a]) throw new IllegalArgumentException(name + ": axis " + ax + " given twice for shape " + shape);
            red[a] = true;
        }
        Tensor kept = reduce(op, red);
        if (keepDims) return kept;
        List<Integer> d = new ArrayList<>();
        for (int i = 0; i < rank(); i++) if (!red[i]) d.add(shape.dim(i));
        return kept.reshape(d.stream().mapToInt(Integer::intValue).toArray());
    }

    /** Reduction keeping the reduced axes as size 1. */
    private Tensor reduce(ReduceOp op, boolean[] red) {
        int[] od = shape.dims();
        int count = 1;
        for (int i = 0; i < od.length; i++) if (red[i]) { count *= od[i]; od[i] = 1; }
        Shape os = Shape.of(od);
        Buffer out = backend().empty(DType.FLOAT32, os.numel());
        backend().reduce(op, buffer, shape.dims(), red, out);
        Tensor x = this;
        Tensor result = new Tensor(os, out, null, false);
        int n = count;
        Node.BackwardFn fn = switch (op) {
            case SUM -> g -> new Tensor[] {g.expand(x.shape.dims())};
            case MEAN -> g -> new Tensor[] {g.mul(1f / n).expand(x.shape.dims())};
            case MAX -> g -> {
                Tensor hit = x.detach().eq(result);
                Tensor share = hit.div(hit.reduce(ReduceOp.SUM, red));
                return new Tensor[] {share.mul(g)};
            };
        };
        return fromOp(os, out, op.name().toLowerCase(), fn, this);
    }

    private static int[] removeAxis(int[] d, int axis) {
        int[] o = new int[d.length - 1];
        for (int i = 0, j = 0; i < d.length; i++) if (i != axis) o[j++] = d[i];
        return o;
    }

    // =============================================================== shape and layout

    /** Same values, new shape (one dimension may be -1). Shares the buffer. */
    public Tensor reshape(int... newDims) {
        Shape ns = shape.reshape(newDims);
        Shape old = shape;
        return fromOp(ns, buffer, "reshape", g -> new Tensor[] {g.reshape(old.dims())}, this);
    }

    /** PyTorch's view: an alias of {@link #reshape}, since storage is always contiguous. */
    public Tensor view(int... newDims) { return reshape(newDims); }

    /** Flattens dimensions from {@code fromAxis} on into one. */
    public Tensor flatten(int fromAxis) {
        int a = shape.normalizeAxis(fromAxis);
        int[] d = new int[a + 1];
        for (int i = 0; i < a; i++) d[i] = shape.dim(i);
        d[a] = shape.size(a, rank());
        return reshape(d);
    }

    public Tensor unsqueeze(int axis) {
        int a = axis < 0 ? axis + rank() + 1 : axis;
        if (a < 0 || a > rank()) throw new IllegalArgumentException("unsqueeze: axis " + axis + " out of range for shape " + shape);
        int[] d = new int[rank() + 1];
        for (int i = 0, j = 0; i < d.length; i++) d[i] = i == a ? 1 : shape.dim(j++);
        return reshape(d);
    }

    public Tensor squeeze(int axis) {
        int a = shape.normalizeAxis(axis);
        if (shape.dim(a) != 1) throw new IllegalArgumentException("squeeze: axis " + axis + " of shape " + shape + " has size " + shape.dim(a) + ", not 1");
        return reshape(removeAxis(shape.dims(), a));
    }

    /** Reorders axes: result dim i is this dim perm[i]. */
    public Tensor permute(int... perm) {
        if (perm.length != rank()) throw new IllegalArgumentException("permute: " + Arrays.toString(perm) + " for shape " + shape + " (rank " + rank() + ")");
        boolean[] used = new boolean[rank()];
        int[] p = new int[rank()];
        for (int i = 0; i < perm.length; i++) {
            p[i] = shape.normalizeAxis(perm[i]);
            if (used[p[i]]) throw new IllegalArgumentException("permute: " + Arrays.toString(perm) + " repeats axis " + perm[i] + " (shape " + shape + ")");
            used[p[i]] = true;
        }
        int[] st = shape.strides();
        int[] od = new int[rank()], srcStrides = new int[rank()];
        for (int i = 0; i < p.length; i++) { od[i] = shape.dim(p[i]); srcStrides[i] = st[p[i]]; }
        Shape os = Shape.of(od);
        Buffer out = backend().allocate(dtype(), os.numel());
        backend().strided(buffer, 0, srcStrides, out, 0, os.strides(), od, false);
        int[] inv = new int[p.length];
        for (int i = 0; i < p.length; i++) inv[p[i]] = i;
        return fromOp(os, out, "permute", g -> new Tensor[] {g.permute(inv)}, this);
    }

    /** Swaps two axes. */
    public Tensor transpose(int a, int b) {
        int[] p = allAxes();
        int x = shape.normalizeAxis(a), y = shape.normalizeAxis(b);
        p[x] = y;
        p[y] = x;
        return permute(p);
    }

    /** Elements start, start+step, ... (< end) along {@code axis}; negative start/end count from the end. */
    public Tensor slice(int axis, int start, int end, int step) {
        int a = shape.normalizeAxis(axis);
        int len = shape.dim(a);
        int s = start < 0 ? start + len : start, e = end < 0 ? end + len : Math.min(end, len);
        if (step < 1 || s < 0 || s > len || e < s) {
            throw new IllegalArgumentException("slice: axis " + axis + " [" + start + ":" + end + ":" + step + "] is out of range for shape " + shape);
        }
        int count = (e - s + step - 1) / step;
        int[] od = shape.dims();
        od[a] = count;
        Shape os = Shape.of(od);
        int[] st = shape.strides();
        int[] srcStrides = st.clone();
        srcStrides[a] *= step;
        int offset = s * st[a];
        Buffer out = backend().allocate(dtype(), os.numel());
        backend().strided(buffer, offset, srcStrides, out, 0, os.strides(), od, false);
        Tensor x = this;
        return fromOp(os, out, "slice", g -> {
            Tensor gx = x.zerosLike();
            gx.backend().strided(g.buffer, 0, os.strides(), gx.buffer, offset, srcStrides, od, true);
            return new Tensor[] {gx};
        }, this);
    }

    public Tensor slice(int axis, int start, int end) { return slice(axis, start, end, 1); }

    /** Concatenates along {@code axis}; all other dimensions must agree. */
    public static Tensor cat(int axis, Tensor... ts) {
        if (ts.length == 0) throw new IllegalArgumentException("cat: no tensors");
        Tensor first = ts[0];
        int a = first.shape.normalizeAxis(axis);
        int total = 0;
        for (Tensor t : ts) {
            if (t.rank() != first.rank() || t.dtype() != first.dtype()) {
                throw new IllegalArgumentException("cat: shapes " + first.shape + " and " + t.shape + " (dtypes " + first.dtype() + ", " + t.dtype() + ") differ in rank or dtype");
            }
            first.checkSameDevice("cat", t);
            for (int i = 0; i < t.rank(); i++) {
                if (i != a && t.shape.dim(i) != first.shape.dim(i)) {
                    throw new IllegalArgumentException("cat: shapes " + first.shape + " and " + t.shape + " differ outside axis " + axis);
                }
            }
            total += t.shape.dim(a);
        }
        int[] od = first.shape.dims();
        od[a] = total;
        Shape os = Shape.of(od);
        Backend be = first.backend();
        Buffer out = be.allocate(first.dtype(), os.numel());
        int[] ost = os.strides();
        int[] offsets = new int[ts.length];
        int off = 0;
        for (int i = 0; i < ts.length; i++) {
            offsets[i] = off;
            be.strided(ts[i].buffer, 0, ts[i].shape.strides(), out, off * ost[a], ost, ts[i].shape.dims(), false);
            off += ts[i].shape.dim(a);
        }
        return fromOp(os, out, "cat", g -> {
            Tensor[] gs = new Tensor[ts.length];
            for (int i = 0; i < ts.length; i++) {
                if (ts[i].requiresGrad) gs[i] = g.slice(a, offsets[i], offsets[i] + ts[i].shape.dim(a));
            }
            return gs;
        }, ts);
    }

    /** Broadcasts to {@code newDims} (materialised). */
    public Tensor expand(int... newDims) {
        Shape target = Shape.of(newDims);
        Shape check = Shape.broadcast("expand", shape, target);
        if (!check.equals(target)) throw new IllegalArgumentException("expand: can't expand " + shape + " to " + target);
        if (target.equals(shape)) return this;
        int r = target.rank();
        int[] ad = alignedDims(shape, r);
        int[] st = Shape.of(ad).strides();
        for (int i = 0; i < r; i++) if (ad[i] == 1) st[i] = 0;
        Buffer out = backend().allocate(dtype(), target.numel());
        backend().strided(buffer, 0, st, out, 0, target.strides(), newDims, false);
        Shape old = shape;
        return fromOp(target, out, "expand", g -> new Tensor[] {g.sumTo(old)}, this);
    }

    // =============================================================== linear algebra

    /**
     * Matrix product. (m,k)@(k,n); batched (b,m,k)@(b,k,n); and (b,m,k)@(k,n) with a shared right operand.
     */
    public Tensor matMul(Tensor o) {
        requireFloat("matMul");
        o.requireFloat("matMul");
        checkSameDevice("matMul", o);
        if (rank() < 2 || o.rank() < 2 || rank() > 3 || o.rank() > 3 || (rank() == 2 && o.rank() == 3)) {
            throw new IllegalArgumentException("matMul: unsupported ranks, shapes " + shape + " and " + o.shape + " (need (m,k)@(k,n), (b,m,k)@(b,k,n) or (b,m,k)@(k,n))");
        }
        int m = dim(-2), k = dim(-1), k2 = o.dim(-2), n = o.dim(-1);
        int batch = rank() == 3 ? dim(0) : 1;
        if (k != k2 || (o.rank() == 3 && o.dim(0) != batch)) {
            throw new IllegalArgumentException("matMul: shapes " + shape + " and " + o.shape + " are not aligned (inner " + k + " vs " + k2 + ")");
        }
        Shape os = rank() == 3 ? Shape.of(batch, m, n) : Shape.of(m, n);
        Buffer out = backend().allocate(DType.FLOAT32, os.numel());
        int bStride = o.rank() == 3 ? k * n : 0;
        backend().gemm(false, false, batch, m, n, k, 1f, buffer, m * k, o.buffer, bStride, 0f, out);
        Tensor a = this;
        return fromOp(os, out, "matMul", g -> {
            Tensor ga = null, gb = null;
            if (a.requiresGrad) {          // dA = g @ B^T
                Buffer b = a.backend().allocate(DType.FLOAT32, a.numel());
                a.backend().gemm(false, true, batch, m, k, n, 1f, g.buffer, m * n, o.buffer, bStride, 0f, b);
                ga = new Tensor(a.shape, b, null, false);
            }
            if (o.requiresGrad) {          // dB = A^T @ g, summed over the batch when B is shared
                Buffer b = a.backend().allocate(DType.FLOAT32, o.numel());
                if (o.rank() == 3 || batch == 1) {
                    a.backend().gemm(true, false, batch, k, n, m, 1f, a.buffer, m * k, g.buffer, m * n, 0f, b);
                } else {
                    // (b,m,k) viewed as (b*m, k): one GEMM sums over the batch.
                    a.backend().gemm(true, false, 1, k, n, batch * m, 1f, a.buffer, 0, g.buffer, 0, 0f, b);
                }
                gb = new Tensor(o.shape, b, null, false);
            }
            return new Tensor[] {ga, gb};
        }, this, o);
    }

    // =============================================================== checks

    public void requireFloat(String op) {
        if (dtype() != DType.FLOAT32) throw new IllegalArgumentException(op + ": expected a FLOAT32 tensor, got " + dtype() + " of shape " + shape);
    }

    public void checkSameDevice(String op, Tensor o) {
        if (!device().equals(o.device())) {
            throw new IllegalArgumentException(op + ": tensors on different devices: " + shape + " on " + device() + " and " + o.shape + " on " + o.device());
        }
    }

    public void checkSameShape(String op, Tensor o) {
        if (!shape.equals(o.shape)) throw new IllegalArgumentException(op + ": shapes " + shape + " and " + o.shape + " differ");
    }

    @Override public String toString() {
        StringBuilder sb = new StringBuilder("Tensor").append(shape).append(' ').append(dtype());
        if (device().kind() != Device.Kind.CPU) sb.append(" on ").append(device());
        if (gradFn != null) sb.append(" grad_fn=").append(gradFn.op());
        else if (requiresGrad) sb.append(" requires_grad");
        if (numel() <= 16) {
            sb.append(' ');
            if (dtype() == DType.FLOAT32) sb.append(Arrays.toString(toFloatArray()));
            else sb.append(Arrays.toString(toLongArray()));
        }
        return sb.toString();
    }
}
