// The runner: one experiment from configuration to finished trace. The loop is one readable
// column - step, reduce the metrics, record, evaluate, flush, checkpoint, stop - and each of those
// is delegated to its owner: the method (harness/method.hpp), the run record (harness/record.hpp),
// the checkpointer (harness/checkpointer.hpp) and the test hooks (harness/fault_injection.hpp).
#include "harness/runner.hpp"

#include <cblas.h>
#include <mpi.h>
#include <omp.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "comm/communicator.hpp"
#include "comm/network_model.hpp"
#include "core/blas.hpp"
#include "core/error.hpp"
#include "core/timer.hpp"
#include "harness/checkpointer.hpp"
#include "harness/fault_injection.hpp"
#include "harness/method.hpp"
#include "harness/placement.hpp"
#include "harness/record.hpp"
#include "harness/run_folder.hpp"
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
  s.add("run.device", std::string("cpu"),
        "where each rank computes: cpu, or cuda (one GPU per rank by its rank on the node; harness/placement.hpp)", {}, {},
        {"cpu", "cuda"});
  s.add("run.device_comm", std::string("host"),
        "how GPU buffers cross ranks: host (staged through host memory, MPI) or nccl (NCCL on the GPUs; "
        "the gradient all-reduces of ddp, sft and grpo with full fine-tuning - the other methods exchange on the host)",
        {}, {}, {"host", "nccl"});
  s.add("run.threads", int64_t{0}, "OpenMP/BLAS threads per rank (0 = OMP_NUM_THREADS, else cores / ranks on the node)", 0, 4096);
  s.add("run.log_every", int64_t{10}, "rank 0 prints a progress line every this many steps (0 = never)", 0, 1e12);
  s.add("eval.every", int64_t{50}, "evaluate every this many steps (0 = only at the end)", 0, 1e12);
  s.add("eval.batches", int64_t{8}, "held-out batches (RL: episodes) per evaluation (0 = no evaluation)", 0, 1e12);
  s.add("eval.at_start", false, "also evaluate before the first step (eval/ row at step 0: the starting point)");
  s.add("eval.batch_size", int64_t{0}, "sequences per evaluation batch (0 = data.batch_size)", 0, 1 << 24);
  s.add("trace.path", std::string(""), "trace file (default <out_dir>/<name>/trace.h5)");
  s.add("trace.flush_every", int64_t{10}, "write buffered rows to disk every this many steps", 1, 1e12);
  s.add("trace.comm_calls", true, "record every collective in comm/calls (totals are always kept)");
  s.add("checkpoint.every", int64_t{0}, "checkpoint every this many steps (0 = only on a stop signal)", 0, 1e12);
  s.add("checkpoint.keep", int64_t{2}, "checkpoints kept on disk (older ones are deleted)", 1, 1e6);
  s.add("checkpoint.resume", std::string("no"), "auto = continue from the run folder's latest checkpoint if there is one",
        {}, {}, {"no", "auto"});
  s.add("debug.nan_at_step", int64_t{0}, "fault injection: rank 0 reports a NaN loss at this step (tests)", 0, 1e12);
  s.add("debug.signal_at_step", int64_t{0}, "fault injection: rank 0 raises debug.signal after this step (tests)", 0, 1e12);
  s.add("debug.signal", std::string("SIGUSR1"), "the signal debug.signal_at_step raises", {}, {}, {"SIGUSR1", "SIGTERM"});
  s.add("debug.kill_at_step", int64_t{0}, "fault injection: rank 0 SIGKILLs itself after this step (tests)", 0, 1e12);
}

namespace {

volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int sig) { g_stop_signal = sig; }

// Threads per rank: explicit, else OMP_NUM_THREADS, else the node's cores shared by its ranks.
int choose_threads(const Config& cfg) {
  if (cfg.integer("run.threads") > 0) return static_cast<int>(cfg.integer("run.threads"));
  if (const char* env = std::getenv("OMP_NUM_THREADS"); env && std::atoi(env) > 0) return std::atoi(env);
  const int cores = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  return std::max(1, cores / node_rank(MPI_COMM_WORLD).size);
}

// Every rank's string (at most width - 1 bytes of it), comma-separated in rank order.
std::string gather_strings(Communicator& comm, const std::string& mine, size_t width, const char* tag) {
  std::vector<uint8_t> own(width, 0), all(width * static_cast<size_t>(comm.size()));
  std::copy_n(mine.begin(), std::min(mine.size(), width - 1), own.begin());
  comm.control_allgather(std::span<const uint8_t>(own), std::span<uint8_t>(all), tag);
  std::string joined;
  for (int r = 0; r < comm.size(); r++) {
    if (r) joined.push_back(',');
    joined.append(reinterpret_cast<const char*>(&all[width * size_t(r)]));
  }
  return joined;
}

