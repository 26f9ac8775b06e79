// MPI transport on MPI_COMM_WORLD, host buffers.
#include <mpi.h>
#include <unistd.h>

#include <climits>

#include "comm/communicator.hpp"
#include "core/error.hpp"

namespace frugal {

namespace {

MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::f32: return MPI_FLOAT;
    case DType::f64: return MPI_DOUBLE;
    case DType::i32: return MPI_INT32_T;
    case DType::i64: return MPI_INT64_T;
    case DType::u8: return MPI_UINT8_T;
  }
  return MPI_BYTE;
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return MPI_SUM;
    case ReduceOp::max: return MPI_MAX;
    case ReduceOp::min: return MPI_MIN;
  }
  return MPI_SUM;
}

void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    fail(what, " failed: ", std::string(msg, static_cast<size_t>(len)));
  }
}

int as_int(size_t n, const char* what) {
  FRUGAL_CHECK(n <= static_cast<size_t>(INT_MAX), what, ": ", n, " elements exceed MPI's int count");
  return static_cast<int>(n);
}

struct MpiBackend final : Backend {
  MPI_Comm comm_ = MPI_COMM_WORLD;
  int rank_ = 0, size_ = 1;
  explicit MpiBackend(MPI_Comm comm) : comm_(comm) {
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);  // errors become frugal::Error, not silent aborts
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "mpi"; }

  void allreduce(void* buf, size_t count, DType t, ReduceOp op) override {
    // Split counts beyond INT_MAX (a 10B-parameter gradient) into several calls.
    auto* p = static_cast<char*>(buf);
    while (count > 0) {
      const size_t n = std::min(count, static_cast<size_t>(INT_MAX));
      check(MPI_Allreduce(MPI_IN_PLACE, p, static_cast<int>(n), mpi_type(t), mpi_op(op), comm_), "MPI_Allreduce");
      p += n * dtype_size(t);
      count -= n;
    }
  }
  void allgather(const void* send, void* recv, size_t count, DType t) override {
    const int n = as_int(count, "MPI_Allgather");
    check(MPI_Allgather(send, n, mpi_type(t), recv, n, mpi_type(t), comm_), "MPI_Allgather");
  }
  void allgatherv(const void* send, size_t count, void* recv, const std::vector<size_t>& counts, DType t) override {
    std::vector<int> c(counts.size()), displ(counts.size());
    size_t off = 0;
    for (size_t i = 0; i < counts.size(); i++) {
      c[i] = as_int(counts[i], "MPI_Allgatherv");
      displ[i] = as_int(off, "MPI_Allgatherv");
      off += counts[i];
    }
    check(MPI_Allgatherv(send, as_int(count, "MPI_Allgatherv"), mpi_type(t), recv, c.data(), displ.data(), mpi_type(t),
                         comm_), "MPI_Allgatherv");
  }
  void reduce_scatter(const void* send, void* recv, size_t count, DType t, ReduceOp op) override {
    check(MPI_Reduce_scatter_block(send, recv, as_int(count, "MPI_Reduce_scatter_block"), mpi_type(t), mpi_op(op),
                                   comm_), "MPI_Reduce_scatter_block");
  }
  void broadcast(void* buf, size_t count, DType t, int root) override {
    check(MPI_Bcast(buf, as_int(count, "MPI_Bcast"), mpi_type(t), root, comm_), "MPI_Bcast");
  }
  void barrier() override { check(MPI_Barrier(comm_), "MPI_Barrier"); }
  void sendrecv(const void* send, size_t send_count, int dest, void* recv, size_t recv_count, int source,
                DType t) override {
    check(MPI_Sendrecv(send, as_int(send_count, "MPI_Sendrecv"), mpi_type(t), dest, 0, recv,
                       as_int(recv_count, "MPI_Sendrecv"), mpi_type(t), source, 0, comm_, MPI_STATUS_IGNORE),
          "MPI_Sendrecv");
  }
};

}  // namespace

std::unique_ptr<Backend> make_mpi_backend() {
  int initialised = 0;
  MPI_Initialized(&initialised);
  FRUGAL_CHECK(initialised, "internal: MPI must be initialised before creating the MPI backend");
  return std::make_unique<MpiBackend>(MPI_COMM_WORLD);
}

std::unique_ptr<Backend> make_mpi_self_backend() { return std::make_unique<MpiBackend>(MPI_COMM_SELF); }

}  // namespace frugal
