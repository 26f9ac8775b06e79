// NExt (Chen et al., arXiv 2604.11446), methods.md section 4. For every weight and checkpoint
// i = 1..K of the trajectory:
//   global delta dG_i = W_i - W_0, local delta dL_i = W_i - W_{i-1}, target dT_i = W_{i+k} - W_i,
// each reduced to its rank-1 SVD (sigma, u, v) for a matrix, kept raw for a vector (biases, norms);
// tensors that never moved are skipped. The SVD's signs are aligned along i (next.align_signs: the
// official code does not, which makes equal updates look opposite to the predictor). Every u, v,
// sigma (a length-1 vector) and raw delta is a training row of the predictor of its length d:
// (global, local) -> target, over the checkpoints whose target exists (i + k <= K). Then, from the
// last checkpoint, the predictors give each matrix's target (sigma, u, v): u and v are normalised,
// and W_K + alpha sigma u v^T is the extrapolated weight (a vector: W_K + alpha * its predicted delta).
#include <cmath>
#include <map>

#include "core/error.hpp"
#include "core/timer.hpp"
#include "extrapolate/extrapolate.hpp"
#include "extrapolate/linalg.hpp"

namespace frugal {
namespace {

// The rows of one predictor (vectors of length d): training (global, local) -> target, and the
// queries at the last checkpoint.
struct Rows {
  std::vector<float> global, local, target, query_global, query_local, predicted;
  int train = 0, queries = 0;
  void add(std::vector<float>& to, const float* x, int d) { to.insert(to.end(), x, x + d); }
  void add_train(const float* g, const float* l, const float* t, int d) {
    add(global, g, d), add(local, l, d), add(target, t, d), train++;
  }
  int add_query(const float* g, const float* l, int d) {
    add(query_global, g, d), add(query_local, l, d);
    return queries++;
  }
};

// Where a matrix's or vector's predictions will be found: (length, query row) per factor.
struct Pending {
  const TrajectoryTensor* x;
  int u = -1, v = -1, sigma = -1;  // query rows in groups rows, cols, 1 (matrix)
  int delta = -1;                  // query row in group numel (vector)
};

}  // namespace

Extrapolation extrapolate_next(const Trajectory& t, const NextSettings& s) {
  const int K = t.checkpoints() - 1, k = s.k;
  FRUGAL_CHECK(k >= 1, "next.k must be at least 1");
  FRUGAL_CHECK(K >= k + 1, "NExt with next.k = ", k, " trains on checkpoints whose target k ahead exists: it needs W_0 and at "
               "least ", k + 1, " more; trajectory '", t.path, "' has ", K + 1, " checkpoint(s) up to step ", t.steps.back());
  Extrapolation e;
  e.params = trajectory_params(t, K);
  Timer timer;
  std::map<int, Rows> groups;  // by vector length d
  std::vector<Pending> pending;
  int flips = 0;
  std::vector<float> dg, dl, dt;
  for (const TrajectoryTensor& x : t.tensors) {
    const size_t n = x.spec.numel;
    const float* w0 = x.at(0);
    bool moved = false;
    for (size_t j = 0; j < n && !moved; j++) moved = x.at(K)[j] != w0[j];
    if (!moved) continue;
    dg.resize(n), dl.resize(n), dt.resize(n);
    Pending p{&x};
    // Deltas of checkpoint i (target only where i + k <= K).
    const auto deltas = [&](int i) {
      const float *wi = x.at(i), *prev = x.at(i - 1);
      for (size_t j = 0; j < n; j++) dg[j] = wi[j] - w0[j], dl[j] = wi[j] - prev[j];
      if (i + k <= K)
        for (size_t j = 0; j < n; j++) dt[j] = x.at(i + k)[j] - wi[j];
    };
    if (!x.spec.is_matrix()) {
      Rows& r = groups[int(n)];
      for (int i = 1; i <= K; i++) {
        deltas(i);
        if (i + k <= K) r.add_train(dg.data(), dl.data(), dt.data(), int(n));
        if (i == K) p.delta = r.add_query(dg.data(), dl.data(), int(n));
      }
      pending.push_back(p);
      continue;
    }
    const int64_t rows = x.spec.shape[0], cols = x.spec.shape[1];
    std::vector<Rank1> G, L, T;
    for (int i = 1; i <= K; i++) {
      deltas(i);
      G.push_back(rank1_svd(dg.data(), rows, cols, &e.cost.linalg_flops));
      L.push_back(rank1_svd(dl.data(), rows, cols, &e.cost.linalg_flops));
      if (i + k <= K) T.push_back(rank1_svd(dt.data(), rows, cols, &e.cost.linalg_flops));
    }
    if (s.align_signs) flips += align_signs(G) + align_signs(L) + align_signs(T);
    Rows &ru = groups[int(rows)], &rv = groups[int(cols)], &rs = groups[1];
    for (size_t i = 0; i < T.size(); i++) {
      ru.add_train(G[i].u.data(), L[i].u.data(), T[i].u.data(), int(rows));
      rv.add_train(G[i].v.data(), L[i].v.data(), T[i].v.data(), int(cols));
      const float sg = float(G[i].sigma), sl = float(L[i].sigma), st = float(T[i].sigma);
      rs.add_train(&sg, &sl, &st, 1);
    }
    p.u = ru.add_query(G.back().u.data(), L.back().u.data(), int(rows));
    p.v = rv.add_query(G.back().v.data(), L.back().v.data(), int(cols));
    const float sg = float(G.back().sigma), sl = float(L.back().sigma);
    p.sigma = rs.add_query(&sg, &sl, 1);
    pending.push_back(p);
  }
  FRUGAL_CHECK(!pending.empty(), "NExt: no tensor of trajectory '", t.path, "' changed between its checkpoints");
  e.cost.linalg_seconds = timer.seconds();

  // One predictor per length, trained on its rows, then asked for the queries.
  double loss_first = 0, loss_last = 0, rows_total = 0;
  for (auto& [d, r] : groups) {
    NextPredictor predictor(d, s.predictor, s.seed);
    const PredictorFit fit = predictor.fit(r.global.data(), r.local.data(), r.target.data(), r.train);
    e.cost.fit_flops += fit.flops, e.cost.fit_seconds += fit.seconds;
    loss_first += fit.loss_first * r.train, loss_last += fit.loss_last * r.train, rows_total += r.train;
    r.predicted.resize(size_t(r.queries) * size_t(d));
    predictor.predict(r.query_global.data(), r.query_local.data(), r.queries, r.predicted.data());
    e.cost.fit_flops += predictor.forward_flops(r.queries);
  }

  // Predict-extend from the last checkpoint.
  Timer extend;
  for (const Pending& p : pending) {
    const TrajectoryTensor& x = *p.x;
    float* out = e.params.data() + x.spec.offset;
    if (p.delta >= 0) {
      const float* pred = groups[int(x.spec.numel)].predicted.data() + size_t(p.delta) * x.spec.numel;
      for (size_t j = 0; j < x.spec.numel; j++) out[j] = static_cast<float>(out[j] + s.alpha * pred[j]);
      continue;
    }
    const int rows = int(x.spec.shape[0]), cols = int(x.spec.shape[1]);
    const float* u = groups[rows].predicted.data() + size_t(p.u) * size_t(rows);
    const float* v = groups[cols].predicted.data() + size_t(p.v) * size_t(cols);
    const double sigma = groups[1].predicted[size_t(p.sigma)];
    double nu = 0, nv = 0;
    for (int a = 0; a < rows; a++) nu += double(u[a]) * u[a];
    for (int b = 0; b < cols; b++) nv += double(v[b]) * v[b];
    if (nu == 0 || nv == 0) continue;  // no direction predicted: keep W_K
    const double scale = s.alpha * sigma / std::sqrt(nu * nv);
    for (int a = 0; a < rows; a++)
      for (int b = 0; b < cols; b++) out[size_t(a) * cols + b] = static_cast<float>(out[size_t(a) * cols + b] + scale * u[a] * v[b]);
    e.cost.linalg_flops += 3.0 * double(rows) * cols;
  }
  e.cost.linalg_seconds += extend.seconds();
  e.fit_loss = rows_total > 0 ? loss_last / rows_total : 0.0;
  e.info = {{"fit_loss_first", rows_total > 0 ? loss_first / rows_total : 0.0},
            {"predictors", double(groups.size())},
            {"training_rows", rows_total},
            {"sign_flips", double(flips)}};
  return e;
}

}  // namespace frugal
