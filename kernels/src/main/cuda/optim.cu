// Fused optimiser updates, in place, PyTorch's formulas exactly as CpuBackend.sgdStep/adamStep.
// Launch: 1-D grid-stride over the parameters, block 256.
#include "bonsai_cuda.cuh"

extern "C" __global__ void sgd_step(float* p, const float* g, float* buf, float lr, float momentum, float dampening,
                                    float weightDecay, int nesterov, int firstStep, int n) {
    GRID_STRIDE(i, n) {
        float d = g[i] + weightDecay * p[i];
        if (momentum != 0.0f) {
            float b = firstStep ? d : momentum * buf[i] + (1.0f - dampening) * d;
            buf[i] = b;
            d = nesterov ? d + momentum * b : b;
        }
        p[i] -= lr * d;
    }
}
EMU_REGISTER(sgd_step)

// stepSize = lr / (1 - beta1^t) and bc2Sqrt = sqrt(1 - beta2^t) come from the host, computed in double there.
extern "C" __global__ void adam_step(float* p, const float* g, float* m, float* v, float beta1, float beta2, float eps,
                                     float weightDecay, float stepSize, float bc2Sqrt, int n) {
    GRID_STRIDE(i, n) {
        float d = g[i] + weightDecay * p[i];
        float mi = beta1 * m[i] + (1.0f - beta1) * d;
        float vi = beta2 * v[i] + (1.0f - beta2) * d * d;
        m[i] = mi;
        v[i] = vi;
        p[i] -= stepSize * mi / (sqrtf(vi) / bc2Sqrt + eps);
    }
}
EMU_REGISTER(adam_step)
