#pragma once
// A method is a training loop body: the runner (harness/runner.cpp) calls step() once per
// optimiser step and owns everything around it - the run record (trace and progress line),
// evaluation cadence, checkpoints, signals. A new method is one .cpp file in src/methods/ that
// defines a class implementing Method and registers it with FRUGAL_REGISTER_METHOD; its config
// keys live in its own section and are read once, at construction.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "comm/communicator.hpp"
#include "core/config.hpp"
#include "core/state.hpp"
#include "harness/vocabulary.hpp"

namespace frugal {

struct RunContext {
  const Config& config;
  Communicator& comm;
  int64_t total_steps = 0;
  uint64_t seed = 0;
  std::string run_dir;  // <run.out_dir>/<run.name>: where a method may leave artifacts (e.g. a model)
};

// What one step did on this rank; the runner reduces it over ranks. Names follow the method's
// vocabulary (harness/vocabulary.hpp): `loss` is the train metric, `samples` what the run counts.
struct StepResult {
  double loss = 0;       // train metric of this rank's work: mean loss of its batch, or mean return
  double grad_norm = 0;  // as the method sees it (identical on all ranks for DDP)
  double lr = 0;
  int64_t samples = 0;   // samples this rank processed: tokens, or environment steps
  double flops = 0;      // FLOPs this rank issued
  // Method-specific columns for the trace's steps/ (rank 0's values). Emit the same names every
  // step (NaN where a value does not apply, e.g. between outer steps).
  std::vector<std::pair<std::string, double>> metrics;
};

class Method {
 public:
  virtual ~Method() = default;
  virtual StepResult step(int64_t step) = 0;  // 0-based
  // The eval metric over `batches` held-out batches (or evaluation episodes); the same value on
  // every rank.
  virtual double evaluate(int64_t batches) = 0;
  // The method's checkpointed state, one description for save and load (core/state.hpp).
  virtual void state(StateFields& fields) = 0;
  virtual int64_t num_params() const = 0;
  // Called on every rank once the run has finished (not when it stops on a signal), after the last
  // evaluation: where a method writes what it produced beyond the trace (sft: its model).
  virtual void finished() {}
};

struct MethodInfo {
  std::string name;
  std::string summary;
  Domain domain = Domain::language;
  // Config sections the method reads: shared family sections (e.g. add_model_keys) and its own.
  // A section named by several methods is added to the suite's schema once.
  std::vector<void (*)(Schema&)> sections;
  std::function<std::unique_ptr<Method>(RunContext&)> make;
  bool cuda = false;  // runs with run.device = "cuda" (the others refuse it by name)
  // All-reduces GPU buffers through the communicator's device back end with run.device_comm = "nccl"
  // (the others refuse that setting by name rather than ignore it).
  bool device_comm = false;
};

bool register_method(MethodInfo info);
const std::vector<MethodInfo>& registered_methods();
const MethodInfo& find_method(const std::string& name);
// The methods with cuda = true, and those with device_comm = true, comma-separated (for messages).
std::string cuda_method_names();
std::string device_comm_method_names();

// The schema of the whole suite: the harness's sections plus every registered method's.
const Schema& suite_schema();

}  // namespace frugal

#define FRUGAL_REGISTER_METHOD(var, ...) \
  static const bool var##_registered = ::frugal::register_method(__VA_ARGS__)
