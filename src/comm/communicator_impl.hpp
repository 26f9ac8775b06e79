#pragma once
// Template bodies of Communicator (kept out of the interface header for readability).
#include <chrono>

namespace frugal {

template <typename F>
void Communicator::call(Op op, std::string_view tag, bool control, int64_t payload, F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  record(op, tag, control, payload, wire_bytes(op, payload, size_, rank_), dt);
}

template <typename F>
void Communicator::call_v(std::string_view tag, const std::vector<size_t>& counts, size_t elem, F&& f) {
  int64_t total = 0;
  for (size_t c : counts) total += static_cast<int64_t>(c * elem);
  // Ring all-gatherv: a rank forwards every block except its successor's.
  const int64_t wire = size_ > 1 ? total - static_cast<int64_t>(counts[(rank_ + 1) % size_] * elem) : 0;
  const auto t0 = std::chrono::steady_clock::now();
  f();
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  record(Op::allgatherv, tag, false, total, wire, dt);
}

}  // namespace frugal
