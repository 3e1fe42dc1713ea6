package ai.bonsai.nn;

import ai.bonsai.autograd.GradMode;
import ai.bonsai.backend.Backend;
import ai.bonsai.backend.ConvGeometry;
import ai.bonsai.tensor.Buffer;
import ai.bonsai.tensor.DType;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Shape;
import ai.bonsai.tensor.Tensor;

/**
 * The neural-network operations: convolution, batch norm, pooling, softmax and losses, channel gathers and
 * Gumbel-softmax. Each either calls one fused backend kernel and states its backward pass, or is a
 * composition of {@link Tensor} operations whose gradient autograd derives.
 */
public final class Functional {
    private Functional() {}

    // ---------------------------------------------------------------- convolution and linear

    /**
     * 2-D convolution. x is (N, C, H, W), weight is (K, C/groups, R, S), bias is (K) or null.
     */
    public static Tensor conv2d(Tensor x, Tensor weight, Tensor bias, int stride, int padding, int groups) {
        return conv2d(x, weight, bias, stride, stride, padding, padding, groups);
    }

    public static Tensor conv2d(Tensor x, Tensor weight, Tensor bias, int strideH, int strideW, int padH, int padW, int groups) {
        x.requireFloat("conv2d");
        weight.requireFloat("conv2d");
        x.checkSameDevice("conv2d", weight);
        if (x.rank() != 4 || weight.rank() != 4) {
            throw new IllegalArgumentException("conv2d: expected x (N,C,H,W) and weight (K,C/groups,R,S), got x " + x.shape() + " and weight " + weight.shape());
        }
        if (groups < 1 || x.dim(1) % groups != 0 || weight.dim(0) % groups != 0 || weight.dim(1) * groups != x.dim(1)) {
            throw new IllegalArgumentException("conv2d: x " + x.shape() + " has " + x.dim(1) + " channels but weight " + weight.shape()
                    + " with groups=" + groups + " expects " + (weight.dim(1) * groups));
        }
        if (bias != null && (bias.rank() != 1 || bias.dim(0) != weight.dim(0))) {
            throw new IllegalArgumentException("conv2d: bias " + bias.shape() + " does not match weight " + weight.shape() + " (expected [" + weight.dim(0) + "])");
        }
        ConvGeometry g;
        try {
            g = new ConvGeometry(x.dim(0), x.dim(1), x.dim(2), x.dim(3), weight.dim(0), weight.dim(2), weight.dim(3),
                    strideH, strideW, padH, padW, groups);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(e.getMessage() + " (x " + x.shape() + ", weight " + weight.shape() + ")", e);
        }
        Backend be = x.backend();
        Shape os = Shape.of(g.n(), g.k(), g.outH(), g.outW());
        Buffer y = be.empty(DType.FLOAT32, os.numel());
        be.conv2d(g, x.buffer(), weight.buffer(), bias == null ? null : bias.buffer(), y);
        // The data gradient adds into x's pending gradient when the engine offers one (x feeds another op too, as a
        // residual block's input does): one pass over dx instead of a write and a separate add.
        return Tensor.fromAccumulatingOp(os, y, "conv2d", (gy, into) -> {
            Tensor gx = null, gw = null, gb = null;
            if (x.requiresGrad() && into[0] != null) {
                be.conv2dBackwardDataAdd(g, gy.buffer(), weight.buffer(), into[0].buffer());
                gx = into[0];
            } else if (x.requiresGrad()) {
                Buffer b = be.empty(DType.FLOAT32, x.numel());
                be.conv2dBackwardData(g, gy.buffer(), weight.buffer(), b);
                gx = Tensor.of(x.shape(), b);
            }
            if (weight.requiresGrad()) {
                Buffer b = be.empty(DType.FLOAT32, weight.numel());
                be.conv2dBackwardWeight(g, x.buffer(), gy.buffer(), b);
                gw = Tensor.of(weight.shape(), b);
            }
            if (bias != null && bias.requiresGrad()) gb = gy.sum(new int[] {0, 2, 3}, false);
            return new Tensor[] {gx, gw, gb};
        }, x, weight, bias);
    }

    /** y = x W^T + b. x is (N, in), weight is (out, in), bias is (out) or null. */
    public static Tensor linear(Tensor x, Tensor weight, Tensor bias) {
        if (x.rank() != 2 || weight.rank() != 2 || x.dim(1) != weight.dim(1)) {
            throw new IllegalArgumentException("linear: x " + x.shape() + " and weight " + weight.shape() + " do not match (expected x (N," + (weight.rank() == 2 ? weight.dim(1) : "in") + "))");
        }
        Tensor y = x.matMul(weight.transpose(0, 1));
        return bias == null ? y : y.add(bias);
    }

