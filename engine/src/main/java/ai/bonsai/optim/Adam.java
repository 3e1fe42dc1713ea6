package ai.bonsai.optim;

import ai.bonsai.tensor.DType;
import ai.bonsai.tensor.Tensor;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Adam, PyTorch's {@code torch.optim.Adam} (L2 weight decay added to the gradient, not AdamW):
 * <pre>
 *   d = grad + weightDecay * p
 *   m = beta1 * m + (1 - beta1) * d          v = beta2 * v + (1 - beta2) * d^2
 *   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * </pre>
 * with t the parameter's own step count (1 on its first update), in the backend's fused {@code adamStep}.
 * State per parameter: {@code step} (INT64 scalar), {@code exp_avg} (m) and {@code exp_avg_sq} (v).
 */
public final class Adam extends Optimizer {
    private static final String STEP = "step", EXP_AVG = "exp_avg", EXP_AVG_SQ = "exp_avg_sq";

    private float lr, beta1, beta2, eps, weightDecay;
    private final long[] steps;
    private final Tensor[] m, v;

    /** Adam with PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, no weight decay. */
    public Adam(List<Tensor> params, float lr) { this(params, lr, 0.9f, 0.999f, 1e-8f, 0f); }

    public Adam(List<Tensor> params, float lr, float beta1, float beta2, float eps, float weightDecay) {
        super("Adam", params);
        validate(lr, beta1, beta2, eps, weightDecay);
        this.lr = lr;
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        this.weightDecay = weightDecay;
        steps = new long[params.size()];
        m = new Tensor[params.size()];
        v = new Tensor[params.size()];
    }

    private static void validate(float lr, float beta1, float beta2, float eps, float weightDecay) {
        require(lr >= 0, "Adam: learning rate must be >= 0, got " + lr);
        require(beta1 >= 0 && beta1 < 1, "Adam: beta1 must be in [0, 1), got " + beta1);
        require(beta2 >= 0 && beta2 < 1, "Adam: beta2 must be in [0, 1), got " + beta2);
        require(eps >= 0, "Adam: eps must be >= 0, got " + eps);
        require(weightDecay >= 0, "Adam: weight decay must be >= 0, got " + weightDecay);
    }

    @Override public void step() {
        List<Tensor> ps = params();
        for (int i = 0; i < ps.size(); i++) {
            Tensor p = ps.get(i);
            Tensor g = p.grad();
            if (g == null) continue;
            if (m[i] == null) {
                m[i] = p.zerosLike();
                v[i] = p.zerosLike();
            }
            steps[i]++;
            if (steps[i] > Integer.MAX_VALUE) throw new IllegalStateException("Adam: step count of parameter " + i + " exceeds the kernel's int range");
            p.backend().adamStep(p.buffer(), g.buffer(), m[i].buffer(), v[i].buffer(), lr, beta1, beta2, eps, weightDecay, (int) steps[i]);
        }
    }

    @Override public float lr() { return lr; }

    @Override public void setLr(float lr) {
        require(lr >= 0, "Adam.setLr: learning rate must be >= 0, got " + lr);
        this.lr = lr;
    }

    public float beta1() { return beta1; }

    public float beta2() { return beta2; }

    public float eps() { return eps; }

    public float weightDecay() { return weightDecay; }

    /** How many updates parameter i has received. */
    public long stepCount(int i) { return steps[i]; }

    // ---------------------------------------------------------------- state dict

    @Override protected Map<String, Float> hyperParameters() {
        Map<String, Float> h = new LinkedHashMap<>();
        h.put("lr", lr);
        h.put("beta1", beta1);
        h.put("beta2", beta2);
        h.put("eps", eps);
        h.put("weight_decay", weightDecay);
        return h;
    }

    @Override protected void setHyperParameters(Map<String, Float> h) {
        validate(h.get("lr"), h.get("beta1"), h.get("beta2"), h.get("eps"), h.get("weight_decay"));
        lr = h.get("lr");
        beta1 = h.get("beta1");
        beta2 = h.get("beta2");
        eps = h.get("eps");
        weightDecay = h.get("weight_decay");
    }

    @Override protected Map<String, Tensor> parameterState(int i) {
        if (m[i] == null) return Map.of();
        Map<String, Tensor> s = new LinkedHashMap<>();
        s.put(STEP, Tensor.ofLongs(new long[] {steps[i]}));
        s.put(EXP_AVG, m[i]);
        s.put(EXP_AVG_SQ, v[i]);
        return s;
    }

    @Override protected Set<String> stateNames() { return Set.of(STEP, EXP_AVG, EXP_AVG_SQ); }

    @Override protected String checkParameterState(int i, Map<String, Tensor> state) {
        if (!state.keySet().equals(stateNames())) return "expected all of " + stateNames() + ", got " + state.keySet();
        Tensor step = state.get(STEP);
        if (step.numel() != 1 || step.dtype() == DType.FLOAT32) return "step must be an integer scalar, got " + step.dtype() + " " + step.shape();
        if (step.toLongArray()[0] < 0) return "step must be >= 0, got " + step.toLongArray()[0];
        String a = checkLikeParam(i, EXP_AVG, state.get(EXP_AVG));
        return a != null ? a : checkLikeParam(i, EXP_AVG_SQ, state.get(EXP_AVG_SQ));
    }

    @Override protected void setParameterState(int i, Map<String, Tensor> state) {
        if (state.isEmpty()) {
            steps[i] = 0;
            m[i] = null;
            v[i] = null;
            return;
        }
        steps[i] = state.get(STEP).toLongArray()[0];
        m[i] = copyForParam(i, state.get(EXP_AVG));
        v[i] = copyForParam(i, state.get(EXP_AVG_SQ));
    }
}
