package ai.bonsai.cuda;

import ai.bonsai.backend.Backend;
import ai.bonsai.backend.BinaryOp;
import ai.bonsai.backend.BranchConv;
import ai.bonsai.backend.ConvGeometry;
import ai.bonsai.backend.ReduceOp;
import ai.bonsai.backend.UnaryOp;
import ai.bonsai.tensor.Buffer;
import ai.bonsai.tensor.DType;
import ai.bonsai.tensor.Device;
import ai.bonsai.tensor.Generator;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The CUDA backend: our kernels (src/main/cuda, PTX in the jar) launched through a {@link GpuRuntime}, which is
 * the driver API on a GPU or the CPU emulation in tests; GEMM through cuBLAS where the runtime has it.
 *
 * <p>State of issue #12: every primitive runs here (convolution by our direct kernels, GEMM by cuBLAS on a GPU
 * and by our tiled kernel elsewhere) and is tested under emulation against the CPU backend; none yet on a GPU.
 */
public final class CudaBackend implements Backend {
    private final GpuRuntime rt;
    private final Device device;
    private final CachingAllocator allocator;
    /** Tests force each block size the launcher can choose; 0 lets the launcher pick. */
    private volatile int forcedBlock;

    public CudaBackend(GpuRuntime runtime, Device device) {
        this.rt = runtime;
        this.device = device;
        this.allocator = new CachingAllocator(new CachingAllocator.DeviceMemory() {
            @Override public long tryMalloc(long bytes) { return rt.tryMalloc(bytes); }
            @Override public void free(long address) { rt.free(address); }
            @Override public long[] memoryInfo() { return rt.memoryInfo(); }
        }, device.toString());
    }

    /** Forces the block size of every launch that offers a choice (0 = the launcher's choice); for tests. */
    public void forceBlock(int block) { this.forcedBlock = block; }

    public GpuRuntime runtime() { return rt; }

    private volatile boolean cudnnAllowed = true;

    /** Whether convolutions may go to cuDNN where it loads (default true); GpuCheck turns it off to check our kernels. */
    public void useCudnn(boolean allowed) { this.cudnnAllowed = allowed; }

    private GpuRuntime.Dnn dnn() { return cudnnAllowed ? rt.dnn() : null; }

    public CachingAllocator allocator() { return allocator; }

    @Override public Device device() { return device; }

    private static CudaBuffer c(Buffer b) {
        if (b instanceof CudaBuffer cb) return cb;
        throw new IllegalArgumentException("CUDA backend given a buffer of another backend: " + b);
    }

    private int ewBlock() { return forcedBlock > 0 ? forcedBlock : Launches.DEFAULT_ELEMENTWISE_BLOCK; }

    private int rowBlock(long count) {
        int f = forcedBlock;
        return f > 0 ? Math.min(f, Launches.ROW_BLOCKS[Launches.ROW_BLOCKS.length - 1]) : Launches.rowBlockFor(count);
    }

    private void launch(String kernel, LaunchConfig cfg, KernelArgs args) { rt.launch(kernel, cfg, args); }

    // ---------------------------------------------------------------- memory

    @Override public Buffer allocate(DType dtype, int length) {
        CudaBuffer b = raw(dtype, length);
        if (length > 0) {
            ByteBuffer zero = ByteBuffer.allocateDirect((int) b.bytes());  // cuMemAlloc does not zero
            rt.write(b.address(), zero);
        }
        return b;
    }

    private CudaBuffer raw(DType dtype, int length) {
        long bytes = Math.max(1, (long) length * CudaBuffer.elementBytes(dtype));
        return new CudaBuffer(this, dtype, length, allocator.allocate(bytes), allocator);
    }

    private static ByteBuffer le(int bytes) { return ByteBuffer.allocate(bytes).order(ByteOrder.LITTLE_ENDIAN); }

    @Override public Buffer fromFloats(float[] data) {
        CudaBuffer b = raw(DType.FLOAT32, data.length);
        ByteBuffer bb = le(4 * data.length);
        bb.asFloatBuffer().put(data);
        rt.write(b.address(), bb);
        return b;
    }

    @Override public Buffer fromInts(int[] data) {
        CudaBuffer b = raw(DType.INT32, data.length);
        ByteBuffer bb = le(4 * data.length);
        bb.asIntBuffer().put(data);
        rt.write(b.address(), bb);
        return b;
    }

    @Override public Buffer fromLongs(long[] data) {
        CudaBuffer b = raw(DType.INT64, data.length);
        ByteBuffer bb = le(8 * data.length);
        bb.asLongBuffer().put(data);
        rt.write(b.address(), bb);
        return b;
    }

