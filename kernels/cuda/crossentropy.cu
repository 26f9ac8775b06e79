// Softmax + cross-entropy over the first V of Vp (padded) logits, fused: one block per row (GPT-2's
// V = 50257 is ~200 elements per thread of a 256-thread block). Like the CPU kernel the exp sum is
// accumulated in double and the loss taken in log-sum-exp form, so it stays exact even when the
// target's probability underflows. Fixed reduction trees: deterministic. The logits and their
// gradients are float or bf16 (kernels/cuda/storage.cuh); probabilities, losses, log-probabilities
// and entropies fp32.
#include <algorithm>
#include <cstddef>

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/kernels.hpp"
#include "kernels/cuda/storage.cuh"

namespace frugal::cuda {

namespace {

using detail::dev;
using detail::load;
using detail::store;
constexpr int kWarp = 32;
constexpr int kBlock = 256;  // a multiple of 32, at most 32 warps (block_reduce's shared array)

struct MaxOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct SumOp {
  __device__ double operator()(double a, double b) const { return a + b; }
};

// Reduces v over the block; every thread gets the result. shared holds one slot per warp.
template <typename T, typename Op>
__device__ T block_reduce(T v, Op op, T* shared) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, warps = blockDim.x / kWarp;
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  T r = shared[0];
  for (int w = 1; w < warps; w++) r = op(r, shared[w]);  // same order in every thread
  __syncthreads();  // shared may be reused by the next reduction
  return r;
}

// probs (N,Vp), losses (N) <- logits (N,Vp), targets (N). Block i handles row i.
template <typename Act>
__global__ void softmax_crossentropy_forward_kernel(float* probs, float* losses, const Act* logits, const int* targets,
                                                    int V, int Vp) {
  __shared__ float shared_max[kWarp];
  __shared__ double shared_sum[kWarp];
  const size_t row = blockIdx.x;
  const Act* l = logits + row * Vp;
  float* p = probs + row * Vp;

  float m = -1e30f;  // the CPU's start value (it matters only for V == 0)
  for (int v = threadIdx.x; v < V; v += blockDim.x) m = fmaxf(m, load(l[v]));
  const float maxval = block_reduce(m, MaxOp{}, shared_max);

  double s = 0.0;
  for (int v = threadIdx.x; v < V; v += blockDim.x) s += expf(load(l[v]) - maxval);
  const double sum = block_reduce(s, SumOp{}, shared_sum);

  // The exponentials again rather than stored and rescaled: the row's logits are re-read (half the
  // bytes of fp32 probabilities in bf16, often from L2) instead of the probabilities written, read
  // and written again. expf of the same argument is the same float, so p = e * inv as before.
  const float inv = static_cast<float>(1.0 / sum);
  for (int v = threadIdx.x; v < V; v += blockDim.x) p[v] = expf(load(l[v]) - maxval) * inv;
  for (int v = V + threadIdx.x; v < Vp; v += blockDim.x) p[v] = 0.0f;
  if (threadIdx.x == 0)
    losses[row] =
        static_cast<float>(log(sum) + static_cast<double>(maxval) - static_cast<double>(load(l[targets[row]])));
}

// dlogits (N,Vp) = (probs - onehot) dloss over [0, V), 0 in the padding; one thread per element.
// __fmul_rn/__fsub_rn: no FMA fusion, so p dloss - dloss rounds like the CPU's two steps.
template <typename Act>
__global__ void softmax_crossentropy_backward_kernel(Act* dlogits, const float* probs, const int* targets, float dloss,
                                                     int V, int Vp, size_t total) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t k = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < total; k += stride) {
    const size_t row = k / Vp;
    const int v = static_cast<int>(k % Vp);
    float d = 0.0f;
    if (v < V) {
      d = __fmul_rn(probs[k], dloss);
      if (v == targets[row]) d = __fsub_rn(d, dloss);
    }
    dlogits[k] = store<Act>(d);
  }
}

