package ai.bonsai.autograd;

import ai.bonsai.tensor.Tensor;

/**
 * One recorded operation: its inputs and how to turn the gradient of its output into gradients of its
 * inputs. Backward functions return fresh tensors (or null for inputs that need none); the engine adds them
 * into the running gradients, so no backward function accumulates by itself.
 */
public final class Node {
    private final String op;
    private final Tensor[] inputs;
    private final BackwardFn fn;

    public Node(String op, Tensor[] inputs, BackwardFn fn) {
        this.op = op;
        this.inputs = inputs;
        this.fn = fn;
    }

    public String op() { return op; }

    public Tensor[] inputs() { return inputs; }

    public Tensor[] backward(Tensor gradOutput) { return fn.apply(gradOutput); }

    /** Maps the output gradient to one gradient per input, in input order. */
    @FunctionalInterface
    public interface BackwardFn {
        Tensor[] apply(Tensor gradOutput);
    }
}