    @Override public float[] toFloats(Buffer b) {
        CudaBuffer cb = c(b);
        if (cb.dtype() != DType.FLOAT32) throw new IllegalArgumentException("toFloats of a " + cb.dtype() + " buffer");
        ByteBuffer bb = le(4 * cb.length());
        rt.read(cb.address(), bb);
        float[] out = new float[cb.length()];
        bb.asFloatBuffer().get(out);
        return out;
    }

    @Override public long[] toLongs(Buffer b) {
        CudaBuffer cb = c(b);
        long[] out = new long[cb.length()];
        if (cb.dtype() == DType.FLOAT32) throw new IllegalArgumentException("toLongs of a FLOAT32 buffer");
        ByteBuffer bb = le((int) cb.bytes());
        rt.read(cb.address(), bb);
        if (cb.dtype() == DType.INT64) bb.asLongBuffer().get(out);
        else for (int i = 0; i < out.length; i++) out[i] = bb.getInt(4 * i);
        return out;
    }

    @Override public void fill(Buffer b, float value) {
        CudaBuffer cb = c(b);
        if (cb.length() == 0) return;
        if (cb.dtype() == DType.FLOAT32) {
            launch("ew_fill", Launches.elementwise(cb.length(), ewBlock()), new KernelArgs().ptr(cb).f32(value).i32(cb.length()));
        } else {
            long[] v = new long[cb.length()];
            java.util.Arrays.fill(v, (long) value);
            ByteBuffer bb = le((int) cb.bytes());
            if (cb.dtype() == DType.INT64) bb.asLongBuffer().put(v); else for (int i = 0; i < v.length; i++) bb.putInt(4 * i, (int) value);
            rt.write(cb.address(), bb);
        }
    }

    @Override public void copy(Buffer src, int srcOffset, Buffer dst, int dstOffset, int length) {
        CudaBuffer s = c(src), d = c(dst);
        if (s.dtype() != d.dtype()) throw new IllegalArgumentException("copy: dtype " + s.dtype() + " -> " + d.dtype());
        if (length == 0) return;
        int e = s.elementBytes();
        rt.copy(d.address() + (long) dstOffset * e, s.address() + (long) srcOffset * e, (long) length * e);
    }

    /** Draws on the host from the same generator, in the same order, as the CPU backend: identical values. */
    @Override public void uniform(Buffer out, Generator g, float lo, float hi) {
        float[] v = new float[out.length()];
        float span = hi - lo;
        for (int i = 0; i < v.length; i++) v[i] = lo + span * g.nextFloat();
        upload(out, v);
    }

    @Override public void normal(Buffer out, Generator g, float mean, float std) {
        float[] v = new float[out.length()];
        for (int i = 0; i < v.length; i++) v[i] = (float) (mean + std * g.nextGaussian());
        upload(out, v);
    }

    private void upload(Buffer out, float[] v) {
        ByteBuffer bb = le(4 * v.length);
        bb.asFloatBuffer().put(v);
        rt.write(c(out).address(), bb);
    }

    // ---------------------------------------------------------------- element-wise

    @Override public void unary(UnaryOp op, Buffer x, Buffer out) {
        int n = x.length();
        if (n == 0) return;
        launch("ew_unary", Launches.elementwise(n, ewBlock()), new KernelArgs().ptr(c(x)).ptr(c(out)).i32(op.ordinal()).i32(n));
    }

    @Override public void affine(Buffer x, float scale, float shift, Buffer out) {
        int n = x.length();
        if (n == 0) return;
        launch("ew_affine", Launches.elementwise(n, ewBlock()), new KernelArgs().ptr(c(x)).ptr(c(out)).f32(scale).f32(shift).i32(n));
    }

    @Override public void binary(BinaryOp op, Buffer a, int[] aDims, Buffer b, int[] bDims, Buffer out, int[] outDims) {
        int n = out.length();
        if (n == 0) return;
        Shape8 s = Shape8.collapse(outDims);
        launch("ew_binary", Launches.elementwise(n, ewBlock()), new KernelArgs().ptr(c(a)).ptr(c(b)).ptr(c(out))
                .ints(s.dims()).ints(Shape8.broadcastStrides(aDims, outDims)).ints(Shape8.broadcastStrides(bDims, outDims)).i32(op.ordinal()).i32(n));
    }

    // ---------------------------------------------------------------- reductions

