// Direct 2-D convolution (grouped, strided, zero-padded; no dilation) and its two backward passes. These are the
// reference kernels, run where cuDNN is not (the emulator); they are simple, not fast.
// conv_fwd, conv_bwd_data: 1-D grid-stride over the output (input) cells, block 256.
// conv_bwd_weight: one block per weight (grid-stride, grid = min(weights, 65535)), block 32..256 reducing over
// n * outH * outW with a shared-memory tree.
// g packs ConvGeometry: n c h w k r s strideH strideW padH padW groups outH outW.
#include "bonsai_cuda.cuh"

#define CONV_MAX_BLOCK 256
struct Conv { int n, c, h, w, k, r, s, sh, sw, ph, pw, groups, oh, ow; };

extern "C" __global__ void conv_fwd(Conv g, const float* x, const float* wt, const float* bias, float* y) {
    int cg = g.c / g.groups, kg = g.k / g.groups;
    GRID_STRIDE(t, g.n * g.k * g.oh * g.ow) {
        int j = t % g.ow, i = (t / g.ow) % g.oh, k = (t / (g.ow * g.oh)) % g.k, b = t / (g.ow * g.oh * g.k);
        int c0 = (k / kg) * cg;
        float acc = bias ? bias[k] : 0.0f;
        for (int c = 0; c < cg; c++)
            for (int r = 0; r < g.r; r++) {
                int hi = i * g.sh - g.ph + r;
                if (hi < 0 || hi >= g.h) continue;
                for (int s = 0; s < g.s; s++) {
                    int wi = j * g.sw - g.pw + s;
                    if (wi < 0 || wi >= g.w) continue;
                    acc += x[(((long long) b * g.c + c0 + c) * g.h + hi) * g.w + wi] * wt[(((long long) k * cg + c) * g.r + r) * g.s + s];
                }
            }
        y[t] = acc;
    }
}
EMU_REGISTER(conv_fwd)

extern "C" __global__ void conv_bwd_data(Conv g, const float* dy, const float* wt, float* dx) {
    int cg = g.c / g.groups, kg = g.k / g.groups;
    GRID_STRIDE(t, g.n * g.c * g.h * g.w) {
        int wi = t % g.w, hi = (t / g.w) % g.h, c = (t / (g.w * g.h)) % g.c, b = t / (g.w * g.h * g.c);
        int grp = c / cg, cc = c % cg;
        float acc = 0.0f;
        for (int kk = 0; kk < kg; kk++) {
            int k = grp * kg + kk;
            for (int r = 0; r < g.r; r++) {
                int hn = hi + g.ph - r;
                if (hn < 0 || hn % g.sh != 0) continue;
                int i = hn / g.sh;
                if (i >= g.oh) continue;
                for (int s = 0; s < g.s; s++) {
                    int wn = wi + g.pw - s;
                    if (wn < 0 || wn % g.sw != 0) continue;
                    int j = wn / g.sw;
                    if (j >= g.ow) continue;
                    acc += dy[(((long long) b * g.k + k) * g.oh + i) * g.ow + j] * wt[(((long long) k * cg + cc) * g.r + r) * g.s + s];
                }
            }
        }
        dx[t] = acc;
    }
}
EMU_REGISTER(conv_bwd_data)

extern "C" __global__ void conv_bwd_weight(Conv g, const float* x, const float* dy, float* dw) {
    __shared__ float sh[CONV_MAX_BLOCK];
    int cg = g.c / g.groups, kg = g.k / g.groups;
    int weights = g.k * cg * g.r * g.s;
    int cells = g.n * g.oh * g.ow;
    for (int t = blockIdx.x; t < weights; t += gridDim.x) {
        int s = t % g.s, r = (t / g.s) % g.r, cc = (t / (g.s * g.r)) % cg, k = t / (g.s * g.r * cg);
        int c = (k / kg) * cg + cc;
        float acc = 0.0f;
        for (int q = threadIdx.x; q < cells; q += blockDim.x) {
            int j = q % g.ow, i = (q / g.ow) % g.oh, b = q / (g.ow * g.oh);
            int hi = i * g.sh - g.ph + r, wi = j * g.sw - g.pw + s;
            if (hi < 0 || hi >= g.h || wi < 0 || wi >= g.w) continue;
            acc += x[(((long long) b * g.c + c) * g.h + hi) * g.w + wi] * dy[(((long long) b * g.k + k) * g.oh + i) * g.ow + j];
        }
        sh[threadIdx.x] = acc;
        __syncthreads();
        for (int st = blockDim.x / 2; st > 0; st >>= 1) {
            if (threadIdx.x < st) sh[threadIdx.x] += sh[threadIdx.x + st];
            __syncthreads();
        }
        if (threadIdx.x == 0) dw[t] = sh[0];
        __syncthreads();
    }
}
EMU_REGISTER(conv_bwd_weight)