    // ---------------------------------------------------------------- normalisation

    /**
     * Batch norm over the channel axis of (N, C, ...) input. In training it normalises with batch
     * statistics and updates {@code runningMean}/{@code runningVar} in place; in eval it uses them.
     */
    public static Tensor batchNorm(Tensor x, Tensor runningMean, Tensor runningVar, Tensor gamma, Tensor beta,
                                   boolean training, float momentum, float eps) {
        int c = checkBatchNorm(x, runningMean, runningVar, gamma, beta, training);
        int n = x.dim(0), hw = x.numel() / Math.max(1, n * c);
        Backend be = x.backend();
        Buffer y = be.empty(DType.FLOAT32, x.numel());
        if (!training) {
            be.batchNormEval(x.buffer(), n, c, hw, gamma.buffer(), beta.buffer(), runningMean.buffer(), runningVar.buffer(), eps, y);
            return Tensor.fromOp(x.shape(), y, "batchNorm", gy -> {
                // Eval mode is an affine map per channel: dx = gy * gamma / sqrt(var + eps).
                Tensor scale = gamma.detach().div(runningVar.detach().add(eps).sqrt()).reshape(channelDims(x.rank(), c));
                Tensor xhat = x.detach().sub(runningMean.detach().reshape(channelDims(x.rank(), c))).mul(
                        runningVar.detach().add(eps).sqrt().reciprocal().reshape(channelDims(x.rank(), c)));
                int[] axes = nonChannelAxes(x.rank());
                return new Tensor[] {gy.mul(scale),
                        gamma.requiresGrad() ? gy.mul(xhat).sum(axes, false) : null,
                        beta.requiresGrad() ? gy.sum(axes, false) : null};
            }, x, gamma, beta);
        }
        Buffer mean = be.empty(DType.FLOAT32, c), invStd = be.empty(DType.FLOAT32, c);
        be.batchNormTrain(x.buffer(), n, c, hw, gamma.buffer(), beta.buffer(), runningMean.buffer(), runningVar.buffer(),
                momentum, eps, y, mean, invStd);
        return Tensor.fromOp(x.shape(), y, "batchNorm", gy -> {
            Buffer dx = x.requiresGrad() ? be.empty(DType.FLOAT32, x.numel()) : null;
            Buffer dg = be.empty(DType.FLOAT32, c), db = be.empty(DType.FLOAT32, c);
            be.batchNormBackward(x.buffer(), gy.buffer(), n, c, hw, gamma.buffer(), mean, invStd, dx, dg, db);
            return new Tensor[] {dx == null ? null : Tensor.of(x.shape(), dx), Tensor.of(gamma.shape(), dg), Tensor.of(beta.shape(), db)};
        }, x, gamma, beta);
    }