    @Override public void reduce(ReduceOp op, Buffer x, int[] xDims, boolean[] reduce, Buffer out) {
        int[] strides = Shape8.contiguousStrides(xDims);
        int kr = 0, rr = 0;
        for (boolean r : reduce) if (r) rr++; else kr++;
        int[] kd = new int[kr], ks = new int[kr], rd = new int[rr], rs = new int[rr];
        long count = 1, outputs = 1;
        for (int d = 0, i = 0, j = 0; d < xDims.length; d++) {
            if (reduce[d]) { rd[j] = xDims[d]; rs[j++] = strides[d]; count *= xDims[d]; }
            else { kd[i] = xDims[d]; ks[i++] = strides[d]; outputs *= xDims[d]; }
        }
        if (outputs == 0) return;
        int block = rowBlock(count);
        launch("reduce_f32", Launches.perRow(outputs, block), new KernelArgs().ptr(c(x)).ptr(c(out))
                .ints(Shape8.dims(kd)).ints(Shape8.pad(ks)).ints(Shape8.dims(rd)).ints(Shape8.pad(rs))
                .i32(op.ordinal()).i32((int) outputs).i32((int) count));
    }

    @Override public void argmax(Buffer x, int[] xDims, int axis, Buffer out) {
        int outer = 1, inner = 1;
        for (int d = 0; d < axis; d++) outer *= xDims[d];
        for (int d = axis + 1; d < xDims.length; d++) inner *= xDims[d];
        if (outer * inner == 0) return;
        launch("argmax_f32", Launches.elementwise((long) outer * inner, ewBlock()),
                new KernelArgs().ptr(c(x)).ptr(c(out)).i32(outer).i32(xDims[axis]).i32(inner));
    }

    // ---------------------------------------------------------------- movement

    @Override public void strided(Buffer src, int srcOffset, int[] srcStrides, Buffer dst, int dstOffset, int[] dstStrides,
                                  int[] dims, boolean accumulate) {
        long n = 1;
        for (int d : dims) n *= d;
        if (n == 0) return;
        if (dims.length > Shape8.MAX_RANK) throw new IllegalArgumentException("strided: rank " + dims.length + " > " + Shape8.MAX_RANK);
        launch("strided_f32", Launches.elementwise(n, ewBlock()), new KernelArgs().ptr(c(src), srcOffset).ptr(c(dst), dstOffset)
                .ints(Shape8.dims(dims)).ints(Shape8.pad(srcStrides)).ints(Shape8.pad(dstStrides)).i32(accumulate ? 1 : 0).i32((int) n));
    }

    // ---------------------------------------------------------------- processing

    @Override public void gemm(boolean transA, boolean transB, int batch, int m, int n, int k, float alpha,
                               Buffer a, int aBatchStride, Buffer b, int bBatchStride, float beta, Buffer c) {
        GpuRuntime.Blas blas = rt.blas();
        if (blas == null) {   // our reference kernel (the emulator has no cuBLAS)
            launch("gemm_tiled", new LaunchConfig((n + 15) / 16, (m + 15) / 16, batch, 16, 16, 1, 0), new KernelArgs().i32(transA ? 1 : 0)
                    .i32(transB ? 1 : 0).i32(m).i32(n).i32(k).f32(alpha).ptr(c(a)).i32(aBatchStride).ptr(c(b)).i32(bBatchStride).f32(beta).ptr(c(c)));
            return;
        }
        // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands, keep the flags.
        int lda = transA ? m : k, ldb = transB ? k : n;
        blas.sgemmStridedBatched(transB, transA, n, m, k, alpha, c(b).address(), ldb, bBatchStride, c(a).address(), lda,
                aBatchStride, beta, c(c).address(), n, (long) m * n, batch);
    }

    @Override public void softmax(Buffer x, int rows, int cols, boolean log, Buffer y) {
        if (rows == 0 || cols == 0) return;
        launch("softmax_rows", Launches.perRow(rows, rowBlock(cols)), new KernelArgs().ptr(c(x)).ptr(c(y)).i32(rows).i32(cols).i32(log ? 1 : 0));
    }

    @Override public void sgdStep(Buffer param, Buffer grad, Buffer momentumBuffer, float lr, float momentum, float dampening,
                                  float weightDecay, boolean nesterov, boolean firstStep) {
        int n = param.length();
        if (n == 0) return;
        if (momentum != 0 && momentumBuffer == null) throw new IllegalArgumentException("sgdStep: momentum " + momentum + " needs a momentum buffer");
        long buf = momentumBuffer == null ? 0 : c(momentumBuffer).address();
        launch("sgd_step", Launches.elementwise(n, ewBlock()), new KernelArgs().ptr(c(param)).ptr(c(grad)).ptr(buf).f32(lr).f32(momentum)
                .f32(dampening).f32(weightDecay).i32(nesterov ? 1 : 0).i32(firstStep ? 1 : 0).i32(n));
    }

