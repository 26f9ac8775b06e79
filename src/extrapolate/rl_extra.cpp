// RL-Extra (Wang et al., arXiv 2601.04537): the RL update keeps its direction, so continue along it,
//   W = W_0 + a (W_K - W_0),  a = (T_target - T_0) / (T_K - T_0)  (T: RL steps of the checkpoints),
// with the LayerNorm gains and biases copied from W_K (the paper leaves norm layers unextrapolated).
#include "core/error.hpp"
#include "core/timer.hpp"
#include "extrapolate/extrapolate.hpp"

namespace frugal {

Extrapolation extrapolate_rl_extra(const Trajectory& t, int64_t target_step) {
  const int K = t.checkpoints() - 1;
  FRUGAL_CHECK(K >= 1, "RL-Extra needs at least 2 checkpoints (W_0 and one more); trajectory '", t.path, "' has ", K + 1);
  FRUGAL_CHECK(target_step > t.steps[size_t(K)], "extrapolate.target_step (", target_step,
               ") must lie beyond the last checkpoint used (step ", t.steps[size_t(K)], ")");
  Timer timer;
  const double a = double(target_step - t.steps[0]) / double(t.steps[size_t(K)] - t.steps[0]);
  Extrapolation e;
  e.params = trajectory_params(t, K);
  for (const TrajectoryTensor& x : t.tensors) {
    if (x.spec.is_norm) continue;
    const float *w0 = x.at(0), *wk = x.at(K);
    float* out = e.params.data() + x.spec.offset;
    for (size_t i = 0; i < x.spec.numel; i++) out[i] = static_cast<float>(double(w0[i]) + a * (double(wk[i]) - w0[i]));
    e.cost.linalg_flops += 3.0 * double(x.spec.numel);
  }
  e.cost.linalg_seconds = timer.seconds();
  e.info = {{"scale", a}};
  return e;
}

}  // namespace frugal
