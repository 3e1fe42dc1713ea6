package ai.bonsai.cuda;

import ai.bonsai.backend.ConvGeometry;
import org.bytedeco.cuda.cudnn.cudnnContext;
import org.bytedeco.cuda.cudnn.cudnnConvolutionBwdDataAlgoPerf_t;
import org.bytedeco.cuda.cudnn.cudnnConvolutionBwdFilterAlgoPerf_t;
import org.bytedeco.cuda.cudnn.cudnnConvolutionFwdAlgoPerf_t;
import org.bytedeco.cuda.cudnn.cudnnConvolutionStruct;
import org.bytedeco.cuda.cudnn.cudnnFilterStruct;
import org.bytedeco.cuda.cudnn.cudnnPoolingStruct;
import org.bytedeco.cuda.cudnn.cudnnTensorStruct;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;

import java.util.function.Consumer;
import java.util.function.LongConsumer;
import java.util.function.LongUnaryOperator;

import static org.bytedeco.cuda.global.cudnn.*;

/**
 * Convolution forward and both backward passes, batch norm (training, inference, backward) and average pooling, through cuDNN 9 (JavaCPP's CUDA 13 presets), on the legacy default
 * stream like our kernels and cuBLAS. Per (direction, geometry) a plan is made once: the descriptors and the algorithm,
 * the first of cuDNN's heuristic list (cudnnGet*Algorithm_v7, fastest first) that is deterministic and fits the
 * workspace limit ({@link ConvAlgorithms#choose}); with none, that pass stays on Bonsai's kernel. One workspace,
 * grown to the largest plan's need, serves every call. TF32 is off unless asked for, as for cuBLAS.
 *
 * <p>Not verified on a GPU: this machine has no driver and no cuDNN, so only loading it (and failing cleanly) is tested.
 */
final class CudnnConv implements GpuRuntime.Dnn {
    private static final int MAX_CANDIDATES = 16;
    private final cudnnContext handle = new cudnnContext();
    private final boolean tf32;
    private final long workspaceLimit;
    private final ConvAlgorithms.Workspace workspace;
    private final ConvAlgorithms.Cache<Key, Plan> plans = new ConvAlgorithms.Cache<>();

    private record Key(ConvAlgorithms.Direction direction, ConvGeometry g) {}

    /** Descriptors of one geometry and the algorithm of one direction (algo -1: none qualified, use our kernel). */
    private record Plan(cudnnTensorStruct x, cudnnTensorStruct y, cudnnTensorStruct bias, cudnnFilterStruct w,
                        cudnnConvolutionStruct conv, int algo, long workspaceBytes) {}

    private CudnnConv(LongUnaryOperator malloc, LongConsumer free, boolean tf32, long workspaceLimit) {
        check(cudnnCreate(handle), "cudnnCreate");
        this.tf32 = tf32;
        this.workspaceLimit = workspaceLimit;
        this.workspace = new ConvAlgorithms.Workspace(malloc, free);
    }

    /**
     * cuDNN, or null with one line to {@code log} saying why not and that convolution stays on Bonsai's kernels:
     * switched off by {@code -Dbonsai.cudnn=false}, or its libraries (libcudnn*.so.9) cannot be loaded.
     */
    static CudnnConv tryCreate(GpuRuntime rt, boolean tf32, Consumer<String> log) {
        return tryCreate(rt::tryMalloc, rt::free, tf32, log);
    }

    /** {@link #tryCreate(GpuRuntime, boolean, Consumer)} with the workspace's device memory given as functions. */
    static CudnnConv tryCreate(LongUnaryOperator malloc, LongConsumer free, boolean tf32, Consumer<String> log) {
        if (!Boolean.parseBoolean(System.getProperty("bonsai.cudnn", "true"))) {
            log.accept("bonsai: cuDNN switched off (-Dbonsai.cudnn=false): convolution runs on Bonsai's own CUDA kernels");
            return null;
        }
        long limit = Long.getLong("bonsai.cudnn.workspaceMiB", 1024L) << 20;
        try {
            return new CudnnConv(malloc, free, tf32, limit);
        } catch (LinkageError | IllegalStateException e) {
            log.accept("bonsai: cuDNN not loaded (" + DriverRuntime.rootMessage(e) + "): convolution runs on Bonsai's own CUDA kernels;"
                    + " put the directory holding libcudnn.so.9 on LD_LIBRARY_PATH to use it");
            return null;
        }
    }