    @Override public void adamStep(Buffer param, Buffer grad, Buffer m, Buffer v, float lr, float beta1, float beta2, float eps,
                                   float weightDecay, int t) {
        int n = param.length();
        if (n == 0) return;
        double bc1 = 1 - Math.pow(beta1, t), bc2 = 1 - Math.pow(beta2, t);
        launch("adam_step", Launches.elementwise(n, ewBlock()), new KernelArgs().ptr(c(param)).ptr(c(grad)).ptr(c(m)).ptr(c(v))
                .f32(beta1).f32(beta2).f32(eps).f32(weightDecay).f32((float) (lr / bc1)).f32((float) Math.sqrt(bc2)).i32(n));
    }

    // ---------------------------------------------------------------- convolution, normalisation, pooling, gathers

    private static int[] conv(ConvGeometry g) {
        return new int[] {g.n(), g.c(), g.h(), g.w(), g.k(), g.r(), g.s(), g.strideH(), g.strideW(), g.padH(), g.padW(), g.groups(), g.outH(), g.outW()};
    }

    private static long addressOrZero(Buffer b) { return b == null ? 0 : c(b).address(); }

    // Convolutions and batch norm go to cuDNN where the runtime has it (a GPU with libcudnn.so.9) and it takes the
    // case (a deterministic convolution algorithm; eps >= 1e-5 for batch norm); otherwise, and always under
    // emulation, to our own kernels.

    @Override public void conv2d(ConvGeometry g, Buffer x, Buffer w, Buffer bias, Buffer y) {
        GpuRuntime.Dnn dnn = dnn();
        if (dnn != null && dnn.convForward(g, c(x).address(), c(w).address(), addressOrZero(bias), c(y).address())) return;
        launch("conv_fwd", Launches.elementwise((long) g.n() * g.k() * g.outH() * g.outW(), ewBlock()),
                new KernelArgs().ints(conv(g)).ptr(c(x)).ptr(c(w)).ptr(addressOrZero(bias)).ptr(c(y)));
    }

    @Override public void conv2dBackwardData(ConvGeometry g, Buffer dy, Buffer w, Buffer dx) {
        GpuRuntime.Dnn dnn = dnn();
        if (dnn != null && dnn.convBackwardData(g, c(dy).address(), c(w).address(), c(dx).address())) return;
        launch("conv_bwd_data", Launches.elementwise((long) g.n() * g.c() * g.h() * g.w(), ewBlock()),
                new KernelArgs().ints(conv(g)).ptr(c(dy)).ptr(c(w)).ptr(c(dx)));
    }

    @Override public void conv2dBackwardWeight(ConvGeometry g, Buffer x, Buffer dy, Buffer dw) {
        GpuRuntime.Dnn dnn = dnn();
        if (dnn != null && dnn.convBackwardFilter(g, c(x).address(), c(dy).address(), c(dw).address())) return;
        long weights = (long) g.k() * g.cg() * g.r() * g.s();
        launch("conv_bwd_weight", Launches.perRow(weights, rowBlock((long) g.n() * g.outH() * g.outW())),
                new KernelArgs().ints(conv(g)).ptr(c(x)).ptr(c(dy)).ptr(c(dw)));
    }

    @Override public void batchNormTrain(Buffer x, int n, int c, int hw, Buffer gamma, Buffer beta, Buffer runningMean, Buffer runningVar,
                                         float momentum, float eps, Buffer y, Buffer saveMean, Buffer saveInvStd) {
        GpuRuntime.Dnn dnn = dnn();
        if (dnn != null && dnn.batchNormTrain(n, c, hw, c(x).address(), c(gamma).address(), c(beta).address(), c(runningMean).address(),
                c(runningVar).address(), momentum, eps, c(y).address(), c(saveMean).address(), c(saveInvStd).address())) return;
        launch("bn_train", Launches.perRow(c, rowBlock((long) n * hw)), new KernelArgs().ptr(c(x)).i32(n).i32(c).i32(hw).ptr(c(gamma))
                .ptr(c(beta)).ptr(c(runningMean)).ptr(c(runningVar)).f32(momentum).f32(eps).ptr(c(y)).ptr(c(saveMean)).ptr(c(saveInvStd)));
    }

