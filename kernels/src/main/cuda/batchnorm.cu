// Batch norm over (n, c, hw): training forward, evaluation forward, backward; CpuBackend's formulas.
// bn_train and bn_backward: one block per channel (grid-stride over channels, grid = min(c, 65535)), block a power
// of two 32..256; two passes like the CPU (mean, then the centred sum of squares) with shared-memory trees.
// bn_eval: 1-D grid-stride over elements, block 256.
#include "bonsai_cuda.cuh"

#define BN_MAX_BLOCK 256

static __device__ float blockSum(float v, float* sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    float r = sh[0];
    __syncthreads();   // sh is reused by the next sum
    return r;
}

extern "C" __global__ void bn_train(const float* x, int n, int c, int hw, const float* gamma, const float* beta, float* rm,
                                    float* rv, float momentum, float eps, float* y, float* saveMean, float* saveInvStd) {
    __shared__ float sh[BN_MAX_BLOCK];
    long long m = (long long) n * hw;
    for (int ch = blockIdx.x; ch < c; ch += gridDim.x) {
        float s = 0.0f;
        for (long long t = threadIdx.x; t < m; t += blockDim.x) s += x[((t / hw) * c + ch) * hw + t % hw];
        float mean = blockSum(s, sh) / (float) m;
        float q = 0.0f;
        for (long long t = threadIdx.x; t < m; t += blockDim.x) {
            float d = x[((t / hw) * c + ch) * hw + t % hw] - mean;
            q += d * d;
        }
        float ss = blockSum(q, sh);
        float var = ss / (float) m;
        float inv = 1.0f / sqrtf(var + eps);
        float scale = gamma[ch] * inv, shift = beta[ch] - mean * scale;
        for (long long t = threadIdx.x; t < m; t += blockDim.x) {
            long long o = ((t / hw) * c + ch) * hw + t % hw;
            y[o] = x[o] * scale + shift;
        }
        if (threadIdx.x == 0) {
            saveMean[ch] = mean;
            saveInvStd[ch] = inv;
            float unbiased = m > 1 ? ss / (float) (m - 1) : var;
            rm[ch] = (1.0f - momentum) * rm[ch] + momentum * mean;
            rv[ch] = (1.0f - momentum) * rv[ch] + momentum * unbiased;
        }
    }
}
EMU_REGISTER(bn_train)

extern "C" __global__ void bn_eval(const float* x, int n, int c, int hw, const float* gamma, const float* beta, const float* rm,
                                   const float* rv, float eps, float* y) {
    GRID_STRIDE(t, n * c * hw) {
        int ch = (t / hw) % c;
        float inv = 1.0f / sqrtf(rv[ch] + eps);
        float scale = gamma[ch] * inv;
        y[t] = x[t] * scale + (beta[ch] - rm[ch] * scale);
    }
}
EMU_REGISTER(bn_eval)

// dx = gamma * inv / m * (m * dy - sum(dy) - xhat * sum(dy * xhat)); dx may be null (0).
extern "C" __global__ void bn_backward(const float* x, const float* dy, int n, int c, int hw, const float* gamma,
                                       const float* saveMean, const float* saveInvStd, float* dx, float* dGamma, float* dBeta) {
    __shared__ float sh[BN_MAX_BLOCK];
    long long m = (long long) n * hw;
    for (int ch = blockIdx.x; ch < c; ch += gridDim.x) {
        float mean = saveMean[ch], inv = saveInvStd[ch];
        float a = 0.0f, b = 0.0f;
        for (long long t = threadIdx.x; t < m; t += blockDim.x) {
            long long o = ((t / hw) * c + ch) * hw + t % hw;
            a += dy[o];
            b += dy[o] * (x[o] - mean);
        }
        float sdy = blockSum(a, sh), sdyx = blockSum(b, sh);
        if (threadIdx.x == 0) { dBeta[ch] = sdy; dGamma[ch] = sdyx * inv; }
        if (dx == 0) continue;
        float k1 = gamma[ch] * inv, meanDy = sdy / (float) m, k2 = sdyx * inv * inv / (float) m;
        for (long long t = threadIdx.x; t < m; t += blockDim.x) {
            long long o = ((t / hw) * c + ch) * hw + t % hw;
            dx[o] = k1 * (dy[o] - meanDy - (x[o] - mean) * k2);
        }
    }
}
EMU_REGISTER(bn_backward)
