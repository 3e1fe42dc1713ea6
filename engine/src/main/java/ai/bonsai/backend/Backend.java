package ai.bonsai.backend;

import ai.bonsai.tensor.Buffer;
import ai.bonsai.tensor.DType;
import ai.bonsai.tensor.Device;
import ai.bonsai.tensor.Generator;

/**
 * The primitives a device must provide. Autograd, nn and optim are written once above this contract, so a
 * backend never writes a backward pass of its own: it only supplies the forward kernels and the few
 * backward kernels that a composition of primitives would make slow (convolution, batch norm, pooling).
 *
 * <p>Groups, as in tinygrad: memory, element-wise, reduce, movement, and processing (matmul, convolution,
 * normalisation, pooling, softmax, gathers, optimiser updates, DSP's fused group regulariser).
 *
 * <p>Conventions. All buffers are dense and row-major. Kernels <b>overwrite</b> their outputs unless their
 * name ends in {@code Add} or the argument says {@code accumulate}; those add into what is there.
 * Every buffer argument belongs to this backend. Shapes are validated above this layer: a backend may
 * assume consistent sizes.
 */
public interface Backend {

    Device device();

    // ---------------------------------------------------------------- memory

    /** A zero-filled buffer. */
    Buffer allocate(DType dtype, int length);

    /**
     * A buffer whose contents are unspecified, for an output the next kernel overwrites in full. Inside a
     * {@link StepArena} scope it may hold a previous step's values; elsewhere it is whatever {@link #allocate} gives.
     */
    default Buffer empty(DType dtype, int length) { return allocate(dtype, length); }

    Buffer fromFloats(float[] data);

    Buffer fromInts(int[] data);

    Buffer fromLongs(long[] data);

    /** Copies a FLOAT32 buffer to the host. */
    float[] toFloats(Buffer b);

    /** Copies an integer buffer (INT32 or INT64) to the host as longs. */
    long[] toLongs(Buffer b);

    void fill(Buffer b, float value);

    void copy(Buffer src, int srcOffset, Buffer dst, int dstOffset, int length);

    /** Fills with uniform draws in [lo, hi), drawn in element order from {@code g}. */
    void uniform(Buffer out, Generator g, float lo, float hi);

    /** Fills with normal draws, drawn in element order from {@code g}. */
    void normal(Buffer out, Generator g, float mean, float std);

    // ---------------------------------------------------------------- element-wise

    /** out = op(x); out may be x. */
    void unary(UnaryOp op, Buffer x, Buffer out);

    /** out = x * scale + shift; out may be x. */
    void affine(Buffer x, float scale, float shift, Buffer out);

    /**
     * out = op(a, b) with NumPy broadcasting. {@code aDims} and {@code bDims} are already right-aligned to
     * {@code outDims}' rank (leading 1s added).
     */
    void binary(BinaryOp op, Buffer a, int[] aDims, Buffer b, int[] bDims, Buffer out, int[] outDims);

    // ---------------------------------------------------------------- reductions

    /**
     * Reduces x over the axes where {@code reduce[i]} is true; out has x's rank with those axes set to 1.
     */
    void reduce(ReduceOp op, Buffer x, int[] xDims, boolean[] reduce, Buffer out);

    /** Index (INT64) of the maximum along {@code axis}; the first one wins ties. */
    void argmax(Buffer x, int[] xDims, int axis, Buffer out);

    // ---------------------------------------------------------------- movement

    /**
     * The one movement primitive: walks {@code dims} in row-major order and copies
     * src[srcOffset + sum(i * srcStrides)] to dst[dstOffset + sum(i * dstStrides)], adding when
     * {@code accumulate}. Permute, slice, its backward, cat and broadcast-expand are all this call.
     * With {@code accumulate}, dst strides must not alias (no stride 0).
     */
    void strided(Buffer src, int srcOffset, int[] srcStrides, Buffer dst, int dstOffset, int[] dstStrides,
                 int[] dims, boolean accumulate);

    // ---------------------------------------------------------------- processing