    @Override public void batchNormEval(Buffer x, int n, int c, int hw, Buffer gamma, Buffer beta, Buffer runningMean, Buffer runningVar,
                                        float eps, Buffer y) {
        GpuRuntime.Dnn dnn = dnn();
        if (dnn != null && dnn.batchNormEval(n, c, hw, c(x).address(), c(gamma).address(), c(beta).address(), c(runningMean).address(),
                c(runningVar).address(), eps, c(y).address())) return;
        launch("bn_eval", Launches.elementwise((long) n * c * hw, ewBlock()), new KernelArgs().ptr(c(x)).i32(n).i32(c).i32(hw).ptr(c(gamma))
                .ptr(c(beta)).ptr(c(runningMean)).ptr(c(runningVar)).f32(eps).ptr(c(y)));
    }

    @Override public void batchNormBackward(Buffer x, Buffer dy, int n, int c, int hw, Buffer gamma, Buffer saveMean, Buffer saveInvStd,
                                            Buffer dx, Buffer dGamma, Buffer dBeta) {
        GpuRuntime.Dnn dnn = dnn();
        if (dnn != null && dx != null && dnn.batchNormBackward(n, c, hw, c(x).address(), c(dy).address(), c(gamma).address(),
                c(saveMean).address(), c(saveInvStd).address(), c(dx).address(), c(dGamma).address(), c(dBeta).address())) return;
        launch("bn_backward", Launches.perRow(c, rowBlock((long) n * hw)), new KernelArgs().ptr(c(x)).ptr(c(dy)).i32(n).i32(c).i32(hw)
                .ptr(c(gamma)).ptr(c(saveMean)).ptr(c(saveInvStd)).ptr(addressOrZero(dx)).ptr(c(dGamma)).ptr(c(dBeta)));
    }

    @Override public void maxPool2d(Buffer x, int planes, int h, int w, int kh, int kw, int sh, int sw, int ph, int pw, int oh, int ow,
                                    Buffer y, Buffer argmax) {
        if (argmax.dtype() != DType.INT32) throw new IllegalArgumentException("maxPool2d: argmax must be INT32, got " + argmax.dtype());
        launch("max_pool_fwd", Launches.elementwise((long) planes * oh * ow, ewBlock()), new KernelArgs().ptr(c(x)).ptr(c(y)).ptr(c(argmax))
                .i32(planes).i32(h).i32(w).i32(kh).i32(kw).i32(sh).i32(sw).i32(ph).i32(pw).i32(oh).i32(ow));
    }

    @Override public void maxPool2dBackward(Buffer dy, Buffer argmax, int planes, int h, int w, int oh, int ow, Buffer dx) {
        launch("max_pool_bwd", Launches.elementwise(planes, ewBlock()), new KernelArgs().ptr(c(dy)).ptr(c(argmax)).ptr(c(dx))
                .i32(planes).i32(h).i32(w).i32(oh).i32(ow));
    }

    @Override public void adaptiveAvgPool2d(Buffer x, int planes, int h, int w, int oh, int ow, Buffer y) {
        GpuRuntime.Dnn dnn = dnn();
        if (dnn != null && dnn.avgPoolForward(planes, h, w, oh, ow, c(x).address(), c(y).address())) return;
        launch("adaptive_avg_fwd", Launches.elementwise((long) planes * oh * ow, ewBlock()),
                new KernelArgs().ptr(c(x)).ptr(c(y)).i32(planes).i32(h).i32(w).i32(oh).i32(ow));
    }

    @Override public void adaptiveAvgPool2dBackward(Buffer dy, int planes, int h, int w, int oh, int ow, Buffer dx) {
        GpuRuntime.Dnn dnn = dnn();
        if (dnn != null && dnn.avgPoolBackward(planes, h, w, oh, ow, c(dy).address(), c(dx).address())) return;
        launch("adaptive_avg_bwd", Launches.elementwise((long) planes * h * w, ewBlock()),
                new KernelArgs().ptr(c(dy)).ptr(c(dx)).i32(planes).i32(h).i32(w).i32(oh).i32(ow));
    }

    private static int idx64(Buffer index) {
        return switch (index.dtype()) {
            case INT64 -> 1;
            case INT32 -> 0;
            case FLOAT32 -> throw new IllegalArgumentException("index buffer must be INT32 or INT64, got FLOAT32");
        };
    }

    @Override public void indexSelect(Buffer x, int outer, int axisLen, int inner, Buffer index, int indexLen, Buffer out) {
        long n = (long) outer * indexLen * inner;
        if (n == 0) return;
        launch("index_select", Launches.elementwise(n, ewBlock()), new KernelArgs().ptr(c(x)).ptr(c(out)).ptr(c(index)).i32(idx64(index))
                .i32(outer).i32(axisLen).i32(inner).i32(indexLen));
    }