// max and sum of exp((l - max) inv_temp) over [0, V) of one row, block-reduced (every thread gets
// both): the CPU's row_softmax_stats.
template <typename Act>
__device__ void row_softmax_stats(const Act* l, int V, float inv_temp, float* maxval, double* sum, float* shared_max,
                                  double* shared_sum) {
  float m = -1e30f;
  for (int v = threadIdx.x; v < V; v += blockDim.x) m = fmaxf(m, load(l[v]));
  m = block_reduce(m, MaxOp{}, shared_max);
  double s = 0.0;
  for (int v = threadIdx.x; v < V; v += blockDim.x) s += expf(__fmul_rn(load(l[v]) - m, inv_temp));
  *maxval = m;
  *sum = block_reduce(s, SumOp{}, shared_sum);
}

// logp (N), entropy (N, or null) of softmax(logits inv_temp) at the targets. Block i handles row i.
template <typename Act>
__global__ void token_logprob_forward_kernel(float* logp, float* entropy, const Act* logits, const int* targets, int V,
                                             int Vp, float inv_temp) {
  __shared__ float shared_max[kWarp];
  __shared__ double shared_sum[kWarp];
  const size_t row = blockIdx.x;
  const Act* l = logits + row * Vp;
  float m;
  double sum;
  row_softmax_stats(l, V, inv_temp, &m, &sum, shared_max, shared_sum);
  const double log_sum = log(sum);
  if (threadIdx.x == 0)
    logp[row] = static_cast<float>(double(__fmul_rn(load(l[targets[row]]) - m, inv_temp)) - log_sum);
  if (entropy) {  // block-uniform; H = -sum p log p with log p = z - log_sum
    double h = 0.0;
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
      const double z = double(__fmul_rn(load(l[v]) - m, inv_temp)) - log_sum;
      h -= exp(z) * z;
    }
    h = block_reduce(h, SumOp{}, shared_sum);
    if (threadIdx.x == 0) entropy[row] = static_cast<float>(h);
  }
}

// dlogits (N,Vp) = weight[n] inv_temp (onehot(target) - softmax), padding and weight-0 rows 0.
template <typename Act>
__global__ void token_logprob_backward_kernel(Act* dlogits, const Act* logits, const int* targets, const float* weight,
                                              int V, int Vp, float inv_temp) {
  __shared__ float shared_max[kWarp];
  __shared__ double shared_sum[kWarp];
  const size_t row = blockIdx.x;
  const Act* l = logits + row * Vp;
  Act* d = dlogits + row * Vp;
  const float w = __fmul_rn(weight[row], inv_temp);
  if (w == 0.0f) {  // block-uniform
    for (int v = threadIdx.x; v < Vp; v += blockDim.x) d[v] = store<Act>(0.0f);
    return;
  }
  float m;
  double sum;
  row_softmax_stats(l, V, inv_temp, &m, &sum, shared_max, shared_sum);
  const float inv = static_cast<float>(1.0 / sum);
  const int target = targets[row];
  for (int v = threadIdx.x; v < V; v += blockDim.x) {
    const float g = __fmul_rn(__fmul_rn(-w, expf(__fmul_rn(load(l[v]) - m, inv_temp))), inv);
    d[v] = store<Act>(v == target ? __fadd_rn(g, w) : g);
  }
  for (int v = V + threadIdx.x; v < Vp; v += blockDim.x) d[v] = store<Act>(0.0f);
}

template <typename Act>
void softmax_crossentropy_forward_on(float* probs, float* losses, const Act* logits, const int* targets, int N, int V,
                                     int Vp) {
  FRUGAL_CHECK(N >= 0 && V > 0 && Vp >= V, "cuda::softmax_crossentropy_forward: bad shape N=", N, " V=", V,
               " Vp=", Vp);
  if (N == 0) return;
  softmax_crossentropy_forward_kernel<<<N, kBlock>>>(probs, losses, dev(logits), targets, V, Vp);
  FRUGAL_CUDA_CHECK_LAUNCH("softmax_crossentropy_forward_kernel");
}