    /**
     * C = alpha * op(A) * op(B) + beta * C for {@code batch} independent matrices; op(A) is (m, k),
     * op(B) is (k, n), C is (m, n), each matrix dense and row-major, consecutive in its buffer.
     * A batch stride of 0 reuses one matrix for all.
     */
    void gemm(boolean transA, boolean transB, int batch, int m, int n, int k, float alpha,
              Buffer a, int aBatchStride, Buffer b, int bBatchStride, float beta, Buffer c);

    /** y = conv(x, w) + bias (bias may be null). */
    void conv2d(ConvGeometry g, Buffer x, Buffer w, Buffer bias, Buffer y);

    void conv2dBackwardData(ConvGeometry g, Buffer dy, Buffer w, Buffer dx);

    /**
     * dx += conv_transpose(dy, w): {@link #conv2dBackwardData} added into a gradient that is already there (a
     * tensor that feeds two ops gets the sum of both gradients). The result is the same as computing the data
     * gradient and adding it, bit for bit; a backend that can add while it writes saves that add's pass over memory.
     */
    default void conv2dBackwardDataAdd(ConvGeometry g, Buffer dy, Buffer w, Buffer dx) {
        int length = g.n() * g.c() * g.h() * g.w();
        Buffer t = empty(DType.FLOAT32, length);
        conv2dBackwardData(g, dy, w, t);
        int[] d = {length};
        binary(BinaryOp.ADD, dx, d, t, d, dx, d);
    }

    void conv2dBackwardWeight(ConvGeometry g, Buffer x, Buffer dy, Buffer dw);

    /**
     * Batch norm over (n, c, hw) in training: normalises with batch statistics, writes the batch mean and
     * inverse standard deviation to {@code saveMean}/{@code saveInvStd}, and updates the running statistics
     * in place: running = (1 - momentum) * running + momentum * batch (the variance unbiased).
     */
    void batchNormTrain(Buffer x, int n, int c, int hw, Buffer gamma, Buffer beta, Buffer runningMean,
                        Buffer runningVar, float momentum, float eps, Buffer y, Buffer saveMean, Buffer saveInvStd);

    /** Batch norm with the running statistics. */
    void batchNormEval(Buffer x, int n, int c, int hw, Buffer gamma, Buffer beta, Buffer runningMean,
                       Buffer runningVar, float eps, Buffer y);

    /** Backward of {@link #batchNormTrain}: overwrites dx, dGamma and dBeta (dx may be null). */
    void batchNormBackward(Buffer x, Buffer dy, int n, int c, int hw, Buffer gamma, Buffer saveMean,
                           Buffer saveInvStd, Buffer dx, Buffer dGamma, Buffer dBeta);

    /**
     * {@link #batchNormTrain} followed by its epilogue, y = relu(batchNorm(x) + residual), where the residual (of
     * x's size, or null) and the ReLU are each optional: a ResNet block's "bn, add, relu" as one op. Fusing saves
     * the passes over memory and, in training, the intermediate activations that the separate ops would keep.
     * This default composes the separate kernels; a backend overrides it to make one pass.
     */
    default void batchNormActTrain(Buffer x, int n, int c, int hw, Buffer gamma, Buffer beta, Buffer runningMean,
                                   Buffer runningVar, float momentum, float eps, Buffer residual, boolean relu, Buffer y,
                                   Buffer saveMean, Buffer saveInvStd) {
        batchNormTrain(x, n, c, hw, gamma, beta, runningMean, runningVar, momentum, eps, y, saveMean, saveInvStd);
        batchNormEpilogue(residual, relu, y, n * c * hw);
    }

    /** {@link #batchNormEval} followed by the epilogue of {@link #batchNormActTrain}. */
    default void batchNormActEval(Buffer x, int n, int c, int hw, Buffer gamma, Buffer beta, Buffer runningMean,
                                  Buffer runningVar, float eps, Buffer residual, boolean relu, Buffer y) {
        batchNormEval(x, n, c, hw, gamma, beta, runningMean, runningVar, eps, y);
        batchNormEpilogue(residual, relu, y, n * c * hw);
    }

