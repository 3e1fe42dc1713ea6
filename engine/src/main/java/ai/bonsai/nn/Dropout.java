package ai.bonsai.nn;

import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;

/**
 * Inverted dropout, PyTorch's {@code nn.Dropout}: in training mode each element is zeroed with probability p and
 * the survivors are scaled by 1 / (1 - p), so that the expected output equals the input and eval mode can be the
 * identity. The mask comes from the module's own {@link Generator} (never a global one), so a seed reproduces
 * the masks of a run; the mask itself is a constant, so the gradient is the upstream gradient times the same
 * scaled mask. p = 1 zeroes everything, as in PyTorch.
 */
public final class Dropout extends Module {
    private final float p;
    private final Generator g;

    public Dropout(float p, Generator g) {
        if (!(p >= 0 && p <= 1)) throw new IllegalArgumentException("Dropout: p must be in [0, 1], got " + p);
        if (g == null) throw new IllegalArgumentException("Dropout: generator is null (training draws its masks from it)");
        this.p = p;
        this.g = g;
    }

    public float p() { return p; }

    @Override public Tensor forward(Tensor x) {
        if (!isTraining() || p == 0f) return x;
        if (p == 1f) return x.mul(0f);
        // u ~ U[0, 1) keeps an element when u >= p, which happens with probability 1 - p.
        Tensor u = Tensor.rand(g, 0f, 1f, x.dims());
        Tensor keep = Tensor.full(p, 1).gt(u).neg().add(1f);
        return x.mul(keep.mul(1f / (1f - p)).to(x.device()));
    }

    @Override protected String extraRepr() { return "p=" + pyFloat(p) + ", inplace=False"; }
}
