#pragma once
#include <chrono>

namespace frugal {

// Wall-clock seconds since construction (steady clock: immune to NTP steps).
struct Timer {
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  void reset() { start = std::chrono::steady_clock::now(); }
};

}  // namespace frugal
