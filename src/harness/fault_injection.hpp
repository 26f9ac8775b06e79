#pragma once
// Fault injection for the tests ([debug] keys): on rank 0 only, a NaN training loss, a stop signal
// (SIGUSR1 or SIGTERM, debug.signal) or a SIGKILL at a chosen step. Each is off at its default of 0.
#include <cmath>
#include <csignal>
#include <cstdint>

#include "core/config.hpp"

namespace frugal {

struct FaultInjection {
  int64_t nan_at = 0, signal_at = 0, kill_at = 0;  // 1-based steps
  int signal = SIGUSR1;
  bool armed = false;                              // rank 0

  static FaultInjection from(const Config& cfg, int rank) {
    return {cfg.integer("debug.nan_at_step"), cfg.integer("debug.signal_at_step"), cfg.integer("debug.kill_at_step"),
            cfg.str("debug.signal") == "SIGTERM" ? SIGTERM : SIGUSR1, rank == 0};
  }
  // Right after step `step` computed its result: replace the loss, raise the signal.
  void after_step(int64_t step, double& loss) const {
    if (!armed) return;
    if (nan_at == step) loss = NAN;
    if (signal_at == step) std::raise(signal);
  }
  // At the end of step `step` (after its trace rows and checkpoint): die without cleaning up.
  void at_step_end(int64_t step) const {
    if (armed && kill_at == step) std::raise(SIGKILL);
  }
};

}  // namespace frugal