// The settings the loop reads, once.
struct LoopSettings {
  int64_t total_steps, max_samples, log_every, eval_every, eval_batches, flush_every, checkpoint_every;
  bool eval_at_start;
  static LoopSettings from(const Config& c) {
    return {c.integer("run.steps"),   c.integer("run.max_samples"),   c.integer("run.log_every"),
            c.integer("eval.every"),  c.integer("eval.batches"),      c.integer("trace.flush_every"),
            c.integer("checkpoint.every"), c.boolean("eval.at_start")};
  }
};

// Everything the runner itself carries across a resume.
struct Progress {
  int64_t step = 0, samples = 0;
  double flops = 0, wall = 0, compute_time = 0, last_eval = NAN, last_train = NAN;
};

class Run {
 public:
  Run(const Config& cfg, Communicator& comm, const RunPaths& paths, int threads, Placement placement)
      : cfg_(cfg), comm_(comm), paths_(paths), threads_(threads), placement_(std::move(placement)),
        set_(LoopSettings::from(cfg)),
        info_(find_method(cfg.str("run.method"))), vocab_(vocabulary(info_.domain)),
        record_(vocab_, comm.networks(), comm.rank(), comm.size(), set_.log_every),
        checkpoints_(paths.checkpoints, cfg.integer("checkpoint.keep"), comm),
        faults_(FaultInjection::from(cfg, comm.rank())) {}

  // Setup that may fail differently on different ranks: the caller agrees on the outcome.
  void setup() {
    ctx_ = std::make_unique<RunContext>(RunContext{cfg_, comm_, set_.total_steps, static_cast<uint64_t>(cfg_.integer("run.seed")),
                                                  paths_.dir.string()});
    method_ = info_.make(*ctx_);
    comm_.set_record_calls(cfg_.boolean("trace.comm_calls"));
    resumed_ = cfg_.str("checkpoint.resume") == "auto" && checkpoints_.has_latest();
    if (resumed_) checkpoints_.load_latest([this](StateFields& f) { state(f); });
    record_.open(paths_.trace.string(), resumed_ && fs::exists(paths_.trace) ? progress_.step : -1);
  }

  // The training loop. Returns 0 (finished or stopped).
  int loop() {
    begin();
    Timer clock;
    const double wall0 = progress_.wall;
    const auto wall = [&] { return wall0 + clock.seconds(); };
    if (set_.eval_at_start && set_.eval_batches > 0 && progress_.step == 0 && set_.total_steps > 0) evaluate();
    for (int64_t step = progress_.step; step < set_.total_steps; step++) {
      comm_.set_step(step + 1);
      Timer step_clock;
      StepResult r = method_->step(step);
      faults_.after_step(step + 1, r.loss);
      const CommTotals step_comm = comm_.take_step_totals();
      const double step_time = step_clock.seconds();
      const bool stop = reduce_and_advance(step, r, step_time - step_comm.time_s);
      record_.step({step + 1, wall(), step_time, progress_.samples, progress_.last_train, r.lr, r.grad_norm,
                    last_flops_, step_comm, std::move(r.metrics)},
                   comm_.run_totals(), comm_.take_records(), set_.total_steps);
      // The sample budget ends the run at this step as if it were the last one.
      const bool last = step + 1 == set_.total_steps || (set_.max_samples > 0 && progress_.samples >= set_.max_samples);
      if (set_.eval_batches > 0 && (every(set_.eval_every, step) || last)) evaluate();
      if (stop || last || every(set_.flush_every, step)) flush();
      if (stop || every(set_.checkpoint_every, step)) checkpoint(wall());
      if (stop) {
        if (comm_.rank() == 0) std::printf("frugal: stop signal: checkpointed at step %lld, exiting\n", static_cast<long long>(step + 1));
        finish("stopped", "stop signal received; checkpointed at step " + std::to_string(step + 1), wall());
        return 0;
      }
      faults_.at_step_end(step + 1);
      if (last) break;
    }
    // An evaluation-only run, or one whose last step was not evaluated (eval.batches > 0).
    if (set_.eval_batches > 0 && (set_.total_steps == 0 || std::isnan(progress_.last_eval))) evaluate();
    method_->finished();
    finish("finished", "", wall());
    return 0;
  }

  void fail(const std::string& message) { record_.fail(message); }

 private:
  static bool every(int64_t n, int64_t step) { return n > 0 && (step + 1) % n == 0; }

