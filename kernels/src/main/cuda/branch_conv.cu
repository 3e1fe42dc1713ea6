// The packed multi-branch convolution of a DSP block (Backend.branchConv2d): per branch, a dense convolution over
// gathered input channels (read in place through the index), the folded batch norm (scale, shift), an optional
// ReLU, and a scatter (= or +=) into arbitrary output channels; then an optional output stage (shift, ReLU) on
// every output channel. The pair form is two of these through an intermediate buffer (Backend's default).
// branch_conv: one launch per branch, in plan order (so accumulating branches add in the CPU's order); 1-D
//   grid-stride over n * outWidth * oh * ow, block 256. A branch's output channels are distinct, so each thread
//   owns its output cell.
// branch_output_stage: 1-D grid-stride over the output, block 256.
#include "bonsai_cuda.cuh"

struct BranchGeom { int n, cIn, cOut, h, w, k, stride, pad, oh, ow, inWidth, outWidth, relu, accumulate; };

extern "C" __global__ void branch_conv(BranchGeom g, const float* x, const int* in, const int* out, const float* wt,
                                       const float* scale, const float* shift, float* y) {
    GRID_STRIDE(t, g.n * g.outWidth * g.oh * g.ow) {
        int oj = t % g.ow, oi = (t / g.ow) % g.oh, j = (t / (g.ow * g.oh)) % g.outWidth, b = t / (g.ow * g.oh * g.outWidth);
        float acc = 0.0f;
        for (int i = 0; i < g.inWidth; i++) {
            const float* xp = x + ((long long) b * g.cIn + in[i]) * g.h * g.w;
            const float* wp = wt + ((long long) j * g.inWidth + i) * g.k * g.k;
            for (int r = 0; r < g.k; r++) {
                int hi = oi * g.stride - g.pad + r;
                if (hi < 0 || hi >= g.h) continue;
                for (int s = 0; s < g.k; s++) {
                    int wi = oj * g.stride - g.pad + s;
                    if (wi < 0 || wi >= g.w) continue;
                    acc += wp[r * g.k + s] * xp[hi * g.w + wi];
                }
            }
        }
        float v = acc * scale[j] + shift[j];
        if (g.relu) v = v > 0.0f ? v : 0.0f;
        long long o = (((long long) b * g.cOut + out[j]) * g.oh + oi) * g.ow + oj;
        y[o] = g.accumulate ? y[o] + v : v;
    }
}
EMU_REGISTER(branch_conv)

extern "C" __global__ void branch_output_stage(float* y, const float* shift, int relu, int cOut, int plane, int total) {
    GRID_STRIDE(t, total) {
        float v = y[t] + (shift ? shift[(t / plane) % cOut] : 0.0f);
        y[t] = relu ? (v > 0.0f ? v : 0.0f) : v;
    }
}
EMU_REGISTER(branch_output_stage)
