// Device discovery, the RAII device array declared in kernels.hpp and the per-thread scratch.
#include <cuda_bf16.h>

#include <cstdint>
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

void copy_to_host(float* host, const float* device, size_t n) {
  if (n == 0) return;
  FRUGAL_CUDA_CHECK(cudaMemcpy(host, device, n * sizeof(float), cudaMemcpyDeviceToHost));
}

void synchronize() { FRUGAL_CUDA_CHECK(cudaDeviceSynchronize()); }

int device_count() noexcept {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // no driver / no device: not an error of the next call
    return 0;
  }
  return count;
}

DeviceProperties use_device(int index) {
  FRUGAL_CUDA_CHECK(cudaSetDevice(index));
  cudaDeviceProp prop{};
  FRUGAL_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  DeviceProperties p;
  p.index = index;
  p.name = prop.name;
  char bus[32] = {};
  FRUGAL_CUDA_CHECK(cudaDeviceGetPCIBusId(bus, sizeof bus, index));
  p.pci_bus_id = bus;
  FRUGAL_CUDA_CHECK(cudaDriverGetVersion(&p.driver_version));
  FRUGAL_CUDA_CHECK(cudaRuntimeGetVersion(&p.runtime_version));
  p.memory_bytes = prop.totalGlobalMem;
  return p;
}

void copy(float* dst, const float* src, size_t n) {
  if (n == 0) return;
  FRUGAL_CUDA_CHECK(cudaMemcpy(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice));
}

void copy(bf16* dst, const bf16* src, size_t n) {
  if (n == 0) return;
  FRUGAL_CUDA_CHECK(cudaMemcpy(dst, src, n * sizeof(bf16), cudaMemcpyDeviceToDevice));
}

template <typename T>
DeviceArray<T>::DeviceArray(size_t n) : n_(n) {
  if (n == 0) return;  // cudaMalloc(0) is legal but pointless; keep null for empty buffers
  FRUGAL_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&ptr_), n * sizeof(T)));
}

template <typename T>
DeviceArray<T>::DeviceArray(const std::vector<T>& host) : DeviceArray(host.size()) {
  upload(host.data(), host.size());
}

template <typename T>
DeviceArray<T>::~DeviceArray() {
  // Destructors must not throw; a failing cudaFree here means the context is already gone.
  if (ptr_) cudaFree(ptr_);
}

template <typename T>
DeviceArray<T>::DeviceArray(DeviceArray&& other) noexcept
    : ptr_(std::exchange(other.ptr_, nullptr)), n_(std::exchange(other.n_, 0)) {}

template <typename T>
DeviceArray<T>& DeviceArray<T>::operator=(DeviceArray&& other) noexcept {
  if (this != &other) {
    if (ptr_) cudaFree(ptr_);
    ptr_ = std::exchange(other.ptr_, nullptr);
    n_ = std::exchange(other.n_, 0);
  }
  return *this;
}

template <typename T>
void DeviceArray<T>::upload(const T* host, size_t n) {
  FRUGAL_CHECK(n <= n_, "DeviceBuffer::upload: ", n, " elements into a buffer of ", n_);
  if (n == 0) return;
  FRUGAL_CUDA_CHECK(cudaMemcpy(ptr_, host, n * sizeof(T), cudaMemcpyHostToDevice));
}

template <typename T>
void DeviceArray<T>::download(T* host, size_t n) const {
  FRUGAL_CHECK(n <= n_, "DeviceBuffer::download: ", n, " elements from a buffer of ", n_);
  if (n == 0) return;
  // cudaMemcpy on the legacy default stream waits for the kernels queued before it.
  FRUGAL_CUDA_CHECK(cudaMemcpy(host, ptr_, n * sizeof(T), cudaMemcpyDeviceToHost));
}

template <typename T>
std::vector<T> DeviceArray<T>::to_host() const {
  std::vector<T> host(n_);
  download(host.data(), n_);
  return host;
}

template <typename T>
void DeviceArray<T>::zero() {
  if (n_ == 0) return;
  FRUGAL_CUDA_CHECK(cudaMemset(ptr_, 0, n_ * sizeof(T)));  // all-zero bits == 0.0f == 0
}

template <typename T>
T* DeviceArray<T>::grow(size_t n) {
  if (n_ < n) *this = DeviceArray(n);
  return ptr_;
}

template <typename T>
T* DeviceArray<T>::grow_and_upload(const std::vector<T>& host) {
  grow(host.size());
  upload(host.data(), host.size());
  return ptr_;
}

namespace {
__global__ void float_to_bf16_kernel(__nv_bfloat16* out, const float* in, size_t n) {
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    out[i] = __float2bfloat16_rn(in[i]);
}
}  // namespace

void convert(bf16* out, const float* in, size_t n) {
  if (n == 0) return;
  float_to_bf16_kernel<<<detail::grid_for(n, 256), 256>>>(reinterpret_cast<__nv_bfloat16*>(out), in, n);
  FRUGAL_CUDA_CHECK_LAUNCH("float_to_bf16_kernel");
}

template class DeviceArray<float>;
template class DeviceArray<int>;
template class DeviceArray<uint8_t>;
template class DeviceArray<bf16>;
template class DeviceArray<uint16_t>;

namespace detail {

namespace {
// Grow-only device scratch, one per thread like the cuBLAS handle. Freed at thread exit.
struct ScratchHolder {
  void* ptr = nullptr;
  size_t bytes = 0;
  ~ScratchHolder() {
    if (ptr) cudaFree(ptr);  // status ignored: nothing to do about it at exit
  }
};
}  // namespace

void* scratch(size_t bytes) {
  thread_local ScratchHolder holder;
  if (bytes > holder.bytes) {
    // cudaFree waits for the device, so kernels still reading the old block finish first.
    if (holder.ptr) FRUGAL_CUDA_CHECK(cudaFree(holder.ptr));
    holder.ptr = nullptr;
    holder.bytes = 0;
    FRUGAL_CUDA_CHECK(cudaMalloc(&holder.ptr, bytes));
    holder.bytes = bytes;
  }
  return holder.ptr;
}

}  // namespace detail

}  // namespace frugal::cuda
