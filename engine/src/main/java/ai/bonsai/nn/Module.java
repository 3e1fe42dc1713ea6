package ai.bonsai.nn;

import ai.bonsai.tensor.Tensor;

import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Consumer;

/**
 * The base of every layer and model, shaped like PyTorch's {@code nn.Module}: a module owns named parameters
 * (tensors the optimiser updates), named buffers (state that is saved but not trained, such as batch-norm
 * running statistics) and named child modules, each kept in registration order. Recursive views
 * ({@link #namedParameters()}, {@link #stateDict()}, ...) join the names with dots, so a checkpoint written
 * here has the keys PyTorch would give the same architecture ({@code layer1.0.conv1.weight}).
 *
 * <p>Subclasses register everything in their constructor and read their tensors back through
 * {@link #parameter(String)}/{@link #buffer(String)} in {@link #forward}, so that replacing a tensor with
 * {@link #registerParameter} (as structured pruning does when it shrinks a layer) takes effect everywhere.
 *
 * <p>Thread safety: a model in eval mode may be shared by any number of threads that only call {@link #forward},
 * each with gradients off on its own thread ({@code GradMode.noGrad()} is per thread); outputs then equal a single
 * thread's bit for bit. Training, {@link #train(boolean)}/{@code eval()}, loading a state dict or re-registering
 * tensors while other threads run forwards is not safe: do those first, then publish the model (for example
 * through a final field or a concurrent collection). Train mode is never safe to share: batch norm updates its
 * running statistics in the forward.
 */
public abstract class Module {
    private final Map<String, Tensor> parameters = new LinkedHashMap<>();
    private final Map<String, Tensor> buffers = new LinkedHashMap<>();
    private final Map<String, Module> children = new LinkedHashMap<>();
    private boolean training = true;

    /** Runs the module. */
    public abstract Tensor forward(Tensor x);

    // ---------------------------------------------------------------- registration

    /**
     * Registers (or replaces, keeping its position) a trainable tensor. The tensor must be a FLOAT32 leaf;
     * it is marked as requiring a gradient.
     */
    public Tensor registerParameter(String name, Tensor t) {
        checkName("registerParameter", name, parameters);
        if (t == null) throw new IllegalArgumentException("registerParameter: parameter '" + name + "' is null (leave optional parameters unregistered)");
        if (!t.isLeaf()) throw new IllegalArgumentException("registerParameter: parameter '" + name + "' must be a leaf tensor, got one created by " + t.gradFn().op() + "; use detach()");
        t.requiresGrad(true);
        parameters.put(name, t);
        return t;
    }

    /** Registers (or replaces) a tensor that is saved in the state dict but not trained. */
    public Tensor registerBuffer(String name, Tensor t) {
        checkName("registerBuffer", name, buffers);
        if (t == null) throw new IllegalArgumentException("registerBuffer: buffer '" + name + "' is null");
        buffers.put(name, t);
        return t;
    }

    /** Registers (or replaces) a child module; returns it. */
    public <M extends Module> M registerModule(String name, M m) {
        checkName("registerModule", name, children);
        if (m == null) throw new IllegalArgumentException("registerModule: module '" + name + "' is null");
        if (m == this) throw new IllegalArgumentException("registerModule: a module cannot be its own child ('" + name + "')");
        children.put(name, m);
        return m;
    }

    /** Names must be non-empty, dot-free and unique across parameters, buffers and children (dots join paths). */
    private void checkName(String op, String name, Map<String, ?> own) {
        if (name == null || name.isEmpty() || name.contains(".")) {
            throw new IllegalArgumentException(op + ": name '" + name + "' must be non-empty and contain no '.'");
        }
        if (own != parameters && parameters.containsKey(name)
                || own != buffers && buffers.containsKey(name)
                || own != children && children.containsKey(name)) {
            throw new IllegalArgumentException(op + ": '" + name + "' is already used by another parameter, buffer or module of " + getClass().getSimpleName());
        }
    }

    /** This module's own parameter {@code name}. */
    protected final Tensor parameter(String name) {
        Tensor t = parameters.get(name);
        if (t == null) throw new IllegalStateException(getClass().getSimpleName() + " has no parameter '" + name + "' (it has " + parameters.keySet() + ")");
        return t;
    }

