#include "methods/runner.hpp"

#include <cblas.h>
#include <mpi.h>
#include <omp.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>

#include "comm/communicator.hpp"
#include "frugal_git_commit.h"  // generated at build time
#include "core/error.hpp"
#include "core/timer.hpp"
#include "methods/method.hpp"
#include "trace/trace.hpp"

namespace fs = std::filesystem;

namespace frugal {

void add_run_keys(Schema& s, const std::vector<std::string>& methods) {
  s.add("run.method", std::string("ddp"), "training method", {}, {}, methods);
  s.add("run.name", std::string("run"), "run name: output goes to <out_dir>/<name>/");
  s.add("run.label", std::string(""), "row label in study tables (default: the name); seeds of one configuration share it");
  s.add("run.out_dir", std::string("runs"), "folder that holds the run folders");
  s.add("run.seed", int64_t{1}, "seed of initialisation and every method's randomness", 0, 9.0e18);
  s.add("run.steps", int64_t{100}, "optimiser steps (0 = evaluation only)", 0, 1e12);
  s.add("run.max_samples", int64_t{0},
        "stop after the step at which the run has processed this many tokens / environment steps (0 = no limit)", 0, 9.0e18);
  s.add("run.overwrite", false, "replace an existing run folder's trace and checkpoints");
  s.add("run.threads", int64_t{0}, "OpenMP/BLAS threads per rank (0 = OMP_NUM_THREADS, else cores / ranks on the node)", 0, 4096);
  s.add("run.log_every", int64_t{10}, "rank 0 prints a progress line every this many steps (0 = never)", 0, 1e12);
  s.add("eval.every", int64_t{50}, "evaluate every this many steps (0 = only at the end)", 0, 1e12);
  s.add("eval.batches", int64_t{8}, "held-out batches (RL: episodes) per evaluation (0 = no evaluation)", 0, 1e12);
  s.add("eval.batch_size", int64_t{0}, "sequences per evaluation batch (0 = data.batch_size)", 0, 1 << 24);
  s.add("trace.path", std::string(""), "trace file (default <out_dir>/<name>/trace.h5)");
  s.add("trace.flush_every", int64_t{10}, "write buffered rows to disk every this many steps", 1, 1e12);
  s.add("trace.comm_calls", true, "record every collective in comm/calls (totals are always kept)");
  s.add("checkpoint.every", int64_t{0}, "checkpoint every this many steps (0 = only on a stop signal)", 0, 1e12);
  s.add("checkpoint.keep", int64_t{2}, "checkpoints kept on disk (older ones are deleted)", 1, 1e6);
  s.add("checkpoint.resume", std::string("no"), "auto = continue from the run folder's latest checkpoint if there is one",
        {}, {}, {"no", "auto"});
  s.add("debug.nan_at_step", int64_t{0}, "fault injection: rank 0 reports a NaN loss at this step (tests)", 0, 1e12);
  s.add("debug.signal_at_step", int64_t{0}, "fault injection: rank 0 raises SIGUSR1 after this step (tests)", 0, 1e12);
  s.add("debug.kill_at_step", int64_t{0}, "fault injection: rank 0 SIGKILLs itself after this step (tests)", 0, 1e12);
}

namespace {

volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int sig) { g_stop_signal = sig; }

std::string utc_now() {
  char buf[32];
  const std::time_t t = std::time(nullptr);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000 && u < 4) b /= 1000, u++;
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", b, units[u]);
  return buf;
}

// Threads per rank: explicit, else OMP_NUM_THREADS, else the node's cores shared by its ranks.
int choose_threads(const Config& cfg) {
  if (cfg.integer("run.threads") > 0) return static_cast<int>(cfg.integer("run.threads"));
  if (const char* env = std::getenv("OMP_NUM_THREADS"); env && std::atoi(env) > 0) return std::atoi(env);
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  int local = 1;
  MPI_Comm_size(node, &local);
  MPI_Comm_free(&node);
  const int cores = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  return std::max(1, cores / local);
}

