// All-reduce of 1 MiB through the instrumented Communicator against plain MPI_Allreduce on the
// same buffer, interleaved in the same run (so machine noise hits both alike). Prints the
// overhead ratio. Run under MPI:
//   mpirun -np 2 ./bench/bench_allreduce
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "comm/communicator.hpp"

using namespace frugal;
using clk = std::chrono::steady_clock;

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const size_t count = (1 << 20) / sizeof(float);  // 1 MiB
  const int reps = argc > 1 ? std::atoi(argv[1]) : 2000, rounds = 10;
  std::vector<float> buf(count, 1.0f);
  Communicator comm(make_mpi_backend(), {network_preset("datacenter"), network_preset("wan")});
  std::vector<double> plain_t, instr_t;
  auto time_plain = [&] {
    MPI_Barrier(MPI_COMM_WORLD);
    const auto t0 = clk::now();
    for (int i = 0; i < reps; i++)
      MPI_Allreduce(MPI_IN_PLACE, buf.data(), static_cast<int>(count), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    return std::chrono::duration<double>(clk::now() - t0).count() / reps;
  };
  auto time_instrumented = [&] {
    MPI_Barrier(MPI_COMM_WORLD);
    const auto t0 = clk::now();
    for (int i = 0; i < reps; i++) {
      comm.allreduce(std::span<float>(buf), ReduceOp::sum, "bench.allreduce");
      if ((i & 255) == 255) comm.take_records();  // as the runner does every step
    }
    const double t = std::chrono::duration<double>(clk::now() - t0).count() / reps;
    comm.take_records();
    return t;
  };
  for (int round = 0; round < rounds; round++) {
    // Alternate which goes first, so warm-up and drift do not favour either.
    if (round % 2 == 0) {
      plain_t.push_back(time_plain());
      instr_t.push_back(time_instrumented());
    } else {
      instr_t.push_back(time_instrumented());
      plain_t.push_back(time_plain());
    }
    std::fill(buf.begin(), buf.end(), 1.0f);  // keep values finite
  }
  // Medians over rounds: robust to a stray slow round on a shared machine.
  std::sort(plain_t.begin(), plain_t.end());
  std::sort(instr_t.begin(), instr_t.end());
  const double plain = plain_t[rounds / 2], instr = instr_t[rounds / 2];
  if (rank == 0) {
    const double bytes = double(count * sizeof(float));
    std::printf("all-reduce 1 MiB, %d ranks, %d x %d calls\n", size, rounds, reps);
    std::printf("  plain MPI_Allreduce   %8.2f us  algbw %6.2f GB/s  busbw %6.2f GB/s\n", plain * 1e6, bytes / plain / 1e9,
                bytes / plain / 1e9 * busbw_factor(Op::allreduce, size));
    std::printf("  instrumented          %8.2f us  algbw %6.2f GB/s  busbw %6.2f GB/s\n", instr * 1e6, bytes / instr / 1e9,
                bytes / instr / 1e9 * busbw_factor(Op::allreduce, size));
    std::printf("  overhead: %+.2f%% (instrumented / plain = %.4f)\n", 100 * (instr / plain - 1), instr / plain);
  }
  MPI_Finalize();
  return 0;
}
