#pragma once
// FLOPs the CPU kernels actually issued, counted where the work is issued: every BLAS GEMM adds
// 2 M N K and the attention kernels add 2 per multiply-add of their causal loops. Tests compare it
// with the FLOPs formulas the trace reports (gpt2_forward_flops). One relaxed atomic add per kernel
// call, nothing per element, so it is always on.
#include <atomic>
#include <cstdint>

namespace frugal::cpu {
inline std::atomic<int64_t>& issued_flops() {
  static std::atomic<int64_t> count{0};
  return count;
}
inline void count_flops(int64_t n) { issued_flops().fetch_add(n, std::memory_order_relaxed); }
}  // namespace frugal::cpu