std::string gather_hosts(Communicator& comm) {
  char mine[64] = {};
  gethostname(mine, sizeof mine - 1);
  std::vector<uint8_t> all(64 * static_cast<size_t>(comm.size()));
  comm.control_allgather(std::span<const uint8_t>(reinterpret_cast<uint8_t*>(mine), 64), std::span<uint8_t>(all), "runner.hosts");
  std::string hosts;
  for (int r = 0; r < comm.size(); r++) {
    if (r) hosts.push_back(',');
    hosts.append(reinterpret_cast<const char*>(&all[64 * size_t(r)]));
  }
  return hosts;
}

struct Paths {
  fs::path dir, trace, checkpoints;
};

std::string checkpoint_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step_%08lld", static_cast<long long>(step));
  return buf;
}
std::string rank_file(int rank) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "rank_%05d.state", rank);
  return buf;
}

// Everything the runner itself carries across a resume.
struct Progress {
  int64_t step = 0, tokens = 0;
  double flops = 0, wall = 0, compute_time = 0, last_eval = NAN, last_loss = NAN;
};

class Run {
 public:
  Run(const Config& cfg, Communicator& comm, const Dataset& data, const Paths& paths, int threads)
      : cfg_(cfg), comm_(comm), data_(data), paths_(paths), threads_(threads) {}

  // Setup that may fail differently on different ranks: the caller agrees on the outcome.
  void setup() {
    total_steps_ = cfg_.integer("run.steps");
    names_ = domain_names(find_method(cfg_.str("run.method")).domain);
    ctx_ = std::make_unique<RunContext>(RunContext{cfg_, comm_, data_, total_steps_, static_cast<uint64_t>(cfg_.integer("run.seed"))});
    method_ = find_method(cfg_.str("run.method")).make(*ctx_);
    comm_.set_record_calls(cfg_.boolean("trace.comm_calls"));
    const fs::path latest = paths_.checkpoints / "latest";
    int64_t resume_step = -1;
    if (cfg_.str("checkpoint.resume") == "auto" && fs::exists(latest)) {
      std::ifstream in(latest);
      std::string name;
      in >> name;
      const fs::path file = paths_.checkpoints / name / rank_file(comm_.rank());
      StateReader state(file.string());
      FRUGAL_CHECK(state.get_string("runner.method") == cfg_.str("run.method"), "checkpoint '", file.string(),
                   "' was written by method '", state.get_string("runner.method"), "', not '", cfg_.str("run.method"), "'");
      FRUGAL_CHECK(state.get_i64("runner.world_size") == comm_.size(), "checkpoint '", file.string(), "' was written by ",
                   state.get_i64("runner.world_size"), " ranks; this run has ", comm_.size(),
                   " (resume with the same rank count)");
      method_->load(state);
      progress_.step = state.get_i64("runner.step");
      progress_.tokens = state.get_i64("runner.tokens");
      progress_.flops = state.get_f64("runner.flops");
      progress_.wall = state.get_f64("runner.wall");
      progress_.compute_time = state.get_f64("runner.compute_time");
      progress_.last_eval = state.get_f64("runner.last_eval");
      progress_.last_loss = state.get_f64("runner.last_loss");
      CommTotals t;
      t.calls = state.get_i64("runner.comm_calls");
      t.wire_bytes = state.get_i64("runner.comm_wire_bytes");
      t.payload_bytes = state.get_i64("runner.comm_payload_bytes");
      t.time_s = state.get_f64("runner.comm_time");
      t.net_time_s.resize(comm_.networks().size());
      state.get("runner.comm_net_time", t.net_time_s);
      comm_.restore_run_totals(t);
      resume_step = progress_.step;
      resumed_ = true;
    }
    if (comm_.rank() == 0) {
      const bool reopen = resumed_ && fs::exists(paths_.trace);
      trace_ = std::make_unique<TraceWriter>(paths_.trace.string(), comm_.networks(), reopen ? resume_step : -1);
    }
  }

