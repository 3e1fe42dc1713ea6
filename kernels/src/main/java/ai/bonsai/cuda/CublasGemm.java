package ai.bonsai.cuda;

import org.bytedeco.cuda.cublas.cublasContext;
import org.bytedeco.javacpp.FloatPointer;

import static org.bytedeco.cuda.global.cublas.*;

/**
 * cuBLAS through the JavaCPP presets for CUDA 13, created on the first GEMM (so a machine without cuBLAS never
 * loads it). The handle uses the primary context current on the calling thread and the legacy default stream,
 * like our kernels. TF32 tensor-core math is off unless asked for: it changes results at the 1e-3 level.
 */
final class CublasGemm implements GpuRuntime.Blas {
    private final cublasContext handle = new cublasContext();

    CublasGemm(boolean tf32) {
        try {
            check(cublasCreate_v2(handle), "cublasCreate");
        } catch (LinkageError e) {
            throw new CudaUnavailableException("cuBLAS could not be loaded (" + DriverRuntime.rootMessage(e)
                    + "): put the directory holding libcublas.so.13 on LD_LIBRARY_PATH", e);
        }
        check(cublasSetMathMode(handle, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_PEDANTIC_MATH), "cublasSetMathMode");
    }

    /** A JavaCPP pointer at a device address (never dereferenced on the host). */
    private static final class DevicePointer extends FloatPointer {
        DevicePointer(long address) { super((org.bytedeco.javacpp.Pointer) null); this.address = address; }
    }

    @Override public synchronized void sgemmStridedBatched(boolean transA, boolean transB, int m, int n, int k, float alpha, long a, int lda,
                                                           long strideA, long b, int ldb, long strideB, float beta, long c, int ldc,
                                                           long strideC, int batch) {
        try (FloatPointer al = new FloatPointer(alpha); FloatPointer be = new FloatPointer(beta)) {
            check(cublasSgemmStridedBatched(handle, transA ? CUBLAS_OP_T : CUBLAS_OP_N, transB ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k,
                    al, new DevicePointer(a), lda, strideA, new DevicePointer(b), ldb, strideB, be, new DevicePointer(c), ldc, strideC, batch),
                    "cublasSgemmStridedBatched m=" + m + " n=" + n + " k=" + k + " batch=" + batch);
        }
    }

    private static void check(int status, String what) {
        if (status != 0) throw new IllegalStateException(what + " failed with cuBLAS status " + status);
    }
}
