#include "harness/vocabulary.hpp"

namespace frugal {

const Vocabulary& vocabulary(Domain domain) {
  static const Vocabulary language{"tokens", "tok/s", "loss", "loss", "held-out batches", false};
  static const Vocabulary rl{"env_steps", "env steps/s", "return", "return", "greedy-policy episodes", true};
  switch (domain) {
    case Domain::rl: return rl;
    case Domain::language: break;
  }
  return language;
}

}  // namespace frugal
