package ai.bonsai.io.torch;

import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One node of the module tree of a TorchScript archive ({@code data.pkl}): a TorchScript object with its
 * class name, its sub-modules (attributes that are objects), its tensors (parameters and buffers alike, in
 * pickle order) and its other attributes ({@code training}, hook flags, ...). Built from the unpickled
 * {@link TorchObject}s with the depth bounded and shared or cyclic modules rejected, so that walking it is safe.
 */
public final class TorchModule {
    private final String path;
    private final String className;
    private final Map<String, TorchModule> children;
    private final Map<String, TorchTensor> tensors;
    private final Map<String, Object> attributes;

    private TorchModule(String path, String className, Map<String, TorchModule> children, Map<String, TorchTensor> tensors, Map<String, Object> attributes) {
        this.path = path;
        this.className = className;
        this.children = Collections.unmodifiableMap(children);
        this.tensors = Collections.unmodifiableMap(tensors);
        this.attributes = Collections.unmodifiableMap(attributes);
    }

    static TorchModule of(TorchObject root, String where, int maxDepth) throws TorchFormatException {
        return of(root, "", where, 0, maxDepth, new IdentityHashMap<>());
    }

    private static TorchModule of(TorchObject o, String path, String where, int depth, int maxDepth, IdentityHashMap<TorchObject, Boolean> seen) throws TorchFormatException {
        if (depth > maxDepth) throw new TorchFormatException(where + ": module tree deeper than the limit of " + maxDepth + " at '" + path + "'");
        if (seen.put(o, Boolean.TRUE) != null) throw new TorchFormatException(where + ": module '" + path + "' (" + o.className() + ") appears twice in the tree");
        Map<String, TorchModule> children = new LinkedHashMap<>();
        Map<String, TorchTensor> tensors = new LinkedHashMap<>();
        Map<String, Object> attrs = new LinkedHashMap<>();
        for (Map.Entry<String, Object> e : o.attributes().entrySet()) {
            String childPath = path.isEmpty() ? e.getKey() : path + "." + e.getKey();
            if (e.getValue() instanceof TorchObject c) children.put(e.getKey(), of(c, childPath, where, depth + 1, maxDepth, seen));
            else if (e.getValue() instanceof TorchTensor t) tensors.put(e.getKey(), t);
            else attrs.put(e.getKey(), e.getValue());
        }
        return new TorchModule(path, o.className(), children, tensors, attrs);
    }

    /** Dotted path from the root ({@code stage_1.0.layers_a.2}); empty for the root. */
    public String path() { return path; }

    /** Qualified TorchScript class name, such as {@code __torch__.cifar_model.___torch_mangle_62.Compactblock}. */
    public String className() { return className; }

    /** The class name without module and mangling, such as {@code Compactblock}. */
    public String simpleName() { return className.substring(className.lastIndexOf('.') + 1); }

    public Map<String, TorchModule> children() { return children; }

    public Map<String, TorchTensor> tensors() { return tensors; }

    /** Attributes that are neither modules nor tensors (null, Boolean, Long, Double, String, List, Map). */
    public Map<String, Object> attributes() { return attributes; }

    /** The sub-module {@code name}; a {@link TorchFormatException} naming this module's children if absent. */
    public TorchModule child(String name) throws TorchFormatException {
        TorchModule c = children.get(name);
        if (c == null) throw new TorchFormatException("module '" + path + "' (" + simpleName() + ") has no sub-module '" + name + "'; it has " + children.keySet());
        return c;
    }

    /** The tensor {@code name}; a {@link TorchFormatException} naming this module's tensors if absent. */
    public TorchTensor tensor(String name) throws TorchFormatException {
        TorchTensor t = tensors.get(name);
        if (t == null) throw new TorchFormatException("module '" + path + "' (" + simpleName() + ") has no tensor '" + name + "'; it has " + tensors.keySet());
        return t;
    }

    @Override public String toString() { return (path.isEmpty() ? "<root>" : path) + ": " + className; }
}