  void write_header(const std::string& hosts) {
    if (!trace_) return;
    std::string nets;
    for (const auto& n : comm_.networks()) nets += (nets.empty() ? "" : ",") + n.name;
    const std::string& label = cfg_.str("run.label");
    trace_->set_attr("suite", std::string("frugal"));
    trace_->set_attr("version", std::string(FRUGAL_VERSION));
    trace_->set_attr("git_commit", std::string(FRUGAL_GIT_COMMIT));
    trace_->set_attr("method", cfg_.str("run.method"));
    trace_->set_attr("run_name", cfg_.str("run.name"));
    trace_->set_attr("label", label.empty() ? cfg_.str("run.name") : label);
    trace_->set_attr("config", cfg_.to_toml());
    trace_->set_attr("world_size", int64_t{comm_.size()});
    trace_->set_attr("seed", cfg_.integer("run.seed"));
    trace_->set_attr("threads_per_rank", int64_t{threads_});
    trace_->set_attr("hosts", hosts);
    trace_->set_attr("backend", comm_.backend_name());
    trace_->set_attr("device", std::string("cpu"));
    trace_->set_attr("n_params", method_->num_params());
    trace_->set_attr("networks", nets);
    trace_->set_attr("sample_unit", std::string(names_.samples));
    trace_->set_attr("train_metric", std::string(names_.train));
    trace_->set_attr("eval_metric", std::string(names_.eval));
    if (!resumed_) trace_->set_attr("start_time", utc_now());
    trace_->set_attr("status", std::string("running"));
    trace_->set_attr("status_message", std::string(""));
    trace_->flush();
  }

  // The training loop. Returns 0 (finished or stopped).
  int loop() {
    const int64_t log_every = cfg_.integer("run.log_every"), eval_every = cfg_.integer("eval.every");
    const int64_t eval_batches = cfg_.integer("eval.batches"), flush_every = cfg_.integer("trace.flush_every");
    const int64_t ckpt_every = cfg_.integer("checkpoint.every");
    const int64_t nan_at = cfg_.integer("debug.nan_at_step"), signal_at = cfg_.integer("debug.signal_at_step");
    const int64_t kill_at = cfg_.integer("debug.kill_at_step");
    const int64_t max_samples = cfg_.integer("run.max_samples");
    const auto& nets = comm_.networks();
    const int n = comm_.size();
    Timer clock;
    const double wall0 = progress_.wall;
    double log_time = 0;
    int64_t log_tokens = progress_.tokens;
    int64_t log_bytes = comm_.run_totals().wire_bytes;
    if (comm_.rank() == 0)
      std::printf("frugal: %s | method %s | %d rank%s x %d thread%s | %lld params | steps %lld -> %lld%s\n",
                  cfg_.str("run.name").c_str(), cfg_.str("run.method").c_str(), n, n > 1 ? "s" : "", threads_,
                  threads_ > 1 ? "s" : "", static_cast<long long>(method_->num_params()),
                  static_cast<long long>(progress_.step), static_cast<long long>(total_steps_),
                  resumed_ ? " (resumed)" : "");

    for (int64_t step = progress_.step; step < total_steps_; step++) {
      comm_.set_step(step + 1);
      Timer st;
      StepResult r = method_->step(step);
      if (nan_at == step + 1 && comm_.rank() == 0) r.loss = NAN;
      if (signal_at == step + 1 && comm_.rank() == 0) std::raise(SIGUSR1);
      const CommTotals ct = comm_.take_step_totals();
      const double step_time = st.seconds();
      progress_.compute_time += step_time - ct.time_s;
      // One small control all-reduce carries the metrics and the two flags every rank must agree on.
      double m[5] = {r.loss, double(r.tokens), r.flops, std::isfinite(r.loss) ? 0.0 : 1.0, g_stop_signal ? 1.0 : 0.0};
      comm_.control_allreduce(std::span<double>(m, 5), ReduceOp::sum, "runner.metrics");
      FRUGAL_CHECK(m[3] == 0, "training loss is not finite at step ", step + 1, " (on ", m[3],
                   " rank(s)): the run diverged; lower optim.lr or check the data");
      progress_.step = step + 1;
      progress_.tokens += static_cast<int64_t>(m[1]);
      progress_.flops += m[2];
      progress_.last_loss = m[0] / n;
      const double wall = wall0 + clock.seconds();
      if (trace_) {
        Row row = {{"step", step + 1}, {"wall_time", wall}, {"step_time", step_time}, {names_.samples, progress_.tokens},
                   {names_.train, progress_.last_loss}, {"lr", r.lr}, {"grad_norm", r.grad_norm}, {"flops", m[2]},
                   {"comm_bytes", ct.wire_bytes}, {"comm_time", ct.time_s}};
        for (size_t i = 0; i < nets.size(); i++) row.push_back({"net_time_" + nets[i].name, ct.net_time_s[i]});
        for (const auto& [name, value] : r.metrics) row.push_back({name, value});
        trace_->append("steps", row);
        trace_->append_calls(comm_.take_records(), n);
      } else {
        comm_.take_records();
      }
      if (comm_.rank() == 0 && log_every > 0 && ((step + 1) % log_every == 0 || step + 1 == total_steps_)) {
        const double dt = wall - log_time;
        const auto& tot = comm_.run_totals();
        const bool rl = std::string(names_.samples) == "env_steps";
        std::printf("step %6lld/%lld | %s %.4f | lr %.2e | %8.0f %s | sent %s (total %s)",
                    static_cast<long long>(step + 1), static_cast<long long>(total_steps_), names_.train,
                    progress_.last_loss, r.lr, dt > 0 ? (progress_.tokens - log_tokens) / dt : 0.0,
                    rl ? "env steps/s" : "tok/s", human_bytes(double(tot.wire_bytes - log_bytes)).c_str(),
                    human_bytes(double(tot.wire_bytes)).c_str());
        for (size_t i = 0; i < nets.size(); i++) std::printf(" | %s %.3gs", nets[i].name.c_str(), tot.net_time_s[i]);
        std::printf("\n");
        std::fflush(stdout);
        log_time = wall, log_tokens = progress_.tokens, log_bytes = tot.wire_bytes;
      }
      // The sample budget ends the run at this step as if it were the last one.
      const bool last = step + 1 == total_steps_ || (max_samples > 0 && progress_.tokens >= max_samples);
      if (eval_batches > 0 && ((eval_every > 0 && (step + 1) % eval_every == 0) || last)) evaluate(eval_batches);
      const bool stop = m[4] > 0;
      if (stop || last || (step + 1) % flush_every == 0) flush();
      if (stop || (ckpt_every > 0 && (step + 1) % ckpt_every == 0)) save_checkpoint(wall0 + clock.seconds());
      if (stop) {
        if (comm_.rank() == 0) std::printf("frugal: stop signal: checkpointed at step %lld, exiting\n", static_cast<long long>(step + 1));
        finish("stopped", "stop signal received; checkpointed at step " + std::to_string(step + 1), wall0 + clock.seconds());
        return 0;
      }
      if (kill_at == step + 1 && comm_.rank() == 0) std::raise(SIGKILL);
      if (last) break;
    }
    if (total_steps_ == 0 || progress_.step < total_steps_ || total_steps_ == progress_.step) {
      if (eval_batches > 0 && (total_steps_ == 0 || std::isnan(progress_.last_eval))) evaluate(eval_batches);
    }
    finish("finished", "", wall0 + clock.seconds());
    return 0;
  }

