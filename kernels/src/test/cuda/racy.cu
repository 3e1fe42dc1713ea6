// Test kernels for the emulator itself (never built into PTX).
// block_sum_racy is a block tree reduction with its barriers left out: on a GPU it often gives the right answer
// by luck; under the emulator, with fibers run to their next barrier in forward or reverse order, thread 0 reads
// partial sums before the other threads wrote them, so the answer is wrong. block_sum is the fixed version.
#include "bonsai_cuda.cuh"

extern "C" __global__ void block_sum_racy(const float* x, float* out, int n) {
    __shared__ float s[256];
    int t = threadIdx.x;
    s[t] = t < n ? x[t] : 0.0f;
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if (t < k) s[t] += s[t + k];
    }
    if (t == 0) out[0] = s[0];
}
EMU_REGISTER(block_sum_racy)

extern "C" __global__ void block_sum(const float* x, float* out, int n) {
    __shared__ float s[256];
    int t = threadIdx.x;
    s[t] = t < n ? x[t] : 0.0f;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if (t < k) s[t] += s[t + k];
        __syncthreads();
    }
    if (t == 0) out[0] = s[0];
}
EMU_REGISTER(block_sum)

// Warp-shuffle sum of each warp, written by lane 0: checks the emulated __shfl_down_sync.
extern "C" __global__ void warp_sum(const float* x, float* out) {
    int t = threadIdx.x;
    float v = x[blockIdx.x * blockDim.x + t];
    for (int d = 16; d > 0; d >>= 1) v += __shfl_down_sync(0xffffffffu, v, d);
    if ((t & 31) == 0) out[(blockIdx.x * blockDim.x + t) / 32] = v;
}
EMU_REGISTER(warp_sum)

// A barrier inside a branch only some threads take: the emulator must report it, not hang.
extern "C" __global__ void divergent_barrier(float* out) {
    if (threadIdx.x < 16) __syncthreads();
    out[threadIdx.x] = 1.0f;
}
EMU_REGISTER(divergent_barrier)

// Each thread reads its left neighbour's shared slot without a barrier: right when fibers run forward (the
// neighbour already ran), wrong in reverse. block_sum_racy is the opposite case, so each order catches a race the
// other misses, and the seeded shuffle catches both.
extern "C" __global__ void shift_racy(const float* x, float* out, int n) {
    __shared__ float s[256];
    int t = threadIdx.x;
    s[t] = x[t];
    out[t] = t > 0 ? s[t - 1] : 0.0f;
}
EMU_REGISTER(shift_racy)
