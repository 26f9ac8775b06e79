// All-reduce (fp32 sum, in place) on GPU buffers: frugal's instrumented Communicator over its NCCL
// back end (comm/nccl_backend.cpp) against raw ncclAllReduce + stream synchronise on the same
// buffer, 1 KiB to 1 GiB (x4 steps), in nccl-tests' table (bench/allreduce_table.hpp; medians of
// alternating rounds). Each rank takes its GPU as a run does (harness/placement). The instrumented
// calls wait for the GPU like the raw ones, so the overhead column is the Communicator's bookkeeping.
// One rank (the H200 node has one GPU) measures that overhead; busbw is 0 there, as in nccl-tests.
//   ./bench/bench_allreduce_gpu                 mpirun -np 8 ./bench/bench_allreduce_gpu --max=64M
#include <mpi.h>

#include <cstdio>
#include <vector>

#include "../allreduce_table.hpp"
#include "comm/communicator.hpp"
#include "core/error.hpp"
#include "harness/placement.hpp"
#include "kernels/cuda/kernels.hpp"

#ifdef FRUGAL_HAVE_NCCL
#include <cuda_runtime.h>
#include <nccl.h>
#endif

using namespace frugal;

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  size_t min_bytes = 0, max_bytes = 0;
  if (!bench::parse_sizes(argc, argv, "bench_allreduce_gpu", min_bytes, max_bytes)) {
    MPI_Finalize();
    return 2;
  }
#ifndef FRUGAL_HAVE_NCCL
  if (rank == 0) std::printf("bench_allreduce_gpu: built without NCCL, nothing to measure\n");
#else
  if (!cuda::device_available()) {
    if (rank == 0) std::printf("bench_allreduce_gpu: no CUDA device visible, nothing to measure\n");
    MPI_Finalize();
    return 0;
  }
  try {
    const Placement placement = place_rank("cuda", MPI_COMM_WORLD);  // this rank's GPU, made current
    Communicator comm(make_mpi_backend(), {network_preset("datacenter")});
    comm.set_device_backend(make_nccl_backend());
    // The raw side: its own NCCL communicator and stream, bootstrapped the same way.
    ncclUniqueId id;
    if (rank == 0) ncclGetUniqueId(&id);
    MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
    ncclComm_t raw;
    cudaStream_t stream;
    if (cudaStreamCreate(&stream) != cudaSuccess || ncclCommInitRank(&raw, size, id, rank) != ncclSuccess)
      fail("raw NCCL communicator: initialisation failed");
    const std::vector<float> ones(max_bytes / sizeof(float), 1.0f);
    cuda::DeviceBuffer buf(ones);
    {
      bench::AllreduceTable table(size, ("raw ncclAllReduce vs frugal's instrumented Communicator (NCCL), " +
                                         placement.where).c_str());
      for (size_t bytes = min_bytes; bytes <= max_bytes; bytes *= 4) {
        const size_t count = bytes / sizeof(float);
        const std::span<float> data(buf.data(), count);
        auto plain = [&](int reps) {
          return bench::seconds_per_call(reps, [&] {
            if (ncclAllReduce(data.data(), data.data(), count, ncclFloat32, ncclSum, raw, stream) != ncclSuccess ||
                cudaStreamSynchronize(stream) != cudaSuccess)
              fail("raw ncclAllReduce failed");
          });
        };
        auto instrumented = [&](int reps) {
          return bench::seconds_per_call(reps, [&] { comm.device_allreduce(data, ReduceOp::sum, "bench.allreduce"); },
                                         &comm);
        };
        table.row(count, bench::time_size(plain, instrumented, [&] { buf.upload(ones.data(), count); }));
      }
    }
    ncclCommDestroy(raw);
    cudaStreamDestroy(stream);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_allreduce_gpu: %s\n", e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
#endif
  MPI_Finalize();
  return 0;
}
