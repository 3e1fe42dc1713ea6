// The packed multi-branch convolution of a DSP block (Backend.branchConv2d): per branch, a dense convolution over
// gathered input channels (read in place through the index), the folded batch norm (scale, shift), an optional
// ReLU, and a scatter (= or +=) into arbitrary output channels; then an optional output stage (shift, ReLU) on
// every output channel. The pair form (Backend.branchConv2dPair: conv_a's plan, then conv_b's on its output) is
// branch_pair, fused: the intermediate never goes to global memory.
// branch_conv: one launch per branch, in plan order (so accumulating branches add in the CPU's order); 1-D
//   grid-stride over n * outWidth * oh * ow, block 256. A branch's output channels are distinct, so each thread
//   owns its output cell.
// branch_output_stage: 1-D grid-stride over the output, block 256.
// branch_pair: grid (tilesY * tilesX, min(n, 65535)), block 128..1024 (the element-wise choice), dynamic shared
//   memory c1 * rh * rw floats. A block owns one output tile (tileH x tileW, all of conv_b's output channels) of one
//   image: it computes the conv_a outputs its tile reads (the region rh x rw, every intermediate channel, zero where
//   conv_b pads) into shared memory, then conv_b from there. Both plans are flattened by the host into "entries"
//   (one per branch output column, in plan order) and a per-channel list of the entries writing it (CSR), so the
//   sums run in the same order as branch_conv's launches. When x == y (a block adding conv_b into its own input)
//   the host makes the tile the whole image, so a block reads its image before writing it and blocks never share
//   an image.
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

struct PairGeom {
    int n, c0, h, w;                    // x: (n, c0, h, w)
    int c1, th, tw, k1, s1, p1, e1;     // the intermediate: (n, c1, th, tw); conv_a's kernel, stride, pad, entries
    int c2, oh, ow, k2, s2, p2, e2;     // y: (n, c2, oh, ow); conv_b's kernel, stride, pad, entries
    int tileH, tileW, tilesX, rh, rw;   // output tile and the intermediate region it reads
    int outRelu1, outRelu2, accumulate;
};

// A flattened plan. ints: start (channels + 1) | list (e) | wOff (e) | inOff (e) | inW (e) | relu (e) | input
// channel indices; floats: scale (e) | shift (e) | weights (each entry's row of inW * k * k).
struct Flat {
    const int *start, *list, *wOff, *inOff, *inW, *relu, *idx;
    const float *scale, *shift, *wt;
};

__device__ __forceinline__ Flat flat(const int* i, const float* f, int channels, int e) {
    Flat p;
    p.start = i; p.list = i + channels + 1; p.wOff = p.list + e; p.inOff = p.wOff + e; p.inW = p.inOff + e;
    p.relu = p.inW + e; p.idx = p.relu + e;
    p.scale = f; p.shift = f + e; p.wt = f + 2 * e;
    return p;
}

extern "C" __global__ void __launch_bounds__(1024) branch_pair(PairGeom g, const float* x, const int* i1, const float* f1,
        const float* os1, const int* i2, const float* f2, const float* os2, float* y) {
    DYNAMIC_SHARED_FLOATS(tbuf);
    const Flat a = flat(i1, f1, g.c1, g.e1), bp = flat(i2, f2, g.c2, g.e2);
    const int region = g.rh * g.rw, tileOut = g.tileH * g.tileW;
    const int oi0 = (blockIdx.x / g.tilesX) * g.tileH, oj0 = (blockIdx.x % g.tilesX) * g.tileW;
    const int ti0 = oi0 * g.s2 - g.p2, tj0 = oj0 * g.s2 - g.p2;
    for (int b = blockIdx.y; b < g.n; b += gridDim.y) {
        // conv_a (with its output stage) over the region; the padding of conv_b reads as zero.
        for (int q = threadIdx.x; q < g.c1 * region; q += blockDim.x) {
            int c = q / region, r = q % region, ti = ti0 + r / g.rw, tj = tj0 + r % g.rw;
            float v = 0.0f;
            if (ti >= 0 && ti < g.th && tj >= 0 && tj < g.tw) {
                for (int m = a.start[c]; m < a.start[c + 1]; m++) {     // at most one: conv_a's outputs are disjoint
                    int e = a.list[m];
                    float acc = 0.0f;
                    for (int i = 0; i < a.inW[e]; i++) {
                        const float* xp = x + ((long long) b * g.c0 + a.idx[a.inOff[e] + i]) * g.h * g.w;
                        const float* wp = a.wt + a.wOff[e] + i * g.k1 * g.k1;
                        for (int rr = 0; rr < g.k1; rr++) {
                            int hi = ti * g.s1 - g.p1 + rr;
                            if (hi < 0 || hi >= g.h) continue;
                            for (int ss = 0; ss < g.k1; ss++) {
                                int wi = tj * g.s1 - g.p1 + ss;
                                if (wi < 0 || wi >= g.w) continue;
                                acc += wp[rr * g.k1 + ss] * xp[hi * g.w + wi];
                            }
                        }
                    }
                    v = acc * a.scale[e] + a.shift[e];
                    if (a.relu[e]) v = v > 0.0f ? v : 0.0f;
                }
                if (os1 || g.outRelu1) {
                    v = v + (os1 ? os1[c] : 0.0f);
                    if (g.outRelu1) v = v > 0.0f ? v : 0.0f;
                }
            }
            tbuf[q] = v;
        }
        __syncthreads();
        // conv_b from shared memory, scattered (= or +=) into y in plan order, then its output stage.
        for (int q = threadIdx.x; q < g.c2 * tileOut; q += blockDim.x) {
            int o = q / tileOut, li = (q % tileOut) / g.tileW, lj = q % g.tileW;
            int oi = oi0 + li, oj = oj0 + lj;
            if (oi >= g.oh || oj >= g.ow) continue;
            long long yo = (((long long) b * g.c2 + o) * g.oh + oi) * g.ow + oj;
            float cur = y[yo];
            for (int m = bp.start[o]; m < bp.start[o + 1]; m++) {
                int e = bp.list[m];
                float acc = 0.0f;
                for (int i = 0; i < bp.inW[e]; i++) {
                    const float* tp = tbuf + bp.idx[bp.inOff[e] + i] * region + (li * g.s2) * g.rw + lj * g.s2;
                    const float* wp = bp.wt + bp.wOff[e] + i * g.k2 * g.k2;
                    for (int rr = 0; rr < g.k2; rr++)
                        for (int ss = 0; ss < g.k2; ss++) acc += wp[rr * g.k2 + ss] * tp[rr * g.rw + ss];
                }
                float v = acc * bp.scale[e] + bp.shift[e];
                if (bp.relu[e]) v = v > 0.0f ? v : 0.0f;
                cur = g.accumulate ? cur + v : v;
            }
            if (os2 || g.outRelu2) {
                cur = cur + (os2 ? os2[o] : 0.0f);
                if (g.outRelu2) cur = cur > 0.0f ? cur : 0.0f;
            }
            y[yo] = cur;
        }
        __syncthreads();   // the next image reuses tbuf
    }
}
EMU_REGISTER(branch_pair)