  void begin() {
    const std::string& label = cfg_.str("run.label");
    RunIdentity id;
    id.method = info_.name;
    id.run_name = cfg_.str("run.name");
    id.label = label.empty() ? id.run_name : label;
    id.config_toml = cfg_.to_toml();
    id.hosts = gather_strings(comm_, host_name(), 64, "runner.hosts");
    id.device = placement_.device;
    id.devices = gather_strings(comm_, placement_.where, 160, "runner.devices");
    id.backend = comm_.backend_name();
    id.world_size = comm_.size();
    id.seed = cfg_.integer("run.seed");
    id.threads_per_rank = threads_;
    id.blas_core = blas_core();
    id.n_params = method_->num_params();
    record_.begin(id, progress_.step, set_.total_steps, resumed_, progress_.wall, progress_.samples,
                  comm_.run_totals().wire_bytes);
  }

  // One small control all-reduce carries the step's metrics and the two flags every rank must
  // agree on (a non-finite loss, a stop signal). Returns whether to stop.
  bool reduce_and_advance(int64_t step, const StepResult& r, double compute_time) {
    double m[5] = {r.loss, double(r.samples), r.flops, std::isfinite(r.loss) ? 0.0 : 1.0, g_stop_signal ? 1.0 : 0.0};
    comm_.control_allreduce(std::span<double>(m, 5), ReduceOp::sum, "runner.metrics");
    FRUGAL_CHECK(m[3] == 0, "training ", vocab_.train, " is not finite at step ", step + 1, " (on ", m[3],
                 " rank(s)): the run diverged; lower the learning rate or check the data");
    progress_.step = step + 1;
    progress_.samples += static_cast<int64_t>(m[1]);
    progress_.flops += m[2];
    progress_.compute_time += compute_time;
    progress_.last_train = m[0] / comm_.size();
    last_flops_ = m[2];
    return m[4] > 0;
  }

  void evaluate() {
    progress_.last_eval = method_->evaluate(set_.eval_batches);
    record_.eval(progress_.step, progress_.samples, progress_.last_eval, set_.eval_batches);
  }

  // Per-rank totals (compute time, comm time, bytes, calls) to the record, rows to disk.
  void flush() {
    const auto& tot = comm_.run_totals();
    double mine[4] = {progress_.compute_time, tot.time_s, double(tot.wire_bytes), double(tot.calls)};
    std::vector<double> all(4 * static_cast<size_t>(comm_.size()));
    comm_.control_allgather(std::span<const double>(mine, 4), std::span<double>(all), "runner.rank_totals");
    comm_.take_records();  // bookkeeping calls of the flush itself are not part of any step
    RankTotals rt;
    for (int r = 0; r < comm_.size(); r++) {
      rt.compute_time.push_back(all[4 * size_t(r)]);
      rt.comm_time.push_back(all[4 * size_t(r) + 1]);
      rt.bytes_sent.push_back(static_cast<int64_t>(all[4 * size_t(r) + 2]));
      rt.calls.push_back(static_cast<int64_t>(all[4 * size_t(r) + 3]));
    }
    record_.rank_totals(rt);
    record_.flush();
  }

  void checkpoint(double wall) {
    progress_.wall = wall;
    checkpoints_.save(progress_.step, [this](StateFields& f) { state(f); });
  }

  // The runner's and the method's checkpointed state: one description for save and load. The
  // section names are the checkpoint format (kept stable across versions).
  void state(StateFields& f) {
    f.expect("runner.method", info_.name, "method");
    f.expect("runner.world_size", int64_t{comm_.size()}, "rank count");
    f.field("runner.step", progress_.step);
    f.field("runner.tokens", progress_.samples);
    f.field("runner.flops", progress_.flops);
    f.field("runner.wall", progress_.wall);
    f.field("runner.compute_time", progress_.compute_time);
    f.field("runner.last_eval", progress_.last_eval);
    f.field("runner.last_loss", progress_.last_train);
    CommTotals t = comm_.run_totals();
    f.field("runner.comm_calls", t.calls);
    f.field("runner.comm_wire_bytes", t.wire_bytes);
    f.field("runner.comm_payload_bytes", t.payload_bytes);
    f.field("runner.comm_time", t.time_s);
    f.field("runner.comm_net_time", t.net_time_s);
    f.after_load([&] { comm_.restore_run_totals(t); });
    method_->state(f);
  }

  void finish(const std::string& status, const std::string& message, double wall) {
    record_.finish(status, message,
                   {progress_.step, progress_.samples, progress_.last_train, progress_.last_eval, wall, progress_.flops,
                    comm_.run_totals()});
  }