    /** This module's own parameter {@code name}, or null when it is not registered (an absent bias). */
    protected final Tensor parameterOrNull(String name) { return parameters.get(name); }

    /** This module's own buffer {@code name}. */
    protected final Tensor buffer(String name) {
        Tensor t = buffers.get(name);
        if (t == null) throw new IllegalStateException(getClass().getSimpleName() + " has no buffer '" + name + "' (it has " + buffers.keySet() + ")");
        return t;
    }

    // ---------------------------------------------------------------- traversal

    /** Direct children in registration order. */
    public Map<String, Module> namedChildren() { return Collections.unmodifiableMap(children); }

    public List<Module> children() { return new ArrayList<>(children.values()); }

    /**
     * This module (named "") and every descendant, depth first in registration order, with dotted names. A
     * module reachable along two paths is listed once, under the first.
     */
    public Map<String, Module> namedModules() {
        Map<String, Module> out = new LinkedHashMap<>();
        collectModules("", this, out, Collections.newSetFromMap(new IdentityHashMap<>()));
        return out;
    }

    private static void collectModules(String prefix, Module m, Map<String, Module> out, Set<Module> seen) {
        if (!seen.add(m)) return;
        out.put(prefix, m);
        for (Map.Entry<String, Module> c : m.children.entrySet()) collectModules(join(prefix, c.getKey()), c.getValue(), out, seen);
    }

    /** The descendant at a dotted path ("" is this module). */
    public Module submodule(String path) {
        Module m = this;
        if (path.isEmpty()) return m;
        for (String part : path.split("\\.", -1)) {
            Module next = m.children.get(part);
            if (next == null) {
                throw new IllegalArgumentException("submodule: '" + path + "' not found: " + m.getClass().getSimpleName() + " has no child '" + part + "' (children " + m.children.keySet() + ")");
            }
            m = next;
        }
        return m;
    }

    /** All parameters with dotted names; a tensor shared by several modules is listed once. */
    public Map<String, Tensor> namedParameters() { return collectTensors(true); }

    public List<Tensor> parameters() { return new ArrayList<>(namedParameters().values()); }

    /** All buffers with dotted names; a tensor shared by several modules is listed once. */
    public Map<String, Tensor> namedBuffers() { return collectTensors(false); }

    public List<Tensor> buffers() { return new ArrayList<>(namedBuffers().values()); }

    /** Total number of parameter elements. */
    public long parameterCount() {
        long n = 0;
        for (Tensor t : parameters()) n += t.numel();
        return n;
    }

    private Map<String, Tensor> collectTensors(boolean params) {
        Map<String, Tensor> out = new LinkedHashMap<>();
        Set<Tensor> seen = Collections.newSetFromMap(new IdentityHashMap<>());
        for (Map.Entry<String, Module> e : namedModules().entrySet()) {
            Map<String, Tensor> own = params ? e.getValue().parameters : e.getValue().buffers;
            for (Map.Entry<String, Tensor> t : own.entrySet()) {
                if (seen.add(t.getValue())) out.put(join(e.getKey(), t.getKey()), t.getValue());
            }
        }
        return out;
    }

    /** Calls {@code fn} on every child (recursively) and then on this module, as PyTorch's apply does. */
    public Module apply(Consumer<Module> fn) {
        for (Module c : children.values()) c.apply(fn);
        fn.accept(this);
        return this;
    }

    private static String join(String prefix, String name) { return prefix.isEmpty() ? name : prefix + "." + name; }

    // ---------------------------------------------------------------- modes and gradients

    /** Sets training mode on this module and all descendants. */
    public Module train(boolean on) {
        training = on;
        for (Module c : children.values()) c.train(on);
        return this;
    }

    public Module train() { return train(true); }

    public Module eval() { return train(false); }

    public boolean isTraining() { return training; }

    /** Drops the gradients of all parameters (PyTorch's set_to_none behaviour). */
    public void zeroGrad() {
        for (Tensor p : parameters()) p.zeroGrad();
    }

    // ---------------------------------------------------------------- device

