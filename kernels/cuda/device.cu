// Device discovery and the RAII device buffer declared in kernels.hpp.
#include <utility>

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/kernels.hpp"

namespace frugal::cuda {

bool device_available() noexcept {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    // No driver / no device: swallow the error so later calls do not see it as their own.
    cudaGetLastError();
    return false;
  }
  return count > 0;
}

void synchronize() { FRUGAL_CUDA_CHECK(cudaDeviceSynchronize()); }

DeviceBuffer::DeviceBuffer(size_t n) : n_(n) {
  if (n == 0) return;  // cudaMalloc(0) is legal but pointless; keep null for empty buffers
  FRUGAL_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&ptr_), n * sizeof(float)));
}

DeviceBuffer::DeviceBuffer(const std::vector<float>& host) : DeviceBuffer(host.size()) {
  upload(host.data(), host.size());
}

DeviceBuffer::~DeviceBuffer() {
  // Destructors must not throw; a failing cudaFree here means the context is already gone.
  if (ptr_) cudaFree(ptr_);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : ptr_(std::exchange(other.ptr_, nullptr)), n_(std::exchange(other.n_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (ptr_) cudaFree(ptr_);
    ptr_ = std::exchange(other.ptr_, nullptr);
    n_ = std::exchange(other.n_, 0);
  }
  return *this;
}

void DeviceBuffer::upload(const float* host, size_t n) {
  FRUGAL_CHECK(n <= n_, "DeviceBuffer::upload: ", n, " floats into a buffer of ", n_);
  if (n == 0) return;
  FRUGAL_CUDA_CHECK(cudaMemcpy(ptr_, host, n * sizeof(float), cudaMemcpyHostToDevice));
}

void DeviceBuffer::download(float* host, size_t n) const {
  FRUGAL_CHECK(n <= n_, "DeviceBuffer::download: ", n, " floats from a buffer of ", n_);
  if (n == 0) return;
  // cudaMemcpy on the legacy default stream waits for the kernels queued before it.
  FRUGAL_CUDA_CHECK(cudaMemcpy(host, ptr_, n * sizeof(float), cudaMemcpyDeviceToHost));
}

std::vector<float> DeviceBuffer::to_host() const {
  std::vector<float> host(n_);
  download(host.data(), n_);
  return host;
}

void DeviceBuffer::zero() {
  if (n_ == 0) return;
  FRUGAL_CUDA_CHECK(cudaMemset(ptr_, 0, n_ * sizeof(float)));  // all-zero bits == 0.0f
}

}  // namespace frugal::cuda