    /** y = relu?(residual + y) in place, with the separate kernels: the epilogue of the defaults above. */
    private void batchNormEpilogue(Buffer residual, boolean relu, Buffer y, int length) {
        int[] d = {length};
        if (residual != null) binary(BinaryOp.ADD, residual, d, y, d, y, d);
        if (relu) unary(UnaryOp.RELU, y, y);
    }

    /**
     * Backward of {@link #batchNormActTrain}. {@code reluOut} is the op's output when it ends in a ReLU (null
     * otherwise): the gradient is zero where it is not positive. That masked gradient is also the residual's
     * gradient, and is written to {@code dMasked} when that is not null (with a ReLU only: without one the
     * residual's gradient is dy itself). dx may be null; dGamma and dBeta are overwritten.
     */
    default void batchNormActBackward(Buffer x, Buffer dy, Buffer reluOut, int n, int c, int hw, Buffer gamma, Buffer saveMean,
                                      Buffer saveInvStd, Buffer dMasked, Buffer dx, Buffer dGamma, Buffer dBeta) {
        Buffer g = dy;
        if (reluOut != null) {
            int[] d = {n * c * hw};
            g = dMasked != null ? dMasked : empty(DType.FLOAT32, n * c * hw);
            binary(BinaryOp.RELU_BACKWARD, dy, d, reluOut, d, g, d);
        }
        batchNormBackward(x, g, n, c, hw, gamma, saveMean, saveInvStd, dx, dGamma, dBeta);
    }

    /**
     * {@link #batchNormActBackward} of a batch norm followed by a ReLU, with no residual: {@code reluOut} is the op's
     * output, relu(x * scale + shift) with the forward pass's scale = gamma * saveInvStd and shift = beta - saveMean *
     * scale. It is positive exactly where that affine is, so a backend may recompute the mask from x (which it reads
     * anyway) rather than read reluOut; gamma and beta must hold the values the forward pass used. This default reads
     * reluOut.
     */
    default void batchNormReluBackward(Buffer x, Buffer dy, Buffer reluOut, int n, int c, int hw, Buffer gamma, Buffer beta,
                                       Buffer saveMean, Buffer saveInvStd, Buffer dx, Buffer dGamma, Buffer dBeta) {
        batchNormActBackward(x, dy, reluOut, n, c, hw, gamma, saveMean, saveInvStd, null, dx, dGamma, dBeta);
    }

    /**
     * Max pooling over (n*c) planes of h x w; {@code argmax} (INT32) receives the flat in-plane index of each
     * winner for the backward pass. Padding cells count as minus infinity.
     */
    void maxPool2d(Buffer x, int planes, int h, int w, int kh, int kw, int sh, int sw, int ph, int pw,
                   int oh, int ow, Buffer y, Buffer argmax);

    /** dx = 0, then dx[argmax] += dy, per plane. */
    void maxPool2dBackward(Buffer dy, Buffer argmax, int planes, int h, int w, int oh, int ow, Buffer dx);

    /** Adaptive average pooling of (planes, h, w) to (planes, oh, ow), PyTorch's bin edges. */
    void adaptiveAvgPool2d(Buffer x, int planes, int h, int w, int oh, int ow, Buffer y);

    void adaptiveAvgPool2dBackward(Buffer dy, int planes, int h, int w, int oh, int ow, Buffer dx);

    /** Softmax (or log-softmax) of each row of a (rows, cols) matrix. */
    void softmax(Buffer x, int rows, int cols, boolean log, Buffer y);

    /**
     * Gathers along one axis of a tensor seen as (outer, axisLen, inner) with a 1-D INT64 index:
     * out[o, j, i] = x[o, index[j], i] (index_select; "take along channel" when the axis is 1).
     */
    void indexSelect(Buffer x, int outer, int axisLen, int inner, Buffer index, int indexLen, Buffer out);

