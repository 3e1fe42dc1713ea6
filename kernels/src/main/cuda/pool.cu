// Max pooling and adaptive average pooling over (planes, h, w), forward and backward, matching CpuBackend.
// Launch: 1-D grid-stride, block 256; one thread per output cell, except max_pool_bwd (one per plane) and
// adaptive_avg_bwd (one per input cell, gathering from the bins that contain it: no atomics, a fixed sum order).
#include "bonsai_cuda.cuh"

extern "C" __global__ void max_pool_fwd(const float* x, float* y, int* argmax, int planes, int h, int w, int kh, int kw,
                                        int sh, int sw, int ph, int pw, int oh, int ow) {
    GRID_STRIDE(t, planes * oh * ow) {
        int j = t % ow, i = (t / ow) % oh, p = t / (oh * ow);
        const float* xp = x + (long long) p * h * w;
        float best = -INFINITY;
        int bi = -1;
        for (int r = 0; r < kh; r++) {
            int hi = i * sh - ph + r;
            if (hi < 0 || hi >= h) continue;
            for (int s = 0; s < kw; s++) {
                int wi = j * sw - pw + s;
                if (wi < 0 || wi >= w) continue;
                float v = xp[hi * w + wi];
                if (v > best || bi < 0) { best = v; bi = hi * w + wi; }
            }
        }
        y[t] = best;
        argmax[t] = bi;
    }
}
EMU_REGISTER(max_pool_fwd)

// One thread per plane: zero the plane's dx, then add each output's dy at its recorded winner, in output order
// (the CPU's order). Backend's signature does not carry the window, so a per-cell gather is not possible; CIFAR
// ResNets do not max-pool, and planes = n * c gives enough threads for the rest.
extern "C" __global__ void max_pool_bwd(const float* dy, const int* argmax, float* dx, int planes, int h, int w, int oh, int ow) {
    GRID_STRIDE(p, planes) {
        float* d = dx + (long long) p * h * w;
        for (int q = 0; q < h * w; q++) d[q] = 0.0f;
        const float* g = dy + (long long) p * oh * ow;
        const int* a = argmax + (long long) p * oh * ow;
        for (int t = 0; t < oh * ow; t++) if (a[t] >= 0) d[a[t]] += g[t];
    }
}
EMU_REGISTER(max_pool_bwd)

extern "C" __global__ void adaptive_avg_fwd(const float* x, float* y, int planes, int h, int w, int oh, int ow) {
    GRID_STRIDE(t, planes * oh * ow) {
        int j = t % ow, i = (t / ow) % oh, p = t / (oh * ow);
        int h0 = (i * h) / oh, h1 = ((i + 1) * h + oh - 1) / oh, w0 = (j * w) / ow, w1 = ((j + 1) * w + ow - 1) / ow;
        float s = 0.0f;
        for (int r = h0; r < h1; r++) for (int q = w0; q < w1; q++) s += x[((long long) p * h + r) * w + q];
        y[t] = s / (float) ((h1 - h0) * (w1 - w0));
    }
}
EMU_REGISTER(adaptive_avg_fwd)

extern "C" __global__ void adaptive_avg_bwd(const float* dy, float* dx, int planes, int h, int w, int oh, int ow) {
    GRID_STRIDE(t, planes * h * w) {
        int q = t % w, r = (t / w) % h, p = t / (h * w);
        float acc = 0.0f;
        for (int i = 0; i < oh; i++) {
            int h0 = (i * h) / oh, h1 = ((i + 1) * h + oh - 1) / oh;
            if (r < h0 || r >= h1) continue;
            for (int j = 0; j < ow; j++) {
                int w0 = (j * w) / ow, w1 = ((j + 1) * w + ow - 1) / ow;
                if (q < w0 || q >= w1) continue;
                acc += dy[((long long) p * oh + i) * ow + j] / (float) ((h1 - h0) * (w1 - w0));
            }
        }
        dx[t] = acc;
    }
}
EMU_REGISTER(adaptive_avg_bwd)