  void fail_trace(const std::string& message) {
    if (!trace_) return;
    trace_->set_attr("status", std::string("failed"));
    trace_->set_attr("status_message", message);
    trace_->flush();
  }

 private:
  void evaluate(int64_t batches) {
    progress_.last_eval = method_->evaluate(batches);
    if (trace_) trace_->append("eval", {{"step", progress_.step}, {names_.samples, progress_.tokens}, {names_.eval, progress_.last_eval}});
    if (comm_.rank() == 0 && std::string(names_.eval) == "return") {
      std::printf("eval  step %6lld | return %.3f, mean over %lld episodes of the greedy policy\n",
                  static_cast<long long>(progress_.step), progress_.last_eval, static_cast<long long>(batches));
      std::fflush(stdout);
    } else if (comm_.rank() == 0) {
      const int64_t bs = cfg_.integer("eval.batch_size") > 0 ? cfg_.integer("eval.batch_size") : cfg_.integer("data.batch_size");
      std::printf("eval  step %6lld | loss %.6f over %lld batches of %lld x %lld tokens\n",
                  static_cast<long long>(progress_.step), progress_.last_eval, static_cast<long long>(batches),
                  static_cast<long long>(bs), static_cast<long long>(cfg_.integer("data.seq_len")));
      std::fflush(stdout);
    }
  }

