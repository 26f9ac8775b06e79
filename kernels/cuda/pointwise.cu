// Element-wise ops: GELU (tanh approximation, as GPT-2), the residual add and dst += src. Grid-stride loops over
// n elements, one thread per element per pass. The activation ops are templates over their storage
// (kernels/cuda/storage.cuh): fp32 arithmetic, bf16 rounded once per stored value.
//
// nvcc fuses a * b + c into an FMA by default, the CPU build does not (-ffp-contract=off); the __f*_rn
// intrinsics are never fused, so the arithmetic here rounds step by step like the CPU's. What remains
// different in GELU is tanh (CUDA's tanhf: <= 2 ulp; the CPU's own vectorised tanh: ~1.5e-7 absolute),
// hence a tolerance, not equality.
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

template <typename T>
__global__ void gelu_forward_kernel(T* out, const T* inp, size_t n) {
  for (size_t i = first_index(); i < n; i += grid_stride()) {
    const float x = load(inp[i]);
    out[i] = store<T>(__fmul_rn(__fmul_rn(0.5f, x), __fadd_rn(1.0f, tanhf(gelu_arg(x)))));
  }
}

// dinp += gelu'(x) dout, gelu'(x) = 0.5 (1 + th) + 0.5 x sech^2(u) sqrt(2/pi) (1 + 3 * 0.044715 x^2).
template <typename T>
__global__ void gelu_backward_kernel(T* dinp, const T* inp, const T* dout, size_t n) {
  for (size_t i = first_index(); i < n; i += grid_stride()) {
    const float x = load(inp[i]);
    const float th = tanhf(gelu_arg(x));
    const float sech2 = __fsub_rn(1.0f, __fmul_rn(th, th));
    const float left = __fmul_rn(0.5f, __fadd_rn(1.0f, th));
    const float poly = __fadd_rn(1.0f, __fmul_rn(__fmul_rn(3.0f * 0.044715f, x), x));
    const float right = __fmul_rn(__fmul_rn(__fmul_rn(__fmul_rn(0.5f, x), sech2), kGeluScale), poly);
    dinp[i] = store<T>(__fadd_rn(load(dinp[i]), __fmul_rn(__fadd_rn(left, right), load(dout[i]))));
  }
}

template <typename T>
__global__ void residual_forward_kernel(T* out, const T* a, const T* b, size_t n) {
  for (size_t i = first_index(); i < n; i += grid_stride()) out[i] = store<T>(load(a[i]) + load(b[i]));
}

template <typename T>
__global__ void residual_backward_kernel(T* da, T* db, const T* dout, size_t n) {
  for (size_t i = first_index(); i < n; i += grid_stride()) {
    const float d = load(dout[i]);
    da[i] = store<T>(load(da[i]) + d);
    db[i] = store<T>(load(db[i]) + d);
  }
}

template <typename T>
__global__ void accumulate_kernel(T* dst, const T* src, size_t n) {
  for (size_t i = first_index(); i < n; i += grid_stride()) dst[i] = store<T>(load(dst[i]) + load(src[i]));
}

__global__ void subtract_kernel(float* out, const float* a, const float* b, size_t n) {
  for (size_t i = first_index(); i < n; i += grid_stride()) out[i] = a[i] - b[i];
}

__global__ void scale_kernel(float* x, float s, size_t n) {
  for (size_t i = first_index(); i < n; i += grid_stride()) x[i] *= s;
}

template <typename T>
void gelu_forward_on(T* out, const T* inp, size_t n) {
  if (n == 0) return;
  gelu_forward_kernel<<<grid_for(n), kBlock>>>(dev(out), dev(inp), n);
  FRUGAL_CUDA_CHECK_LAUNCH("gelu_forward_kernel");
}

template <typename T>
void gelu_backward_on(T* dinp, const T* inp, const T* dout, size_t n) {
  if (n == 0) return;
  gelu_backward_kernel<<<grid_for(n), kBlock>>>(dev(dinp), dev(inp), dev(dout), n);
  FRUGAL_CUDA_CHECK_LAUNCH("gelu_backward_kernel");
}

template <typename T>
void residual_forward_on(T* out, const T* a, const T* b, size_t n) {
  if (n == 0) return;
  residual_forward_kernel<<<grid_for(n), kBlock>>>(dev(out), dev(a), dev(b), n);
  FRUGAL_CUDA_CHECK_LAUNCH("residual_forward_kernel");
}

template <typename T>
void residual_backward_on(T* da, T* db, const T* dout, size_t n) {
  if (n == 0) return;
  residual_backward_kernel<<<grid_for(n), kBlock>>>(dev(da), dev(db), dev(dout), n);
  FRUGAL_CUDA_CHECK_LAUNCH("residual_backward_kernel");
}

template <typename T>
void accumulate_on(T* dst, const T* src, size_t n) {
  if (n == 0) return;
  accumulate_kernel<<<grid_for(n), kBlock>>>(dev(dst), dev(src), n);
  FRUGAL_CUDA_CHECK_LAUNCH("accumulate_kernel");
}

}  // namespace

void gelu_forward(float* out, const float* inp, size_t n) { gelu_forward_on(out, inp, n); }
void gelu_forward(bf16* out, const bf16* inp, size_t n) { gelu_forward_on(out, inp, n); }
void gelu_backward(float* dinp, const float* inp, const float* dout, size_t n) { gelu_backward_on(dinp, inp, dout, n); }
void gelu_backward(bf16* dinp, const bf16* inp, const bf16* dout, size_t n) { gelu_backward_on(dinp, inp, dout, n); }
void residual_forward(float* out, const float* a, const float* b, size_t n) { residual_forward_on(out, a, b, n); }
void residual_forward(bf16* out, const bf16* a, const bf16* b, size_t n) { residual_forward_on(out, a, b, n); }
void residual_backward(float* da, float* db, const float* dout, size_t n) { residual_backward_on(da, db, dout, n); }
void residual_backward(bf16* da, bf16* db, const bf16* dout, size_t n) { residual_backward_on(da, db, dout, n); }
void accumulate(float* dst, const float* src, size_t n) { accumulate_on(dst, src, n); }
void accumulate(bf16* dst, const bf16* src, size_t n) { accumulate_on(dst, src, n); }

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
