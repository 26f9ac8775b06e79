// Host <-> device copy rates, pageable and pinned host memory, 1 MiB to 1 GiB: what staging a
// rank's gradients or compressed messages through the host costs (the SparseLoCo / DeMo / MPI
// back-end choice between compressing on the device and on the host). The last lines price one
// GPT-2 124M gradient (124M fp32) each way.
//
//   ./bench/bench_transfer_gpu
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "bench/cuda/gpu_timing.hpp"
#include "core/error.hpp"
#include "kernels/cuda/kernels.hpp"

using namespace frugal;
namespace fc = frugal::cuda;

int main(int argc, char** argv) {
  if (const int status = bench::gpu_bench_start(argc, argv, "bench_transfer_gpu"); status >= 0) return status;
  try {
    const size_t max_bytes = size_t(1) << 30;
    fc::DeviceArray<uint8_t> dev(max_bytes);
    std::vector<uint8_t> pageable(max_bytes);
    for (size_t i = 0; i < max_bytes; i += 4096) pageable[i] = static_cast<uint8_t>(i >> 12);  // touch every page
    uint8_t* pinned = nullptr;
    bench::cuda_ok(cudaMallocHost(&pinned, max_bytes), "cudaMallocHost");
    std::memcpy(pinned, pageable.data(), max_bytes);
    std::printf("%10s | %12s %12s | %12s %12s  (GB/s)\n", "bytes", "H2D pageable", "H2D pinned", "D2H pageable",
                "D2H pinned");
    double rate_at_grad[4] = {};
    for (size_t bytes = size_t(1) << 20; bytes <= max_bytes; bytes <<= 2) {
      auto rate = [&](void* dst, const void* src, cudaMemcpyKind kind) {
        const double t = bench::time_call(
            [&](int) { bench::cuda_ok(cudaMemcpy(dst, src, bytes, kind), "cudaMemcpy"); });
        return bytes / t * 1e-9;
      };
      const double r[4] = {rate(dev.data(), pageable.data(), cudaMemcpyHostToDevice),
                           rate(dev.data(), pinned, cudaMemcpyHostToDevice),
                           rate(pageable.data(), dev.data(), cudaMemcpyDeviceToHost),
                           rate(pinned, dev.data(), cudaMemcpyDeviceToHost)};
      std::printf("%10zu | %12.1f %12.1f | %12.1f %12.1f\n", bytes, r[0], r[1], r[2], r[3]);
      if (bytes >= (size_t(1) << 28)) std::memcpy(rate_at_grad, r, sizeof r);  // 256 MiB and up
    }
    const double grad = 124.44e6 * 4;  // GPT-2 124M parameters, fp32
    std::printf("one GPT-2 124M fp32 gradient (%.0f MB): to host %.1f ms pinned (%.1f pageable), back %.1f ms pinned "
                "(%.1f pageable)\n",
                grad * 1e-6, grad / rate_at_grad[3] * 1e-6, grad / rate_at_grad[2] * 1e-6, grad / rate_at_grad[1] * 1e-6,
                grad / rate_at_grad[0] * 1e-6);
    cudaFreeHost(pinned);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_transfer_gpu: %s\n", e.what());
    return 1;
  }
  return 0;
}
