package ai.bonsai.dsp.group;

import ai.bonsai.backend.Backend;
import ai.bonsai.dsp.prune.PrunableLayer;
import ai.bonsai.tensor.DType;
import ai.bonsai.tensor.Device;
import ai.bonsai.tensor.Tensor;

/**
 * DSP's group-channel regulariser for one convolution (spec section 3): a thin, allocation-free layer over the
 * backend's fused {@link Backend#groupRegularizer} and {@link Backend#groupSecondOrderAdd}.
 *
 * <p>One instance per layer owns its output tensors: {@link #penalty()} (shaped like the weight) and the
 * per-group pieces kept for step 8 of group learning. {@link #compute} overwrites them; the values stay valid
 * until the next call that writes them. Not thread-safe.
 *
 * <p>{@code R = scale * sum_g s_g * sum_c L_gc} with {@code scale = sqrt(inputSize) * k * (G / N)^1.5}; the
 * penalty carries the scale, dR/dp and the step-8 term do not (the reference's behaviour).
 *
 * <p>The output tensors live on one device, fixed at construction (the layer's weight's device for
 * {@link #GroupRegularizer(PrunableLayer, int)}): the fused kernels take buffers of one backend, so every weight and
 * assignment passed in must be on that device too (a mismatch is an error naming both devices).
 */
public final class GroupRegularizer {
    private final int groups, filters, channels, kernel;
    private final float scale;
    private final Tensor penalty;
    private final Tensor pieces;
    private boolean piecesValid;

    /**
     * The regulariser of a prunable layer with {@code groups} groups, sized and scaled from its record, on the device
     * where the layer's weight is now (so build it after {@code model.to(device)}).
     */
    public GroupRegularizer(PrunableLayer layer, int groups) {
        this(groups, layer.filters(), layer.channels(), layer.kernel(), layer.inputSize(), layer.conv().weight().device());
    }

    /** On the CPU. */
    public GroupRegularizer(int groups, int filters, int channels, int kernel, double inputSize) {
        this(groups, filters, channels, kernel, inputSize, Device.cpu());
    }

    /** With its output tensors on {@code device}, where the weights it is given must be. */
    public GroupRegularizer(int groups, int filters, int channels, int kernel, double inputSize, Device device) {
        if (groups < 1 || filters < 1 || channels < 1 || kernel < 1) {
            throw new IllegalArgumentException("GroupRegularizer: groups=" + groups + ", filters=" + filters + ", channels=" + channels
                    + ", kernel=" + kernel + " (all must be positive)");
        }
        if (!(inputSize > 0) || Double.isInfinite(inputSize)) {
            throw new IllegalArgumentException("GroupRegularizer: inputSize must be positive and finite, got " + inputSize);
        }
        this.groups = groups;
        this.filters = filters;
        this.channels = channels;
        this.kernel = kernel;
        this.scale = scale(inputSize, kernel, groups, filters);
        if (device == null) throw new IllegalArgumentException("GroupRegularizer: device is null");
        this.penalty = Tensor.zeros(device, filters, channels, kernel, kernel);
        this.pieces = Tensor.zeros(device, groups, Backend.groupPiecesRowLength(filters, channels));
    }

    /** {@code sqrt(inputSize) * k * (G / N)^1.5}, the reference's per-layer scaling of the penalty. */
    public static float scale(double inputSize, int kernel, int groups, int filters) {
        return (float) (Math.sqrt(inputSize) * kernel * Math.pow((double) groups / filters, 1.5));
    }

    public float scale() { return scale; }

    /** Where the penalty and pieces live, and where weights and assignments passed in must be. */
    public Device device() { return penalty.device(); }

    public int groups() { return groups; }

    /**
     * The penalty of the last {@link #compute}: scale * sum_g dR_g/dW, shape (N, C, k, k). A live tensor that
     * the next compute overwrites (and {@link #applyStep} scales).
     */
    public Tensor penalty() { return penalty; }

    /**
     * Computes the penalty at weight {@code w} (N, C, k, k) with assignment {@code p} (G, N), soft or hard.
     *
     * @param dRdp       (G, N) receiving the unscaled dR_g/dp, or null; added to when {@code accumulate},
     *                   overwritten otherwise
     * @param keepPieces whether to overwrite the pieces that {@link #secondOrderAdd} and {@link #value} read
     */
    public void compute(Tensor w, Tensor p, Tensor dRdp, boolean accumulate, boolean keepPieces) {
        checkWeight("compute", w);
        checkAssignment("compute", "p", p);
        if (dRdp != null) checkAssignment("compute", "dRdp", dRdp);
        Backend be = w.backend();
        be.groupRegularizer(w.buffer(), p.buffer(), groups, filters, channels, kernel * kernel, scale, penalty.buffer(),
                dRdp == null ? null : dRdp.buffer(), accumulate, keepPieces ? pieces.buffer() : null);
        if (keepPieces) piecesValid = true;
    }

    /** The penalty at {@code w} with assignment {@code p}: a view of {@link #penalty()}. */
    public Tensor penalty(Tensor w, Tensor p) {
        compute(w, p, null, false, false);
        return penalty;
    }

