#pragma once
// CUDA kernels, host-callable. Plain C++ on purpose: g++-compiled code (tests, benches, the
// framework) includes this without seeing any CUDA syntax; the .cu files hold the device code.
//
// Same signatures and row-major semantics as kernels/cpu/, which is the reference these are tested
// against. All float pointers passed to the kernels are DEVICE pointers (e.g. DeviceBuffer::data()).
// Work goes to the legacy default stream, so calls are ordered with each other and with
// DeviceBuffer's copies; use synchronize() before timing on the host.
// Every failing CUDA/cuBLAS call throws frugal::Error naming the call and the CUDA error string.
#include <cstddef>
#include <vector>

namespace frugal::cuda {

// True iff the CUDA runtime reports at least one usable device. Never throws: a missing driver or
// CUDA_VISIBLE_DEVICES="" just means false (tests use it to GTEST_SKIP).
bool device_available() noexcept;

// Waits for all work queued on the current device (cudaDeviceSynchronize).
void synchronize();

// Owns n floats of device memory (cudaMalloc); move-only. Contents start uninitialised.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t n);
  explicit DeviceBuffer(const std::vector<float>& host);  // allocate host.size() floats and upload
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  float* data() { return ptr_; }
  const float* data() const { return ptr_; }
  size_t size() const { return n_; }

  void upload(const float* host, size_t n);    // host -> first n floats; n <= size()
  void download(float* host, size_t n) const;  // first n floats -> host; n <= size()
  std::vector<float> to_host() const;          // the whole buffer
  void zero();                                 // cudaMemset to 0.0f

 private:
  float* ptr_ = nullptr;
  size_t n_ = 0;
};

// out (N,OC) = inp (N,C) . weight (OC,C)^T + bias (OC); bias may be null. cuBLAS, plain FP32 math
// (no TF32), so results agree with the CPU kernel to FP32 rounding.
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C, int OC);

// C (M,N) = alpha A (M,K) . B (N,K)^T + beta C, all row-major (mirrors frugal::cpu::sgemm_nt).
void sgemm_nt(int M, int N, int K, float alpha, const float* A, const float* B, float beta, float* C);

// LayerNorm over the last dimension, eps = 1e-5: out (N,C), mean (N), rstd (N) from inp (N,C),
// weight (C), bias (C). One warp per row.
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int N, int C);

}  // namespace frugal::cuda