    /** A JavaCPP pointer at a device address (never dereferenced on the host). */
    private static final class DevicePointer extends Pointer {
        DevicePointer(long address) { super((Pointer) null); this.address = address; }
    }

    private Plan plan(ConvAlgorithms.Direction d, ConvGeometry g) { return plans.get(new Key(d, g), this::make); }

    private Plan make(Key key) {
        ConvGeometry g = key.g();
        cudnnTensorStruct x = new cudnnTensorStruct(), y = new cudnnTensorStruct(), bias = new cudnnTensorStruct();
        cudnnFilterStruct w = new cudnnFilterStruct();
        cudnnConvolutionStruct conv = new cudnnConvolutionStruct();
        check(cudnnCreateTensorDescriptor(x), "cudnnCreateTensorDescriptor");
        check(cudnnCreateTensorDescriptor(y), "cudnnCreateTensorDescriptor");
        check(cudnnCreateTensorDescriptor(bias), "cudnnCreateTensorDescriptor");
        check(cudnnCreateFilterDescriptor(w), "cudnnCreateFilterDescriptor");
        check(cudnnCreateConvolutionDescriptor(conv), "cudnnCreateConvolutionDescriptor");
        String where = " for " + g;
        check(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, g.n(), g.c(), g.h(), g.w()), "cudnnSetTensor4dDescriptor x" + where);
        check(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, g.n(), g.k(), g.outH(), g.outW()), "cudnnSetTensor4dDescriptor y" + where);
        check(cudnnSetTensor4dDescriptor(bias, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, g.k(), 1, 1), "cudnnSetTensor4dDescriptor bias" + where);
        check(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, g.k(), g.cg(), g.r(), g.s()), "cudnnSetFilter4dDescriptor" + where);
        check(cudnnSetConvolution2dDescriptor(conv, g.padH(), g.padW(), g.strideH(), g.strideW(), 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
                "cudnnSetConvolution2dDescriptor" + where);
        check(cudnnSetConvolutionGroupCount(conv, g.groups()), "cudnnSetConvolutionGroupCount" + where);
        check(cudnnSetConvolutionMathType(conv, tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH), "cudnnSetConvolutionMathType" + where);
        int[] count = {0};
        ConvAlgorithms.Candidate[] cs;
        switch (key.direction()) {
            case FORWARD -> {
                cudnnConvolutionFwdAlgoPerf_t perf = new cudnnConvolutionFwdAlgoPerf_t(MAX_CANDIDATES);
                check(cudnnGetConvolutionForwardAlgorithm_v7(handle, x, w, conv, y, MAX_CANDIDATES, count, perf), "cudnnGetConvolutionForwardAlgorithm_v7" + where);
                cs = new ConvAlgorithms.Candidate[count[0]];
                for (int i = 0; i < cs.length; i++) {
                    cudnnConvolutionFwdAlgoPerf_t p = perf.getPointer(i);
                    cs[i] = new ConvAlgorithms.Candidate(p.algo(), p.status(), p.determinism() == CUDNN_DETERMINISTIC, p.memory());
                }
            }
            case BACKWARD_DATA -> {
                cudnnConvolutionBwdDataAlgoPerf_t perf = new cudnnConvolutionBwdDataAlgoPerf_t(MAX_CANDIDATES);
                check(cudnnGetConvolutionBackwardDataAlgorithm_v7(handle, w, y, conv, x, MAX_CANDIDATES, count, perf), "cudnnGetConvolutionBackwardDataAlgorithm_v7" + where);
                cs = new ConvAlgorithms.Candidate[count[0]];
                for (int i = 0; i < cs.length; i++) {
                    cudnnConvolutionBwdDataAlgoPerf_t p = perf.getPointer(i);
                    cs[i] = new ConvAlgorithms.Candidate(p.algo(), p.status(), p.determinism() == CUDNN_DETERMINISTIC, p.memory());
                }
            }
            default -> {
                cudnnConvolutionBwdFilterAlgoPerf_t perf = new cudnnConvolutionBwdFilterAlgoPerf_t(MAX_CANDIDATES);
                check(cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle, x, y, conv, w, MAX_CANDIDATES, count, perf), "cudnnGetConvolutionBackwardFilterAlgorithm_v7" + where);
                cs = new ConvAlgorithms.Candidate[count[0]];
                for (int i = 0; i < cs.length; i++) {
                    cudnnConvolutionBwdFilterAlgoPerf_t p = perf.getPointer(i);
                    cs[i] = new ConvAlgorithms.Candidate(p.algo(), p.status(), p.determinism() == CUDNN_DETERMINISTIC, p.memory());
                }
            }
        }
        int i = ConvAlgorithms.choose(cs, workspaceLimit);
        return new Plan(x, y, bias, w, conv, i < 0 ? -1 : cs[i].algo(), i < 0 ? 0 : cs[i].workspaceBytes());
    }

    @Override public synchronized boolean convForward(ConvGeometry g, long x, long w, long bias, long y) {
        Plan p = plan(ConvAlgorithms.Direction.FORWARD, g);
        if (p.algo() < 0) return false;
        long ws = workspace.ensure(p.workspaceBytes());
        try (FloatPointer one = new FloatPointer(1f); FloatPointer zero = new FloatPointer(0f)) {
            check(cudnnConvolutionForward(handle, one, p.x(), new DevicePointer(x), p.w(), new DevicePointer(w), p.conv(), p.algo(),
                    new DevicePointer(ws), p.workspaceBytes(), zero, p.y(), new DevicePointer(y)), "cudnnConvolutionForward algo " + p.algo() + " for " + g);
            if (bias != 0) check(cudnnAddTensor(handle, one, p.bias(), new DevicePointer(bias), one, p.y(), new DevicePointer(y)), "cudnnAddTensor bias for " + g);
        }
        return true;
    }

    @Override public synchronized boolean convBackwardData(ConvGeometry g, long dy, long w, long dx) {
        Plan p = plan(ConvAlgorithms.Direction.BACKWARD_DATA, g);
        if (p.algo() < 0) return false;
        long ws = workspace.ensure(p.workspaceBytes());
        try (FloatPointer one = new FloatPointer(1f); FloatPointer zero = new FloatPointer(0f)) {
            check(cudnnConvolutionBackwardData(handle, one, p.w(), new DevicePointer(w), p.y(), new DevicePointer(dy), p.conv(), p.algo(),
                    new DevicePointer(ws), p.workspaceBytes(), zero, p.x(), new DevicePointer(dx)), "cudnnConvolutionBackwardData algo " + p.algo() + " for " + g);
        }
        return true;
    }

    @Override public synchronized boolean convBackwardFilter(ConvGeometry g, long x, long dy, long dw) {
        Plan p = plan(ConvAlgorithms.Direction.BACKWARD_FILTER, g);
        if (p.algo() < 0) return false;
        long ws = workspace.ensure(p.workspaceBytes());
        try (FloatPointer one = new FloatPointer(1f); FloatPointer zero = new FloatPointer(0f)) {
            check(cudnnConvolutionBackwardFilter(handle, one, p.x(), new DevicePointer(x), p.y(), new DevicePointer(dy), p.conv(), p.algo(),
                    new DevicePointer(ws), p.workspaceBytes(), zero, p.w(), new DevicePointer(dw)), "cudnnConvolutionBackwardFilter algo " + p.algo() + " for " + g);
        }
        return true;
    }

    // ---------------------------------------------------------------- batch norm (CUDNN_BATCHNORM_SPATIAL)

    /** x as (n, c, hw, 1) and the per-channel (1, c, 1, 1) descriptor, made once per shape. */
    private record BnKey(int n, int c, int hw) {}

    private record BnPlan(cudnnTensorStruct x, cudnnTensorStruct perChannel) {}

    private final ConvAlgorithms.Cache<BnKey, BnPlan> bnPlans = new ConvAlgorithms.Cache<>();

    private BnPlan bn(int n, int c, int hw) {
        return bnPlans.get(new BnKey(n, c, hw), k -> {
            cudnnTensorStruct x = new cudnnTensorStruct(), pc = new cudnnTensorStruct();
            check(cudnnCreateTensorDescriptor(x), "cudnnCreateTensorDescriptor");
            check(cudnnCreateTensorDescriptor(pc), "cudnnCreateTensorDescriptor");
            check(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, k.n(), k.c(), k.hw(), 1), "cudnnSetTensor4dDescriptor bn x " + k);
            check(cudnnSetTensor4dDescriptor(pc, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, k.c(), 1, 1), "cudnnSetTensor4dDescriptor bn " + k);
            return new BnPlan(x, pc);
        });
    }

    /** cuDNN takes eps >= CUDNN_BN_MIN_EPSILON and needs two values per channel for the unbiased variance. */
    private static boolean bnSupported(int n, int hw, float eps) { return eps >= CUDNN_BN_MIN_EPSILON && (long) n * hw >= 2; }

    @Override public synchronized boolean batchNormTrain(int n, int c, int hw, long x, long gamma, long beta, long runningMean, long runningVar,
                                                         float momentum, float eps, long y, long saveMean, long saveInvStd) {
        if (!bnSupported(n, hw, eps)) return false;
        BnPlan p = bn(n, c, hw);
        try (FloatPointer one = new FloatPointer(1f); FloatPointer zero = new FloatPointer(0f)) {
            check(cudnnBatchNormalizationForwardTraining(handle, CUDNN_BATCHNORM_SPATIAL, one, zero, p.x(), new DevicePointer(x), p.x(),
                    new DevicePointer(y), p.perChannel(), new DevicePointer(gamma), new DevicePointer(beta), momentum,
                    new DevicePointer(runningMean), new DevicePointer(runningVar), eps, new DevicePointer(saveMean), new DevicePointer(saveInvStd)),
                    "cudnnBatchNormalizationForwardTraining n=" + n + " c=" + c + " hw=" + hw);
        }
        return true;
    }

    @Override public synchronized boolean batchNormEval(int n, int c, int hw, long x, long gamma, long beta, long runningMean, long runningVar,
                                                        float eps, long y) {
        if (eps < CUDNN_BN_MIN_EPSILON) return false;
        BnPlan p = bn(n, c, hw);
        try (FloatPointer one = new FloatPointer(1f); FloatPointer zero = new FloatPointer(0f)) {
            check(cudnnBatchNormalizationForwardInference(handle, CUDNN_BATCHNORM_SPATIAL, one, zero, p.x(), new DevicePointer(x), p.x(),
                    new DevicePointer(y), p.perChannel(), new DevicePointer(gamma), new DevicePointer(beta),
                    new DevicePointer(runningMean), new DevicePointer(runningVar), eps), "cudnnBatchNormalizationForwardInference n=" + n + " c=" + c + " hw=" + hw);
        }
        return true;
    }

    @Override public synchronized boolean batchNormBackward(int n, int c, int hw, long x, long dy, long gamma, long saveMean, long saveInvStd,
                                                            long dx, long dGamma, long dBeta) {
        if ((long) n * hw < 2 || dx == 0) return false;
        BnPlan p = bn(n, c, hw);
        // With the saved mean and inverse std given, cuDNN uses them and not epsilon (passed at its minimum).
        try (FloatPointer one = new FloatPointer(1f); FloatPointer zero = new FloatPointer(0f)) {
            check(cudnnBatchNormalizationBackward(handle, CUDNN_BATCHNORM_SPATIAL, one, zero, one, zero, p.x(), new DevicePointer(x), p.x(),
                    new DevicePointer(dy), p.x(), new DevicePointer(dx), p.perChannel(), new DevicePointer(gamma), new DevicePointer(dGamma),
                    new DevicePointer(dBeta), CUDNN_BN_MIN_EPSILON, new DevicePointer(saveMean), new DevicePointer(saveInvStd)),
                    "cudnnBatchNormalizationBackward n=" + n + " c=" + c + " hw=" + hw);
        }
        return true;
    }

    /** Average-pooling descriptors per shape: input (planes, 1, h, w), output (planes, 1, oh, ow), windows h/oh x w/ow. */
    private record PoolKey(int planes, int h, int w, int oh, int ow) {}

    private record PoolPlan(cudnnTensorStruct x, cudnnTensorStruct y, cudnnPoolingStruct pool) {}

    private final ConvAlgorithms.Cache<PoolKey, PoolPlan> poolPlans = new ConvAlgorithms.Cache<>();

    private PoolPlan pool(int planes, int h, int w, int oh, int ow) {
        return poolPlans.get(new PoolKey(planes, h, w, oh, ow), k -> {
            cudnnTensorStruct x = new cudnnTensorStruct(), y = new cudnnTensorStruct();
            cudnnPoolingStruct p = new cudnnPoolingStruct();
            check(cudnnCreateTensorDescriptor(x), "cudnnCreateTensorDescriptor");
            check(cudnnCreateTensorDescriptor(y), "cudnnCreateTensorDescriptor");
            check(cudnnCreatePoolingDescriptor(p), "cudnnCreatePoolingDescriptor");
            check(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, k.planes(), 1, k.h(), k.w()), "cudnnSetTensor4dDescriptor pool x " + k);
            check(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, k.planes(), 1, k.oh(), k.ow()), "cudnnSetTensor4dDescriptor pool y " + k);
            int wh = k.h() / k.oh(), ww = k.w() / k.ow();
            check(cudnnSetPooling2dDescriptor(p, CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING, CUDNN_NOT_PROPAGATE_NAN, wh, ww, 0, 0, wh, ww),
                    "cudnnSetPooling2dDescriptor " + k);
            return new PoolPlan(x, y, p);
        });
    }

    private static boolean poolSupported(int h, int w, int oh, int ow) { return oh > 0 && ow > 0 && h % oh == 0 && w % ow == 0; }

    @Override public synchronized boolean avgPoolForward(int planes, int h, int w, int oh, int ow, long x, long y) {
        if (!poolSupported(h, w, oh, ow)) return false;
        PoolPlan p = pool(planes, h, w, oh, ow);
        try (FloatPointer one = new FloatPointer(1f); FloatPointer zero = new FloatPointer(0f)) {
            check(cudnnPoolingForward(handle, p.pool(), one, p.x(), new DevicePointer(x), zero, p.y(), new DevicePointer(y)),
                    "cudnnPoolingForward planes=" + planes + " " + h + "x" + w + " -> " + oh + "x" + ow);
        }
        return true;
    }

    @Override public synchronized boolean avgPoolBackward(int planes, int h, int w, int oh, int ow, long dy, long dx) {
        if (!poolSupported(h, w, oh, ow)) return false;
        PoolPlan p = pool(planes, h, w, oh, ow);
        // Average pooling's backward reads neither y nor x; cuDNN still takes their pointers, so dy and dx (of the
        // same shapes) stand in for them.
        try (FloatPointer one = new FloatPointer(1f); FloatPointer zero = new FloatPointer(0f)) {
            check(cudnnPoolingBackward(handle, p.pool(), one, p.y(), new DevicePointer(dy), p.y(), new DevicePointer(dy), p.x(),
                    new DevicePointer(dx), zero, p.x(), new DevicePointer(dx)),
                    "cudnnPoolingBackward planes=" + planes + " " + h + "x" + w + " -> " + oh + "x" + ow);
        }
        return true;
    }

    private static void check(int status, String what) {
        if (status != CUDNN_STATUS_SUCCESS) throw new IllegalStateException(what + " failed: " + cudnnGetErrorString(status).getString() + " (status " + status + ")");
    }
}
