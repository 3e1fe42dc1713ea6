// The strided movement primitive: dst[dstOffset + sum(i * dstStrides)] (+)= src[srcOffset + sum(i * srcStrides)]
// over dims in row-major order. Launch: 1-D grid-stride over the elements, block 256. Accumulate is safe without
// atomics because Backend.strided forbids aliasing dst strides there: each thread owns its dst element.
#include "bonsai_cuda.cuh"

extern "C" __global__ void strided_f32(const float* src, float* dst, Dims dims, Strides ss, Strides ds, int accumulate, int n) {
    GRID_STRIDE(i, n) {
        int rem = i, si = 0, di = 0;
        for (int d = dims.rank - 1; d >= 0; d--) {
            int k = rem % dims.size[d];
            rem /= dims.size[d];
            si += k * ss.s[d];
            di += k * ds.s[d];
        }
        if (accumulate) dst[di] += src[si]; else dst[di] = src[si];
    }
}
EMU_REGISTER(strided_f32)
