// Softmax and log-softmax of each row of a (rows, cols) matrix: one block per row (grid-stride over rows,
// grid = min(rows, 65535)), block 32..256 (a power of two, from cols); max and sum by shared-memory trees.
// Cross-entropy is log-softmax then takeAlongAxis in the engine, so this is its kernel too.
#include "bonsai_cuda.cuh"

#define SOFTMAX_MAX_BLOCK 256

extern "C" __global__ void softmax_rows(const float* x, float* y, int rows, int cols, int logOut) {
    __shared__ float red[SOFTMAX_MAX_BLOCK];
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* xr = x + (long long) r * cols;
        float* yr = y + (long long) r * cols;
        float m = -INFINITY;
        for (int j = threadIdx.x; j < cols; j += blockDim.x) m = fmaxf(m, xr[j]);
        red[threadIdx.x] = m;
        __syncthreads();
        for (int s = blockDim.x / 2; s > 0; s >>= 1) {
            if (threadIdx.x < s) red[threadIdx.x] = fmaxf(red[threadIdx.x], red[threadIdx.x + s]);
            __syncthreads();
        }
        m = red[0];
        __syncthreads();
        float sum = 0.0f;
        for (int j = threadIdx.x; j < cols; j += blockDim.x) sum += expf(xr[j] - m);
        red[threadIdx.x] = sum;
        __syncthreads();
        for (int s = blockDim.x / 2; s > 0; s >>= 1) {
            if (threadIdx.x < s) red[threadIdx.x] += red[threadIdx.x + s];
            __syncthreads();
        }
        float total = red[0];
        __syncthreads();
        if (logOut) {
            float lse = m + logf(total);
            for (int j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = xr[j] - lse;
        } else {
            for (int j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = expf(xr[j] - m) / total;
        }
    }
}
EMU_REGISTER(softmax_rows)