    /** The adjoint: dst[o, index[j], i] += src[o, j, i]. Repeated indices add up. */
    void indexAdd(Buffer dst, int outer, int axisLen, int inner, Buffer index, int indexLen, Buffer src);

    /**
     * Per-row gather with an index of the same rank: out[o, i] = x[o, index[o, i], ...] for a (outer, axisLen,
     * inner) view where index is (outer, inner). Cross-entropy picks target logits with it.
     */
    void takeAlongAxis(Buffer x, int outer, int axisLen, int inner, Buffer index, Buffer out);

    /** The adjoint of {@link #takeAlongAxis}: dst[o, index[o, i], i] += src[o, i]. */
    void takeAlongAxisAdd(Buffer dst, int outer, int axisLen, int inner, Buffer index, Buffer src);

    /**
     * The fused multi-branch convolution of a packed DSP block (inference only, no backward). x is
     * (n, plan.inChannels, h, w), y is (n, plan.outChannels, plan.outSize(h), plan.outSize(w)). For every branch b
     * of the plan and each of its output channels j:
     * <pre>
     *   t = scale_b[j] * conv(x[:, in_b], W_b)[j] + shift_b[j]        (plan's kernel, stride, zero padding)
     *   t = relu_b ? max(t, 0) : t
     *   y[:, out_b[j]] = t      when !accumulate   (<b>overwrites</b>; y channels of no branch are left untouched)
     *   y[:, out_b[j]] += t     when accumulate    (<b>accumulates</b>; branches add in plan order)
     * </pre>
     * then, when the plan has an output stage, for every output channel c (written by a branch or not):
     * {@code y[:, c] = act(y[:, c] + outputShift[c])} ({@link BranchConv#outputShift()} null: no constant;
     * act = ReLU when {@link BranchConv#outputRelu()}).
     * Overwriting requires {@link BranchConv#disjointOutputs()}. The gather of in_b is read from x in place; x
     * and y must be different buffers. Deterministic: the result does not depend on the thread count.
     */
    void branchConv2d(BranchConv plan, Buffer x, int n, int h, int w, Buffer y, boolean accumulate);

    /**
     * Two multi-branch convolutions in sequence, as a packed block's conv_a and conv_b: exactly
     * <pre>
     *   t = new (n, first.outChannels, first.outSize(h), first.outSize(w))
     *   branchConv2d(first, x, n, h, w, t, false)
     *   branchConv2d(second, t, n, first.outSize(h), first.outSize(w), y, accumulate)
     * </pre>
     * with {@link BranchConv#requireChainable} holding (so t's initial contents never matter). x and y may be the
     * same buffer (a packed block adding conv_b into its own input, the identity residual): t is computed from x
     * before y is written, image by image at least. This default does
     * just that; a backend may override it to keep t out of memory (the CPU backend runs both plans per unit of
     * images, t in a per-thread scratch array).
     */
    default void branchConv2dPair(BranchConv first, BranchConv second, Buffer x, int n, int h, int w, Buffer y,
                                  boolean accumulate) {
        BranchConv.requireChainable(first, second);
        int th = first.outSize(h), tw = first.outSize(w);
        if (th < 1 || tw < 1) throw new IllegalArgumentException("branchConv2dPair: input " + h + "x" + w + " is smaller than the kernel of " + first);
        Buffer t = allocate(ai.bonsai.tensor.DType.FLOAT32, Math.multiplyExact(n, first.outChannels() * th * tw));
        branchConv2d(first, x, n, h, w, t, false);
        branchConv2d(second, t, n, th, tw, y, accumulate);
    }

    // ---------------------------------------------------------------- DSP group-channel regulariser

    /**
     * The length of one group's row in the {@code pieces} buffer of {@link #groupRegularizer}: {@code s},
     * {@code sum_c L_c}, ds/dp (filters), dL/dp (filters), L (channels).
     */
    static int groupPiecesRowLength(int filters, int channels) { return 2 + 2 * filters + channels; }

