package ai.bonsai.optim;

import ai.bonsai.tensor.Tensor;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Stochastic gradient descent with momentum, PyTorch's {@code torch.optim.SGD}:
 * <pre>
 *   d = grad + weightDecay * p
 *   buf = d                                            on a parameter's first step
 *   buf = momentum * buf + (1 - dampening) * d         afterwards
 *   d = nesterov ? d + momentum * buf : buf            (when momentum != 0)
 *   p -= lr * d
 * </pre>
 * each parameter in one pass of the backend's fused {@code sgdStep}. The momentum buffer of a parameter is
 * created on its first step with a gradient; its presence is the "first step done" flag, saved as
 * {@code state.<i>.momentum_buffer}.
 */
public final class SGD extends Optimizer {
    private static final String MOMENTUM_BUFFER = "momentum_buffer";

    private float lr, momentum, dampening, weightDecay;
    private boolean nesterov;
    private final Tensor[] buffers;

    /** Plain SGD: no momentum, no weight decay. */
    public SGD(List<Tensor> params, float lr) { this(params, lr, 0f, 0f, 0f, false); }

    /** SGD with momentum and weight decay, no dampening, not Nesterov (the usual ResNet recipe). */
    public SGD(List<Tensor> params, float lr, float momentum, float weightDecay) { this(params, lr, momentum, 0f, weightDecay, false); }

    public SGD(List<Tensor> params, float lr, float momentum, float dampening, float weightDecay, boolean nesterov) {
        super("SGD", params);
        validate(lr, momentum, dampening, weightDecay, nesterov);
        this.lr = lr;
        this.momentum = momentum;
        this.dampening = dampening;
        this.weightDecay = weightDecay;
        this.nesterov = nesterov;
        this.buffers = new Tensor[params.size()];
    }

    private static void validate(float lr, float momentum, float dampening, float weightDecay, boolean nesterov) {
        require(lr >= 0, "SGD: learning rate must be >= 0, got " + lr);
        require(momentum >= 0, "SGD: momentum must be >= 0, got " + momentum);
        require(Float.isFinite(dampening), "SGD: dampening must be finite, got " + dampening);
        require(weightDecay >= 0, "SGD: weight decay must be >= 0, got " + weightDecay);
        require(!nesterov || (momentum > 0 && dampening == 0),
                "SGD: Nesterov momentum requires momentum > 0 and dampening = 0, got momentum=" + momentum + ", dampening=" + dampening);
    }

    @Override public void step() {
        List<Tensor> ps = params();
        for (int i = 0; i < ps.size(); i++) {
            Tensor p = ps.get(i);
            Tensor g = p.grad();
            if (g == null) continue;
            boolean first = buffers[i] == null;
            if (momentum != 0 && first) buffers[i] = p.zerosLike();
            p.backend().sgdStep(p.buffer(), g.buffer(), momentum != 0 ? buffers[i].buffer() : null,
                    lr, momentum, dampening, weightDecay, nesterov, first);
        }
    }

    @Override public float lr() { return lr; }

    @Override public void setLr(float lr) {
        require(lr >= 0, "SGD.setLr: learning rate must be >= 0, got " + lr);
        this.lr = lr;
    }

    public float momentum() { return momentum; }

    public float dampening() { return dampening; }

    public float weightDecay() { return weightDecay; }

    public boolean nesterov() { return nesterov; }

    /** Parameter i's momentum buffer (a live reference), or null before its first step or without momentum. */
    public Tensor momentumBuffer(int i) {
        checkIndex("momentumBuffer", i);
        return buffers[i];
    }

    /**
     * Sets parameter i's momentum buffer to a copy of {@code buf} (null clears it, so the next step starts
     * the buffer afresh). Structured pruning uses this to carry the sliced buffers of a shrunk layer over.
     */
    public void setMomentumBuffer(int i, Tensor buf) {
        checkIndex("setMomentumBuffer", i);
        if (buf != null) {
            String problem = checkLikeParam(i, "momentum buffer", buf);
            if (problem != null) throw new IllegalArgumentException("SGD.setMomentumBuffer: " + problem);
        }
        buffers[i] = buf == null ? null : copyForParam(i, buf);
    }

    /**
     * Copies {@code other}'s per-parameter state (momentum buffers and with them the first-step flags) into
     * this optimiser, parameter by parameter; the two parameter lists must have the same length and shapes.
     * Hyper-parameters are not copied. The buffers are deep copies, so the two optimisers evolve independently.
     */
    public void copyStateFrom(SGD other) {
        List<Tensor> mine = params(), theirs = other.params();
        if (mine.size() != theirs.size()) {
            throw new IllegalArgumentException("SGD.copyStateFrom: this optimiser has " + mine.size() + " parameters, the source has " + theirs.size());
        }
        StringBuilder bad = new StringBuilder();
        for (int i = 0; i < mine.size(); i++) {
            if (!mine.get(i).shape().equals(theirs.get(i).shape())) {
                bad.append(bad.length() == 0 ? "" : "; ").append("parameter ").append(i).append(": ").append(mine.get(i).shape())
                        .append(" vs source ").append(theirs.get(i).shape());
            }
        }
        if (bad.length() > 0) throw new IllegalArgumentException("SGD.copyStateFrom: parameter shapes differ: " + bad);
        for (int i = 0; i < mine.size(); i++) buffers[i] = other.buffers[i] == null ? null : copyForParam(i, other.buffers[i]);
    }

    private void checkIndex(String op, int i) {
        if (i < 0 || i >= buffers.length) throw new IndexOutOfBoundsException("SGD." + op + ": parameter index " + i + " for " + buffers.length + " parameters");
    }

    // ---------------------------------------------------------------- state dict

    @Override protected Map<String, Float> hyperParameters() {
        Map<String, Float> h = new LinkedHashMap<>();
        h.put("lr", lr);
        h.put("momentum", momentum);
        h.put("dampening", dampening);
        h.put("weight_decay", weightDecay);
        h.put("nesterov", nesterov ? 1f : 0f);
        return h;
    }

    @Override protected void setHyperParameters(Map<String, Float> v) {
        boolean nest = v.get("nesterov") != 0f;
        validate(v.get("lr"), v.get("momentum"), v.get("dampening"), v.get("weight_decay"), nest);
        lr = v.get("lr");
        momentum = v.get("momentum");
        dampening = v.get("dampening");
        weightDecay = v.get("weight_decay");
        nesterov = nest;
    }

    @Override protected Map<String, Tensor> parameterState(int i) {
        return buffers[i] == null ? Map.of() : Map.of(MOMENTUM_BUFFER, buffers[i]);
    }

    @Override protected Set<String> stateNames() { return Set.of(MOMENTUM_BUFFER); }

    @Override protected String checkParameterState(int i, Map<String, Tensor> state) {
        Tensor b = state.get(MOMENTUM_BUFFER);
        return b == null ? null : checkLikeParam(i, MOMENTUM_BUFFER, b);
    }

    @Override protected void setParameterState(int i, Map<String, Tensor> state) {
        Tensor b = state.get(MOMENTUM_BUFFER);
        buffers[i] = b == null ? null : copyForParam(i, b);
    }
}
