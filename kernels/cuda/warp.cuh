#pragma once
// Warp-level reductions shared by the row kernels (layernorm, attention's softmax, the decoder's
// cached attention): an xor butterfly, so every lane ends with the result and the order of the
// additions is fixed (deterministic). Call with all 32 lanes active.
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

}  // namespace frugal::cuda::detail
