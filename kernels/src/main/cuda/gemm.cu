// Batched row-major GEMM, C = alpha * op(A) op(B) + beta * C: the reference kernel, used where cuBLAS is not (the
// emulator). 16x16 tiles through shared memory. Launch: grid (ceil(n/16), ceil(m/16), batch), block (16, 16).
#include "bonsai_cuda.cuh"

#define TILE 16

extern "C" __global__ void gemm_tiled(int transA, int transB, int m, int n, int k, float alpha, const float* a, int aBatchStride,
                                      const float* b, int bBatchStride, float beta, float* c) {
    __shared__ float as[TILE][TILE];
    __shared__ float bs[TILE][TILE];
    const float* A = a + (long long) blockIdx.z * aBatchStride;
    const float* B = b + (long long) blockIdx.z * bBatchStride;
    float* C = c + (long long) blockIdx.z * m * n;
    int row = blockIdx.y * TILE + threadIdx.y, col = blockIdx.x * TILE + threadIdx.x;
    float acc = 0.0f;
    for (int k0 = 0; k0 < k; k0 += TILE) {
        int ka = k0 + threadIdx.x, kb = k0 + threadIdx.y;
        // op(A)[row, ka]: A is (m, k) row-major, or (k, m) when transposed.
        as[threadIdx.y][threadIdx.x] = (row < m && ka < k) ? (transA ? A[(long long) ka * m + row] : A[(long long) row * k + ka]) : 0.0f;
        bs[threadIdx.y][threadIdx.x] = (kb < k && col < n) ? (transB ? B[(long long) col * k + kb] : B[(long long) kb * n + col]) : 0.0f;
        __syncthreads();
        for (int t = 0; t < TILE; t++) acc += as[threadIdx.y][t] * bs[t][threadIdx.x];
        __syncthreads();
    }
    if (row < m && col < n) {
        long long o = (long long) row * n + col;
        C[o] = beta == 0.0f ? alpha * acc : alpha * acc + beta * C[o];   // beta 0 ignores NaN in C, as BLAS does
    }
}
EMU_REGISTER(gemm_tiled)
