// All-reduce (fp32 sum, in place) through the instrumented Communicator against plain
// MPI_Allreduce on the same host buffer, over message sizes from 1 KiB to 1 GiB (x4 steps), printed
// as nccl-tests prints its tables (bench/allreduce_table.hpp: size, count, type, redop, then time,
// algbw and busbw of each, and the instrumentation's overhead; medians of alternating rounds).
// The same on GPU buffers over NCCL: bench/cuda/bench_allreduce_gpu.cpp.
//   mpirun -np 2 ./bench/bench_allreduce                   # 1 KiB .. 1 GiB
//   mpirun -np 2 ./bench/bench_allreduce --max=64M         # up to 64 MiB (suffixes K, M, G)
#include <mpi.h>

#include <algorithm>
#include <vector>

#include "allreduce_table.hpp"
#include "comm/communicator.hpp"

using namespace frugal;

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  size_t min_bytes = 0, max_bytes = 0;
  if (!bench::parse_sizes(argc, argv, "bench_allreduce", min_bytes, max_bytes)) {
    MPI_Finalize();
    return 2;
  }
  Communicator comm(make_mpi_backend(), {network_preset("datacenter"), network_preset("wan")});
  std::vector<float> buf(max_bytes / sizeof(float), 1.0f);
  {
    bench::AllreduceTable table(comm.size(), "plain MPI_Allreduce vs frugal's instrumented Communicator");
    for (size_t bytes = min_bytes; bytes <= max_bytes; bytes *= 4) {
      const size_t count = bytes / sizeof(float);
      const std::span<float> data(buf.data(), count);
      auto plain = [&](int reps) {
        return bench::seconds_per_call(reps, [&] {
          MPI_Allreduce(MPI_IN_PLACE, data.data(), static_cast<int>(count), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        });
      };
      auto instrumented = [&](int reps) {
        return bench::seconds_per_call(reps, [&] { comm.allreduce(data, ReduceOp::sum, "bench.allreduce"); }, &comm);
      };
      table.row(count, bench::time_size(plain, instrumented, [&] { std::fill(data.begin(), data.end(), 1.0f); }));
    }
  }
  MPI_Finalize();
  return 0;
}
