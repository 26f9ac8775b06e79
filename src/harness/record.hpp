#pragma once
// The run record: everything a run reports, in the method's vocabulary (harness/vocabulary.hpp) -
// the trace's header attributes, one steps/ row per step, one eval/ row per evaluation, the
// per-rank totals, the summary attributes at the end, and rank 0's console lines. Every rank holds
// one; only rank 0's has a trace and prints. The trace's layout is src/trace/SCHEMA.md.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "comm/communicator.hpp"
#include "harness/vocabulary.hpp"
#include "trace/trace.hpp"

namespace frugal {

// Who ran what, where: the header attributes.
struct RunIdentity {
  std::string method, run_name, label, config_toml, hosts, backend, device = "cpu", devices, blas_core;
  int64_t world_size = 1, seed = 0, threads_per_rank = 1, n_params = 0;
};

// One step, already reduced over the ranks.
struct StepRow {
  int64_t step = 0;         // 1-based
  double wall = 0, step_time = 0;
  int64_t samples = 0;      // cumulative, all ranks
  double train = 0;         // train metric, mean over ranks
  double lr = 0, grad_norm = 0, flops = 0;
  CommTotals comm;          // this step's method traffic (rank 0)
  std::vector<std::pair<std::string, double>> metrics;  // the method's own columns
};

// The summary written when the run ends.
struct RunSummary {
  int64_t final_step = 0, samples = 0;
  double final_train = 0, final_eval = 0, wall = 0, flops = 0;
  CommTotals comm;  // run totals (rank 0)
};

class RunRecord {
 public:
  RunRecord(const Vocabulary& vocab, std::vector<Network> networks, int rank, int world_size, int64_t log_every);

  // Rank 0: create the trace, or reopen it and drop the rows after resume_step (>= 0).
  void open(const std::string& path, int64_t resume_step);
  // Header attributes (status "running") and the start line.
  // wall, samples and bytes_sent: where a resumed run stands (the first progress line's rates).
  void begin(const RunIdentity& id, int64_t first_step, int64_t total_steps, bool resumed, double wall, int64_t samples,
             int64_t bytes_sent);
  // A steps/ row, its collectives' records, and every log_every steps the progress line.
  void step(const StepRow& row, const CommTotals& run_totals, std::vector<CallRecord> calls, int64_t total_steps);
  // An eval/ row and its console line (`batches` in the vocabulary's eval_over unit).
  void eval(int64_t step, int64_t samples, double value, int64_t batches);
  void rank_totals(const RankTotals& totals);
  // Buffered rows to disk.
  void flush();
  void finish(const std::string& status, const std::string& message, const RunSummary& summary);
  void fail(const std::string& message);

 private:
  const Vocabulary& vocab_;
  std::vector<Network> networks_;
  int rank_ = 0, world_size_ = 1;
  int64_t log_every_ = 0;
  std::unique_ptr<TraceWriter> trace_;
  double bytes_per_rank_ = 0;  // mean over ranks of the last rank totals
  // Rates of the progress line: since the previous line.
  double log_wall_ = 0;
  int64_t log_samples_ = 0, log_bytes_ = 0;
};

}  // namespace frugal
