// AdamW update and global gradient norm / clipping, the device side of src/optim/adamw.cpp.
//
// AdamW is element-wise; written with the unfused __f*_rn intrinsics (nvcc would otherwise fuse
// a * b + c into FMAs, which the CPU build forbids), IEEE division and square root, and the same
// bias corrections computed on the host, it matches the CPU update bit for bit.
// The norm sums squares in double, like the CPU, over a fixed grid with a fixed reduction tree:
// deterministic for a given n, though not in the CPU's summation order.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/kernels.hpp"

namespace frugal::cuda {

namespace {

constexpr int kWarp = 32;
constexpr int kBlock = 256;
constexpr int kNormBlocks = 1024;  // partial sums of the norm's first pass (fixed: deterministic)

int grid_for(size_t n) { return detail::grid_for(n, kBlock); }

__global__ void adamw_kernel(float* params, const float* grads, float* m, float* v, size_t n, float lr,
                             float beta1, float beta2, float eps, float wd, float bc1, float bc2,
                             const uint8_t* keep) {
  const float one_minus_b1 = 1.0f - beta1, one_minus_b2 = 1.0f - beta2;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    if (keep && !keep[i]) continue;  // masked out: value and moments stay
    const float g = grads[i], p = params[i];
    // m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g g   (the CPU's association)
    const float mi = __fadd_rn(__fmul_rn(beta1, m[i]), __fmul_rn(one_minus_b1, g));
    const float vi = __fadd_rn(__fmul_rn(beta2, v[i]), __fmul_rn(__fmul_rn(one_minus_b2, g), g));
    m[i] = mi;
    v[i] = vi;
    const float mhat = __fdiv_rn(mi, bc1), vhat = __fdiv_rn(vi, bc2);
    // p -= lr (mhat / (sqrt(vhat) + eps) + wd p)   (decoupled weight decay, scaled by lr)
    const float step = __fadd_rn(__fdiv_rn(mhat, __fadd_rn(__fsqrt_rn(vhat), eps)), __fmul_rn(wd, p));
    params[i] = __fsub_rn(p, __fmul_rn(lr, step));
  }
}

// Reduces a double over the block (blockDim.x a multiple of 32, at most 1024); thread 0 gets it.
__device__ double block_sum(double v) {
  __shared__ double shared[kWarp];
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  double r = 0.0;
  if (threadIdx.x == 0)
    for (int w = 0; w < static_cast<int>(blockDim.x) / kWarp; w++) r += shared[w];
  return r;
}

// partial[block] = sum of squares of the block's grid-stride share of x (n floats).
__global__ void sum_squares_kernel(double* partial, const float* x, size_t n) {
  double s = 0.0;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const double d = x[i];
    s += d * d;
  }
  const double total = block_sum(s);
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

// *out = sum of partial[0, count); one block.
__global__ void sum_partials_kernel(double* out, const double* partial, int count) {
  double s = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) s += partial[i];
  const double total = block_sum(s);
  if (threadIdx.x == 0) *out = total;
}

__global__ void scale_kernel(float* x, size_t n, float s) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) x[i] *= s;
}

}  // namespace

void adamw_update(float* params, const float* grads, float* m, float* v, size_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int64_t t, const uint8_t* keep) {
  FRUGAL_CHECK(t >= 1, "cuda::adamw_update: step count t=", t, " (must be >= 1: counted after incrementing)");
  if (n == 0) return;
  // The CPU's expressions, float pow included, so the corrections are the same floats.
  const float bc1 = 1.0f - std::pow(beta1, static_cast<float>(t));
  const float bc2 = 1.0f - std::pow(beta2, static_cast<float>(t));
  adamw_kernel<<<grid_for(n), kBlock>>>(params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, bc1, bc2,
                                        keep);
  FRUGAL_CUDA_CHECK_LAUNCH("adamw_kernel");
}

double global_norm(const float* grads, size_t n) {
  if (n == 0) return 0.0;
  // Fewer blocks for small n, so no block sums only zeros; the count depends on n alone.
  const int blocks = std::min(kNormBlocks, grid_for(n));
  double* partial = static_cast<double*>(detail::scratch((kNormBlocks + 1) * sizeof(double)));
  double* total = partial + kNormBlocks;
  sum_squares_kernel<<<blocks, kBlock>>>(partial, grads, n);
  FRUGAL_CUDA_CHECK_LAUNCH("sum_squares_kernel");
  sum_partials_kernel<<<1, kBlock>>>(total, partial, blocks);
  FRUGAL_CUDA_CHECK_LAUNCH("sum_partials_kernel");
  double host = 0.0;
  FRUGAL_CUDA_CHECK(cudaMemcpy(&host, total, sizeof(double), cudaMemcpyDeviceToHost));
  return std::sqrt(host);
}

double clip_grad_norm(float* grads, size_t n, double max_norm) {
  const double norm = global_norm(grads, n);
  if (max_norm > 0 && norm > max_norm) {
    const float scale = static_cast<float>(max_norm / (norm + 1e-6));  // the CPU's expression
    scale_kernel<<<grid_for(n), kBlock>>>(grads, n, scale);
    FRUGAL_CUDA_CHECK_LAUNCH("scale_kernel");
  }
  return norm;
}

}  // namespace frugal::cuda
