// LayerNorm forward, one warp per row (GPT-2 rows are C = 768..1600 wide: 24..50 floats a lane,
// enough work per warp, and warp shuffles need no shared memory or __syncthreads).
#include <cstddef>

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/kernels.hpp"

namespace frugal::cuda {

namespace {

constexpr int kWarp = 32;
constexpr int kBlock = 256;  // 8 warps = 8 rows per block

// Sum over the 32 lanes; every lane ends with the total (xor butterfly).
__device__ inline float warp_sum(float v) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// out (N,C), mean (N), rstd (N) <- inp (N,C), weight (C), bias (C).
__global__ void layernorm_forward_kernel(float* out, float* mean, float* rstd, const float* inp,
                                         const float* weight, const float* bias, int N, int C) {
  const int lane = threadIdx.x % kWarp;
  const int row = blockIdx.x * (blockDim.x / kWarp) + threadIdx.x / kWarp;
  // The whole warp leaves together (row is warp-uniform), so the full-mask shuffles stay valid.
  if (row >= N) return;
  const float* x = inp + static_cast<size_t>(row) * C;

  // Two passes (mean, then sum of squared deviations) like the CPU reference rather than
  // E[x^2] - E[x]^2, which cancels badly when |mean| >> std. The row is re-read from L1/L2.
  float sum = 0.0f;
  for (int c = lane; c < C; c += kWarp) sum += x[c];
  const float m = warp_sum(sum) / C;

  float sq = 0.0f;
  for (int c = lane; c < C; c += kWarp) {
    const float d = x[c] - m;
    sq += d * d;
  }
  const float v = warp_sum(sq) / C;
  // 1/sqrtf (both IEEE-rounded without fast-math) rather than rsqrtf (~2 ulp) to track the CPU value.
  const float s = 1.0f / sqrtf(v + 1e-5f);

  float* o = out + static_cast<size_t>(row) * C;
  for (int c = lane; c < C; c += kWarp) o[c] = (x[c] - m) * s * weight[c] + bias[c];
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = s;
  }
}

}  // namespace

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int N, int C) {
  FRUGAL_CHECK(N >= 0 && C > 0, "cuda::layernorm_forward: bad shape N=", N, " C=", C);
  if (N == 0) return;
  const int rows_per_block = kBlock / kWarp;
  const int grid = (N + rows_per_block - 1) / rows_per_block;
  layernorm_forward_kernel<<<grid, kBlock>>>(out, mean, rstd, inp, weight, bias, N, C);
  FRUGAL_CUDA_CHECK_LAUNCH("layernorm_forward_kernel");
}

}  // namespace frugal::cuda
