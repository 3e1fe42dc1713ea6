package ai.bonsai.io.torch;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * An instance of a TorchScript class ({@code __torch__.*}) as an inert record: its qualified class name and
 * the attribute dictionary the pickle's BUILD gave it. Nothing of the class is executed or looked up; the
 * name is just a string. {@link #toString()} does not descend into attributes (they may be deep or cyclic).
 */
public final class TorchObject {
    private final String className;
    private Map<String, Object> attributes = Map.of();
    private boolean built;

    TorchObject(String className) { this.className = className; }

    /** The qualified name, such as {@code __torch__.torch.nn.modules.conv.___torch_mangle_0.Conv2d}. */
    public String className() { return className; }

    /** The class name without its module and mangling, such as {@code Conv2d}. */
    public String simpleName() { return className.substring(className.lastIndexOf('.') + 1); }

    /** Attribute name to value (null, Boolean, Long, Double, String, List, Map, TorchTensor or TorchObject). */
    public Map<String, Object> attributes() { return attributes; }

    void build(Map<String, Object> state) {
        attributes = Collections.unmodifiableMap(new LinkedHashMap<>(state));
        built = true;
    }

    boolean isBuilt() { return built; }

    @Override public String toString() { return className + " (" + attributes.size() + " attributes)"; }
}
