#pragma once
// Warp-level reductions shared by the row kernels (layernorm, attention's softmax, the decoder's
// cached attention): an xor butterfly, so every lane ends with the result and the order of the
// additions is fixed (deterministic). Call with all 32 lanes active.
#include "kernels/cuda/storage.cuh"

namespace frugal::cuda::detail {

constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;

__device__ inline float warp_sum(float v) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}
__device__ inline float warp_max(float v) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, offset));
  return v;
}

// The exponentials of one softmax row held by a warp: lane l owns entries l, l + 32, ... of a[0, n).
// Replaces them by exp(a - max a) and returns 1 / their sum, on every lane (callers scale by it or
// keep it). Each lane touches only its own entries: a caller whose lanes then read each other's
// entries must __syncwarp first. The row is float or bf16 (kernels/cuda/storage.cuh); the sum adds
// the fp32 exponentials before their rounding to the row's type.
template <typename Act>
__device__ inline float warp_softmax_exp(Act* a, int n) {
  const int lane = threadIdx.x % kWarp;
  float m = -1e30f;
  for (int i = lane; i < n; i += kWarp) m = fmaxf(m, load(a[i]));
  const float maxval = warp_max(m);
  float sum = 0.0f;
  for (int i = lane; i < n; i += kWarp) {
    const float e = expf(load(a[i]) - maxval);
    a[i] = store<Act>(e);
    sum += e;
  }
  return 1.0f / warp_sum(sum);
}

}  // namespace frugal::cuda::detail
