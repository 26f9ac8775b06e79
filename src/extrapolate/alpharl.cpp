// AlphaRL (Cai et al., arXiv 2510.00553): RL's update of a weight matrix is close to rank 1, its
// right vector settles early and its left vector moves along a line that tracks the reward. Per
// matrix j and checkpoint i = 1..K: dW_i = W_i - W_0 = sigma_i u_i v_i^T + ..., signs aligned along
// i, and the scaled left vector x_i = u_i |dW_i| / |dW_1| (Frobenius norms). The x_i of all
// matrices, concatenated, are regressed on the eval accuracy y_i by one-component PLS; solving it
// for the target accuracy y* gives x* (the point on the PLS direction whose predicted accuracy is
// y*), and the new update of matrix j is x*_j v_K^T, scaled back to a delta:
//   W = W_0 + |dW_1| (sigma_K / |dW_K|) x*_j v_K^T
// (|dW_1| undoes the normalisation of x; sigma_K / |dW_K| keeps the rank-1 share of the norm).
// y* is the least-squares trend of accuracy in steps at the target step unless given. Vectors and
// matrices that never moved keep W_K.
#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "core/timer.hpp"
#include "extrapolate/extrapolate.hpp"
#include "extrapolate/linalg.hpp"

namespace frugal {

Extrapolation extrapolate_alpharl(const Trajectory& t, int64_t target_step, double target_accuracy) {
  const int K = t.checkpoints() - 1;
  FRUGAL_CHECK(K >= 2, "AlphaRL fits accuracy against the checkpoints' update directions: it needs W_0 and at least 2 "
               "more; trajectory '", t.path, "' has ", K + 1);
  FRUGAL_CHECK(target_step > t.steps[size_t(K)], "extrapolate.target_step (", target_step,
               ") must lie beyond the last checkpoint used (step ", t.steps[size_t(K)], ")");
  Timer timer;
  Extrapolation e;
  e.params = trajectory_params(t, K);
  struct Module {
    const TrajectoryTensor* x;
    std::vector<Rank1> r;       // rank-1 of dW_i, i = 1..K
    std::vector<double> norm;   // |dW_i|
    size_t column = 0;          // where its x_i start in a row of X
  };
  std::vector<Module> modules;
  size_t p = 0;
  int flips = 0;
  std::vector<float> d;
  for (const TrajectoryTensor& x : t.tensors) {
    if (!x.spec.is_matrix()) continue;
    Module m{&x, {}, {}, p};
    const size_t n = x.spec.numel;
    d.resize(n);
    for (int i = 1; i <= K; i++) {
      double sq = 0;
      const float *w0 = x.at(0), *wi = x.at(i);
      for (size_t j = 0; j < n; j++) d[j] = wi[j] - w0[j], sq += double(d[j]) * d[j];
      m.norm.push_back(std::sqrt(sq));
      m.r.push_back(rank1_svd(d.data(), x.spec.shape[0], x.spec.shape[1], &e.cost.linalg_flops));
    }
    if (m.norm[0] == 0 || m.norm[size_t(K - 1)] == 0) continue;  // never moved (or not from the first checkpoint)
    flips += align_signs(m.r);
    p += size_t(x.spec.shape[0]);
    modules.push_back(std::move(m));
  }
  FRUGAL_CHECK(!modules.empty(), "AlphaRL: no weight matrix of trajectory '", t.path, "' changed between its checkpoints");
  std::vector<double> X(static_cast<size_t>(K) * p), y(static_cast<size_t>(K));
  for (int i = 0; i < K; i++) {
    y[size_t(i)] = t.accuracy[size_t(i + 1)];
    for (const Module& m : modules) {
      const double scale = m.norm[size_t(i)] / m.norm[0];
      for (size_t r = 0; r < m.r[size_t(i)].u.size(); r++) X[size_t(i) * p + m.column + r] = m.r[size_t(i)].u[r] * scale;
    }
  }
  const Pls1 pls = pls1_fit(X, K, int(p), y);
  e.cost.linalg_flops += 8.0 * double(K) * double(p);
  std::vector<float> row(p);
  for (int i = 0; i < K; i++) {
    for (size_t j = 0; j < p; j++) row[j] = static_cast<float>(X[size_t(i) * p + j]);
    e.fit_loss += std::pow(pls.predict(row.data()) - y[size_t(i)], 2) / K;
  }
  e.fit_loss = std::sqrt(e.fit_loss);
  double target = target_accuracy;
  if (std::isnan(target)) {
    std::vector<double> steps(t.steps.begin(), t.steps.end());
    target = std::clamp(least_squares_line(steps, t.accuracy).at(double(target_step)), 0.0, 1.0);
  }
  const std::vector<double> xs = pls.solve(target);
  for (const Module& m : modules) {
    const Rank1& last = m.r.back();
    const double scale = m.norm[0] * last.sigma / m.norm.back();
    const int64_t rows = m.x->spec.shape[0], cols = m.x->spec.shape[1];
    const float* w0 = m.x->at(0);
    float* out = e.params.data() + m.x->spec.offset;
    for (int64_t a = 0; a < rows; a++)
      for (int64_t b = 0; b < cols; b++)
        out[a * cols + b] = static_cast<float>(w0[a * cols + b] + scale * xs[m.column + size_t(a)] * last.v[size_t(b)]);
    e.cost.linalg_flops += 3.0 * double(rows) * cols;
  }
  e.cost.linalg_seconds = timer.seconds();
  e.info = {{"target_accuracy", target}, {"pls_slope", pls.q}, {"sign_flips", double(flips)}};
  return e;
}

}  // namespace frugal