    @Override public void indexAdd(Buffer dst, int outer, int axisLen, int inner, Buffer index, int indexLen, Buffer src) {
        if ((long) outer * inner == 0) return;
        launch("index_add", Launches.elementwise((long) outer * inner, ewBlock()), new KernelArgs().ptr(c(dst)).ptr(c(src)).ptr(c(index))
                .i32(idx64(index)).i32(outer).i32(axisLen).i32(inner).i32(indexLen));
    }

    @Override public void takeAlongAxis(Buffer x, int outer, int axisLen, int inner, Buffer index, Buffer out) {
        if ((long) outer * inner == 0) return;
        launch("take_along", Launches.elementwise((long) outer * inner, ewBlock()), new KernelArgs().ptr(c(x)).ptr(c(out)).ptr(c(index))
                .i32(idx64(index)).i32(outer).i32(axisLen).i32(inner));
    }

    @Override public void takeAlongAxisAdd(Buffer dst, int outer, int axisLen, int inner, Buffer index, Buffer src) {
        if ((long) outer * inner == 0) return;
        launch("take_along_add", Launches.elementwise((long) outer * inner, ewBlock()), new KernelArgs().ptr(c(dst)).ptr(c(src)).ptr(c(index))
                .i32(idx64(index)).i32(outer).i32(axisLen).i32(inner));
    }

    // ---------------------------------------------------------------- packed multi-branch convolution

    /**
     * One launch per branch in plan order, then the output stage. The plan is validated by BranchConv; the checks
     * here are the call's (sizes, overwrite needs disjoint outputs, x and y distinct), as on the CPU. The pair form
     * is fused (branchConv2dPair below).
     */
    @Override public void branchConv2d(BranchConv plan, Buffer x, int n, int h, int w, Buffer y, boolean accumulate) {
        if (n < 1 || h < 1 || w < 1) throw new IllegalArgumentException("branchConv2d: invalid input size n=" + n + " h=" + h + " w=" + w);
        if (!accumulate && !plan.disjointOutputs())
            throw new IllegalArgumentException("branchConv2d: overwriting needs disjoint branch outputs, but two branches of " + plan + " write the same channel");
        if (c(x).address() == c(y).address()) throw new IllegalArgumentException("branchConv2d: x and y must be different buffers");
        int oh = plan.outSize(h), ow = plan.outSize(w);
        if (oh < 1 || ow < 1) throw new IllegalArgumentException("branchConv2d: input " + h + "x" + w + " is smaller than the kernel of " + plan);
        if (x.length() != (long) n * plan.inChannels() * h * w || y.length() != (long) n * plan.outChannels() * oh * ow)
            throw new IllegalArgumentException("branchConv2d: x has " + x.length() + " floats, expected " + ((long) n * plan.inChannels() * h * w)
                    + "; y has " + y.length() + ", expected " + ((long) n * plan.outChannels() * oh * ow) + " for " + plan);
        for (BranchConv.Branch b : plan.branches()) {
            int[] in = b.inChannels(), out = b.outChannels();
            Buffer inIdx = fromInts(in), outIdx = fromInts(out);
            launch("branch_conv", Launches.elementwise((long) n * out.length * oh * ow, ewBlock()), new KernelArgs()
                    .ints(n, plan.inChannels(), plan.outChannels(), h, w, plan.kernel(), plan.stride(), plan.padding(), oh, ow, in.length,
                            out.length, b.relu() ? 1 : 0, accumulate ? 1 : 0)
                    .ptr(c(x)).ptr(c(inIdx)).ptr(c(outIdx)).ptr(c(b.weight())).ptr(c(b.scale())).ptr(c(b.shift())).ptr(c(y)));
        }
        if (plan.hasOutputStage()) {
            long total = (long) n * plan.outChannels() * oh * ow;
            launch("branch_output_stage", Launches.elementwise(total, ewBlock()), new KernelArgs().ptr(c(y)).ptr(addressOrZero(plan.outputShift()))
                    .i32(plan.outputRelu() ? 1 : 0).i32(plan.outChannels()).i32(oh * ow).i32((int) total));
        }
    }

