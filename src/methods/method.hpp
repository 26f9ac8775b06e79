#pragma once
// A method is a training loop body: the runner (methods/runner.cpp) calls step() once per
// optimiser step and handles everything around it (metrics, trace, evaluation, checkpoints,
// signals). A new method is one .cpp file in src/methods/ that defines a class implementing
// Method and registers it with FRUGAL_REGISTER_METHOD; its config keys live in its own section.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.hpp"
#include "core/config.hpp"
#include "core/state.hpp"
#include "data/tokens.hpp"

namespace frugal {

struct RunContext {
  const Config& config;
  Communicator& comm;
  const Dataset& data;
  int64_t total_steps = 0;
  uint64_t seed = 0;
};

// What one step did on this rank; the runner reduces it over ranks.
struct StepResult {
  double loss = 0;       // mean training loss of this rank's batch
  double grad_norm = 0;  // as the method sees it (identical on all ranks for DDP)
  double lr = 0;
  int64_t tokens = 0;    // samples this rank processed: tokens, or environment steps (Domain::rl)
  double flops = 0;      // FLOPs this rank issued
  // Method-specific columns for the trace's steps/ (rank 0's values). Emit the same names every
  // step (NaN where a value does not apply, e.g. between outer steps).
  std::vector<std::pair<std::string, double>> metrics;
};

class Method {
 public:
  virtual ~Method() = default;
  virtual StepResult step(int64_t step) = 0;  // 0-based
  // Mean held-out loss over `batches` batches, or mean return over `batches` evaluation episodes
  // (Domain::rl); the same value on every rank.
  virtual double evaluate(int64_t batches) = 0;
  virtual void save(StateWriter& out) const = 0;
  virtual void load(const StateReader& in) = 0;
  virtual int64_t num_params() const = 0;
};

// What a method trains, which decides the runner's vocabulary: language models count tokens and
// report losses (lower is better); RL methods count environment steps and report episode returns
// (higher is better) - StepResult::loss then holds the mean training return, evaluate() the mean
// evaluation return, and RunContext::data is empty (no corpus is loaded).
enum class Domain { language, rl };
struct DomainNames {
  const char* samples;  // trace column and attribute stem: "tokens" or "env_steps"
  const char* train;    // "loss" or "return"
  const char* eval;     // "loss" or "return"
};
DomainNames domain_names(Domain d);

struct MethodInfo {
  std::string name;
  std::string summary;
  std::function<void(Schema&)> add_keys;  // the method's own config section (may be empty)
  std::function<std::unique_ptr<Method>(RunContext&)> make;
  Domain domain = Domain::language;
};

bool register_method(MethodInfo info);
const std::vector<MethodInfo>& registered_methods();
const MethodInfo& find_method(const std::string& name);

// The schema of the whole suite: core sections plus every registered method's section.
const Schema& suite_schema();

}  // namespace frugal

#define FRUGAL_REGISTER_METHOD(var, ...) \
  static const bool var##_registered = ::frugal::register_method(__VA_ARGS__)
