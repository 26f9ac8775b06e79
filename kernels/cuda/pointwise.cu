// Element-wise ops: GELU (tanh approximation, as GPT-2), the residual add and dst += src. Grid-stride loops over
// n elements, one thread per element per pass.
//
// nvcc fuses a * b + c into an FMA by default, the CPU build does not (-ffp-contract=off); the __f*_rn
// intrinsics are never fused, so the arithmetic here rounds step by step like the CPU's. What remains
// different in GELU is tanh (CUDA's tanhf: <= 2 ulp; the CPU's own vectorised tanh: ~1.5e-7 absolute),
// hence a tolerance, not equality.
#include <algorithm>
#include <cstddef>

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/kernels.hpp"

namespace frugal::cuda {

namespace {

constexpr int kBlock = 256;
constexpr float kGeluScale = 0.7978845608028654f;  // sqrt(2 / pi)

int grid_for(size_t n) { return detail::grid_for(n, kBlock); }

__device__ inline size_t first_index() { return static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ inline size_t grid_stride() { return static_cast<size_t>(gridDim.x) * blockDim.x; }

// u = sqrt(2/pi) (x + 0.044715 x^3), evaluated left to right as the CPU does.
__device__ inline float gelu_arg(float x) {
  const float cube = __fmul_rn(__fmul_rn(__fmul_rn(0.044715f, x), x), x);
  return __fmul_rn(kGeluScale, __fadd_rn(x, cube));
}

__global__ void gelu_forward_kernel(float* out, const float* inp, size_t n) {
  for (size_t i = first_index(); i < n; i += grid_stride()) {
    const float x = inp[i];
    out[i] = __fmul_rn(__fmul_rn(0.5f, x), __fadd_rn(1.0f, tanhf(gelu_arg(x))));
  }
}

// dinp += gelu'(x) dout, gelu'(x) = 0.5 (1 + th) + 0.5 x sech^2(u) sqrt(2/pi) (1 + 3 * 0.044715 x^2).
__global__ void gelu_backward_kernel(float* dinp, const float* inp, const float* dout, size_t n) {
  for (size_t i = first_index(); i < n; i += grid_stride()) {
    const float x = inp[i];
    const float th = tanhf(gelu_arg(x));
    const float sech2 = __fsub_rn(1.0f, __fmul_rn(th, th));
    const float left = __fmul_rn(0.5f, __fadd_rn(1.0f, th));
    const float poly = __fadd_rn(1.0f, __fmul_rn(__fmul_rn(3.0f * 0.044715f, x), x));
    const float right = __fmul_rn(__fmul_rn(__fmul_rn(__fmul_rn(0.5f, x), sech2), kGeluScale), poly);
    dinp[i] = __fadd_rn(dinp[i], __fmul_rn(__fadd_rn(left, right), dout[i]));
  }
}

__global__ void residual_forward_kernel(float* out, const float* a, const float* b, size_t n) {
  for (size_t i = first_index(); i < n; i += grid_stride()) out[i] = a[i] + b[i];
}

__global__ void residual_backward_kernel(float* da, float* db, const float* dout, size_t n) {
  for (size_t i = first_index(); i < n; i += grid_stride()) {
    const float d = dout[i];
    da[i] += d;
    db[i] += d;
  }
}

__global__ void accumulate_kernel(float* dst, const float* src, size_t n) {
  for (size_t i = first_index(); i < n; i += grid_stride()) dst[i] += src[i];
}

__global__ void subtract_kernel(float* out, const float* a, const float* b, size_t n) {
  for (size_t i = first_index(); i < n; i += grid_stride()) out[i] = a[i] - b[i];
}

__global__ void scale_kernel(float* x, float s, size_t n) {
  for (size_t i = first_index(); i < n; i += grid_stride()) x[i] *= s;
}

}  // namespace

void gelu_forward(float* out, const float* inp, size_t n) {
  if (n == 0) return;
  gelu_forward_kernel<<<grid_for(n), kBlock>>>(out, inp, n);
  FRUGAL_CUDA_CHECK_LAUNCH("gelu_forward_kernel");
}

void gelu_backward(float* dinp, const float* inp, const float* dout, size_t n) {
  if (n == 0) return;
  gelu_backward_kernel<<<grid_for(n), kBlock>>>(dinp, inp, dout, n);
  FRUGAL_CUDA_CHECK_LAUNCH("gelu_backward_kernel");
}

void residual_forward(float* out, const float* a, const float* b, size_t n) {
  if (n == 0) return;
  residual_forward_kernel<<<grid_for(n), kBlock>>>(out, a, b, n);
  FRUGAL_CUDA_CHECK_LAUNCH("residual_forward_kernel");
}

void residual_backward(float* da, float* db, const float* dout, size_t n) {
  if (n == 0) return;
  residual_backward_kernel<<<grid_for(n), kBlock>>>(da, db, dout, n);
  FRUGAL_CUDA_CHECK_LAUNCH("residual_backward_kernel");
}

void accumulate(float* dst, const float* src, size_t n) {
  if (n == 0) return;
  accumulate_kernel<<<grid_for(n), kBlock>>>(dst, src, n);
  FRUGAL_CUDA_CHECK_LAUNCH("accumulate_kernel");
}

void subtract(float* out, const float* a, const float* b, size_t n) {
  if (n == 0) return;
  subtract_kernel<<<grid_for(n), kBlock>>>(out, a, b, n);
  FRUGAL_CUDA_CHECK_LAUNCH("subtract_kernel");
}

void scale(float* x, float s, size_t n) {
  if (n == 0) return;
  scale_kernel<<<grid_for(n), kBlock>>>(x, s, n);
  FRUGAL_CUDA_CHECK_LAUNCH("scale_kernel");
}

}  // namespace frugal::cuda