    /**
     * Both plans in one launch of branch_pair (branch_conv.cu): conv_a's outputs stay in shared memory. The tile is
     * the largest of 16x16 down to 1x1 whose intermediate region fits 48 KiB; when x and y are the same buffer it must
     * be the whole image (see the kernel's comment), and where that does not fit, the call takes Backend's default
     * (conv_a into a temporary, then conv_b).
     */
    @Override public void branchConv2dPair(BranchConv first, BranchConv second, Buffer x, int n, int h, int w, Buffer y,
                                           boolean accumulate) {
        BranchConv.requireChainable(first, second);
        if (n < 1 || h < 1 || w < 1) throw new IllegalArgumentException("branchConv2dPair: invalid input size n=" + n + " h=" + h + " w=" + w);
        if (!accumulate && !second.disjointOutputs())
            throw new IllegalArgumentException("branchConv2dPair: overwriting needs disjoint branch outputs, but two branches of " + second + " write the same channel");
        int th = first.outSize(h), tw = first.outSize(w);
        int oh = th < 1 || tw < 1 ? 0 : second.outSize(th), ow = th < 1 || tw < 1 ? 0 : second.outSize(tw);
        if (oh < 1 || ow < 1) throw new IllegalArgumentException("branchConv2dPair: input " + h + "x" + w + " is too small for " + first + " then " + second);
        if (x.length() != (long) n * first.inChannels() * h * w || y.length() != (long) n * second.outChannels() * oh * ow)
            throw new IllegalArgumentException("branchConv2dPair: x has " + x.length() + " floats, expected " + ((long) n * first.inChannels() * h * w)
                    + "; y has " + y.length() + ", expected " + ((long) n * second.outChannels() * oh * ow) + " for " + first + " then " + second);
        int[] tile = pairTile(first.outChannels(), second, oh, ow, c(x).address() == c(y).address());
        if (tile == null) {
            Backend.super.branchConv2dPair(first, second, x, n, h, w, y, accumulate);
            return;
        }
        int tileH = tile[0], tileW = tile[1], rh = (tileH - 1) * second.stride() + second.kernel(), rw = (tileW - 1) * second.stride() + second.kernel();
        int tilesY = (oh + tileH - 1) / tileH, tilesX = (ow + tileW - 1) / tileW;
        FlatPlan a = flat(first), b = flat(second);
        LaunchConfig cfg = new LaunchConfig(tilesY * tilesX, Math.min(n, LaunchConfig.MAX_GRID_YZ), 1, ewBlock(), 1, 1,
                first.outChannels() * rh * rw * Float.BYTES);
        launch("branch_pair", cfg, new KernelArgs()
                .ints(n, first.inChannels(), h, w,
                        first.outChannels(), th, tw, first.kernel(), first.stride(), first.padding(), a.entries,
                        second.outChannels(), oh, ow, second.kernel(), second.stride(), second.padding(), b.entries,
                        tileH, tileW, tilesX, rh, rw, first.outputRelu() ? 1 : 0, second.outputRelu() ? 1 : 0, accumulate ? 1 : 0)
                .ptr(c(x)).ptr(c(a.ints)).ptr(c(a.floats)).ptr(addressOrZero(first.outputShift()))
                .ptr(c(b.ints)).ptr(c(b.floats)).ptr(addressOrZero(second.outputShift())).ptr(c(y)));
    }

    /**
     * branch_pair's output tile {tileH, tileW} for an intermediate of {@code c1} channels, or null when none fits
     * (then the pair runs through a temporary). In place, the tile must cover the whole oh x ow image.
     */
    static int[] pairTile(int c1, BranchConv second, int oh, int ow, boolean inPlace) {
        int maxFloats = LaunchConfig.MAX_STATIC_SHARED_BYTES / Float.BYTES;
        if (inPlace) {
            long rh = (long) (oh - 1) * second.stride() + second.kernel(), rw = (long) (ow - 1) * second.stride() + second.kernel();
            return (long) c1 * rh * rw <= maxFloats ? new int[] {oh, ow} : null;
        }
        for (int t = 16; t >= 1; t /= 2) {
            int tileH = Math.min(t, oh), tileW = Math.min(t, ow);
            long rh = (long) (tileH - 1) * second.stride() + second.kernel(), rw = (long) (tileW - 1) * second.stride() + second.kernel();
            if ((long) c1 * rh * rw <= maxFloats) return new int[] {tileH, tileW};
        }
        return null;
    }

    /** A plan flattened for branch_pair (layout in branch_conv.cu's Flat); kept per plan while the plan lives. */
    private record FlatPlan(Buffer ints, Buffer floats, int entries) {}

    private final java.util.Map<BranchConv, FlatPlan> flatPlans = java.util.Collections.synchronizedMap(new java.util.WeakHashMap<>());

