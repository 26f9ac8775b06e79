#pragma once
// Where each rank computes: run.device = "cpu" (the default) or "cuda". On cuda every rank takes
// one GPU of its node by its local rank (the ranks sharing a node, MPI_Comm_split_type shared):
//   visible GPUs >= ranks on the node   rank i takes GPU i   (mpirun -np 4 on a 4-GPU node)
//   exactly one visible GPU             rank takes GPU 0     (Slurm --gpus-per-task=1, or
//                                                              CUDA_VISIBLE_DEVICES set per rank)
//   anything else                       an error naming the node, its ranks and GPUs
// One visible GPU and several ranks without per-task binding (mpirun -np 2 on a one-GPU machine)
// means the ranks share it: fine for the host-staged MPI all-reduce, not for NCCL, which will refuse
// duplicates by itself; the `devices` attribute shows the sharing (same bus id on two ranks).
// "Visible" is after CUDA_VISIBLE_DEVICES, which Slurm sets per task with --gpus-per-task. Asking for
// cuda where no GPU is usable (none visible, no driver, a build without CUDA) is a clear error,
// never a quiet CPU run. The trace records every rank's placement (attribute `devices`).
#include <mpi.h>

#include <string>

namespace frugal {

struct Placement {
  std::string device = "cpu";  // run.device
  int local_rank = 0, local_ranks = 1;
  int gpu = -1;                // index among the visible GPUs; -1 on the CPU
  std::string where;           // "host: cpu" or "host: cuda:0 NVIDIA H200 (bus 0000:19:00.0, driver 13.0, runtime 13.0)"
};

// This machine's name and this rank's place among the ranks sharing it (a collective over comm):
// what placement, the runner's default thread count and the trace's hosts attribute go by.
std::string host_name();
struct NodeRank {
  int rank = 0, size = 1;
};
NodeRank node_rank(MPI_Comm comm);

// The pure rule above: which visible GPU local rank `local_rank` of `local_ranks` takes out of
// `visible` (throws the placement error otherwise). `host` names the node in messages.
int gpu_for_local_rank(int local_rank, int local_ranks, int visible, const std::string& host);

// Places this rank (collective over comm: every rank calls it) and makes its GPU current.
Placement place_rank(const std::string& device, MPI_Comm comm);

// The error of every GPU entry point in a build without CUDA (placement refuses run.device = "cuda"
// there first; the device helpers of the methods say it again if reached).
[[noreturn]] void fail_without_cuda();

// model.dtype for this rank's GEMMs (kernels/cuda set_matmul_precision): fp32 anywhere; tf32 and
// bf16 only where the rank computes on a GPU (an error naming the key otherwise).
void set_compute_precision(const std::string& dtype, const Placement& placement);

}  // namespace frugal
