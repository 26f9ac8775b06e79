#pragma once
// What bench_allreduce (MPI, host buffers) and bench_allreduce_gpu (NCCL, device buffers) share: the
// size arguments, the timing of plain against instrumented calls, and the nccl-tests table.
// Plain and instrumented calls alternate in rounds (which goes first alternates too) so machine
// noise and drift hit both alike; each column is the median over rounds. algbw = bytes / time;
// busbw = algbw x busbw_factor (nccl-tests' factors, written once in comm/network_model.hpp).
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "comm/communicator.hpp"

namespace frugal::bench {

// "64M" -> 64 << 20; 0 on a malformed size.
inline size_t parse_size(const char* s) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s, &end, 10);
  if (end == s) return 0;
  const std::string unit(end);
  const size_t shift = unit.empty() ? 0 : unit == "K" ? 10 : unit == "M" ? 20 : unit == "G" ? 30 : 64;
  return shift == 64 ? 0 : size_t(v) << shift;
}

// --min=SIZE --max=SIZE (default 1 KiB .. 1 GiB). False (after a usage line on rank 0) on a bad one.
inline bool parse_sizes(int argc, char** argv, const char* program, size_t& min_bytes, size_t& max_bytes) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  min_bytes = size_t(1) << 10, max_bytes = size_t(1) << 30;
  for (int i = 1; i < argc; i++) {
    const bool is_min = std::strncmp(argv[i], "--min=", 6) == 0, is_max = std::strncmp(argv[i], "--max=", 6) == 0;
    const size_t v = (is_min || is_max) ? parse_size(argv[i] + 6) : 0;
    if (v < sizeof(float) || v > (size_t(1) << 32)) {  // MPI counts are ints: at most 2^30 floats here
      if (rank == 0) std::fprintf(stderr, "usage: %s [--min=1K] [--max=1G]   (bad argument '%s')\n", program, argv[i]);
      return false;
    }
    (is_min ? min_bytes : max_bytes) = v;
  }
  return true;
}

// Seconds per call over `reps` calls of call(), the ranks synchronised first. With a Communicator
// (the instrumented side), its per-call records are taken every 256 calls, as the runner does every
// step, so they never pile up.
template <class Call>
double seconds_per_call(int reps, Call&& call, Communicator* comm = nullptr) {
  MPI_Barrier(MPI_COMM_WORLD);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; i++) {
    call();
    if (comm && (i & 255) == 255) comm->take_records();
  }
  const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
  if (comm) comm->take_records();
  return t;
}

struct Row {
  double plain, instrumented;  // seconds per call, medians over rounds
};

// Times one size: plain(reps) and instrumented(reps) each return seconds per call over `reps` calls
// (they synchronise the ranks first); reset() refills the buffer between rounds (the sums double
// every call and would reach inf). Every rank uses rank 0's rep count so the collectives match up.
template <class Plain, class Instrumented, class Reset>
Row time_size(Plain&& plain, Instrumented&& instrumented, Reset&& reset) {
  // Warm-up, then enough calls for ~20 ms per round (at least 3).
  const double once = plain(2);
  int reps = std::clamp(static_cast<int>(0.02 / std::max(once, 1e-7)), 3, 20000);
  MPI_Bcast(&reps, 1, MPI_INT, 0, MPI_COMM_WORLD);
  constexpr int kRounds = 7;
  std::vector<double> p, q;
  for (int r = 0; r < kRounds; r++) {
    if (r % 2 == 0) {
      p.push_back(plain(reps));
      q.push_back(instrumented(reps));
    } else {
      q.push_back(instrumented(reps));
      p.push_back(plain(reps));
    }
    reset();
  }
  std::sort(p.begin(), p.end());
  std::sort(q.begin(), q.end());
  return {p[kRounds / 2], q[kRounds / 2]};
}

// The table, nccl-tests' columns: header, one row per size, footer with the 64 MiB overhead.
class AllreduceTable {
 public:
  AllreduceTable(int ranks, const char* title) : factor_(busbw_factor(Op::allreduce, ranks)), ranks_(ranks) {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    if (rank_ != 0) return;
    std::printf("# all-reduce, fp32 sum in place, %d ranks; %s\n", ranks, title);
    std::printf("# %10s %12s %6s %6s | %10s %8s %8s | %10s %8s %8s | %9s\n", "size(B)", "count", "type", "redop",
                "plain(us)", "algbw", "busbw", "instr(us)", "algbw", "busbw", "overhead");
  }
  void row(size_t count, const Row& t) {
    const double b = double(count * sizeof(float));
    if (count * sizeof(float) == size_t(64) << 20) overhead_64m_ = t.instrumented / t.plain - 1;
    if (rank_ == 0)
      std::printf("  %10zu %12zu %6s %6s | %10.2f %8.2f %8.2f | %10.2f %8.2f %8.2f | %+8.2f%%\n", count * sizeof(float),
                  count, "float", "sum", t.plain * 1e6, b / t.plain / 1e9, b / t.plain / 1e9 * factor_,
                  t.instrumented * 1e6, b / t.instrumented / 1e9, b / t.instrumented / 1e9 * factor_,
                  100 * (t.instrumented / t.plain - 1));
  }
  ~AllreduceTable() {
    if (rank_ != 0) return;
    std::printf("# algbw, busbw in GB/s (busbw = algbw x %.3f for %d ranks); time: median of 7 rounds\n", factor_,
                ranks_);
    if (overhead_64m_ != 0) std::printf("# instrumented vs plain at 64 MiB: %+.2f%%\n", 100 * overhead_64m_);
  }

 private:
  double factor_, overhead_64m_ = 0;
  int ranks_, rank_ = 0;
};

}  // namespace frugal::bench
