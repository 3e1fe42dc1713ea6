package ai.bonsai.cuda;

import java.nio.ByteBuffer;

/**
 * What {@link CudaBackend} needs from a device: memory, copies and kernel launches by name. Two implementations:
 * {@link DriverRuntime} (a GPU through the CUDA driver API) and EmulatorRuntime, in the tests (the same CUDA C kernels
 * compiled for the host and run with each block's threads as fibers). All operations are ordered as issued.
 */
public interface GpuRuntime extends AutoCloseable {

    /** Allocates device memory; returns 0 (never throws) when the device has not that much free. */
    long tryMalloc(long bytes);

    void free(long address);

    /** {free, total} device memory in bytes. */
    long[] memoryInfo();

    /** Copies {@code src}'s remaining bytes to device address {@code dst}. */
    void write(long dst, ByteBuffer src);

    /** Fills {@code dst}'s remaining bytes from device address {@code src}. */
    void read(long src, ByteBuffer dst);

    void copy(long dst, long src, long bytes);

    /** Launches a kernel of the module; an error names the kernel, the configuration and the arguments. */
    void launch(String kernel, LaunchConfig config, KernelArgs args);

    /** The single-precision GEMM of a vendor library, or null where there is none (the emulator). */
    default Blas blas() { return null; }

    /** Waits for all issued work. */
    void synchronize();

    String describe();

    @Override void close();

    /** Column-major SGEMM, cuBLAS's contract, strided-batched. */
    /** cuDNN's convolutions, or null where cuDNN is not loaded (then Bonsai's own kernels run). */
    default Dnn dnn() { return null; }

    /**
     * Convolutions through cuDNN, each overwriting its output (Backend's convention); NCHW, weights (K, C/groups, R, S).
     * Each returns false, having done nothing, where cuDNN offers no deterministic algorithm within the workspace limit.
     */
    interface Dnn {
        boolean convForward(ai.bonsai.backend.ConvGeometry g, long x, long w, long bias, long y);

        boolean convBackwardData(ai.bonsai.backend.ConvGeometry g, long dy, long w, long dx);

        boolean convBackwardFilter(ai.bonsai.backend.ConvGeometry g, long x, long dy, long dw);

        /** Backend.batchNormTrain's contract (running variance unbiased); false where cuDNN cannot take it. */
        boolean batchNormTrain(int n, int c, int hw, long x, long gamma, long beta, long runningMean, long runningVar,
                               float momentum, float eps, long y, long saveMean, long saveInvStd);

        boolean batchNormEval(int n, int c, int hw, long x, long gamma, long beta, long runningMean, long runningVar, float eps, long y);

        /** Backend.batchNormBackward's contract with dx present (cuDNN always writes dx). */
        boolean batchNormBackward(int n, int c, int hw, long x, long dy, long gamma, long saveMean, long saveInvStd,
                                  long dx, long dGamma, long dBeta);

        /**
         * Backend.adaptiveAvgPool2d where oh divides h and ow divides w (then PyTorch's bins are plain windows of
         * h/oh by w/ow, stride the same); false, having done nothing, otherwise. Max pooling stays on our kernel:
         * the engine's contract records each window's argmax for the backward pass, which cuDNN does not give.
         */
        default boolean avgPoolForward(int planes, int h, int w, int oh, int ow, long x, long y) { return false; }

        /** The backward of {@link #avgPoolForward}, overwriting dx; false where that would have been false. */
        default boolean avgPoolBackward(int planes, int h, int w, int oh, int ow, long dy, long dx) { return false; }
    }

    interface Blas {
        void sgemmStridedBatched(boolean transA, boolean transB, int m, int n, int k, float alpha, long a, int lda,
                                 long strideA, long b, int ldb, long strideB, float beta, long c, int ldc, long strideC,
                                 int batch);
    }
}