  void flush() {
    // Per-rank totals (control traffic): compute time, comm time, bytes, calls.
    const auto& tot = comm_.run_totals();
    double mine[4] = {progress_.compute_time, tot.time_s, double(tot.wire_bytes), double(tot.calls)};
    std::vector<double> all(4 * static_cast<size_t>(comm_.size()));
    comm_.control_allgather(std::span<const double>(mine, 4), std::span<double>(all), "runner.rank_totals");
    comm_.take_records();  // bookkeeping calls of the flush itself are not part of any step
    if (!trace_) return;
    RankTotals rt;
    for (int r = 0; r < comm_.size(); r++) {
      rt.compute_time.push_back(all[4 * size_t(r)]);
      rt.comm_time.push_back(all[4 * size_t(r) + 1]);
      rt.bytes_sent.push_back(static_cast<int64_t>(all[4 * size_t(r) + 2]));
      rt.calls.push_back(static_cast<int64_t>(all[4 * size_t(r) + 3]));
    }
    rank_bytes_mean_ = 0;
    for (auto b : rt.bytes_sent) rank_bytes_mean_ += double(b) / comm_.size();
    trace_->set_rank_totals(rt);
    trace_->flush();
  }

  void save_checkpoint(double wall) {
    const std::string name = checkpoint_name(progress_.step);
    const fs::path dir = paths_.checkpoints / name;
    fs::create_directories(dir);
    StateWriter w;
    w.put_string("runner.method", cfg_.str("run.method"));
    w.put_i64("runner.world_size", comm_.size());
    w.put_i64("runner.step", progress_.step);
    w.put_i64("runner.tokens", progress_.tokens);
    w.put_f64("runner.flops", progress_.flops);
    w.put_f64("runner.wall", wall);
    w.put_f64("runner.compute_time", progress_.compute_time);
    w.put_f64("runner.last_eval", progress_.last_eval);
    w.put_f64("runner.last_loss", progress_.last_loss);
    const auto& t = comm_.run_totals();
    w.put_i64("runner.comm_calls", t.calls);
    w.put_i64("runner.comm_wire_bytes", t.wire_bytes);
    w.put_i64("runner.comm_payload_bytes", t.payload_bytes);
    w.put_f64("runner.comm_time", t.time_s);
    w.put("runner.comm_net_time", t.net_time_s);
    method_->save(w);
    w.save((dir / rank_file(comm_.rank())).string());
    comm_.control_barrier("checkpoint.written");  // every rank's file is complete before `latest` moves
    comm_.take_records();
    if (comm_.rank() != 0) return;
    const fs::path tmp = paths_.checkpoints / "latest.tmp";
    std::ofstream(tmp) << name << "\n";
    fs::rename(tmp, paths_.checkpoints / "latest");
    // Keep the newest `checkpoint.keep` step folders.
    std::vector<fs::path> old;
    for (const auto& e : fs::directory_iterator(paths_.checkpoints))
      if (e.is_directory() && e.path().filename().string().rfind("step_", 0) == 0) old.push_back(e.path());
    std::sort(old.begin(), old.end());
    const auto keep = static_cast<size_t>(cfg_.integer("checkpoint.keep"));
    for (size_t i = 0; i + keep < old.size(); i++) fs::remove_all(old[i]);
  }

  void finish(const std::string& status, const std::string& message, double wall) {
    if (!trace_) return;
    const auto& t = comm_.run_totals();
    trace_->set_attr("final_step", progress_.step);
    const std::string samples = names_.samples;
    trace_->set_attr(samples + "_total", progress_.tokens);
    trace_->set_attr(std::string("final_train_") + names_.train, progress_.last_loss);
    trace_->set_attr(std::string("final_eval_") + names_.eval, progress_.last_eval);
    trace_->set_attr("wall_time_s", wall);
    trace_->set_attr(samples + "_per_s", wall > 0 ? double(progress_.tokens) / wall : 0.0);
    trace_->set_attr("flops_total", progress_.flops);
    trace_->set_attr("comm_bytes_per_rank", rank_bytes_mean_);
    trace_->set_attr("comm_time_s", t.time_s);
    for (size_t i = 0; i < comm_.networks().size(); i++)
      trace_->set_attr("net_time_s_" + comm_.networks()[i].name, t.net_time_s[i]);
    trace_->set_attr("status", status);
    trace_->set_attr("status_message", message);
    trace_->flush();
  }

