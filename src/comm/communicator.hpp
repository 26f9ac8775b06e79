#pragma once
// Every byte that crosses ranks goes through a Communicator: typed collectives on host buffers,
// each call timed and recorded (operation, tag, payload and wire bytes, duration) so the trace can
// show algbw, busbw and the modelled time on any network (comm/network_model.hpp). The transport is
// a Backend (MPI on host buffers; NCCL on device buffers), so instrumentation is written once.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "comm/network_model.hpp"

namespace frugal {

enum class DType : uint8_t { f32, f64, i32, i64, u8 };
enum class ReduceOp : uint8_t { sum, max, min };

template <typename T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, float>) return DType::f32;
  else if constexpr (std::is_same_v<T, double>) return DType::f64;
  else if constexpr (std::is_same_v<T, int32_t>) return DType::i32;
  else if constexpr (std::is_same_v<T, int64_t>) return DType::i64;
  else {
    static_assert(std::is_same_v<T, uint8_t>, "unsupported element type");
    return DType::u8;
  }
}
size_t dtype_size(DType t);

// The transport. Counts are in elements; all-gather(v) blocks are placed in rank order.
struct Backend {
  virtual ~Backend() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string name() const = 0;
  virtual void allreduce(void* buf, size_t count, DType t, ReduceOp op) = 0;
  virtual void allgather(const void* send, void* recv, size_t count, DType t) = 0;
  virtual void allgatherv(const void* send, size_t count, void* recv, const std::vector<size_t>& counts, DType t) = 0;
  virtual void reduce_scatter(const void* send, void* recv, size_t count, DType t, ReduceOp op) = 0;
  virtual void broadcast(void* buf, size_t count, DType t, int root) = 0;
  virtual void barrier() = 0;
  virtual void sendrecv(const void* send, size_t send_count, int dest, void* recv, size_t recv_count, int source,
                        DType t) = 0;
};

// MPI_COMM_WORLD (MPI must be initialised by the caller).
std::unique_ptr<Backend> make_mpi_backend();
// MPI_COMM_SELF: a one-rank communicator (reference computations in multi-rank tests).
std::unique_ptr<Backend> make_mpi_self_backend();
// NCCL over the ranks of MPI_COMM_WORLD, on DEVICE buffers of each rank's current GPU (comm/
// nccl_backend.cpp: bootstrapped over MPI, every call complete on the GPU when it returns). In a
// build without NCCL it fails with a clear message.
std::unique_ptr<Backend> make_nccl_backend();

struct CallRecord {
  int64_t step = 0;
  Op op = Op::barrier;
  char tag[32] = {};
  uint8_t control = 0;        // harness bookkeeping, not the method's traffic
  int64_t payload_bytes = 0;  // nccl-tests "size"
  int64_t wire_bytes = 0;     // what this rank sent
  double time_s = 0;
};

struct CommTotals {
  int64_t calls = 0, wire_bytes = 0, payload_bytes = 0;
  double time_s = 0;
  std::vector<double> net_time_s;  // per network, same order as networks()
};

class Communicator {
 public:
  Communicator(std::unique_ptr<Backend> backend, std::vector<Network> networks);

  int rank() const { return rank_; }
  int size() const { return size_; }
  const std::string& backend_name() const { return backend_name_; }
  const std::vector<Network>& networks() const { return networks_; }

