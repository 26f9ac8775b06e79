#pragma once
// Extrapolators of an RL trajectory (methods.md section 4): from the checkpoints W_0 .. W_K of an
// early GRPO-LoRA run, predict the weights further along, so that RL can continue from there and
// skip steps. One file each:
//   next.cpp      NExt: rank-1 SVD of global, local and target deltas, a learnt nonlinear predictor
//   alpharl.cpp   AlphaRL: rank-1 left vectors vs accuracy by one-component PLS, solved for a target
//   rl_extra.cpp  RL-Extra: the line from W_0 through W_K, scaled in steps
//   relex.cpp     RELEX: rank-1 of the stacked deltas, its coefficient's least-squares line in steps
// Each reports its own cost (FLOPs and seconds of SVDs and fitting), so a saving is net of it.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "extrapolate/predictor.hpp"
#include "extrapolate/trajectory.hpp"

namespace frugal {

struct ExtrapolationCost {
  double linalg_flops = 0, linalg_seconds = 0;  // the arithmetic on the weights: SVDs, Gram eigenproblems, PLS, the update
  double fit_flops = 0, fit_seconds = 0;  // training the predictor (NExt)
};

struct Extrapolation {
  std::vector<float> params;  // the predicted model, flat in gpt2_layout order
  ExtrapolationCost cost;
  // How well the extrapolator's model fits the observed checkpoints: NExt the predictor's final L1
  // loss, RELEX the RMS residual of its coefficient lines relative to the coefficients' RMS,
  // AlphaRL the RMS residual of its PLS fit of accuracy, RL-Extra 0 (a line through two points).
  double fit_loss = 0;
  // What the extrapolator wants recorded beside it (trace columns): e.g. NExt's fit losses, the
  // number of SVD signs flipped, AlphaRL's target accuracy.
  std::vector<std::pair<std::string, double>> info;
};

struct NextSettings {
  int k = 5;            // target: the delta k checkpoints ahead, W_{i+k} - W_i
  double alpha = 1.5;   // W <- W_K + alpha * predicted delta
  bool align_signs = true;
  PredictorConfig predictor;
  uint64_t seed = 1;
};
Extrapolation extrapolate_next(const Trajectory& t, const NextSettings& s);

// target_accuracy: the accuracy AlphaRL solves for; NaN = the least-squares trend of the
// trajectory's accuracy in steps, evaluated at target_step (clamped to [0, 1]).
Extrapolation extrapolate_alpharl(const Trajectory& t, int64_t target_step, double target_accuracy);
Extrapolation extrapolate_rl_extra(const Trajectory& t, int64_t target_step);
Extrapolation extrapolate_relex(const Trajectory& t, int64_t target_step);

}  // namespace frugal
