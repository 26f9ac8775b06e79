// LayerNorm forward and backward, one warp per row (GPT-2 rows are C = 768..1600 wide: 24..50 floats
// a lane, enough work per warp, and warp shuffles need no shared memory or __syncthreads). The
// backward's dweight/dbias are column sums over the N rows: a fixed-order block reduction per 32
// columns instead of atomics, so results are deterministic. Templates over the activations' storage
// (kernels/cuda/storage.cuh); weights, statistics and parameter gradients are fp32.
#include <cstddef>

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/kernels.hpp"
#include "kernels/cuda/storage.cuh"
#include "kernels/cuda/warp.cuh"

namespace frugal::cuda {

namespace {

using detail::dev;
using detail::kWarp;
using detail::load;
using detail::store;
using detail::warp_sum;
constexpr int kBlock = 256;  // 8 warps = 8 rows per block

// out (N,C), mean (N), rstd (N) <- inp (N,C), weight (C), bias (C).
template <typename T>
__global__ void layernorm_forward_kernel(T* out, float* mean, float* rstd, const T* inp, const float* weight,
                                         const float* bias, int N, int C) {
  const int lane = threadIdx.x % kWarp;
  const int row = blockIdx.x * (blockDim.x / kWarp) + threadIdx.x / kWarp;
  // The whole warp leaves together (row is warp-uniform), so the full-mask shuffles stay valid.
  if (row >= N) return;
  const T* x = inp + static_cast<size_t>(row) * C;

  // Two passes (mean, then sum of squared deviations) like the CPU reference rather than
  // E[x^2] - E[x]^2, which cancels badly when |mean| >> std. The row is re-read from L1/L2.
  float sum = 0.0f;
  for (int c = lane; c < C; c += kWarp) sum += load(x[c]);
  const float m = warp_sum(sum) / C;

  float sq = 0.0f;
  for (int c = lane; c < C; c += kWarp) {
    const float d = load(x[c]) - m;
    sq += d * d;
  }
  const float v = warp_sum(sq) / C;
  // 1/sqrtf (both IEEE-rounded without fast-math) rather than rsqrtf (~2 ulp) to track the CPU value.
  const float s = 1.0f / sqrtf(v + 1e-5f);

  T* o = out + static_cast<size_t>(row) * C;
  for (int c = lane; c < C; c += kWarp) o[c] = store<T>((load(x[c]) - m) * s * weight[c] + bias[c]);
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = s;
  }
}


// dinp (N,C) += per-row gradient; one warp per row. With norm = (x - mean) rstd and dnorm = w dout:
// dx = (dnorm - mean(dnorm) - norm mean(dnorm norm)) rstd, as the CPU kernel.
template <typename T>
__global__ void layernorm_backward_dinp_kernel(T* dinp, const T* dout, const T* inp, const float* weight,
                                               const float* mean, const float* rstd, int N, int C) {
  const int lane = threadIdx.x % kWarp;
  const int row = blockIdx.x * (blockDim.x / kWarp) + threadIdx.x / kWarp;
  if (row >= N) return;  // warp-uniform
  const size_t off = static_cast<size_t>(row) * C;
  const T* x = inp + off;
  const T* d = dout + off;
  T* dx = dinp + off;
  const float m = mean[row], s = rstd[row];

  float sum_dnorm = 0.0f, sum_dnorm_norm = 0.0f;
  for (int c = lane; c < C; c += kWarp) {
    const float norm = (load(x[c]) - m) * s;
    const float dnorm = weight[c] * load(d[c]);
    sum_dnorm += dnorm;
    sum_dnorm_norm += dnorm * norm;
  }
  const float dnorm_mean = warp_sum(sum_dnorm) / C;
  const float dnorm_norm_mean = warp_sum(sum_dnorm_norm) / C;
  for (int c = lane; c < C; c += kWarp) {
    const float norm = (load(x[c]) - m) * s;
    const float dnorm = weight[c] * load(d[c]);
    dx[c] = store<T>(load(dx[c]) + (dnorm - dnorm_mean - norm * dnorm_norm_mean) * s);
  }
}

// dweight (C) += sum_i norm[i,c] dout[i,c], dbias (C) += sum_i dout[i,c]. Block (32, kRowLanes): x
// picks the column (a warp reads 32 consecutive floats of a row: coalesced), y strides the rows; the
// kRowLanes partial sums are then added in y order by the y == 0 threads. Fixed order: deterministic.
constexpr int kRowLanes = 32;
template <typename T>
__global__ void layernorm_backward_params_kernel(float* dweight, float* dbias, const T* dout, const T* inp,
                                                 const float* mean, const float* rstd, int N, int C) {
  __shared__ float part_w[kRowLanes][kWarp + 1];  // +1: no bank conflicts on the column read below
  __shared__ float part_b[kRowLanes][kWarp + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int c = blockIdx.x * kWarp + tx;
  float dw = 0.0f, db = 0.0f;
  if (c < C) {
    for (int i = ty; i < N; i += kRowLanes) {
      const size_t k = static_cast<size_t>(i) * C + c;
      const float d = load(dout[k]);
      db += d;
      dw += (load(inp[k]) - mean[i]) * rstd[i] * d;
    }
  }
  part_w[ty][tx] = dw;
  part_b[ty][tx] = db;
  __syncthreads();
  if (ty == 0 && c < C) {
    float sw = 0.0f, sb = 0.0f;
    for (int y = 0; y < kRowLanes; y++) {
      sw += part_w[y][tx];
      sb += part_b[y][tx];
    }
    dweight[c] += sw;
    dbias[c] += sb;
  }
}

template <typename T>
void layernorm_forward_on(T* out, float* mean, float* rstd, const T* inp, const float* weight, const float* bias, int N,
                          int C) {
  FRUGAL_CHECK(N >= 0 && C > 0, "cuda::layernorm_forward: bad shape N=", N, " C=", C);
  if (N == 0) return;
  const int rows_per_block = kBlock / kWarp;
  const int grid = (N + rows_per_block - 1) / rows_per_block;
  layernorm_forward_kernel<<<grid, kBlock>>>(dev(out), mean, rstd, dev(inp), weight, bias, N, C);
  FRUGAL_CUDA_CHECK_LAUNCH("layernorm_forward_kernel");
}

template <typename T>
void layernorm_backward_on(T* dinp, float* dweight, float* dbias, const T* dout, const T* inp, const float* weight,
                           const float* mean, const float* rstd, int N, int C) {
  FRUGAL_CHECK(N >= 0 && C > 0, "cuda::layernorm_backward: bad shape N=", N, " C=", C);
  if (N == 0) return;
  const int rows_per_block = kBlock / kWarp;
  layernorm_backward_dinp_kernel<<<(N + rows_per_block - 1) / rows_per_block, kBlock>>>(
      dev(dinp), dev(dout), dev(inp), weight, mean, rstd, N, C);
  FRUGAL_CUDA_CHECK_LAUNCH("layernorm_backward_dinp_kernel");
  layernorm_backward_params_kernel<<<(C + kWarp - 1) / kWarp, dim3(kWarp, kRowLanes)>>>(dweight, dbias, dev(dout),
                                                                                         dev(inp), mean, rstd, N, C);
  FRUGAL_CUDA_CHECK_LAUNCH("layernorm_backward_params_kernel");
}

}  // namespace

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int N, int C) {
  layernorm_forward_on(out, mean, rstd, inp, weight, bias, N, C);
}
void layernorm_forward(bf16* out, float* mean, float* rstd, const bf16* inp, const float* weight, const float* bias,
                       int N, int C) {
  layernorm_forward_on(out, mean, rstd, inp, weight, bias, N, C);
}

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int N, int C) {
  layernorm_backward_on(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
}
void layernorm_backward(bf16* dinp, float* dweight, float* dbias, const bf16* dout, const bf16* inp,
                        const float* weight, const float* mean, const float* rstd, int N, int C) {
  layernorm_backward_on(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
}

}  // namespace frugal::cuda
