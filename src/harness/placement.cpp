#include "harness/placement.hpp"

#include <unistd.h>

#include <cstdlib>
#include <string>

#include "core/error.hpp"
#ifdef FRUGAL_HAVE_CUDA
#include "kernels/cuda/kernels.hpp"
#endif

namespace frugal {

namespace {

std::string visible_devices_env() {
  const char* v = std::getenv("CUDA_VISIBLE_DEVICES");
  return v ? std::string("CUDA_VISIBLE_DEVICES=\"") + v + "\"" : "CUDA_VISIBLE_DEVICES unset";
}

#ifdef FRUGAL_HAVE_CUDA
std::string version(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }
#endif

}  // namespace

std::string host_name() {
  char name[256] = {};
  gethostname(name, sizeof name - 1);
  return name;
}

NodeRank node_rank(MPI_Comm comm) {
  MPI_Comm node;
  MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  NodeRank r;
  MPI_Comm_rank(node, &r.rank);
  MPI_Comm_size(node, &r.size);
  MPI_Comm_free(&node);
  return r;
}

int gpu_for_local_rank(int local_rank, int local_ranks, int visible, const std::string& host) {
  FRUGAL_CHECK(visible > 0, "run.device = \"cuda\": no CUDA device is visible on ", host, " (", visible_devices_env(),
               "; is the NVIDIA driver loaded, and did the job ask for GPUs, e.g. Slurm's --gpus-per-task=1?)");
  if (visible >= local_ranks) return local_rank;
  FRUGAL_CHECK(visible == 1, "run.device = \"cuda\": ", local_ranks, " ranks on ", host, " but ", visible,
               " visible GPUs (", visible_devices_env(), "): run at most one rank per GPU, or give each rank its own ",
               "GPU (Slurm --gpus-per-task=1 sets CUDA_VISIBLE_DEVICES per task)");
  return 0;
}

Placement place_rank(const std::string& device, MPI_Comm comm) {
  Placement p;
  p.device = device;
  const std::string host = host_name();
  const NodeRank local = node_rank(comm);
  p.local_rank = local.rank;
  p.local_ranks = local.size;
  if (device == "cpu") {
    p.where = host + ": cpu";
    return p;
  }
  FRUGAL_CHECK(device == "cuda", "run.device must be \"cpu\" or \"cuda\", not \"", device, "\"");
#ifdef FRUGAL_HAVE_CUDA
  p.gpu = gpu_for_local_rank(p.local_rank, p.local_ranks, cuda::device_count(), host);
  const cuda::DeviceProperties d = cuda::use_device(p.gpu);
  p.where = host + ": cuda:" + std::to_string(p.gpu) + " " + d.name + " (bus " + d.pci_bus_id + ", driver " +
            version(d.driver_version) + ", runtime " + version(d.runtime_version) + ")";
  return p;
#else
  fail_without_cuda();
#endif
}

void fail_without_cuda() {
  fail("run.device = \"cuda\": this frugal was built without CUDA (no nvcc when it was configured); ",
       "install the CUDA toolkit and rebuild, or use run.device = \"cpu\"");
}

void set_compute_precision(const std::string& dtype, const Placement& placement) {
  FRUGAL_CHECK(dtype == "fp32" || placement.device == "cuda", "model.dtype = \"", dtype,
               "\" sets the precision of GPU GEMMs: it needs run.device = \"cuda\" (the CPU computes in fp32)");
#ifdef FRUGAL_HAVE_CUDA
  if (placement.device != "cuda") return;
  cuda::set_matmul_precision(dtype == "bf16"   ? cuda::MatmulPrecision::bf16
                             : dtype == "tf32" ? cuda::MatmulPrecision::tf32
                                               : cuda::MatmulPrecision::fp32);
#endif
}

}  // namespace frugal
