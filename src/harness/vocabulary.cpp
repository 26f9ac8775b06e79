#include "harness/vocabulary.hpp"

namespace frugal {

const Vocabulary& vocabulary(Domain domain) {
  static const Vocabulary language{"tokens", "tok/s", "loss", "loss", "held-out batches", false};
  static const Vocabulary rl{"env_steps", "env steps/s", "return", "return", "greedy-policy episodes", true};
  static const Vocabulary rlvr{"generated_tokens", "gen tok/s", "reward", "accuracy", "eval problems (greedy)", true};
  static const Vocabulary sft{"tokens", "tok/s", "loss", "accuracy", "eval problems (greedy)", true, true};
  static const Vocabulary extrapolation{"checkpoints", "ckpt/s", "fit_loss", "accuracy", "eval problems (greedy)", true,
                                        true};
  switch (domain) {
    case Domain::extrapolation: return extrapolation;
    case Domain::rl: return rl;
    case Domain::rlvr: return rlvr;
    case Domain::sft: return sft;
    case Domain::language: break;
  }
  return language;
}

}  // namespace frugal