  const Config& cfg_;
  Communicator& comm_;
  RunPaths paths_;
  int threads_;
  Placement placement_;
  LoopSettings set_;
  const MethodInfo& info_;
  const Vocabulary& vocab_;
  RunRecord record_;
  Checkpointer checkpoints_;
  FaultInjection faults_;
  std::unique_ptr<RunContext> ctx_;
  std::unique_ptr<Method> method_;
  Progress progress_;
  double last_flops_ = 0;
  bool resumed_ = false;
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

  // Phase 1a: configuration and the run folder (rank 0 locks it and decides: fresh, overwrite,
  // resume or already finished). Failures in phase 1 can differ between ranks (a missing per-rank
  // checkpoint), so the ranks agree after each part before going on.
  std::string error;
  Config cfg;
  RunPaths paths;
  RunFolderLock lock;  // rank 0 holds the run folder until the run ends
  std::unique_ptr<Communicator> comm;
  std::unique_ptr<Run> run;
  int finished_already = 0, threads = 1;
  try {
    cfg = resolve_config(suite_schema(), config_path, overrides);
    threads = choose_threads(cfg);
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    paths = run_paths(cfg);
    if (rank == 0) {
      lock = RunFolderLock(paths.dir);  // before anything in the folder is looked at
      fs::create_directories(paths.trace.parent_path().empty() ? fs::path(".") : paths.trace.parent_path());
      const bool auto_resume = cfg.str("checkpoint.resume") == "auto";
      const bool resuming = auto_resume && fs::exists(paths.checkpoints / "latest");
      if (fs::exists(paths.trace) && !cfg.boolean("run.overwrite")) {
        // A finished run is never reopened for writing: asked to continue it, there is nothing to do.
        if (auto_resume && trace_status(paths.trace.string()) == "finished") finished_already = 1;
        else
          FRUGAL_CHECK(resuming, "run folder '", paths.dir.string(),
                       "' already holds a trace; pass --run.overwrite=true to replace it or --checkpoint.resume=auto to continue it");
      } else if (fs::exists(paths.trace) || !resuming) {
        fs::remove(paths.trace);              // overwrite: the old trace goes
        fs::remove_all(paths.checkpoints);    // stale checkpoints must not be resumed into a new run
      }
    }
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (!agree_ok(error, rank, size)) return 2;  // also: the run folder exists before other ranks look at it
  MPI_Bcast(&finished_already, 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (finished_already) {
    if (rank == 0) std::printf("frugal: %s already finished (%s); nothing to do\n", cfg.str("run.name").c_str(), paths.trace.c_str());
    return 0;
  }
  // Phase 1b: the method (with its data), resume state, trace file.
  try {
    Placement placement = place_rank(cfg.str("run.device"), MPI_COMM_WORLD);
    set_compute_precision(cfg.str("model.dtype"), placement);
    // Methods run on the GPU one by one as they are ported: the others say so rather than train on
    // the CPU while the trace says cuda.
    FRUGAL_CHECK(placement.device == "cpu" || find_method(cfg.str("run.method")).cuda,
                 "run.device = \"cuda\" placed this rank on ", placement.where, ", but method '", cfg.str("run.method"),
                 "' runs on the CPU only so far (run.device = \"cpu\"; on the GPU: ", cuda_method_names(), ")");
    comm = std::make_unique<Communicator>(make_mpi_backend(), networks_from(cfg));
    if (cfg.str("run.device_comm") == "nccl") {
      FRUGAL_CHECK(placement.device == "cuda", "run.device_comm = \"nccl\" moves GPU buffers: it needs run.device = \"cuda\"");
      FRUGAL_CHECK(find_method(cfg.str("run.method")).device_comm, "run.device_comm = \"nccl\": method '",
                   cfg.str("run.method"), "' exchanges through the host only (NCCL on the GPUs: ", device_comm_method_names(),
                   ")");
      comm->set_device_backend(make_nccl_backend());
    }
    run = std::make_unique<Run>(cfg, *comm, paths, threads, std::move(placement));
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
    return run->loop();
  } catch (const std::exception& e) {
    const std::string msg = e.what();
    if (rank == 0 || size == 1) {
      std::fprintf(stderr, "frugal: error: %s\n", msg.c_str());
      std::fflush(stderr);
    }
    run->fail(msg);
    if (size == 1 || msg.find("not finite") != std::string::npos) return 2;
    std::fprintf(stderr, "frugal: error on rank %d: %s; aborting the MPI job\n", rank, msg.c_str());
    MPI_Abort(MPI_COMM_WORLD, 2);
    return 2;
  }
}

}  // namespace frugal
