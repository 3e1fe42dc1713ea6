// DSP's group-channel regulariser (spec sections 3 and 4, step 8) for one layer; the math and the
// overwrite/accumulate contract are Backend.groupRegularizer and Backend.groupSecondOrderAdd, and the structure is
// the CPU's GroupRegularizerKernels: group-independent passes over every weight, tiny per-group passes between.
// Sums run in double, as on the CPU. Scratch (double): sq/q (filters * channels), invL (groups * channels), sG (groups).
//   group_rowdots:       1-D grid-stride over filters * channels, block 256: out[n,c] = <a[n,c,:], b[n,c,:]>
//   group_stats:         one block per group (grid-stride), block 128 (GROUP_BLOCK): S, L_c, sum L, dL/dp, ds/dp, dR/dp, pieces
//   group_penalty:       1-D grid-stride over filters * channels, block 256
//   group_second_order:  1-D grid-stride over groups * filters, block 256
#include "bonsai_cuda.cuh"

#define GROUP_BLOCK 128
#define GROUP_EPS 1e-8

extern "C" __global__ void group_rowdots(const float* a, const float* b, double* out, int rows, int kk) {
    GRID_STRIDE(i, rows) {
        const float* pa = a + (long long) i * kk;
        const float* pb = b + (long long) i * kk;
        double acc = 0.0;
        for (int j = 0; j < kk; j++) acc += (double) pa[j] * pb[j];
        out[i] = acc;
    }
}
EMU_REGISTER(group_rowdots)

static __device__ double blockSumD(double v, double* sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

extern "C" __global__ void group_stats(const float* p, const double* sq, int groups, int n, int c, double* invL, double* sG,
                                       float* dRdp, int accumulate, float* pieces) {
    __shared__ double sh[GROUP_BLOCK];
    int row = 2 + 2 * n + c;
    for (int g = blockIdx.x; g < groups; g += gridDim.x) {
        const float* pg = p + (long long) g * n;
        double part = 0.0;
        for (int f = threadIdx.x; f < n; f += blockDim.x) part += sqrt((double) fmaxf(0.0f, pg[f]));
        double bigS = blockSumD(part, sh);
        double s = bigS * bigS;
        double lsum = 0.0;
        for (int ch = threadIdx.x; ch < c; ch += blockDim.x) {
            double l2 = 0.0;
            for (int f = 0; f < n; f++) {
                double pf = pg[f];
                l2 += pf * pf * sq[(long long) f * c + ch];
            }
            double l = sqrt(l2);
            lsum += l;
            invL[(long long) g * c + ch] = 1.0 / (l + GROUP_EPS);
            if (pieces) pieces[(long long) g * row + 2 + 2 * n + ch] = (float) l;
        }
        double sumL = blockSumD(lsum, sh);   // its barriers also publish invL to the whole block
        if (threadIdx.x == 0) {
            sG[g] = s;
            if (pieces) { pieces[(long long) g * row] = (float) s; pieces[(long long) g * row + 1] = (float) sumL; }
        }
        for (int f = threadIdx.x; f < n; f += blockDim.x) {
            double pf = pg[f], acc = 0.0;
            for (int ch = 0; ch < c; ch++) acc += sq[(long long) f * c + ch] * invL[(long long) g * c + ch];
            double dLdp = pf * acc;
            double dsdp = sqrt(pf > 0.0 ? pf : 0.0) * s / (pf * bigS + GROUP_EPS);
            if (dRdp) {
                float v = (float) (s * dLdp + sumL * dsdp);
                long long o = (long long) g * n + f;
                dRdp[o] = accumulate ? dRdp[o] + v : v;
            }
            if (pieces) {
                pieces[(long long) g * row + 2 + f] = (float) dsdp;
                pieces[(long long) g * row + 2 + n + f] = (float) dLdp;
            }
        }
        __syncthreads();   // invL of this group is read above; the next group's block iteration must not race it
    }
}
EMU_REGISTER(group_stats)

// penalty[n,c,:] = scale * sum_g s_g p_gn^2 / (L_gc + eps) * W[n,c,:]
extern "C" __global__ void group_penalty(const float* w, const float* p, const double* invL, const double* sG, int groups, int n,
                                         int c, int kk, float scale, float* penalty) {
    GRID_STRIDE(i, n * c) {
        int f = i / c, ch = i % c;
        double coef = 0.0;
        for (int g = 0; g < groups; g++) {
            double pg = p[(long long) g * n + f];
            coef += sG[g] * pg * pg * invL[(long long) g * c + ch];
        }
        float k = (float) (scale * coef);
        long long base = (long long) i * kk;
        for (int j = 0; j < kk; j++) penalty[base + j] = k * w[base + j];
    }
}
EMU_REGISTER(group_penalty)

// pgrad[g,n] += ds/dp * p^2 sum_c q/l + s * (2 p sum_c q/l - dL/dp * p^2 sum_c q/l^2), l = L_c + eps
extern "C" __global__ void group_second_order(const double* q, const float* p, const float* pieces, int groups, int n, int c,
                                              float* pgrad) {
    int row = 2 + 2 * n + c;
    GRID_STRIDE(t, groups * n) {
        int g = t / n, f = t % n;
        const float* pr = pieces + (long long) g * row;
        double s = pr[0], pf = p[t], dsdp = pr[2 + f], dLdp = pr[2 + n + f];
        double a1 = 0.0, a3 = 0.0;
        for (int ch = 0; ch < c; ch++) {
            double inv = 1.0 / (pr[2 + 2 * n + ch] + GROUP_EPS);
            double v = q[(long long) f * c + ch] * inv;
            a1 += v;
            a3 += v * inv;
        }
        double a2 = pf * a1;
        a1 *= pf * pf;
        a3 *= pf * pf;
        pgrad[t] += (float) (dsdp * a1 + s * (2.0 * a2 - dLdp * a3));
    }
}
EMU_REGISTER(group_second_order)
