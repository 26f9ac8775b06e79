#pragma once
// A run's vocabulary: what it counts (its samples) and what it measures (its train and eval
// metrics, and which direction is better). The one place a domain is described: the runner, the
// run record, `frugal compare`, `frugal info` and analysis/report.py all take the names from here
// (the last three from the trace's root attributes, which the record writes from here).
#include <string>

namespace frugal {

// What a method trains.
enum class Domain {
  language,  // a language model on a corpus: tokens, loss (lower is better)
  rl,        // a policy in RL environments: environment steps, episode return (higher is better)
  rlvr,      // RL on a language model with verifiable rewards: generated tokens, reward, accuracy
  sft,       // supervised warm start on a verifiable task: tokens, answer-token loss, accuracy
  extrapolation,  // a model predicted from an RL trajectory: checkpoints read, fit loss, accuracy
};

struct Vocabulary {
  const char* samples;      // trace column and attribute stem: <samples>, <samples>_total, <samples>_per_s
  const char* rate_unit;    // the progress line's throughput unit
  const char* train;        // steps/<train>, final_train_<train>: StepResult::loss holds it
  const char* eval;         // eval/<eval>, final_eval_<eval>: Method::evaluate returns it
  const char* eval_over;    // what eval.batches counts, for the progress line
  bool higher_is_better;    // of the eval metric (and of the train metric, unless train_lower_is_better)
  bool train_lower_is_better = false;  // sft: a loss is trained, an accuracy evaluated
};

const Vocabulary& vocabulary(Domain domain);

}  // namespace frugal
