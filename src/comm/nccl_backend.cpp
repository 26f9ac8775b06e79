// NCCL transport on device buffers (CUDA builds that found NCCL), one communicator over the ranks
// of MPI_COMM_WORLD, bootstrapped over MPI: rank 0 makes the unique id, MPI broadcasts it, every
// rank joins with its MPI rank on its current GPU (placement chose it). Each call is enqueued on the
// backend's stream and waited for before it returns, so the Communicator's timer around the call
// measures the collective with its GPU work completed (what nccl-tests reports as time), and the
// caller may use the buffer at once. Without NCCL, make_nccl_backend says so.
#include "comm/communicator.hpp"
#include "core/error.hpp"

#ifdef FRUGAL_HAVE_NCCL
#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>

#include <cstdint>

namespace frugal {

namespace {

void check_nccl(ncclResult_t r, const char* what) {
  if (r != ncclSuccess) fail(what, " failed: ", ncclGetErrorString(r), " (", ncclGetLastError(nullptr), ")");
}
void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail(what, " failed: ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ")");
}

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::f32: return ncclFloat32;
    case DType::f64: return ncclFloat64;
    case DType::i32: return ncclInt32;
    case DType::i64: return ncclInt64;
    case DType::u8: return ncclUint8;
  }
  return ncclUint8;
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return ncclSum;
    case ReduceOp::max: return ncclMax;
    case ReduceOp::min: return ncclMin;
  }
  return ncclSum;
}

struct NcclBackend final : Backend {
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  int rank_ = 0, size_ = 1;
  void* barrier_word_ = nullptr;  // one device float for barrier()

  NcclBackend() {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    ncclUniqueId id;
    if (rank_ == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
    MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
    // A blocking stream: it waits for the kernels queued before on the legacy default stream (where
    // frugal's kernels run), so a collective never reads a gradient still being written.
    check_cuda(cudaStreamCreate(&stream_), "cudaStreamCreate");
    check_nccl(ncclCommInitRank(&comm_, size_, id, rank_), "ncclCommInitRank");
    check_cuda(cudaMalloc(&barrier_word_, sizeof(float)), "cudaMalloc");
  }
  ~NcclBackend() override {
    if (barrier_word_) cudaFree(barrier_word_);
    if (comm_) ncclCommDestroy(comm_);
    if (stream_) cudaStreamDestroy(stream_);
  }
  NcclBackend(const NcclBackend&) = delete;
  NcclBackend& operator=(const NcclBackend&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "nccl"; }

  // Every call ends here: its GPU work done before the Communicator stops the clock.
  void wait(ncclResult_t enqueued, const char* what) {
    check_nccl(enqueued, what);
    check_cuda(cudaStreamSynchronize(stream_), what);
  }

  void allreduce(void* buf, size_t count, DType t, ReduceOp op) override {
    wait(ncclAllReduce(buf, buf, count, nccl_type(t), nccl_op(op), comm_, stream_), "ncclAllReduce");
  }
  void allgather(const void* send, void* recv, size_t count, DType t) override {
    wait(ncclAllGather(send, recv, count, nccl_type(t), comm_, stream_), "ncclAllGather");
  }
  // NCCL has no all-gatherv: one broadcast per rank of its block, grouped into one launch.
  void allgatherv(const void* send, size_t count, void* recv, const std::vector<size_t>& counts, DType t) override {
    FRUGAL_CHECK(counts.size() == size_t(size_) && counts[size_t(rank_)] == count, "internal: allgatherv counts");
    const size_t elem = dtype_size(t);
    check_nccl(ncclGroupStart(), "ncclGroupStart");
    size_t offset = 0;
    for (int r = 0; r < size_; r++) {
      char* block = static_cast<char*>(recv) + offset * elem;
      check_nccl(ncclBroadcast(r == rank_ ? send : block, block, counts[size_t(r)], nccl_type(t), r, comm_, stream_),
                 "ncclBroadcast");
      offset += counts[size_t(r)];
    }
    wait(ncclGroupEnd(), "ncclGroupEnd (allgatherv)");
  }
  void reduce_scatter(const void* send, void* recv, size_t count, DType t, ReduceOp op) override {
    wait(ncclReduceScatter(send, recv, count, nccl_type(t), nccl_op(op), comm_, stream_), "ncclReduceScatter");
  }
  void broadcast(void* buf, size_t count, DType t, int root) override {
    wait(ncclBroadcast(buf, buf, count, nccl_type(t), root, comm_, stream_), "ncclBroadcast");
  }
  void barrier() override {
    wait(ncclAllReduce(barrier_word_, barrier_word_, 1, ncclFloat32, ncclSum, comm_, stream_), "barrier");
  }
  void sendrecv(const void* send, size_t send_count, int dest, void* recv, size_t recv_count, int source,
                DType t) override {
    check_nccl(ncclGroupStart(), "ncclGroupStart");
    check_nccl(ncclSend(send, send_count, nccl_type(t), dest, comm_, stream_), "ncclSend");
    check_nccl(ncclRecv(recv, recv_count, nccl_type(t), source, comm_, stream_), "ncclRecv");
    wait(ncclGroupEnd(), "ncclGroupEnd (sendrecv)");
  }
};

}  // namespace

std::unique_ptr<Backend> make_nccl_backend() { return std::make_unique<NcclBackend>(); }

}  // namespace frugal

#else  // no NCCL in this build

namespace frugal {

std::unique_ptr<Backend> make_nccl_backend() {
  fail("the NCCL back end: this frugal was built without NCCL (CUDA and nccl.h / libnccl were not both found "
       "when it was configured)");
}

}  // namespace frugal

#endif
