// Reductions and argmax.
// reduce_f32: one block per output element (grid-stride over outputs, grid = min(outputs, 65535)); the block's
//   threads stride over the reduced elements, then a shared-memory tree; block is a power of two, 32..256,
//   chosen from the reduced count. Op: 0 SUM, 1 MEAN, 2 MAX (ReduceOp ordinals).
// argmax_f32: 1-D grid-stride over (outer * inner), one thread walks the axis; block 256.
#include "bonsai_cuda.cuh"

#define REDUCE_MAX_BLOCK 256

// x is walked as out dims (kept axes, reduced axes set to 1) times reduced dims; strides are x's.
extern "C" __global__ void reduce_f32(const float* x, float* out, Dims kept, Strides keptStrides, Dims red,
                                      Strides redStrides, int op, int outputs, int count) {
    __shared__ float part[REDUCE_MAX_BLOCK];
    for (int o = blockIdx.x; o < outputs; o += gridDim.x) {
        int rem = o, base = 0;
        for (int d = kept.rank - 1; d >= 0; d--) {
            base += (rem % kept.size[d]) * keptStrides.s[d];
            rem /= kept.size[d];
        }
        float acc = op == 2 ? -INFINITY : 0.0f;
        for (int j = threadIdx.x; j < count; j += blockDim.x) {
            int r = j, off = base;
            for (int d = red.rank - 1; d >= 0; d--) {
                off += (r % red.size[d]) * redStrides.s[d];
                r /= red.size[d];
            }
            float v = x[off];
            acc = op == 2 ? ((v != v || v > acc) ? v : acc) : acc + v;
        }
        part[threadIdx.x] = acc;
        __syncthreads();
        for (int s = blockDim.x / 2; s > 0; s >>= 1) {
            if (threadIdx.x < s) {
                float v = part[threadIdx.x + s], a = part[threadIdx.x];
                part[threadIdx.x] = op == 2 ? ((v != v || v > a) ? v : a) : a + v;
            }
            __syncthreads();
        }
        if (threadIdx.x == 0) out[o] = op == 1 ? part[0] / (float) count : part[0];
        __syncthreads();  // part is reused by the next output
    }
}
EMU_REGISTER(reduce_f32)

// Index (as int64) of the first maximum along the axis of an (outer, len, inner) view; NaN counts as largest.
extern "C" __global__ void argmax_f32(const float* x, long long* out, int outer, int len, int inner) {
    GRID_STRIDE(t, outer * inner) {
        int ob = t / inner, ib = t % inner;
        const float* p = x + (long long) ob * len * inner + ib;
        int best = 0;
        float bv = p[0];
        for (int j = 1; j < len; j++) {
            float v = p[(long long) j * inner];
            if (v > bv || (v != v && bv == bv)) { bv = v; best = j; }
        }
        out[t] = best;
    }
}
EMU_REGISTER(argmax_f32)
