// cuda_emu.h: compiles Bonsai's CUDA C kernels with the host g++ and runs them on the CPU, in the manner of
// nvcc's old -deviceemu. Each block's threads are cooperative fibers (ucontext) on one OS thread:
//   - a fiber runs until it reaches __syncthreads(), a warp collective (__shfl_*_sync, __ballot_sync, __syncwarp)
//     or its end, then the scheduler runs the next one;
//   - the order in which fibers are resumed is switchable (forward, reverse, or a seeded shuffle redrawn every
//     round), and blocks run forward or backward, so a missing barrier shows up as a wrong answer;
//   - a barrier that not every live thread reaches is reported as an error, not a hang;
//   - __shared__ arrays are per block because blocks run one after the other; atomics are plain read-modify-
//     writes because fibers never preempt each other.
// Only what our kernels use is here. Not for production: it exists so tests run the GPU source without a GPU.
#pragma once
#include <ucontext.h>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>
#include <map>
#include <functional>
#include <algorithm>
#include <random>
#include <stdexcept>
#include <utility>

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
typedef dim3 uint3;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

namespace emu {

enum State { READY, AT_BARRIER, AT_WARP, DONE };

struct Fiber {
    ucontext_t ctx;
    dim3 tid;
    unsigned linear = 0;
    State state = READY;
    unsigned warpMask = 0;
    std::vector<char> stack;
};

enum Order { FORWARD = 0, REVERSE = 1, SHUFFLE = 2 };

struct Scheduler {
    std::vector<Fiber> fibers;
    ucontext_t home;
    Fiber* cur = nullptr;
    Order order = FORWARD;
    std::mt19937_64 rng{1};
    std::function<void()> body;
    std::string error;
    uint64_t warpSlots[1024];
    dim3 blockIdx, blockDim, gridDim;
    std::vector<float> dynShared;
    uint64_t barriers = 0;   // counts __syncthreads() releases; tests use it to see a kernel really synchronised
};

inline Scheduler& S() { static Scheduler s; return s; }

inline void fail(const std::string& m) { if (S().error.empty()) S().error = m; }

inline void yieldTo(State st) {
    Scheduler& s = S();
    Fiber* f = s.cur;
    f->state = st;
    swapcontext(&f->ctx, &s.home);
}

inline void entry() {
    Scheduler& s = S();
    s.body();
    s.cur->state = DONE;
    // returning resumes uc_link (home)
}

inline std::vector<unsigned> permutation(unsigned n) {
    Scheduler& s = S();
    std::vector<unsigned> p(n);
    for (unsigned i = 0; i < n; i++) p[i] = i;
    if (s.order == REVERSE) std::reverse(p.begin(), p.end());
    else if (s.order == SHUFFLE) std::shuffle(p.begin(), p.end(), s.rng);
    return p;
}

// Runs one launch. Returns an empty string or what went wrong.
inline std::string launch(dim3 grid, dim3 block, unsigned dynamicShared, std::function<void()> body) {
    Scheduler& s = S();
    unsigned nt = block.x * block.y * block.z;
    if (nt == 0 || nt > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535)
        return "invalid launch configuration";
    s.error.clear();
    s.body = std::move(body);
    s.blockDim = block;
    s.gridDim = grid;
    s.dynShared.assign((dynamicShared + 3) / 4, 0.0f);
    if (s.fibers.size() < nt) s.fibers.resize(nt);
    const size_t STACK = 64 * 1024;
    unsigned long long nblocks = (unsigned long long) grid.x * grid.y * grid.z;
    for (unsigned long long bi = 0; bi < nblocks; bi++) {
        unsigned long long b = (s.order == FORWARD) ? bi : nblocks - 1 - bi;
        s.blockIdx = dim3(b % grid.x, (b / grid.x) % grid.y, b / ((unsigned long long) grid.x * grid.y));
        // Uninitialised dynamic shared memory reads as NaN, so a kernel that reads before writing fails loudly.
        std::fill(s.dynShared.begin(), s.dynShared.end(), NAN);
        for (unsigned t = 0; t < nt; t++) {
            Fiber& f = s.fibers[t];
            if (f.stack.size() < STACK) f.stack.resize(STACK);
            f.linear = t;
            f.tid = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
            f.state = READY;
            getcontext(&f.ctx);
            f.ctx.uc_stack.ss_sp = f.stack.data();
            f.ctx.uc_stack.ss_size = STACK;
            f.ctx.uc_link = &s.home;
            makecontext(&f.ctx, entry, 0);
        }
        for (;;) {
            bool ran = false;
            for (unsigned t : permutation(nt)) {
                Fiber& f = s.fibers[t];
                if (f.state != READY) continue;
                s.cur = &f;
                swapcontext(&s.home, &f.ctx);
                ran = true;
                if (!s.error.empty()) return s.error;
            }
            unsigned done = 0, atBarrier = 0;
            for (unsigned t = 0; t < nt; t++) {
                done += s.fibers[t].state == DONE;
                atBarrier += s.fibers[t].state == AT_BARRIER;
            }
            if (done == nt) break;
            bool released = false;
            if (atBarrier > 0 && atBarrier + done == nt) {
                if (done > 0) return "__syncthreads() reached by " + std::to_string(atBarrier) + " of " + std::to_string(nt)
                        + " threads of block (" + std::to_string(s.blockIdx.x) + "," + std::to_string(s.blockIdx.y) + ") while the others had exited";
                for (unsigned t = 0; t < nt; t++) s.fibers[t].state = READY;
                s.barriers++;
                released = true;
            }
            // Warps: release a warp's waiting lanes once every live lane of the warp's mask is waiting.
            for (unsigned w = 0; w * 32 < nt; w++) {
                unsigned waiting = 0, live = 0, mask = 0;
                for (unsigned l = 0; l < 32 && w * 32 + l < nt; l++) {
                    Fiber& f = s.fibers[w * 32 + l];
                    if (f.state == AT_WARP) { waiting |= 1u << l; mask = f.warpMask; }
                    if (f.state != DONE) live |= 1u << l;
                }
                if (waiting == 0) continue;
                unsigned exists = (nt - w * 32) >= 32 ? 0xffffffffu : ((1u << (nt - w * 32)) - 1);
                unsigned need = mask & exists;
                if ((waiting & need) == need) {
                    for (unsigned l = 0; l < 32 && w * 32 + l < nt; l++) if (waiting >> l & 1) s.fibers[w * 32 + l].state = READY;
                    released = true;
                } else if ((need & ~live) != 0) {
                    return "warp collective with mask 0x" + std::to_string(mask) + " in warp " + std::to_string(w) + ": a lane in the mask has exited";
                }
            }
            if (!ran && !released) return "deadlock: threads wait at barriers that can never complete";
        }
    }
    return "";
}

inline const dim3& thread() { return S().cur->tid; }

inline void syncthreads() { yieldTo(AT_BARRIER); }

inline void syncwarp(unsigned mask) { S().cur->warpMask = mask; yieldTo(AT_WARP); }

inline unsigned lane() { return S().cur->linear & 31; }

// The exchange under every warp collective: publish, wait for the warp, read, wait again (so no lane overwrites
// its slot before the others read it).
template <class T> T exchange(unsigned mask, T v, int srcLane) {
    Scheduler& s = S();
    unsigned base = s.cur->linear & ~31u;
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    s.warpSlots[s.cur->linear] = bits;
    syncwarp(mask);
    uint64_t got = s.warpSlots[base + (unsigned) srcLane];
    syncwarp(mask);
    T out;
    std::memcpy(&out, &got, sizeof(T));
    return out;
}

template <class... Args> struct Unpack;

// Kernel registry: name -> invoker that checks and unpacks the launch's parameter bytes.
using Params = std::vector<std::string>;
using Invoker = std::function<std::string(const Params&, std::function<void()>&)>;

inline std::map<std::string, Invoker>& registry() { static std::map<std::string, Invoker> r; return r; }

template <class T> T take(const std::string& b) { T v; std::memcpy(&v, b.data(), sizeof(T)); return v; }

template <class... Args, size_t... I>
std::function<void()> bindArgs(void (*fn)(Args...), const Params& p, std::index_sequence<I...>) {
    auto tuple = std::make_tuple(take<Args>(p[I])...);
    return [fn, tuple]() { std::apply(fn, tuple); };
}

template <class... Args>
struct Registrar {
    Registrar(const char* name, void (*fn)(Args...)) {
        std::string nm = name;
        registry()[nm] = [fn, nm](const Params& p, std::function<void()>& out) -> std::string {
            size_t sizes[] = {sizeof(Args)..., 0};
            if (p.size() != sizeof...(Args))
                return "kernel " + nm + " takes " + std::to_string(sizeof...(Args)) + " parameters, got " + std::to_string(p.size());
            for (size_t i = 0; i < sizeof...(Args); i++)
                if (p[i].size() != sizes[i])
                    return "kernel " + nm + ": parameter " + std::to_string(i) + " is " + std::to_string(sizes[i])
                            + " bytes, got " + std::to_string(p[i].size());
            out = emu::bindArgs(fn, p, std::index_sequence_for<Args...>{});
            return "";
        };
    }
};

}  // namespace emu

