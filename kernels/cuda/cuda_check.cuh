#pragma once
// Error checking shared by the .cu files: every failing CUDA runtime / cuBLAS call becomes a
// frugal::Error naming the call, the error and the source line, so the CLI reports it like any
// other failure instead of aborting.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>

#include "core/error.hpp"

namespace frugal::cuda::detail {

inline void check_cuda(cudaError_t err, const char* call, const char* file, int line) {
  if (err == cudaSuccess) return;
  // Clear the (non-sticky) error so the next unrelated call does not report it again.
  cudaGetLastError();
  ::frugal::fail(call, " failed: ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ") at ", file, ":",
                 line);
}

inline void check_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  ::frugal::fail(call, " failed: ", cublasGetStatusName(status), " (", cublasGetStatusString(status), ") at ",
                 file, ":", line);
}

// Blocks for a grid-stride loop over n elements with `block` threads each: one element per thread,
// capped at 65536 blocks (the loop covers the rest).
inline int grid_for(size_t n, int block) {
  return static_cast<int>(std::min<size_t>((n + block - 1) / block, 65536));
}

// The cuBLAS handle for the calling thread, created on first use on the then-current device with
// plain FP32 math (CUBLAS_DEFAULT_MATH: no TF32 down-conversion), so GEMMs match the CPU reference
// to FP32 rounding. One rank drives one GPU, so one handle per thread is enough.
cublasHandle_t cublas_handle();

// At least `bytes` of device memory owned by the calling thread, reused across calls (grown on
// demand, never shrunk). Valid until the next scratch() call on this thread: kernels use it within
// one host call, and the legacy default stream orders those calls, so reuse is safe.
void* scratch(size_t bytes);

}  // namespace frugal::cuda::detail

#define FRUGAL_CUDA_CHECK(call) ::frugal::cuda::detail::check_cuda((call), #call, __FILE__, __LINE__)
#define FRUGAL_CUBLAS_CHECK(call) ::frugal::cuda::detail::check_cublas((call), #call, __FILE__, __LINE__)
// After a <<<...>>> launch: launch-configuration errors surface here, not at the launch itself.
#define FRUGAL_CUDA_CHECK_LAUNCH(name) \
  ::frugal::cuda::detail::check_cuda(cudaGetLastError(), name " launch", __FILE__, __LINE__)
