#include "comm/communicator.hpp"

#include <algorithm>
#include <cstring>

#include "core/error.hpp"

namespace frugal {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: case DType::i32: return 4;
    case DType::f64: case DType::i64: return 8;
    case DType::u8: return 1;
  }
  return 1;
}

Communicator::Communicator(std::unique_ptr<Backend> backend, std::vector<Network> networks)
    : backend_(std::move(backend)), networks_(std::move(networks)) {
  rank_ = backend_->rank();
  size_ = backend_->size();
  backend_name_ = backend_->name();
  step_totals_.net_time_s.assign(networks_.size(), 0.0);
  run_.net_time_s.assign(networks_.size(), 0.0);
  records_.reserve(1024);
}

void Communicator::set_device_backend(std::unique_ptr<Backend> backend) {
  FRUGAL_CHECK(backend && backend->size() == size_ && backend->rank() == rank_,
               "internal: the device back end must span the same ranks in the same order");
  backend_name_ += '+';  // e.g. "mpi+nccl": what the trace's backend attribute says
  backend_name_ += backend->name();
  device_backend_ = std::move(backend);
}

Backend& Communicator::device_backend() {
  FRUGAL_CHECK(device_backend_, "internal: a device collective without a device back end (run.device_comm)");
  return *device_backend_;
}

void Communicator::record(Op op, std::string_view tag, bool control, int64_t payload, int64_t wire, double seconds) {
  if (record_calls_) {
    CallRecord r;
    r.step = step_;
    r.op = op;
    std::memcpy(r.tag, tag.data(), std::min(tag.size(), sizeof r.tag - 1));
    r.control = control ? 1 : 0;
    r.payload_bytes = payload;
    r.wire_bytes = wire;
    r.time_s = seconds;
    records_.push_back(r);
  }
  if (control) return;
  for (CommTotals* t : {&step_totals_, &run_}) {
    t->calls++;
    t->wire_bytes += wire;
    t->payload_bytes += payload;
    t->time_s += seconds;
    for (size_t i = 0; i < networks_.size(); i++) t->net_time_s[i] += modelled_time(op, payload, size_, networks_[i]);
  }
}

CommTotals Communicator::take_step_totals() {
  CommTotals t = step_totals_;
  step_totals_ = CommTotals{};
  step_totals_.net_time_s.assign(networks_.size(), 0.0);
  return t;
}

std::vector<CallRecord> Communicator::take_records() {
  std::vector<CallRecord> out;
  out.swap(records_);
  records_.reserve(1024);
  return out;
}

void Communicator::check_allgather(size_t block, size_t total) const {
  FRUGAL_CHECK(block * static_cast<size_t>(size_) == total, "internal: all-gather buffer of ", total,
               " elements does not hold ", size_, " blocks of ", block);
}

std::vector<size_t> Communicator::exchange_counts(size_t mine, std::string_view tag) {
  std::vector<int64_t> all(static_cast<size_t>(size_));
  const int64_t m = static_cast<int64_t>(mine);
  // Method traffic, not bookkeeping: a real deployment must send the block sizes too.
  const std::string t = std::string(tag) + ".counts";
  allgather(std::span<const int64_t>(&m, 1), std::span<int64_t>(all), t);
  return std::vector<size_t>(all.begin(), all.end());
}

void allreduce_mean(Communicator& comm, std::span<float> x, std::string_view tag) {
  comm.allreduce(x, ReduceOp::sum, tag);
  const float inv = 1.0f / static_cast<float>(comm.size());
  float* p = x.data();
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < x.size(); i++) p[i] *= inv;
}

}  // namespace frugal