#define threadIdx (emu::thread())
#define blockIdx (emu::S().blockIdx)
#define blockDim (emu::S().blockDim)
#define gridDim (emu::S().gridDim)
static const int warpSize = 32;

inline void __syncthreads() { emu::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { emu::syncwarp(mask); }
inline void __threadfence() {}

template <class T> T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    unsigned l = emu::lane();
    return emu::exchange(mask, v, (int) ((l & ~(unsigned) (width - 1)) + ((unsigned) src & (width - 1))));
}
template <class T> T __shfl_down_sync(unsigned mask, T v, unsigned d, int width = 32) {
    unsigned l = emu::lane(), seg = l & ~(unsigned) (width - 1);
    unsigned src = (l - seg + d < (unsigned) width) ? l + d : l;
    return emu::exchange(mask, v, (int) src);
}
template <class T> T __shfl_up_sync(unsigned mask, T v, unsigned d, int width = 32) {
    unsigned l = emu::lane(), seg = l & ~(unsigned) (width - 1);
    unsigned src = (l - seg >= d) ? l - d : l;
    return emu::exchange(mask, v, (int) src);
}
template <class T> T __shfl_xor_sync(unsigned mask, T v, int laneMask, int width = 32) {
    unsigned l = emu::lane(), seg = l & ~(unsigned) (width - 1);
    unsigned src = ((l ^ (unsigned) laneMask) & (width - 1)) + seg;
    return emu::exchange(mask, v, (int) src);
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
    unsigned r = 0;
    for (int src = 0; src < 32; src++) {
        if (!(mask >> src & 1)) continue;
        int p = emu::exchange(mask, pred ? 1 : 0, src);
        if (p) r |= 1u << src;
    }
    return r;
}
inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
inline int __all_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) == (mask & __ballot_sync(mask, 1)); }

inline float atomicAdd(float* p, float v) { float o = *p; *p = o + v; return o; }
inline int atomicAdd(int* p, int v) { int o = *p; *p = o + v; return o; }
inline unsigned atomicAdd(unsigned* p, unsigned v) { unsigned o = *p; *p = o + v; return o; }
inline int atomicMax(int* p, int v) { int o = *p; *p = o > v ? o : v; return o; }
inline int atomicCAS(int* p, int cmp, int v) { int o = *p; if (o == cmp) *p = v; return o; }

inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline int __float_as_int(float f) { int i; std::memcpy(&i, &f, 4); return i; }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
template <class T> inline T __ldg(const T* p) { return *p; }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
using std::sqrt; using std::exp; using std::log; using std::fabs;

#define EMU_CONCAT2(a, b) a##b
#define EMU_CONCAT(a, b) EMU_CONCAT2(a, b)
#define EMU_REGISTER(k) static emu::Registrar EMU_CONCAT(emu_registrar_, k)(#k, &k);
