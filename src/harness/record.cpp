#include "harness/record.hpp"

#include <cstdio>
#include <ctime>

#include "core/units.hpp"
#include "frugal_git_commit.h"  // generated at build time

namespace frugal {

namespace {
std::string utc_now() {
  char buf[32];
  const std::time_t t = std::time(nullptr);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}
}  // namespace

RunRecord::RunRecord(const Vocabulary& vocab, std::vector<Network> networks, int rank, int world_size, int64_t log_every)
    : vocab_(vocab), networks_(std::move(networks)), rank_(rank), world_size_(world_size), log_every_(log_every) {}

void RunRecord::open(const std::string& path, int64_t resume_step) {
  if (rank_ != 0) return;
  trace_ = std::make_unique<TraceWriter>(path, networks_, resume_step);
  // eval/ exists from the start, empty until the first evaluation.
  trace_->declare("eval", {{"step", int64_t{0}}, {vocab_.samples, int64_t{0}}, {vocab_.eval, 0.0}});
}

void RunRecord::begin(const RunIdentity& id, int64_t first_step, int64_t total_steps, bool resumed, double wall,
                      int64_t samples, int64_t bytes_sent) {
  log_wall_ = wall, log_samples_ = samples, log_bytes_ = bytes_sent;
  if (rank_ != 0) return;
  std::string nets;
  for (const auto& n : networks_) nets += (nets.empty() ? "" : ",") + n.name;
  TraceWriter& t = *trace_;
  t.set_attr("suite", std::string("frugal"));
  t.set_attr("version", std::string(FRUGAL_VERSION));
  t.set_attr("git_commit", std::string(FRUGAL_GIT_COMMIT));
  t.set_attr("method", id.method);
  t.set_attr("run_name", id.run_name);
  t.set_attr("label", id.label);
  t.set_attr("config", id.config_toml);
  t.set_attr("world_size", id.world_size);
  t.set_attr("seed", id.seed);
  t.set_attr("threads_per_rank", id.threads_per_rank);
  t.set_attr("hosts", id.hosts);
  t.set_attr("backend", id.backend);
  t.set_attr("device", id.device);
  t.set_attr("devices", id.devices);  // every rank's placement, rank order (harness/placement.hpp)
  t.set_attr("blas_core", id.blas_core);  // OpenBLAS kernels of rank 0 (core/blas.hpp)
  t.set_attr("n_params", id.n_params);
  t.set_attr("networks", nets);
  t.set_attr("sample_unit", std::string(vocab_.samples));
  t.set_attr("train_metric", std::string(vocab_.train));
  t.set_attr("eval_metric", std::string(vocab_.eval));
  t.set_attr("higher_is_better", int64_t{vocab_.higher_is_better});
  t.set_attr("train_higher_is_better", int64_t{vocab_.higher_is_better && !vocab_.train_lower_is_better});
  if (!resumed) t.set_attr("start_time", utc_now());
  t.set_attr("status", std::string("running"));
  t.set_attr("status_message", std::string(""));
  t.flush();
  const auto n = id.world_size, threads = id.threads_per_rank;
  std::printf("frugal: %s | method %s | %lld rank%s x %lld thread%s | %lld params | steps %lld -> %lld%s\n",
              id.run_name.c_str(), id.method.c_str(), static_cast<long long>(n), n > 1 ? "s" : "",
              static_cast<long long>(threads), threads > 1 ? "s" : "", static_cast<long long>(id.n_params),
              static_cast<long long>(first_step), static_cast<long long>(total_steps), resumed ? " (resumed)" : "");
  std::fflush(stdout);
}

void RunRecord::step(const StepRow& row, const CommTotals& run_totals, std::vector<CallRecord> calls,
                     int64_t total_steps) {
  if (rank_ != 0) return;
  Row r = {{"step", row.step},           {"wall_time", row.wall},    {"step_time", row.step_time},
           {vocab_.samples, row.samples}, {vocab_.train, row.train}, {"lr", row.lr},
           {"grad_norm", row.grad_norm},  {"flops", row.flops},      {"comm_bytes", row.comm.wire_bytes},
           {"comm_time", row.comm.time_s}};
  for (size_t i = 0; i < networks_.size(); i++) r.push_back({"net_time_" + networks_[i].name, row.comm.net_time_s[i]});
  for (const auto& [name, value] : row.metrics) r.push_back({name, value});
  trace_->append("steps", r);
  trace_->append_calls(calls, world_size_);
  if (log_every_ <= 0 || (row.step % log_every_ != 0 && row.step != total_steps)) return;
  const double dt = row.wall - log_wall_;
  std::printf("step %6lld/%lld | %s %.4f | lr %.2e | %8.0f %s | sent %s (total %s)", static_cast<long long>(row.step),
              static_cast<long long>(total_steps), vocab_.train, row.train, row.lr,
              dt > 0 ? double(row.samples - log_samples_) / dt : 0.0, vocab_.rate_unit,
              si(double(run_totals.wire_bytes - log_bytes_), "B").c_str(), si(double(run_totals.wire_bytes), "B").c_str());
  for (size_t i = 0; i < networks_.size(); i++)
    std::printf(" | %s %s", networks_[i].name.c_str(), seconds(run_totals.net_time_s[i]).c_str());
  std::printf("\n");
  std::fflush(stdout);
  log_wall_ = row.wall, log_samples_ = row.samples, log_bytes_ = run_totals.wire_bytes;
}

void RunRecord::eval(int64_t step, int64_t samples, double value, int64_t batches) {
  if (rank_ != 0) return;
  trace_->append("eval", {{"step", step}, {vocab_.samples, samples}, {vocab_.eval, value}});
  std::printf("eval  step %6lld | %s %.6g over %lld %s\n", static_cast<long long>(step), vocab_.eval, value,
              static_cast<long long>(batches), vocab_.eval_over);
  std::fflush(stdout);
}

void RunRecord::rank_totals(const RankTotals& totals) {
  if (rank_ != 0) return;
  bytes_per_rank_ = 0;
  for (auto b : totals.bytes_sent) bytes_per_rank_ += double(b) / double(totals.bytes_sent.size());
  trace_->set_rank_totals(totals);
}

void RunRecord::flush() {
  if (trace_) trace_->flush();
}

void RunRecord::finish(const std::string& status, const std::string& message, const RunSummary& s) {
  if (!trace_) return;
  TraceWriter& t = *trace_;
  const std::string samples = vocab_.samples;
  t.set_attr("final_step", s.final_step);
  t.set_attr(samples + "_total", s.samples);
  t.set_attr(std::string("final_train_") + vocab_.train, s.final_train);
  t.set_attr(std::string("final_eval_") + vocab_.eval, s.final_eval);
  t.set_attr("wall_time_s", s.wall);
  t.set_attr(samples + "_per_s", s.wall > 0 ? double(s.samples) / s.wall : 0.0);
  t.set_attr("flops_total", s.flops);
  t.set_attr("comm_bytes_per_rank", bytes_per_rank_);
  t.set_attr("comm_time_s", s.comm.time_s);
  for (size_t i = 0; i < networks_.size(); i++) t.set_attr("net_time_s_" + networks_[i].name, s.comm.net_time_s[i]);
  t.set_attr("status", status);
  t.set_attr("status_message", message);
  t.flush();
}

void RunRecord::fail(const std::string& message) {
  if (!trace_) return;
  trace_->set_attr("status", std::string("failed"));
  trace_->set_attr("status_message", message);
  trace_->flush();
}

}  // namespace frugal
