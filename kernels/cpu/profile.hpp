#pragma once
// An opt-in wall-clock breakdown of the CPU kernels: each kernel function opens a KernelTimer for
// its kind, which adds the call's seconds to a process-wide table when profiling is on and costs
// one branch when it is off (the default). bench/bench_train_step turns it on to print the share
// of each kernel in the training step, so the next bottleneck shows without a profiler. Kernels
// are called from one thread (they parallelise inside), so the table needs no locking.
#include <chrono>
#include <cstdint>

namespace frugal::cpu {

enum class Kernel : int {
  encoder,
  layernorm,
  matmul_forward,
  matmul_backward,
  attention_forward,
  attention_backward,
  gelu,
  residual,
  softmax_crossentropy,
  zero,  // clearing gradient buffers
  count
};

const char* kernel_name(Kernel k);

struct KernelProfile {
  bool enabled = false;
  double seconds[int(Kernel::count)] = {};
  int64_t calls[int(Kernel::count)] = {};
  void reset() { *this = KernelProfile{enabled}; }
};
KernelProfile& kernel_profile();

class KernelTimer {
 public:
  explicit KernelTimer(Kernel k) : kind_(k), on_(kernel_profile().enabled) {
    if (on_) start_ = std::chrono::steady_clock::now();
  }
  ~KernelTimer() {
    if (!on_) return;
    KernelProfile& p = kernel_profile();
    p.seconds[int(kind_)] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    p.calls[int(kind_)]++;
  }
  KernelTimer(const KernelTimer&) = delete;
  KernelTimer& operator=(const KernelTimer&) = delete;

 private:
  Kernel kind_;
  bool on_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace frugal::cpu
