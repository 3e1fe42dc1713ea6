// Gathers and their adjoints along one axis of an (outer, axisLen, inner) view; index buffers are INT32 or INT64
// (idx64 says which). Launch: 1-D grid-stride, block 256.
// index_add: one thread per (outer, inner) column walks j in index order, so repeated indices add up in the same
// order as on the CPU and no atomics are needed. take_along_add: indices of distinct (o, i) hit distinct cells.
#include "bonsai_cuda.cuh"

static __device__ __forceinline__ int readIndex(const void* idx, int idx64, long long i) {
    return idx64 ? (int) ((const long long*) idx)[i] : ((const int*) idx)[i];
}

extern "C" __global__ void index_select(const float* x, float* out, const void* idx, int idx64, int outer, int axisLen,
                                        int inner, int indexLen) {
    GRID_STRIDE(t, outer * indexLen * inner) {
        int i = t % inner, j = (t / inner) % indexLen, o = t / (inner * indexLen);
        out[t] = x[((long long) o * axisLen + readIndex(idx, idx64, j)) * inner + i];
    }
}
EMU_REGISTER(index_select)

extern "C" __global__ void index_add(float* dst, const float* src, const void* idx, int idx64, int outer, int axisLen,
                                     int inner, int indexLen) {
    GRID_STRIDE(t, outer * inner) {
        int i = t % inner, o = t / inner;
        for (int j = 0; j < indexLen; j++)
            dst[((long long) o * axisLen + readIndex(idx, idx64, j)) * inner + i] += src[((long long) o * indexLen + j) * inner + i];
    }
}
EMU_REGISTER(index_add)

extern "C" __global__ void take_along(const float* x, float* out, const void* idx, int idx64, int outer, int axisLen, int inner) {
    GRID_STRIDE(t, outer * inner) {
        int i = t % inner, o = t / inner;
        out[t] = x[((long long) o * axisLen + readIndex(idx, idx64, t)) * inner + i];
    }
}
EMU_REGISTER(take_along)

extern "C" __global__ void take_along_add(float* dst, const float* src, const void* idx, int idx64, int outer, int axisLen, int inner) {
    GRID_STRIDE(t, outer * inner) {
        int i = t % inner, o = t / inner;
        dst[((long long) o * axisLen + readIndex(idx, idx64, t)) * inner + i] += src[t];
    }
}
EMU_REGISTER(take_along_add)