    /**
     * Moves every parameter and buffer of this module and its descendants to {@code device} (PyTorch's
     * {@code module.to(device)}); returns this module. A tensor already there is kept; any other is replaced, in
     * its registration slot, by a copy on {@code device} (a parameter stays a leaf that requires a gradient if it did, and
     * its gradient is dropped). Values are copied exactly, so a model moved to a device starts from the same
     * initialisation as on the CPU.
     *
     * <p>Build the optimiser after moving the model: an optimiser holds the parameter tensors it was given, and
     * those are the replaced ones. Its state (momentum, Adam moments) is then created on the parameters' device,
     * and optimiser state loaded from a checkpoint is placed there too.
     */
    public Module to(ai.bonsai.tensor.Device device) {
        if (device == null) throw new IllegalArgumentException("Module.to: device is null");
        moveTensors(this, device, new IdentityHashMap<>());
        return this;
    }

    /** Moves own tensors then children's; a tensor shared by two slots is moved once and stays shared. */
    private static void moveTensors(Module m, ai.bonsai.tensor.Device device, IdentityHashMap<Tensor, Tensor> moved) {
        for (Map.Entry<String, Tensor> e : m.parameters.entrySet()) {
            Tensor t = e.getValue();
            if (t.device().equals(device)) continue;
            e.setValue(moved.computeIfAbsent(t, x -> x.detach().to(device).requiresGrad(x.requiresGrad())));
        }
        for (Map.Entry<String, Tensor> e : m.buffers.entrySet()) {
            Tensor t = e.getValue();
            if (t.device().equals(device)) continue;
            e.setValue(moved.computeIfAbsent(t, x -> x.detach().to(device)));
        }
        for (Module c : m.children.values()) moveTensors(c, device, moved);
    }

    /** The device of this module's first parameter (or buffer); CPU when it has neither. */
    public ai.bonsai.tensor.Device device() {
        for (Tensor t : namedParameters().values()) return t.device();
        for (Tensor t : namedBuffers().values()) return t.device();
        return ai.bonsai.tensor.Device.cpu();
    }

    // ---------------------------------------------------------------- state dict

    /**
     * Parameters and buffers by dotted name, per module its parameters then its buffers, then its children
     * (PyTorch's order). The values are detached references to the live tensors, not copies: copy them
     * (or serialise them) before training on if a snapshot is wanted.
     */
    public Map<String, Tensor> stateDict() {
        Map<String, Tensor> out = new LinkedHashMap<>();
        collectState("", this, out);
        return out;
    }

    private static void collectState(String prefix, Module m, Map<String, Tensor> out) {
        for (Map.Entry<String, Tensor> e : m.parameters.entrySet()) out.put(join(prefix, e.getKey()), e.getValue().detach());
        for (Map.Entry<String, Tensor> e : m.buffers.entrySet()) out.put(join(prefix, e.getKey()), e.getValue().detach());
        for (Map.Entry<String, Module> c : m.children.entrySet()) collectState(join(prefix, c.getKey()), c.getValue(), out);
    }

    /** What a non-strict {@link #loadStateDict} skipped; all empty after a strict load. */
    public record LoadResult(List<String> missingKeys, List<String> unexpectedKeys, List<String> mismatchedKeys) {
        public LoadResult {
            missingKeys = List.copyOf(missingKeys);
            unexpectedKeys = List.copyOf(unexpectedKeys);
            mismatchedKeys = List.copyOf(mismatchedKeys);
        }

        public boolean isComplete() { return missingKeys.isEmpty() && unexpectedKeys.isEmpty() && mismatchedKeys.isEmpty(); }
    }

