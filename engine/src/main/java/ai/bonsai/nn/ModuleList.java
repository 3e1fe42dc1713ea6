package ai.bonsai.nn;

import ai.bonsai.tensor.Tensor;

import java.util.Iterator;

/**
 * An indexed list of modules whose parameters are registered under "0", "1", ..., PyTorch's
 * {@code nn.ModuleList}. It is a container, not a layer: the owner decides how to call its modules.
 */
public final class ModuleList extends Module implements Iterable<Module> {

    public ModuleList(Module... modules) {
        for (Module m : modules) add(m);
    }

    public ModuleList add(Module m) {
        registerModule(Integer.toString(size()), m);
        return this;
    }

    public Module get(int i) {
        if (i < 0 || i >= size()) throw new IndexOutOfBoundsException("ModuleList.get: index " + i + " for " + size() + " modules");
        return namedChildren().get(Integer.toString(i));
    }

    /** Replaces module i (for example with a pruned copy), keeping its name and position. */
    public void set(int i, Module m) {
        if (i < 0 || i >= size()) throw new IndexOutOfBoundsException("ModuleList.set: index " + i + " for " + size() + " modules");
        registerModule(Integer.toString(i), m);
    }

    public int size() { return namedChildren().size(); }

    @Override public Iterator<Module> iterator() { return children().iterator(); }

    /** Always throws: a ModuleList has no forward of its own. */
    @Override public Tensor forward(Tensor x) {
        throw new IllegalStateException("ModuleList.forward: a ModuleList is a container without a forward; call its modules (get(i).forward(x))");
    }
}