template <typename Act>
void softmax_crossentropy_backward_on(Act* dlogits, const float* probs, const int* targets, float dloss, int N, int V,
                                      int Vp) {
  FRUGAL_CHECK(N >= 0 && V > 0 && Vp >= V, "cuda::softmax_crossentropy_backward: bad shape N=", N, " V=", V,
               " Vp=", Vp);
  const size_t total = static_cast<size_t>(N) * Vp;
  if (total == 0) return;
  const int grid = static_cast<int>(std::min<size_t>((total + kBlock - 1) / kBlock, 65536));
  softmax_crossentropy_backward_kernel<<<grid, kBlock>>>(dev(dlogits), probs, targets, dloss, V, Vp, total);
  FRUGAL_CUDA_CHECK_LAUNCH("softmax_crossentropy_backward_kernel");
}

template <typename Act>
void token_logprob_forward_on(float* logp, float* entropy, const Act* logits, const int* targets, int N, int V, int Vp,
                              float inv_temp) {
  FRUGAL_CHECK(N >= 0 && V > 0 && Vp >= V, "cuda::token_logprob_forward: bad shape N=", N, " V=", V, " Vp=", Vp);
  if (N == 0) return;
  token_logprob_forward_kernel<<<N, kBlock>>>(logp, entropy, dev(logits), targets, V, Vp, inv_temp);
  FRUGAL_CUDA_CHECK_LAUNCH("token_logprob_forward_kernel");
}

template <typename Act>
void token_logprob_backward_on(Act* dlogits, const Act* logits, const int* targets, const float* weight, int N, int V,
                               int Vp, float inv_temp) {
  FRUGAL_CHECK(N >= 0 && V > 0 && Vp >= V, "cuda::token_logprob_backward: bad shape N=", N, " V=", V, " Vp=", Vp);
  if (N == 0) return;
  token_logprob_backward_kernel<<<N, kBlock>>>(dev(dlogits), dev(logits), targets, weight, V, Vp, inv_temp);
  FRUGAL_CUDA_CHECK_LAUNCH("token_logprob_backward_kernel");
}

}  // namespace

void softmax_crossentropy_forward(float* probs, float* losses, const float* logits, const int* targets, int N, int V,
                                  int Vp) {
  softmax_crossentropy_forward_on(probs, losses, logits, targets, N, V, Vp);
}
void softmax_crossentropy_forward(float* probs, float* losses, const bf16* logits, const int* targets, int N, int V,
                                  int Vp) {
  softmax_crossentropy_forward_on(probs, losses, logits, targets, N, V, Vp);
}

void softmax_crossentropy_backward(float* dlogits, const float* probs, const int* targets, float dloss, int N, int V,
                                   int Vp) {
  softmax_crossentropy_backward_on(dlogits, probs, targets, dloss, N, V, Vp);
}
void softmax_crossentropy_backward(bf16* dlogits, const float* probs, const int* targets, float dloss, int N, int V,
                                   int Vp) {
  softmax_crossentropy_backward_on(dlogits, probs, targets, dloss, N, V, Vp);
}

void token_logprob_forward(float* logp, float* entropy, const float* logits, const int* targets, int N, int V, int Vp,
                           float inv_temp) {
  token_logprob_forward_on(logp, entropy, logits, targets, N, V, Vp, inv_temp);
}
void token_logprob_forward(float* logp, float* entropy, const bf16* logits, const int* targets, int N, int V, int Vp,
                           float inv_temp) {
  token_logprob_forward_on(logp, entropy, logits, targets, N, V, Vp, inv_temp);
}

void token_logprob_backward(float* dlogits, const float* logits, const int* targets, const float* weight, int N, int V,
                            int Vp, float inv_temp) {
  token_logprob_backward_on(dlogits, logits, targets, weight, N, V, Vp, inv_temp);
}
void token_logprob_backward(bf16* dlogits, const bf16* logits, const int* targets, const float* weight, int N, int V,
                            int Vp, float inv_temp) {
  token_logprob_backward_on(dlogits, logits, targets, weight, N, V, Vp, inv_temp);
}

}  // namespace frugal::cuda
