package ai.bonsai.optim;

import ai.bonsai.tensor.DType;
import ai.bonsai.tensor.Tensor;

import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * The base of the optimisers: a fixed list of parameters (one PyTorch parameter group), hyper-parameters,
 * and per-parameter state such as momentum buffers.
 *
 * <p>{@link #stateDict()} flattens everything into tensors under PyTorch-like keys so a checkpoint can store
 * it next to the model's state dict: hyper-parameters as FLOAT32 scalars under
 * {@code param_groups.0.<name>} (booleans as 0/1), per-parameter state under {@code state.<index>.<name>}
 * with the index into {@link #params()}. A parameter that has not been stepped yet has no state entries,
 * exactly as in PyTorch. Hyper-parameters are floats because the fused update kernels take floats, so a
 * save/load round trip reproduces them bit for bit.
 *
 * <p>Parameters whose gradient is null are skipped by {@link #step()}, as in PyTorch.
 */
public abstract class Optimizer {
    private static final String GROUP = "param_groups.0.";
    private static final String STATE = "state.";

    private final List<Tensor> params;

    protected Optimizer(String name, List<Tensor> params) {
        if (params == null || params.isEmpty()) throw new IllegalArgumentException(name + ": empty parameter list");
        Set<Tensor> seen = Collections.newSetFromMap(new IdentityHashMap<>());
        for (int i = 0; i < params.size(); i++) {
            Tensor p = params.get(i);
            if (p == null) throw new IllegalArgumentException(name + ": parameter " + i + " is null");
            if (p.dtype() != DType.FLOAT32) throw new IllegalArgumentException(name + ": parameter " + i + " of shape " + p.shape() + " is " + p.dtype() + ", not FLOAT32");
            if (!p.isLeaf()) throw new IllegalArgumentException(name + ": parameter " + i + " of shape " + p.shape() + " is not a leaf tensor (created by " + p.gradFn().op() + ")");
            if (!seen.add(p)) throw new IllegalArgumentException(name + ": parameter " + i + " of shape " + p.shape() + " appears more than once in the list");
        }
        this.params = List.copyOf(params);
    }

    /** The optimised parameters, in the order that state indices refer to. */
    public final List<Tensor> params() { return params; }

    /** Applies one update to every parameter that has a gradient. */
    public abstract void step();

    /** Drops every parameter's gradient (PyTorch's set_to_none default). */
    public void zeroGrad() {
        for (Tensor p : params) p.zeroGrad();
    }

    public abstract float lr();

    public abstract void setLr(float lr);

    // ---------------------------------------------------------------- state dict

    /** Hyper-parameters by name, in a fixed order; values must round-trip through float. */
    protected abstract Map<String, Float> hyperParameters();

    /** Validates and sets all hyper-parameters at once (the map holds exactly the names of {@link #hyperParameters()}). */
    protected abstract void setHyperParameters(Map<String, Float> values);

    /** Parameter i's state by name (empty before its first step); the tensors may be live references. */
    protected abstract Map<String, Tensor> parameterState(int i);

    /** The state names this optimiser knows, so unknown keys can be rejected. */
    protected abstract Set<String> stateNames();

    /**
     * Describes what is wrong with {@code state} for parameter i (wrong names, shapes or a partial set), or
     * returns null when it is acceptable. An empty map means "not stepped yet".
     */
    protected abstract String checkParameterState(int i, Map<String, Tensor> state);

    /** Replaces parameter i's state with copies of {@code state} (already checked). */
    protected abstract void setParameterState(int i, Map<String, Tensor> state);

    /**
     * Hyper-parameters and per-parameter state as tensors. Per-parameter tensors are references to the
     * live state (as in PyTorch): serialise or copy them before stepping again if a snapshot is wanted.
     */
    public final Map<String, Tensor> stateDict() {
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (Map.Entry<String, Float> h : hyperParameters().entrySet()) out.put(GROUP + h.getKey(), Tensor.scalar(h.getValue()));
        for (int i = 0; i < params.size(); i++) {
            for (Map.Entry<String, Tensor> s : parameterState(i).entrySet()) out.put(STATE + i + "." + s.getKey(), s.getValue().detach());
        }
        return out;
    }

    /**
     * Restores hyper-parameters and per-parameter state from {@link #stateDict()}'s format, copying the
     * tensors. Everything is checked first; on any problem nothing changes and one exception lists them all.
     */
    public final void loadStateDict(Map<String, Tensor> state) {
        String name = getClass().getSimpleName();
        List<String> errors = new ArrayList<>();
        Map<String, Float> hyper = new LinkedHashMap<>();
        Map<Integer, Map<String, Tensor>> perParam = new TreeMap<>();
        Set<String> known = hyperParameters().keySet();
        for (Map.Entry<String, Tensor> e : state.entrySet()) {
            String key = e.getKey();
            Tensor t = e.getValue();
            if (key.startsWith(GROUP) && known.contains(key.substring(GROUP.length()))) {
                if (t.numel() != 1 || t.dtype() != DType.FLOAT32) {
                    errors.add(key + ": expected a FLOAT32 scalar, got " + t.dtype() + " " + t.shape());
                } else {
                    hyper.put(key.substring(GROUP.length()), t.item());
                }
            } else if (key.startsWith(STATE)) {
                String rest = key.substring(STATE.length());
                int dot = rest.indexOf('.');
                int index = -1;
                try {
                    if (dot > 0) index = Integer.parseInt(rest.substring(0, dot));
                } catch (NumberFormatException ex) { /* reported below */ }
                if (index < 0 || index >= params.size() || !stateNames().contains(rest.substring(dot + 1))) {
                    errors.add("unexpected key " + key + " (state entries are state.<0.." + (params.size() - 1) + ">." + stateNames() + ")");
                } else {
                    perParam.computeIfAbsent(index, k -> new LinkedHashMap<>()).put(rest.substring(dot + 1), t);
                }
            } else {
                errors.add("unexpected key " + key);
            }
        }
        for (String h : known) if (!hyper.containsKey(h) && !state.containsKey(GROUP + h)) errors.add("missing key " + GROUP + h);
        for (Map.Entry<Integer, Map<String, Tensor>> e : perParam.entrySet()) {
            String problem = checkParameterState(e.getKey(), e.getValue());
            if (problem != null) errors.add("state." + e.getKey() + ": " + problem);
        }
        if (errors.isEmpty()) {
            try {
                setHyperParameters(hyper);
            } catch (IllegalArgumentException ex) {
                errors.add("hyper-parameters: " + ex.getMessage());
            }
        }
        if (!errors.isEmpty()) {
            throw new IllegalArgumentException(name + ".loadStateDict: " + errors.size() + " problem(s):\n\t" + String.join("\n\t", errors));
        }
        for (int i = 0; i < params.size(); i++) setParameterState(i, perParam.getOrDefault(i, Map.of()));
    }

    // ---------------------------------------------------------------- helpers for subclasses

    /** Checks that {@code t} is a FLOAT32 tensor shaped like parameter i; returns a description otherwise. */
    protected final String checkLikeParam(int i, String what, Tensor t) {
        Tensor p = params.get(i);
        if (t.dtype() != DType.FLOAT32 || !t.shape().equals(p.shape())) {
            return what + " is " + t.dtype() + " " + t.shape() + " but parameter " + i + " is FLOAT32 " + p.shape();
        }
        return null;
    }

    /** A copy of {@code t} on parameter i's device. */
    protected final Tensor copyForParam(int i, Tensor t) {
        return t.to(params.get(i).device()).copy();
    }

    static void require(boolean ok, String message) {
        if (!ok) throw new IllegalArgumentException(message);
    }
}
