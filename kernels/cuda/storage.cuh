#pragma once
// Activation storage. The training kernels are templates over the element type of the activations
// they read and write - float, or __nv_bfloat16 under model.dtype = bf16 (llm.c's floatX) - and
// compute in fp32 in between: load() widens, store<T>() rounds once, to nearest even. For float
// both are the identity, so the fp32 kernels are the very arithmetic they were before templating
// (and stay bit-identical to the CPU where they were). Weights, LayerNorm statistics, losses and
// every parameter gradient stay fp32 whatever the activations.
#include <cuda_bf16.h>
#include <library_types.h>

#include "kernels/cuda/kernels.hpp"

namespace frugal::cuda::detail {

__device__ inline float load(float x) { return x; }
__device__ inline float load(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T>
__device__ inline T store(float x);
template <>
__device__ inline float store<float>(float x) {
  return x;
}
template <>
__device__ inline __nv_bfloat16 store<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

// kernels.hpp's pointers as the device types the kernels take (bf16 holds __nv_bfloat16's bits).
inline float* dev(float* p) { return p; }
inline const float* dev(const float* p) { return p; }
inline __nv_bfloat16* dev(bf16* p) { return reinterpret_cast<__nv_bfloat16*>(p); }
inline const __nv_bfloat16* dev(const bf16* p) { return reinterpret_cast<const __nv_bfloat16*>(p); }

// The cuBLAS data type of an element type.
template <typename T>
constexpr cudaDataType_t blas_type() {
  if constexpr (sizeof(T) == 4) return CUDA_R_32F;
  else return CUDA_R_16BF;
}

}  // namespace frugal::cuda::detail