    /** A new (G, N) tensor, on the regulariser's device, holding the unscaled dR_g/dp at {@code w} with assignment {@code p}. */
    public Tensor dRdp(Tensor w, Tensor p) {
        Tensor out = Tensor.zeros(penalty.device(), groups, filters);
        compute(w, p, out, false, false);
        return out;
    }

    /** The regulariser's value R = scale * sum_g R_g at {@code w} with assignment {@code p} (also keeps the pieces). */
    public double value(Tensor w, Tensor p) {
        compute(w, p, null, false, true);
        return value();
    }

    /** R of the pieces kept by the last {@link #compute} with {@code keepPieces}. */
    public double value() {
        requirePieces("value");
        float[] pc = pieces.toFloatArray();
        int row = Backend.groupPiecesRowLength(filters, channels);
        double r = 0;
        for (int g = 0; g < groups; g++) r += (double) pc[g * row] * pc[g * row + 1];
        return scale * r;
    }

    /** The hard-assignment penalty: {@link #penalty(Tensor, Tensor)} with {@link #hardAssignment}({@code logits}). */
    public Tensor hardPenalty(Tensor w, Tensor logits) { return penalty(w, hardAssignment(logits)); }

    /** {@code w -= alpha * penalty()}, in place and without allocating; scales the stored penalty by alpha. */
    public void applyStep(Tensor w, float alpha) {
        checkWeight("applyStep", w);
        penalty.muli(alpha);
        w.subi(penalty.reshape(w.dims()));
    }

    /**
     * Adds the step-8 term to {@code pgrad} (G, N). {@code w} and {@code p} must be those of the last
     * {@link #compute} that kept pieces; {@code d} = W''' - W' has the weight's shape.
     */
    public void secondOrderAdd(Tensor w, Tensor d, Tensor p, Tensor pgrad) {
        requirePieces("secondOrderAdd");
        checkWeight("secondOrderAdd", w);
        checkWeight("secondOrderAdd", d);
        checkAssignment("secondOrderAdd", "p", p);
        checkAssignment("secondOrderAdd", "pgrad", pgrad);
        w.backend().groupSecondOrderAdd(w.buffer(), d.buffer(), p.buffer(), pieces.buffer(), groups, filters, channels,
                kernel * kernel, pgrad.buffer());
    }

    /**
     * The hard assignment of logits A (G, N): one-hot columns at argmax_g A[g, n], ties to the lowest group (so
     * all-zero logits put every filter in group 0). No noise. Computed on the logits' device (group learning calls
     * this every step, so no trip through the host): the backend's argmax keeps the first maximum, and the one-hot
     * is a scatter of ones at those indices into zeros, {@code onehot[argmax[n], n] += 1}, exactly 0 and 1 on
     * every device.
     */
    public static Tensor hardAssignment(Tensor logits) {
        if (logits.rank() != 2 || logits.dtype() != DType.FLOAT32) {
            throw new IllegalArgumentException("hardAssignment: logits must be a FLOAT32 (G, N) tensor, got " + logits.dtype() + " " + logits.shape());
        }
        int g = logits.dim(0), n = logits.dim(1);
        Tensor winner = logits.argmax(0);                     // (N) INT64, on the logits' device
        Tensor onehot = Tensor.zeros(logits.device(), g, n);
        Tensor ones = Tensor.zeros(logits.device(), n).fill(1f);
        logits.backend().takeAlongAxisAdd(onehot.buffer(), 1, g, n, winner.buffer(), ones.buffer());
        return onehot;
    }

    private void requirePieces(String op) {
        if (!piecesValid) throw new IllegalStateException(op + ": no pieces yet; call compute(w, p, ..., keepPieces=true) first");
    }

    private void checkWeight(String op, Tensor w) {
        int[] d = w.dims();
        boolean ok = w.dtype() == DType.FLOAT32 && (d.length == 4 && d[0] == filters && d[1] == channels && d[2] == kernel && d[3] == kernel
                || d.length == 3 && d[0] == filters && d[1] == channels && d[2] == kernel * kernel);
        if (!ok) {
            throw new IllegalArgumentException("GroupRegularizer." + op + ": weight must be FLOAT32 (" + filters + ", " + channels + ", " + kernel
                    + ", " + kernel + "), got " + w.dtype() + " " + w.shape());
        }
        if (!w.device().equals(penalty.device())) {
            throw new IllegalArgumentException("GroupRegularizer." + op + ": weight on " + w.device() + ", regulariser on " + penalty.device()
                    + " (build the regulariser, or the GroupWrapper, after model.to(device))");
        }
    }

    private void checkAssignment(String op, String name, Tensor p) {
        if (p.dtype() != DType.FLOAT32 || p.rank() != 2 || p.dim(0) != groups || p.dim(1) != filters) {
            throw new IllegalArgumentException("GroupRegularizer." + op + ": " + name + " must be FLOAT32 (" + groups + ", " + filters + "), got "
                    + p.dtype() + " " + p.shape());
        }
        if (!p.device().equals(penalty.device())) {
            throw new IllegalArgumentException("GroupRegularizer." + op + ": " + name + " on " + p.device() + ", regulariser on " + penalty.device());
        }
    }
}
