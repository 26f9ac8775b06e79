#pragma once
// What the GPU benchmarks share: timing with CUDA events (warm-up, then the median of 7 repetitions
// of a loop of >= 5 ms, or of single calls for long ones) and the datasheet peaks that MFU is measured against, written once.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "kernels/cuda/kernels.hpp"

namespace frugal::bench {

inline void cuda_ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail(what, ": ", cudaGetErrorString(e));
}

// The start every GPU benchmark shares: its one optional flag (--quick, where quick is non-null),
// a usage line and exit status 2 for anything else, and exit status 0 with a note where no GPU is
// visible (a CPU-only machine runs gpu_check.sh cleanly). Returns -1 to go on, else the status.
inline int gpu_bench_start(int argc, char** argv, const char* name, bool* quick = nullptr) {
  for (int i = 1; i < argc; i++) {
    if (quick && std::strcmp(argv[i], "--quick") == 0) {
      *quick = true;
    } else {
      std::fprintf(stderr, "usage: %s%s   (unknown argument '%s')\n", name, quick ? " [--quick]" : "", argv[i]);
      return 2;
    }
  }
  if (!cuda::device_available()) {
    std::printf("%s: no CUDA device visible, nothing to measure\n", name);
    return 0;
  }
  return -1;
}

// Properties of device 0, where the benchmarks run.
inline cudaDeviceProp device_properties() {
  cudaDeviceProp prop{};
  cuda_ok(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  return prop;
}

// Median seconds per call of fn; fn(i) runs call i (rotate operands by i to keep them out of L2).
inline double time_call(const std::function<void(int)>& fn) {
  cudaEvent_t start, stop;
  cuda_ok(cudaEventCreate(&start), "cudaEventCreate");
  cuda_ok(cudaEventCreate(&stop), "cudaEventCreate");
  auto run = [&](int iters) {
    cuda_ok(cudaEventRecord(start), "cudaEventRecord");
    for (int i = 0; i < iters; i++) fn(i);
    cuda_ok(cudaEventRecord(stop), "cudaEventRecord");
    cuda_ok(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float ms = 0.0f;
    cuda_ok(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    return 1e-3 * ms / iters;
  };
  run(3);  // warm-up: module load, cuBLAS heuristics, clocks
  const int iters = std::clamp(static_cast<int>(5e-3 / std::max(run(3), 1e-7)), 4, 10000);
  std::vector<double> reps;
  for (int r = 0; r < 7; r++) reps.push_back(run(iters));
  std::sort(reps.begin(), reps.end());
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return reps[reps.size() / 2];
}

// Median seconds of `reps` single calls of fn after one warm-up call: for calls long enough
// (>= ~10 ms, e.g. a whole training step) that one CUDA-event pair times each precisely.
inline double time_long_call(const std::function<void()>& fn, int reps = 5) {
  cudaEvent_t start, stop;
  cuda_ok(cudaEventCreate(&start), "cudaEventCreate");
  cuda_ok(cudaEventCreate(&stop), "cudaEventCreate");
  fn();
  std::vector<double> times;
  for (int r = 0; r < reps; r++) {
    cuda_ok(cudaEventRecord(start), "cudaEventRecord");
    fn();
    cuda_ok(cudaEventRecord(stop), "cudaEventRecord");
    cuda_ok(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float ms = 0.0f;
    cuda_ok(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    times.push_back(1e-3 * ms);
  }
  std::sort(times.begin(), times.end());
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return times[times.size() / 2];
}

// Dense peak rates (TFLOP/s) of the GPUs the suite targets, from NVIDIA's datasheets (SXM parts,
// without sparsity). The H200 has the H100's compute; it differs in memory (141 GB, 4.8 TB/s).
struct GpuPeak {
  const char* name;
  double fp32, tf32, bf16;
};
inline constexpr GpuPeak kPeaks[] = {
    {"H100", 66.9, 494.7, 989.4},
    {"H200", 66.9, 494.7, 989.4},
};
// The entry whose name the device name contains (e.g. "NVIDIA H200"), or null.
inline const GpuPeak* peak_of(const std::string& device_name) {
  for (const GpuPeak& p : kPeaks)
    if (device_name.find(p.name) != std::string::npos) return &p;
  return nullptr;
}

}  // namespace frugal::bench
