package ai.bonsai.autograd;

import ai.bonsai.tensor.Tensor;

/**
 * One recorded operation: its inputs and how to turn the gradient of its output into gradients of its
 * inputs. Backward functions return fresh tensors (or null for inputs that need none); the engine adds them
 * into the running gradients, so no backward function accumulates by itself.
 *
 * <p>A backward pass {@linkplain #release() releases} each node once it has run (unless asked to retain the
 * graph): the node drops its inputs and its backward function, and with them the activations it saved, so they
 * can be collected while the rest of the backward pass still runs, as PyTorch frees saved tensors.
 */
public final class Node {
    private static final Tensor[] NONE = new Tensor[0];
    private final String op;
    private Tensor[] inputs;
    private BackwardFn fn;

    public Node(String op, Tensor[] inputs, BackwardFn fn) {
        this.op = op;
        this.inputs = inputs;
        this.fn = fn;
    }

    public String op() { return op; }

    /** The recorded inputs; empty once the node is {@linkplain #released() released}. */
    public Tensor[] inputs() { return inputs; }

    public Tensor[] backward(Tensor gradOutput) {
        BackwardFn f = fn;
        if (f == null) {
            throw new IllegalStateException("backward: the graph through " + op + " was already back-propagated, which freed "
                    + "its saved tensors; call backward(gradOutput, true) the first time to go through a graph twice");
        }
        return f.apply(gradOutput);
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
}