  const Config& cfg_;
  Communicator& comm_;
  const Dataset& data_;
  Paths paths_;
  int threads_;
  int64_t total_steps_ = 0;
  std::unique_ptr<RunContext> ctx_;
  std::unique_ptr<Method> method_;
  std::unique_ptr<TraceWriter> trace_;
  Progress progress_;
  bool resumed_ = false;
  DomainNames names_ = domain_names(Domain::language);
  double rank_bytes_mean_ = 0;
};

// Every rank reports whether its part succeeded; on any failure every rank learns it, the failing
// rank's message is printed (by the lowest failing rank), and all return the same verdict.
bool agree_ok(const std::string& error, int rank, int size) {
  int bad = error.empty() ? size : rank;  // lowest failing rank wins
  int first = size;
  MPI_Allreduce(&bad, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (first < size && rank == first) {
    std::fprintf(stderr, "frugal: error: %s\n", error.c_str());
    std::fflush(stderr);
  }
  return first == size;
}

}  // namespace

int run_experiment(const std::string& config_path, const std::vector<std::string>& overrides) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);

  // Phase 1: configuration, data, method, resume state, trace file. Failures here can differ
  // between ranks (a missing per-rank checkpoint), so the ranks agree before going on.
  std::string error;
  Config cfg;
  Paths paths;
  Dataset data;
  std::unique_ptr<Communicator> comm;
  std::unique_ptr<Run> run;
  int threads = 1;
  try {
    cfg = resolve_config(suite_schema(), config_path, overrides);
    threads = choose_threads(cfg);
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    paths.dir = fs::path(cfg.str("run.out_dir")) / cfg.str("run.name");
    paths.trace = cfg.str("trace.path").empty() ? paths.dir / "trace.h5" : fs::path(cfg.str("trace.path"));
    paths.checkpoints = paths.dir / "checkpoints";
    const bool resuming = cfg.str("checkpoint.resume") == "auto" && fs::exists(paths.checkpoints / "latest");
    if (rank == 0 && !resuming && fs::exists(paths.trace)) {
      FRUGAL_CHECK(cfg.boolean("run.overwrite"), "run folder '", paths.dir.string(),
                   "' already holds a trace; pass --run.overwrite=true to replace it or --checkpoint.resume=auto to continue it");
      fs::remove_all(paths.checkpoints);  // stale checkpoints must not be resumed into a new run
    }
    if (rank == 0) {
      fs::create_directories(paths.dir);
      fs::create_directories(paths.trace.parent_path().empty() ? fs::path(".") : paths.trace.parent_path());
    }
    MPI_Barrier(MPI_COMM_WORLD);  // run folder exists before other ranks look at it
    if (find_method(cfg.str("run.method")).domain == Domain::language) data = load_dataset(cfg);
    comm = std::make_unique<Communicator>(make_mpi_backend(), networks_from(cfg));
    run = std::make_unique<Run>(cfg, *comm, data, paths, threads);
    run->setup();
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (!agree_ok(error, rank, size)) return 2;

  g_stop_signal = 0;  // a signal belongs to the run it arrived in
  std::signal(SIGUSR1, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  // Phase 2: training. A non-finite loss is detected by all ranks together (clean exit 2); any
  // other error on one rank leaves the others inside a collective, so the job is aborted.
  try {
    run->write_header(gather_hosts(*comm));
    return run->loop();
  } catch (const std::exception& e) {
    const std::string msg = e.what();
    if (rank == 0 || size == 1) {
      std::fprintf(stderr, "frugal: error: %s\n", msg.c_str());
      std::fflush(stderr);
    }
    run->fail_trace(msg);
    if (size == 1 || msg.find("not finite") != std::string::npos) return 2;
    std::fprintf(stderr, "frugal: error on rank %d: %s; aborting the MPI job\n", rank, msg.c_str());
    MPI_Abort(MPI_COMM_WORLD, 2);
    return 2;
  }
}

}  // namespace frugal