    /**
     * relu(batchNorm(x) + residual), with the residual (x's shape, or null) and the ReLU each optional: the tail of
     * a ResNet block ({@code bn, add, relu}) or a {@code bn, relu} pair as one op. The result equals the separate
     * ops bit for bit, forward and backward.
     *
     * <p>Why: in training the separate ops each keep their output alive until backward (batch norm's output for
     * the add, the sum for the ReLU), and each is one more pass over memory; fused, only the final output is kept,
     * and ReLU's backward mask is read from it. In eval mode with a graph being recorded the op is recorded as its
     * parts, so a traced graph (DSP's {@code ModelGraph} traces in eval mode) sees batch norm, add and ReLU as before;
     * inference (nothing recorded) runs one fused pass.
     */
    public static Tensor batchNormAct(Tensor x, Tensor runningMean, Tensor runningVar, Tensor gamma, Tensor beta,
                                      boolean training, float momentum, float eps, Tensor residual, boolean relu) {
        if (residual != null) {
            residual.requireFloat("batchNormAct");
            x.checkSameDevice("batchNormAct", residual);
            x.checkSameShape("batchNormAct (residual)", residual);
        }
        boolean recorded = GradMode.isEnabled() && (x.requiresGrad() || gamma.requiresGrad() || beta.requiresGrad()
                || residual != null && residual.requiresGrad());
        if (!training && recorded) {
            Tensor y = batchNorm(x, runningMean, runningVar, gamma, beta, false, momentum, eps);
            if (residual != null) y = residual.add(y);
            return relu ? y.relu() : y;
        }
        int c = checkBatchNorm(x, runningMean, runningVar, gamma, beta, training);
        int n = x.dim(0), hw = x.numel() / Math.max(1, n * c);
        Backend be = x.backend();
        if (!training) {             // inference: one pass and one buffer, where the separate ops made three
            Buffer y = be.empty(DType.FLOAT32, x.numel());
            be.batchNormActEval(x.buffer(), n, c, hw, gamma.buffer(), beta.buffer(), runningMean.buffer(), runningVar.buffer(), eps,
                    residual == null ? null : residual.buffer(), relu, y);
            return Tensor.of(x.shape(), y);
        }
        Buffer y = be.empty(DType.FLOAT32, x.numel());
        Buffer mean = be.empty(DType.FLOAT32, c), invStd = be.empty(DType.FLOAT32, c);
        be.batchNormActTrain(x.buffer(), n, c, hw, gamma.buffer(), beta.buffer(), runningMean.buffer(), runningVar.buffer(),
                momentum, eps, residual == null ? null : residual.buffer(), relu, y, mean, invStd);
        Tensor[] inputs = residual == null ? new Tensor[] {x, gamma, beta} : new Tensor[] {x, gamma, beta, residual};
        // Without a residual the backward pass may recompute ReLU's mask from x, gamma and beta
        // (Backend.batchNormReluBackward): it gets the values this pass used, even if the parameters change before it.
        boolean reluOfAffine = relu && residual == null;
        Buffer gammaUsed = reluOfAffine ? snapshot(be, gamma.buffer(), c) : gamma.buffer();
        Buffer betaUsed = reluOfAffine ? snapshot(be, beta.buffer(), c) : null;
        return Tensor.fromOp(x.shape(), y, "batchNormAct", gy -> {
            boolean residualGrad = residual != null && residual.requiresGrad();
            Buffer dx = x.requiresGrad() ? be.empty(DType.FLOAT32, x.numel()) : null;
            Buffer dMasked = relu && residualGrad ? be.empty(DType.FLOAT32, x.numel()) : null;
            Buffer dg = be.empty(DType.FLOAT32, c), db = be.empty(DType.FLOAT32, c);
            if (reluOfAffine) {
                be.batchNormReluBackward(x.buffer(), gy.buffer(), y, n, c, hw, gammaUsed, betaUsed, mean, invStd, dx, dg, db);
            } else {
                be.batchNormActBackward(x.buffer(), gy.buffer(), relu ? y : null, n, c, hw, gammaUsed, mean, invStd, dMasked, dx, dg, db);
            }
            Tensor[] grads = {dx == null ? null : Tensor.of(x.shape(), dx), Tensor.of(gamma.shape(), dg), Tensor.of(beta.shape(), db), null};
            if (residualGrad) grads[3] = relu ? Tensor.of(x.shape(), dMasked) : gy;
            return residual == null ? java.util.Arrays.copyOf(grads, 3) : grads;
        }, inputs);
    }

    /** A copy of the first {@code length} floats of {@code b}. */
    private static Buffer snapshot(Backend be, Buffer b, int length) {
        Buffer copy = be.empty(DType.FLOAT32, length);
        be.copy(b, 0, copy, 0, length);
        return copy;
    }

    /** Validates batch norm's arguments and returns the channel count. */
    private static int checkBatchNorm(Tensor x, Tensor runningMean, Tensor runningVar, Tensor gamma, Tensor beta, boolean training) {
        x.requireFloat("batchNorm");
        if (x.rank() < 2) throw new IllegalArgumentException("batchNorm: expected (N,C,...) input, got " + x.shape());
        int n = x.dim(0), c = x.dim(1), hw = x.numel() / Math.max(1, n * c);
        for (Tensor p : new Tensor[] {runningMean, runningVar, gamma, beta}) {
            if (p.numel() != c) throw new IllegalArgumentException("batchNorm: x " + x.shape() + " has " + c + " channels but a parameter has shape " + p.shape());
        }
        if (training && (long) n * hw < 2) {
            throw new IllegalArgumentException("batchNorm: training needs more than one value per channel, got input " + x.shape());
        }
        return c;
    }

    private static int[] channelDims(int rank, int c) {
        int[] d = new int[rank];
        java.util.Arrays.fill(d, 1);
        d[1] = c;
        return d;
    }