    /**
     * The DSP group-channel regulariser of one layer (spec section 3), all groups in one pass. {@code w} is the
     * weight seen as (filters, channels, kernelArea); {@code p} is the assignment (groups, filters), soft or hard.
     * For group g with p = P[g, :], L_c = sqrt(sum_n p_n^2 ||W[n,c]||^2), S = sum_n sqrt(p_n), s = S^2:
     * <ul>
     *   <li>{@code penalty} (filters, channels, kernelArea) is <b>overwritten</b> with
     *       scale * sum_g s_g * p_gn^2 * W[n,c] / (L_gc + 1e-8), i.e. scale * sum_g dR_g/dW;</li>
     *   <li>{@code dRdp} (groups, filters), may be null, receives the <b>unscaled</b>
     *       dR_g/dp_n = s * dL/dp_n + (sum_c L_c) * ds/dp_n with dL/dp_n = sum_c p_n ||W[n,c]||^2 / (L_c + 1e-8)
     *       and ds/dp_n = sqrt(p_n) * s / (p_n * S + 1e-8); it is <b>accumulated</b> when
     *       {@code accumulateDRdp}, overwritten otherwise;</li>
     *   <li>{@code pieces} (groups, {@link #groupPiecesRowLength}), may be null, is <b>overwritten</b> per group
     *       with [s, sum_c L_c, ds/dp (filters), dL/dp (filters), L_c (channels)] for
     *       {@link #groupSecondOrderAdd}; R_g = s * sum_c L_c is the product of its first two entries.</li>
     * </ul>
     * Sums over filters, channels and the kernel run in double. All-zero group channels and empty groups give
     * zeros, never NaN. Deterministic: the result does not depend on the thread count.
     */
    void groupRegularizer(Buffer w, Buffer p, int groups, int filters, int channels, int kernelArea, float scale,
                          Buffer penalty, Buffer dRdp, boolean accumulateDRdp, Buffer pieces);

    /**
     * The second-order term of DSP's group learning (spec section 4, step 8), <b>accumulated</b> into
     * {@code pgrad} (groups, filters). {@code w} is the weight at which {@code pieces} were computed by
     * {@link #groupRegularizer} with the same {@code p}; {@code d} (D = W''' - W') has w's shape. Per group g
     * and filter n, with q[n,c] = &lt;W[n,c], D[n,c]&gt; over the kernel and l_c = L_c + 1e-8:
     * <pre>
     *   pgrad[g,n] += ds/dp_n * sum_c p_n^2 q / l_c
     *               + s * (2 * sum_c p_n q / l_c  -  dL/dp_n * sum_c p_n^2 q / l_c^2)
     * </pre>
     * which is ds/dp_n &lt;dL/dW[n], D[n]&gt; + s (2 &lt;Nrm[n], D[n]&gt; - dL/dp_n &lt;dL/dW[n], D[n] / L&gt;)
     * with the normalised weights Nrm = p_n W / l_c and dL/dW = p_n^2 W / l_c recomputed from w, p and L_c
     * rather than stored. The D / L division is guarded with the same 1e-8 (the reference's is not, and gives
     * NaN for an all-zero group channel). No scale and no step size: the reference's behaviour.
     */
    void groupSecondOrderAdd(Buffer w, Buffer d, Buffer p, Buffer pieces, int groups, int filters, int channels,
                             int kernelArea, Buffer pgrad);

    // ---------------------------------------------------------------- optimiser updates (in place)

    /**
     * PyTorch's SGD: g = grad + wd * p; buf = first ? g : momentum * buf + (1 - dampening) * g;
     * g = nesterov ? g + momentum * buf : buf (when momentum != 0); p -= lr * g.
     */
    void sgdStep(Buffer param, Buffer grad, Buffer momentumBuffer, float lr, float momentum, float dampening,
                 float weightDecay, boolean nesterov, boolean firstStep);

    /** PyTorch's Adam (L2 weight decay added to the gradient), bias-corrected with step {@code t} (1-based). */
    void adamStep(Buffer param, Buffer grad, Buffer m, Buffer v, float lr, float beta1, float beta2, float eps,
                  float weightDecay, int t);
}
