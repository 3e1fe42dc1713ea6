package ai.bonsai.nn;

import ai.bonsai.tensor.Tensor;

import java.util.Iterator;

/**
 * Runs its children in order, each on the previous one's output, PyTorch's {@code nn.Sequential}. The
 * children are named "0", "1", ..., so their parameters appear as {@code 0.weight}, {@code 1.running_mean}.
 */
public final class Sequential extends Module implements Iterable<Module> {

    public Sequential(Module... modules) {
        for (Module m : modules) add(m);
    }

    /** Appends a module under the next index. */
    public Sequential add(Module m) {
        registerModule(Integer.toString(size()), m);
        return this;
    }

    public Module get(int i) {
        if (i < 0 || i >= size()) throw new IndexOutOfBoundsException("Sequential.get: index " + i + " for " + size() + " modules");
        return namedChildren().get(Integer.toString(i));
    }

    /** Replaces module i (for example with a pruned copy), keeping its name and position. */
    public void set(int i, Module m) {
        if (i < 0 || i >= size()) throw new IndexOutOfBoundsException("Sequential.set: index " + i + " for " + size() + " modules");
        registerModule(Integer.toString(i), m);
    }

    public int size() { return namedChildren().size(); }

    @Override public Iterator<Module> iterator() { return children().iterator(); }

    /** A {@link BatchNorm2d} directly followed by a {@link ReLU} runs as one fused op (same result, less memory). */
    @Override public Tensor forward(Tensor x) {
        Tensor y = x;
        Module[] ms = namedChildren().values().toArray(new Module[0]);
        for (int i = 0; i < ms.length; i++) {
            if (ms[i] instanceof BatchNorm2d bn && i + 1 < ms.length && ms[i + 1] instanceof ReLU) {
                y = bn.forwardRelu(y);
                i++;
            } else {
                y = ms[i].forward(y);
            }
        }
        return y;
    }
}