    private static int[] nonChannelAxes(int rank) {
        int[] a = new int[rank - 1];
        a[0] = 0;
        for (int i = 2; i < rank; i++) a[i - 1] = i;
        return a;
    }

    // ---------------------------------------------------------------- activations and pooling

    public static Tensor relu(Tensor x) { return x.relu(); }

    /** Max pooling of (N, C, H, W); padding cells never win. */
    public static Tensor maxPool2d(Tensor x, int kernel, int stride, int padding) {
        requireNchw("maxPool2d", x);
        if (kernel < 1 || stride < 1 || padding < 0 || padding * 2 > kernel) {
            throw new IllegalArgumentException("maxPool2d: kernel " + kernel + ", stride " + stride + ", padding " + padding + " (padding must be at most half the kernel)");
        }
        int n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
        int oh = (h + 2 * padding - kernel) / stride + 1, ow = (w + 2 * padding - kernel) / stride + 1;
        if (oh < 1 || ow < 1) throw new IllegalArgumentException("maxPool2d: kernel " + kernel + " is larger than the padded input " + x.shape());
        Backend be = x.backend();
        Shape os = Shape.of(n, c, oh, ow);
        Buffer y = be.allocate(DType.FLOAT32, os.numel());
        Buffer idx = be.allocate(DType.INT32, os.numel());
        be.maxPool2d(x.buffer(), n * c, h, w, kernel, kernel, stride, stride, padding, padding, oh, ow, y, idx);
        return Tensor.fromOp(os, y, "maxPool2d", gy -> {
            Buffer dx = be.allocate(DType.FLOAT32, x.numel());
            be.maxPool2dBackward(gy.buffer(), idx, n * c, h, w, oh, ow, dx);
            return new Tensor[] {Tensor.of(x.shape(), dx)};
        }, x);
    }

    /** Adaptive average pooling of (N, C, H, W) to (N, C, outH, outW), with PyTorch's bins. */
    public static Tensor adaptiveAvgPool2d(Tensor x, int outH, int outW) {
        requireNchw("adaptiveAvgPool2d", x);
        if (outH < 1 || outW < 1) throw new IllegalArgumentException("adaptiveAvgPool2d: output size " + outH + "x" + outW + " for input " + x.shape());
        int n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
        Backend be = x.backend();
        Shape os = Shape.of(n, c, outH, outW);
        Buffer y = be.allocate(DType.FLOAT32, os.numel());
        be.adaptiveAvgPool2d(x.buffer(), n * c, h, w, outH, outW, y);
        return Tensor.fromOp(os, y, "adaptiveAvgPool2d", gy -> {
            Buffer dx = be.allocate(DType.FLOAT32, x.numel());
            be.adaptiveAvgPool2dBackward(gy.buffer(), n * c, h, w, outH, outW, dx);
            return new Tensor[] {Tensor.of(x.shape(), dx)};
        }, x);
    }

    private static void requireNchw(String op, Tensor x) {
        x.requireFloat(op);
        if (x.rank() != 4) throw new IllegalArgumentException(op + ": expected (N,C,H,W) input, got " + x.shape());
    }

    // ---------------------------------------------------------------- softmax and losses

    public static Tensor softmax(Tensor x, int axis) { return softmaxImpl(x, axis, false); }

    public static Tensor logSoftmax(Tensor x, int axis) { return softmaxImpl(x, axis, true); }

    private static Tensor softmaxImpl(Tensor x, int axis, boolean log) {
        String op = log ? "logSoftmax" : "softmax";
        x.requireFloat(op);
        int a = x.shape().normalizeAxis(axis);
        if (a != x.rank() - 1) {                       // the kernel works on rows: move the axis last and back
            int[] perm = new int[x.rank()];
            for (int i = 0; i < perm.length; i++) perm[i] = i;
            perm[a] = x.rank() - 1;
            perm[x.rank() - 1] = a;
            return softmaxImpl(x.permute(perm), -1, log).permute(perm);
        }
        int cols = x.dim(-1), rows = x.numel() / Math.max(1, cols);
        Backend be = x.backend();
        Buffer y = be.allocate(DType.FLOAT32, x.numel());
        be.softmax(x.buffer(), rows, cols, log, y);
        Tensor out = Tensor.of(x.shape(), y);
        return Tensor.fromOp(x.shape(), y, op, gy -> {
            if (log) {   // dx = g - softmax * sum(g)
                return new Tensor[] {gy.sub(out.exp().mul(gy.sum(-1, true)))};
            }
            // dx = y * (g - sum(g * y))
            return new Tensor[] {out.mul(gy.sub(gy.mul(out).sum(-1, true)))};
        }, x);
    }

