// Element-wise and broadcast ops.
// Launch shape (all kernels here): 1-D grid-stride; block 256 (the launcher may pick 128..1024),
// grid = min(ceil(n / block), 4096 * 1024 / block).
// Op codes are the ordinals of ai.bonsai.backend.UnaryOp and BinaryOp; results match CpuBackend's scalar code.
#include "bonsai_cuda.cuh"

static __device__ __forceinline__ float unaryOp(int op, float a) {
    switch (op) {
        case 0: return -a;                                   // NEG
        case 1: return expf(a);                              // EXP
        case 2: return logf(a);                              // LOG
        case 3: return sqrtf(a);                             // SQRT
        case 4: return 1.0f / sqrtf(a);                      // RSQRT
        case 5: return fabsf(a);                             // ABS
        case 6: return a != a ? a : (a > 0.0f ? a : 0.0f);   // RELU (NaN stays NaN, as Java's Math.max)
        case 7: return 1.0f / (1.0f + expf(-a));             // SIGMOID
        case 8: return tanhf(a);                             // TANH
        case 9: return 1.0f / a;                             // RECIPROCAL
        case 10: return a * a;                               // SQUARE
        default: return a > 0.0f ? 1.0f : (a < 0.0f ? -1.0f : a);  // SIGN (keeps 0, -0 and NaN, as Math.signum)
    }
}

static __device__ __forceinline__ float binaryOp(int op, float x, float y) {
    switch (op) {
        case 0: return x + y;
        case 1: return x - y;
        case 2: return x * y;
        case 3: return x / y;
        case 4: return (x != x || y != y) ? x + y : (x > y ? x : y);   // MAX: NaN wins, as Java's Math.max
        case 5: return (x != x || y != y) ? x + y : (x < y ? x : y);   // MIN
        case 6: return powf(x, y);
        case 7: return x > y ? 1.0f : 0.0f;
        case 8: return x == y ? 1.0f : 0.0f;
        default: return y > 0.0f ? x : 0.0f;                            // RELU_BACKWARD(g, x)
    }
}

extern "C" __global__ void ew_fill(float* out, float v, int n) {
    GRID_STRIDE(i, n) out[i] = v;
}
EMU_REGISTER(ew_fill)

extern "C" __global__ void ew_unary(const float* x, float* out, int op, int n) {
    GRID_STRIDE(i, n) out[i] = unaryOp(op, x[i]);
}
EMU_REGISTER(ew_unary)

extern "C" __global__ void ew_affine(const float* x, float* out, float scale, float shift, int n) {
    GRID_STRIDE(i, n) out[i] = x[i] * scale + shift;
}
EMU_REGISTER(ew_affine)

// out = op(a, b) with broadcasting: out's dims, and a's and b's strides (0 on broadcast axes), rank <= 8.
extern "C" __global__ void ew_binary(const float* a, const float* b, float* out, Dims dims, Strides sa, Strides sb, int op, int n) {
    GRID_STRIDE(i, n) {
        int rem = i, ia = 0, ib = 0;
        for (int d = dims.rank - 1; d >= 0; d--) {
            int k = rem % dims.size[d];
            rem /= dims.size[d];
            ia += k * sa.s[d];
            ib += k * sb.s[d];
        }
        out[i] = binaryOp(op, a[ia], b[ib]);
    }
}
EMU_REGISTER(ew_binary)