  // In place, every rank ends with the reduction over all ranks.
  template <typename T>
  void allreduce(std::span<T> buf, ReduceOp op, std::string_view tag) {
    call(Op::allreduce, tag, false, int64_t(buf.size_bytes()), [&] { backend_->allreduce(buf.data(), buf.size(), dtype_of<T>(), op); });
  }
  // recv holds size() blocks of send.size() elements, in rank order.
  template <typename T>
  void allgather(std::span<const T> send, std::span<T> recv, std::string_view tag) {
    check_allgather(send.size(), recv.size());
    call(Op::allgather, tag, false, int64_t(recv.size_bytes()), [&] { backend_->allgather(send.data(), recv.data(), send.size(), dtype_of<T>()); });
  }
  // Variable blocks: counts[r] elements from rank r, concatenated in rank order into recv (resized).
  // The counts are exchanged first (a small control all-gather).
  template <typename T>
  void allgatherv(std::span<const T> send, std::vector<T>& recv, std::vector<size_t>& counts, std::string_view tag) {
    counts = exchange_counts(send.size(), tag);
    size_t total = 0;
    for (size_t c : counts) total += c;
    recv.resize(total);
    call_v(tag, counts, sizeof(T), [&] { backend_->allgatherv(send.data(), send.size(), recv.data(), counts, dtype_of<T>()); });
  }
  // send holds size() blocks of recv.size(); rank r receives the reduction of block r.
  template <typename T>
  void reduce_scatter(std::span<const T> send, std::span<T> recv, ReduceOp op, std::string_view tag) {
    check_allgather(recv.size(), send.size());
    call(Op::reducescatter, tag, false, int64_t(send.size_bytes()), [&] { backend_->reduce_scatter(send.data(), recv.data(), recv.size(), dtype_of<T>(), op); });
  }
  template <typename T>
  void broadcast(std::span<T> buf, int root, std::string_view tag) {
    call(Op::broadcast, tag, false, int64_t(buf.size_bytes()), [&] { backend_->broadcast(buf.data(), buf.size(), dtype_of<T>(), root); });
  }
  void barrier(std::string_view tag) {
    call(Op::barrier, tag, false, 0, [&] { backend_->barrier(); });
  }
  template <typename T>
  void sendrecv(std::span<const T> send, int dest, std::span<T> recv, int source, std::string_view tag) {
    call(Op::sendrecv, tag, false, int64_t(send.size_bytes()), [&] { backend_->sendrecv(send.data(), send.size(), dest, recv.data(), recv.size(), source, dtype_of<T>()); });
  }
  // Device buffers (run.device = "cuda"): a second back end for them (NCCL), set once by the runner
  // when run.device_comm = "nccl"; its calls are recorded like every other. Without one, methods
  // stage device data through the host and use the calls above.
  void set_device_backend(std::unique_ptr<Backend> backend);
  bool has_device_backend() const { return device_backend_ != nullptr; }
  // In place on a DEVICE buffer through the device back end.
  template <typename T>
  void device_allreduce(std::span<T> buf, ReduceOp op, std::string_view tag) {
    Backend& b = device_backend();
    call(Op::allreduce, tag, false, int64_t(buf.size_bytes()), [&] { b.allreduce(buf.data(), buf.size(), dtype_of<T>(), op); });
  }

  // Harness bookkeeping (metric reduction, stop agreement): recorded, flagged, kept out of totals.
  template <typename T>
  void control_allreduce(std::span<T> buf, ReduceOp op, std::string_view tag) {
    call(Op::allreduce, tag, true, int64_t(buf.size_bytes()), [&] { backend_->allreduce(buf.data(), buf.size(), dtype_of<T>(), op); });
  }
  template <typename T>
  void control_allgather(std::span<const T> send, std::span<T> recv, std::string_view tag) {
    check_allgather(send.size(), recv.size());
    call(Op::allgather, tag, true, int64_t(recv.size_bytes()), [&] { backend_->allgather(send.data(), recv.data(), send.size(), dtype_of<T>()); });
  }
  void control_barrier(std::string_view tag) {
    call(Op::barrier, tag, true, 0, [&] { backend_->barrier(); });
  }

  // The step that subsequent records belong to.
  void set_step(int64_t step) { step_ = step; }
  // Method traffic since the previous call (per-step totals for the trace).
  CommTotals take_step_totals();
  // Method traffic since construction (or since the totals were restored on resume).
  const CommTotals& run_totals() const { return run_; }
  void restore_run_totals(const CommTotals& t) { run_ = t; }
  // Records since the previous call (rank-local; rank 0 writes its own to the trace).
  std::vector<CallRecord> take_records();
  // Keep per-call records at all (the trace's comm/calls); totals are always kept.
  void set_record_calls(bool on) { record_calls_ = on; }

 private:
  template <typename F>
  void call(Op op, std::string_view tag, bool control, int64_t payload, F&& f);
  template <typename F>
  void call_v(std::string_view tag, const std::vector<size_t>& counts, size_t elem, F&& f);
  void record(Op op, std::string_view tag, bool control, int64_t payload, int64_t wire, double seconds);
  void check_allgather(size_t block, size_t total) const;
  std::vector<size_t> exchange_counts(size_t mine, std::string_view tag);
  Backend& device_backend();

  std::unique_ptr<Backend> backend_, device_backend_;
  std::vector<Network> networks_;
  int rank_ = 0, size_ = 1;
  std::string backend_name_;
  int64_t step_ = 0;
  bool record_calls_ = true;
  std::vector<CallRecord> records_;
  CommTotals step_totals_, run_;
};

// The mean over the ranks, in place: one all-reduce (sum) and a 1/size scale (gradient averaging).
void allreduce_mean(Communicator& comm, std::span<float> x, std::string_view tag);

}  // namespace frugal

#include "comm/communicator_impl.hpp"