    /**
     * Mean cross-entropy of (N, K) logits against INT64/INT32 targets (N), with optional label smoothing
     * {@code eps}: the target distribution is (1 - eps) on the label plus eps / K everywhere (PyTorch's).
     */
    public static Tensor crossEntropy(Tensor logits, Tensor targets, float labelSmoothing) {
        logits.requireFloat("crossEntropy");
        if (logits.rank() != 2) throw new IllegalArgumentException("crossEntropy: expected (N,K) logits, got " + logits.shape());
        if (targets.dtype() == DType.FLOAT32 || targets.rank() != 1 || targets.dim(0) != logits.dim(0)) {
            throw new IllegalArgumentException("crossEntropy: expected integer targets of shape [" + logits.dim(0) + "], got " + targets.dtype() + " " + targets.shape());
        }
        if (labelSmoothing < 0 || labelSmoothing > 1) throw new IllegalArgumentException("crossEntropy: label smoothing must be in [0, 1], got " + labelSmoothing);
        int k = logits.dim(1);
        long[] t = targets.toLongArray();
        for (int i = 0; i < t.length; i++) {
            if (t[i] < 0 || t[i] >= k) throw new IllegalArgumentException("crossEntropy: target " + t[i] + " at position " + i + " is outside [0, " + k + ")");
        }
        Tensor logp = logSoftmax(logits, 1);
        // Labels usually come from the host: gather with them on the logits' device.
        Tensor nll = takeAlongAxis(logp, 1, targets.to(logits.device()).reshape(-1, 1)).mean().neg();
        if (labelSmoothing == 0) return nll;
        Tensor smooth = logp.mean().neg();                    // mean over N and K of -log p
        return nll.mul(1 - labelSmoothing).add(smooth.mul(labelSmoothing));
    }

    public static Tensor crossEntropy(Tensor logits, Tensor targets) { return crossEntropy(logits, targets, 0f); }

    // ---------------------------------------------------------------- gathers

    /**
     * out[..., i, ...] = x[..., index[..., i, ...], ...] along {@code axis}; index has x's rank, the same
     * sizes except along {@code axis}, and an integer dtype (torch.gather).
     */
    public static Tensor takeAlongAxis(Tensor x, int axis, Tensor index) {
        x.requireFloat("takeAlongAxis");
        int a = x.shape().normalizeAxis(axis);
        checkIndex("takeAlongAxis", index);
        if (index.rank() != x.rank()) throw new IllegalArgumentException("takeAlongAxis: index " + index.shape() + " must have the rank of x " + x.shape());
        for (int i = 0; i < x.rank(); i++) {
            if (i != a && index.dim(i) != x.dim(i)) throw new IllegalArgumentException("takeAlongAxis: index " + index.shape() + " and x " + x.shape() + " differ outside axis " + axis);
        }
        if (index.dim(a) != 1) {
            throw new IllegalArgumentException("takeAlongAxis: index " + index.shape() + " must have size 1 along axis " + axis + " (one pick per position)");
        }
        int outer = x.shape().size(0, a), len = x.dim(a), inner = x.shape().size(a + 1, x.rank());
        long[] iv = index.toLongArray();
        for (int i = 0; i < iv.length; i++) {
            if (iv[i] < 0 || iv[i] >= len) throw new IllegalArgumentException("takeAlongAxis: index " + iv[i] + " at position " + i + " is outside [0, " + len + ") for x " + x.shape());
        }
        Backend be = x.backend();
        Buffer y = be.allocate(DType.FLOAT32, index.numel());
        be.takeAlongAxis(x.buffer(), outer, len, inner, index.buffer(), y);
        return Tensor.fromOp(index.shape(), y, "takeAlongAxis", gy -> {
            Tensor gx = x.zerosLike();
            be.takeAlongAxisAdd(gx.buffer(), outer, len, inner, index.buffer(), gy.buffer());
            return new Tensor[] {gx};
        }, x);
    }