    private FlatPlan flat(BranchConv plan) {
        FlatPlan f = flatPlans.get(plan);
        if (f != null) return f;
        int channels = plan.outChannels(), k2 = plan.kernel() * plan.kernel(), e = 0, idxLen = 0, wLen = 0;
        for (BranchConv.Branch b : plan.branches()) {
            e += b.outWidth();
            idxLen += b.inWidth();
            wLen += b.outWidth() * b.inWidth() * k2;
        }
        // Entries in plan order; each channel lists the entries writing it in that order (CSR).
        int[] count = new int[channels + 1];
        for (BranchConv.Branch b : plan.branches()) for (int o : b.outChannels()) count[o + 1]++;
        for (int c = 0; c < channels; c++) count[c + 1] += count[c];
        int base = channels + 1, list = base, wOff = list + e, inOff = wOff + e, inW = inOff + e, relu = inW + e, idx = relu + e;
        int[] ints = new int[idx + idxLen];
        System.arraycopy(count, 0, ints, 0, channels + 1);
        int[] fill = count.clone();
        int entry = 0, idxAt = 0, wAt = 0;
        for (BranchConv.Branch b : plan.branches()) {
            int[] in = b.inChannels(), out = b.outChannels();
            System.arraycopy(in, 0, ints, idx + idxAt, in.length);
            for (int j = 0; j < out.length; j++, entry++) {
                ints[list + fill[out[j]]++] = entry;
                ints[wOff + entry] = wAt + j * in.length * k2;
                ints[inOff + entry] = idxAt;
                ints[inW + entry] = in.length;
                ints[relu + entry] = b.relu() ? 1 : 0;
            }
            idxAt += in.length;
            wAt += out.length * in.length * k2;
        }
        CudaBuffer floats = c(allocate(DType.FLOAT32, 2 * e + wLen));
        int at = 0;
        for (BranchConv.Branch b : plan.branches()) {
            rt.copy(floats.address() + (long) at * Float.BYTES, c(b.scale()).address(), (long) b.outWidth() * Float.BYTES);
            rt.copy(floats.address() + (long) (e + at) * Float.BYTES, c(b.shift()).address(), (long) b.outWidth() * Float.BYTES);
            at += b.outWidth();
        }
        long wBytesAt = 2L * e;
        for (BranchConv.Branch b : plan.branches()) {
            long len = (long) b.outWidth() * b.inWidth() * k2;
            rt.copy(floats.address() + wBytesAt * Float.BYTES, c(b.weight()).address(), len * Float.BYTES);
            wBytesAt += len;
        }
        f = new FlatPlan(fromInts(ints), floats, e);
        flatPlans.put(plan, f);
        return f;
    }

    /** A scratch buffer of {@code count} doubles (8-byte elements), returned to the cache when unreachable. */
    private CudaBuffer doubles(long count) { return raw(DType.INT64, Math.toIntExact(Math.max(1, count))); }

    @Override public void groupRegularizer(Buffer w, Buffer p, int groups, int filters, int channels, int kernelArea, float scale,
                                           Buffer penalty, Buffer dRdp, boolean accumulateDRdp, Buffer pieces) {
        int rows = filters * channels;
        CudaBuffer sq = doubles(rows), invL = doubles((long) groups * channels), sG = doubles(groups);
        launch("group_rowdots", Launches.elementwise(rows, ewBlock()), new KernelArgs().ptr(c(w)).ptr(c(w)).ptr(sq).i32(rows).i32(kernelArea));
        launch("group_stats", Launches.perRow(groups, Launches.GROUP_BLOCK), new KernelArgs().ptr(c(p)).ptr(sq).i32(groups).i32(filters)
                .i32(channels).ptr(invL).ptr(sG).ptr(addressOrZero(dRdp)).i32(accumulateDRdp ? 1 : 0).ptr(addressOrZero(pieces)));
        launch("group_penalty", Launches.elementwise(rows, ewBlock()), new KernelArgs().ptr(c(w)).ptr(c(p)).ptr(invL).ptr(sG).i32(groups)
                .i32(filters).i32(channels).i32(kernelArea).f32(scale).ptr(c(penalty)));
    }

    @Override public void groupSecondOrderAdd(Buffer w, Buffer d, Buffer p, Buffer pieces, int groups, int filters, int channels,
                                              int kernelArea, Buffer pgrad) {
        int rows = filters * channels;
        CudaBuffer q = doubles(rows);
        launch("group_rowdots", Launches.elementwise(rows, ewBlock()), new KernelArgs().ptr(c(w)).ptr(c(d)).ptr(q).i32(rows).i32(kernelArea));
        launch("group_second_order", Launches.elementwise((long) groups * filters, ewBlock()), new KernelArgs().ptr(q).ptr(c(p))
                .ptr(c(pieces)).i32(groups).i32(filters).i32(channels).ptr(c(pgrad)));
    }
}
