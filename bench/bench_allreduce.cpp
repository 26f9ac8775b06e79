// All-reduce (fp32 sum, in place) through the instrumented Communicator against plain
// MPI_Allreduce on the same buffer, over message sizes from 1 KiB to 1 GiB (x4 steps), printed as
// nccl-tests prints its tables: size, count, type, redop, then time, algbw and busbw of each, and
// the instrumentation's overhead. Plain and instrumented calls alternate in rounds (which goes
// first alternates too) so machine noise and drift hit both alike; each column is the median over
// rounds. algbw = bytes / time; busbw = algbw x 2 (n - 1) / n (nccl-tests' all-reduce factor,
// written once in comm/communicator.hpp).
//   mpirun -np 2 ./bench/bench_allreduce                   # 1 KiB .. 1 GiB
//   mpirun -np 2 ./bench/bench_allreduce --max=64M         # up to 64 MiB (suffixes K, M, G)
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "comm/communicator.hpp"

using namespace frugal;
using clk = std::chrono::steady_clock;

namespace {

// "64M" -> 64 << 20; 0 on a malformed size.
size_t parse_size(const char* s) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s, &end, 10);
  if (end == s) return 0;
  const std::string unit(end);
  const size_t shift = unit.empty() ? 0 : unit == "K" ? 10 : unit == "M" ? 20 : unit == "G" ? 30 : 64;
  return shift == 64 ? 0 : size_t(v) << shift;
}

struct Row {
  double plain, instrumented;  // seconds per call, medians over rounds
};

// Times one size: `rounds` rounds of `reps` calls each way. Every rank returns the same reps
// (rank 0's pick, broadcast) so the collectives match up.
Row time_size(Communicator& comm, std::vector<float>& buf, size_t count) {
  const std::span<float> data(buf.data(), count);
  auto plain_calls = [&](int reps) {
    MPI_Barrier(MPI_COMM_WORLD);
    const auto t0 = clk::now();
    for (int i = 0; i < reps; i++)
      MPI_Allreduce(MPI_IN_PLACE, data.data(), static_cast<int>(count), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    return std::chrono::duration<double>(clk::now() - t0).count() / reps;
  };
  auto instrumented_calls = [&](int reps) {
    MPI_Barrier(MPI_COMM_WORLD);
    const auto t0 = clk::now();
    for (int i = 0; i < reps; i++) {
      comm.allreduce(data, ReduceOp::sum, "bench.allreduce");
      if ((i & 255) == 255) comm.take_records();  // as the runner does every step
    }
    const double t = std::chrono::duration<double>(clk::now() - t0).count() / reps;
    comm.take_records();
    return t;
  };
  // Warm-up, then enough calls for ~20 ms per round (at least 3).
  const double once = plain_calls(2);
  int reps = std::clamp(static_cast<int>(0.02 / std::max(once, 1e-7)), 3, 20000);
  MPI_Bcast(&reps, 1, MPI_INT, 0, MPI_COMM_WORLD);
  const int rounds = 7;
  std::vector<double> p, q;
  for (int r = 0; r < rounds; r++) {
    if (r % 2 == 0) {
      p.push_back(plain_calls(reps));
      q.push_back(instrumented_calls(reps));
    } else {
      q.push_back(instrumented_calls(reps));
      p.push_back(plain_calls(reps));
    }
    // The sums double every call and reach inf within a round (inf adds as fast as finite
    // values); each round starts from 1 again.
    std::fill(data.begin(), data.end(), 1.0f);
  }
  std::sort(p.begin(), p.end());
  std::sort(q.begin(), q.end());
  return {p[rounds / 2], q[rounds / 2]};
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  size_t min_bytes = size_t(1) << 10, max_bytes = size_t(1) << 30;
  for (int i = 1; i < argc; i++) {
    const bool is_min = std::strncmp(argv[i], "--min=", 6) == 0, is_max = std::strncmp(argv[i], "--max=", 6) == 0;
    const size_t v = (is_min || is_max) ? parse_size(argv[i] + 6) : 0;
    if (v < sizeof(float) || v > (size_t(1) << 32)) {  // MPI counts are ints: at most 2^30 floats here
      if (rank == 0) std::fprintf(stderr, "usage: bench_allreduce [--min=1K] [--max=1G]   (bad argument '%s')\n", argv[i]);
      MPI_Finalize();
      return 2;
    }
    (is_min ? min_bytes : max_bytes) = v;
  }
  Communicator comm(make_mpi_backend(), {network_preset("datacenter"), network_preset("wan")});
  std::vector<float> buf(max_bytes / sizeof(float), 1.0f);
  const double factor = busbw_factor(Op::allreduce, size);
  if (rank == 0) {
    std::printf("# all-reduce, fp32 sum in place, %d ranks; plain MPI_Allreduce vs frugal's instrumented Communicator\n",
                size);
    std::printf("# %10s %12s %6s %6s | %10s %8s %8s | %10s %8s %8s | %9s\n", "size(B)", "count", "type", "redop",
                "plain(us)", "algbw", "busbw", "instr(us)", "algbw", "busbw", "overhead");
  }
  double overhead_64m = 0;
  for (size_t bytes = min_bytes; bytes <= max_bytes; bytes *= 4) {
    const size_t count = bytes / sizeof(float);
    const Row t = time_size(comm, buf, count);
    const double b = double(count * sizeof(float));
    if (bytes == size_t(64) << 20) overhead_64m = t.instrumented / t.plain - 1;
    if (rank == 0)
      std::printf("  %10zu %12zu %6s %6s | %10.2f %8.2f %8.2f | %10.2f %8.2f %8.2f | %+8.2f%%\n", bytes, count, "float",
                  "sum", t.plain * 1e6, b / t.plain / 1e9, b / t.plain / 1e9 * factor, t.instrumented * 1e6,
                  b / t.instrumented / 1e9, b / t.instrumented / 1e9 * factor, 100 * (t.instrumented / t.plain - 1));
  }
  if (rank == 0) {
    std::printf("# algbw, busbw in GB/s (busbw = algbw x %.3f for %d ranks); time: median of 7 rounds\n", factor, size);
    if (overhead_64m != 0) std::printf("# instrumented vs plain at 64 MiB: %+.2f%%\n", 100 * overhead_64m);
  }
  MPI_Finalize();
  return 0;
}