    /**
     * Copies values from {@code state} into this module's parameters and buffers in place, so references
     * held elsewhere (an optimiser's parameter list) stay valid.
     *
     * <p>Strict: every key must be present with the right shape and dtype and no other key may appear;
     * otherwise nothing is copied and one exception lists every missing, unexpected and mis-shaped entry.
     * Non-strict: entries that match are copied and the rest are reported.
     */
    public LoadResult loadStateDict(Map<String, Tensor> state, boolean strict) {
        Map<String, Tensor> own = stateDict();
        List<String> missing = new ArrayList<>(), unexpected = new ArrayList<>(), mismatched = new ArrayList<>();
        List<String> mismatchDetails = new ArrayList<>();
        for (Map.Entry<String, Tensor> e : own.entrySet()) {
            Tensor src = state.get(e.getKey());
            if (src == null) { missing.add(e.getKey()); continue; }
            Tensor dst = e.getValue();
            if (!src.shape().equals(dst.shape()) || src.dtype() != dst.dtype()) {
                mismatched.add(e.getKey());
                mismatchDetails.add("size mismatch for " + e.getKey() + ": copying a tensor with shape " + src.shape() + " " + src.dtype()
                        + " from the state dict, the shape in the current model is " + dst.shape() + " " + dst.dtype() + ".");
            }
        }
        for (String k : state.keySet()) if (!own.containsKey(k)) unexpected.add(k);
        if (strict && !(missing.isEmpty() && unexpected.isEmpty() && mismatched.isEmpty())) {
            StringBuilder sb = new StringBuilder("Error(s) in loading state dict for ").append(getClass().getSimpleName()).append(':');
            if (!missing.isEmpty()) sb.append("\n\tMissing key(s) in state dict: ").append(quoted(missing)).append('.');
            if (!unexpected.isEmpty()) sb.append("\n\tUnexpected key(s) in state dict: ").append(quoted(unexpected)).append('.');
            for (String d : mismatchDetails) sb.append("\n\t").append(d);
            throw new IllegalArgumentException(sb.toString());
        }
        // copyFrom writes the buffer without recording a graph, so parameters that require grad can be targets.
        for (Map.Entry<String, Tensor> e : own.entrySet()) {
            Tensor src = state.get(e.getKey());
            if (src == null || mismatched.contains(e.getKey())) continue;
            e.getValue().copyFrom(src.detach().to(e.getValue().device()));
        }
        return new LoadResult(missing, unexpected, mismatched);
    }

    private static String quoted(List<String> keys) {
        StringBuilder sb = new StringBuilder();
        for (String k : keys) sb.append(sb.length() == 0 ? "" : ", ").append('"').append(k).append('"');
        return sb.toString();
    }

    // ---------------------------------------------------------------- printing

    /** The text between the parentheses of this module's line in {@link #toString()}, e.g. {@code 3, 16, kernel_size=(3, 3)}. */
    protected String extraRepr() { return ""; }

    /** The module tree in PyTorch's format. */
    @Override public String toString() {
        String extra = extraRepr();
        List<String> extraLines = extra.isEmpty() ? List.of() : List.of(extra.split("\n"));
        List<String> lines = new ArrayList<>(extraLines);
        for (Map.Entry<String, Module> c : children.entrySet()) {
            lines.add("(" + c.getKey() + "): " + c.getValue().toString().replace("\n", "\n  "));
        }
        StringBuilder sb = new StringBuilder(getClass().getSimpleName()).append('(');
        if (extraLines.size() == 1 && children.isEmpty()) sb.append(extraLines.get(0));
        else if (!lines.isEmpty()) sb.append("\n  ").append(String.join("\n  ", lines)).append('\n');
        return sb.append(')').toString();
    }

    /** A float hyper-parameter printed by its shortest decimal form (1e-5f prints as 1e-05, not 9.99...e-06). */
    static String pyFloat(float v) { return pyFloat(Double.parseDouble(Float.toString(v))); }

    /** A float as Python's repr writes it (1e-05, 0.1, 1.0), so printed hyper-parameters read as in PyTorch. */
    static String pyFloat(double v) {
        if (v == 0) return "0.0";
        if (Double.isNaN(v) || Double.isInfinite(v)) return Double.isNaN(v) ? "nan" : v > 0 ? "inf" : "-inf";
        java.math.BigDecimal d = new java.math.BigDecimal(Double.toString(v)).stripTrailingZeros();
        int exp = d.precision() - d.scale() - 1;                 // decimal exponent of the leading digit
        if (exp < -4 || exp >= 16) {
            String digits = d.unscaledValue().abs().toString();
            String mant = digits.length() == 1 ? digits : digits.charAt(0) + "." + digits.substring(1);
            return (v < 0 ? "-" : "") + mant + "e" + (exp < 0 ? "-" : "+") + String.format("%02d", Math.abs(exp));
        }
        String s = d.toPlainString();
        return s.contains(".") ? s : s + ".0";
    }
}
