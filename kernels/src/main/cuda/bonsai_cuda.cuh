// Included first by every kernel file. Under nvcc it is plain CUDA; under g++ it brings the CPU emulation
// (emu/cuda_emu.h) and EMU_REGISTER adds each kernel to the emulator's table.
#pragma once
#ifdef __CUDACC__
#define EMU_REGISTER(k)
// The launch's dynamic shared memory as an array of floats.
#define DYNAMIC_SHARED_FLOATS(name) extern __shared__ float name[]
#else
#include "emu/cuda_emu.h"
#define DYNAMIC_SHARED_FLOATS(name) float* name = emu::S().dynShared.data()
#endif

// Kernels take sizes as int: Bonsai's buffers are indexed by int (Buffer.length()). Loops are grid-stride so any
// grid the launcher picks covers the whole range.
#define GRID_STRIDE(i, n) for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += blockDim.x * gridDim.x)

// Up to 8 dimensions, passed by value (the Java side packs the same ints in the same order).
#define MAX_RANK 8
struct Dims { int rank; int size[MAX_RANK]; };
struct Strides { int s[MAX_RANK]; };
