// RELEX (arXiv 2605.21468): per tensor, stack the deltas d_t = W_t - W_0 of the observed checkpoints
// t = 1..K into D (K x n), take its rank-1 SVD through the small Gram matrix D D^T (K x K):
// top eigenpair (lambda, e), direction u = D^T e / sqrt(lambda), coefficients c_t = sqrt(lambda) e_t
// (so d_t ~= c_t u); fit c_t ~= a + b T_t by least squares in the RL step T_t, and predict
//   W = W_0 + (a + b T_target) u.
// A tensor that never moved (LoRA leaves biases and LayerNorms alone) keeps W_K = W_0.
#include <cmath>

#include "core/error.hpp"
#include "core/timer.hpp"
#include "extrapolate/extrapolate.hpp"
#include "extrapolate/linalg.hpp"

namespace frugal {

Extrapolation extrapolate_relex(const Trajectory& t, int64_t target_step) {
  const int K = t.checkpoints() - 1;
  FRUGAL_CHECK(K >= 2, "RELEX fits a line through the checkpoints' coefficients: it needs W_0 and at least 2 more; trajectory '",
               t.path, "' has ", K + 1);
  FRUGAL_CHECK(target_step > t.steps[size_t(K)], "extrapolate.target_step (", target_step,
               ") must lie beyond the last checkpoint used (step ", t.steps[size_t(K)], ")");
  Timer timer;
  Extrapolation e;
  e.params = trajectory_params(t, K);
  std::vector<double> steps(static_cast<size_t>(K));
  for (int i = 0; i < K; i++) steps[size_t(i)] = double(t.steps[size_t(i + 1)]);
  double explained = 0, total = 0;  // energy of the rank-1 fit over all tensors, for the record
  double residual = 0, coefficient = 0;  // of the coefficient lines, summed over tensors
  std::vector<float> D;
  for (const TrajectoryTensor& x : t.tensors) {
    const size_t n = x.spec.numel;
    D.resize(size_t(K) * n);
    const float* w0 = x.at(0);
    bool moved = false;
    for (int i = 0; i < K; i++) {
      const float* wi = x.at(i + 1);
      for (size_t j = 0; j < n; j++) moved |= (D[size_t(i) * n + j] = wi[j] - w0[j]) != 0.0f;
    }
    if (!moved) continue;
    std::vector<double> G(static_cast<size_t>(K) * K, 0.0);
    for (int a = 0; a < K; a++)
      for (int b = a; b < K; b++) {
        double s = 0;
        for (size_t j = 0; j < n; j++) s += double(D[size_t(a) * n + j]) * D[size_t(b) * n + j];
        G[size_t(a) * K + b] = G[size_t(b) * K + a] = s;
      }
    std::vector<double> ev;
    const double lambda = top_eigenpair(G, K, ev);
    for (int a = 0; a < K; a++) total += G[size_t(a) * K + a];
    explained += lambda;
    const double root = std::sqrt(std::max(lambda, 0.0));
    std::vector<double> c(static_cast<size_t>(K));
    for (int i = 0; i < K; i++) c[size_t(i)] = root * ev[size_t(i)];
    const Line line = least_squares_line(steps, c);
    for (int i = 0; i < K; i++) residual += std::pow(line.at(steps[size_t(i)]) - c[size_t(i)], 2), coefficient += c[size_t(i)] * c[size_t(i)];
    const double c_target = line.at(double(target_step));
    // W_0 + c_target u with u = D^T e / sqrt(lambda).
    float* out = e.params.data() + x.spec.offset;
    for (size_t j = 0; j < n; j++) {
      double u = 0;
      for (int i = 0; i < K; i++) u += double(D[size_t(i) * n + j]) * ev[size_t(i)];
      out[j] = static_cast<float>(double(w0[j]) + c_target * u / root);
    }
    e.cost.linalg_flops += double(K) * (K + 1) * double(n) + 10.0 * K * K * K / 3.0 + 2.0 * double(K) * n + 3.0 * double(n);
  }
  e.cost.linalg_seconds = timer.seconds();
  e.fit_loss = coefficient > 0 ? std::sqrt(residual / coefficient) : 0.0;
  e.info = {{"rank1_energy_fraction", total > 0 ? explained / total : 0.0}};
  return e;
}

}  // namespace frugal