    /**
     * Selects entries along {@code axis} by a 1-D integer index: "take along channel" when axis is 1.
     * out has x's shape with that axis replaced by the index length (torch.index_select).
     */
    public static Tensor indexSelect(Tensor x, int axis, Tensor index) {
        x.requireFloat("indexSelect");
        int a = x.shape().normalizeAxis(axis);
        checkIndex("indexSelect", index);
        if (index.rank() != 1) throw new IllegalArgumentException("indexSelect: index must be 1-D, got " + index.shape());
        int len = x.dim(a);
        checkRange("indexSelect", index, len, x);
        int outer = x.shape().size(0, a), inner = x.shape().size(a + 1, x.rank()), m = index.numel();
        int[] od = x.dims();
        od[a] = m;
        Shape os = Shape.of(od);
        Backend be = x.backend();
        Buffer y = be.allocate(DType.FLOAT32, os.numel());
        be.indexSelect(x.buffer(), outer, len, inner, index.buffer(), m, y);
        return Tensor.fromOp(os, y, "indexSelect", gy -> {
            Tensor gx = x.zerosLike();
            be.indexAdd(gx.buffer(), outer, len, inner, index.buffer(), m, gy.buffer());
            return new Tensor[] {gx};
        }, x);
    }

    /**
     * Returns dst with src added at positions {@code index} along {@code axis} (torch.index_add, out of place):
     * out[..., index[j], ...] += src[..., j, ...]. Repeated indices add up.
     */
    public static Tensor indexAdd(Tensor dst, int axis, Tensor index, Tensor src) {
        dst.requireFloat("indexAdd");
        src.requireFloat("indexAdd");
        dst.checkSameDevice("indexAdd", src);
        int a = dst.shape().normalizeAxis(axis);
        checkIndex("indexAdd", index);
        if (index.rank() != 1) throw new IllegalArgumentException("indexAdd: index must be 1-D, got " + index.shape());
        int[] expect = dst.dims();
        expect[a] = index.numel();
        if (!Shape.of(expect).equals(src.shape())) {
            throw new IllegalArgumentException("indexAdd: src " + src.shape() + " must be " + Shape.of(expect) + " for dst " + dst.shape() + " and " + index.numel() + " indices");
        }
        int len = dst.dim(a);
        checkRange("indexAdd", index, len, dst);
        int outer = dst.shape().size(0, a), inner = dst.shape().size(a + 1, dst.rank()), m = index.numel();
        Backend be = dst.backend();
        Tensor out = dst.copy();
        be.indexAdd(out.buffer(), outer, len, inner, index.buffer(), m, src.buffer());
        return Tensor.fromOp(dst.shape(), out.buffer(), "indexAdd", gy -> {
            Tensor gs = null;
            if (src.requiresGrad()) {
                Buffer b = be.allocate(DType.FLOAT32, src.numel());
                be.indexSelect(gy.buffer(), outer, len, inner, index.buffer(), m, b);
                gs = Tensor.of(src.shape(), b);
            }
            return new Tensor[] {gy, gs};
        }, dst, src);
    }

    private static void checkIndex(String op, Tensor index) {
        if (index.dtype() == DType.FLOAT32) throw new IllegalArgumentException(op + ": index must be INT32 or INT64, got FLOAT32 " + index.shape());
    }

    private static void checkRange(String op, Tensor index, int len, Tensor x) {
        long[] iv = index.toLongArray();
        for (int i = 0; i < iv.length; i++) {
            if (iv[i] < 0 || iv[i] >= len) throw new IllegalArgumentException(op + ": index " + iv[i] + " at position " + i + " is outside [0, " + len + ") for " + x.shape());
        }
    }

    // ---------------------------------------------------------------- Gumbel softmax

    /**
     * Soft Gumbel-softmax sample: softmax(logits / tau + E) along {@code axis}, with E standard Gumbel noise
     * drawn from {@code g}. As in DSP, tau divides only the logits, not the noise.
     */
    public static Tensor gumbelSoftmax(Tensor logits, float tau, int axis, Generator g) {
        logits.requireFloat("gumbelSoftmax");
        if (!(tau > 0)) throw new IllegalArgumentException("gumbelSoftmax: temperature must be positive, got " + tau);
        Tensor noise = gumbelNoise(g, logits.dims()).to(logits.device());
        return softmax(logits.div(tau).add(noise), axis);
    }

    /** Standard Gumbel noise -log(-log(U)), U uniform in (0, 1). */
    public static Tensor gumbelNoise(Generator g, int... dims) {
        Tensor u = Tensor.rand(g, 0f, 1f, dims);
        // Keep U away from 0 so that log(U) stays finite; 2^-24 is the smallest step of nextFloat().
        return u.affine(1f - 0x1.0p-24f, 0x1.0p-25f).log().neg().log().neg();
    }
}
