package ai.bonsai.autograd;

import ai.bonsai.tensor.Tensor;

/**
 * One recorded operation: its inputs and how to turn the gradient of its output into gradients of its
 * inputs. Backward functions return fresh tensors (or null for inputs that need none); the engine adds them
 * into the running gradients. The one exception is an {@link AccumulatingBackwardFn}: the engine may offer it an
 * input's pending gradient to add into, which saves the separate add (and a pass over memory) where a tensor feeds
 * two ops, as a residual block's input does.
 *
 * <p>A backward pass {@linkplain #release() releases} each node once it has run (unless asked to retain the
 * graph): the node drops its inputs and its backward function, and with them the activations it saved, so they
 * can be collected while the rest of the backward pass still runs, as PyTorch frees saved tensors.
 */
public final class Node {
    private static final Tensor[] NONE = new Tensor[0];
    private final String op;
    private final boolean accumulates;
    private Tensor[] inputs;
    private AccumulatingBackwardFn fn;

    public Node(String op, Tensor[] inputs, BackwardFn fn) {
        this(op, inputs, fn == null ? null : (g, into) -> fn.apply(g), false);
    }

    public Node(String op, Tensor[] inputs, AccumulatingBackwardFn fn) {
        this(op, inputs, fn, true);
    }

    private Node(String op, Tensor[] inputs, AccumulatingBackwardFn fn, boolean accumulates) {
        this.op = op;
        this.inputs = inputs;
        this.fn = fn;
        this.accumulates = accumulates;
    }

    public String op() { return op; }

    /** The recorded inputs; empty once the node is {@linkplain #released() released}. */
    public Tensor[] inputs() { return inputs; }

    /** Whether {@link #backward(Tensor, Tensor[])} can add into the pending gradients it is offered. */
    public boolean accumulates() { return accumulates; }

    public Tensor[] backward(Tensor gradOutput) {
        return backward(gradOutput, new Tensor[inputs.length]);
    }

    /**
     * The gradients of the inputs. For an {@linkplain #accumulates() accumulating} function {@code into} has one entry
     * per input (ignored otherwise): {@code into[i]}, when not null, is a gradient already pending for input i that
     * nothing else reads, and the function may add its gradient into it and return that very tensor, which tells the
     * engine the sum is done.
     */
    public Tensor[] backward(Tensor gradOutput, Tensor[] into) {
        AccumulatingBackwardFn f = fn;
        if (f == null) {
            throw new IllegalStateException("backward: the graph through " + op + " was already back-propagated, which freed "
                    + "its saved tensors; call backward(gradOutput, true) the first time to go through a graph twice");
        }
        return f.apply(gradOutput, into);
    }

    /** Drops the inputs and the backward function (and the tensors it captured); {@link #backward} then fails. */
    public void release() {
        inputs = NONE;
        fn = null;
    }

    public boolean released() { return fn == null; }

    /** Maps the output gradient to one gradient per input, in input order. */
    @FunctionalInterface
    public interface BackwardFn {
        Tensor[] apply(Tensor gradOutput);
    }

    /**
     * As {@link BackwardFn}, but may add input i's gradient into {@code into[i]} (when not null: a pending gradient
     * of the same shape that only the engine holds) and return {@code into[i]} itself; returning a fresh tensor
     * instead is always allowed, and the engine then adds the two.
     */
    @FunctionalInterface
    public interface AccumulatingBackwardFn {
        Tensor[] apply(Tensor gradOutput, Tensor[] into);
    }
}
