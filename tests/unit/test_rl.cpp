// Policies, perturbations, fitness shaping and the PPO loss:
// - MLP and PPO gradients against finite differences (double-precision central differences)
// - EGGROLL's batched low-rank forward and one-GEMM update against the plain formulas, member by
//   member with W + E materialised; the same for OpenAI-ES
// - fitness shaping against hand-computed cases; keyed noise reproducible and standard normal
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "core/config.hpp"
#include "methods/es.hpp"
#include "methods/ppo.hpp"
#include "methods/rl.hpp"
#include "model/mlp.hpp"
#include "model/perturb.hpp"
#include "test_util.hpp"

using namespace frugal;

namespace {

std::vector<float> normals(size_t n, uint64_t seed) {
  Rng r(seed, Stream::init, 99);
  std::vector<float> v(n);
  for (auto& x : v) x = r.normal();
  return v;
}

// Relative error of a directional derivative: analytic g.d vs (L(p + h d) - L(p - h d)) / 2h.
double directional_error(const std::function<double(const std::vector<float>&)>& loss, const std::vector<float>& p,
                         const std::vector<float>& grad, const std::vector<float>& dir, double h) {
  std::vector<float> a = p, b = p;
  for (size_t i = 0; i < p.size(); i++) a[i] += float(h * dir[i]), b[i] -= float(h * dir[i]);
  const double fd = (loss(a) - loss(b)) / (2 * h);
  double an = 0;
  for (size_t i = 0; i < p.size(); i++) an += double(grad[i]) * dir[i];
  return std::fabs(an - fd) / std::max(1e-6, std::fabs(fd) + std::fabs(an));
}

}  // namespace

TEST(Mlp, OrthogonalInitHasOrthonormalRowsOrColumnsTimesGain) {
  Rng rng(3, Stream::init);
  for (auto [rows, cols] : {std::pair{8, 5}, std::pair{5, 8}, std::pair{6, 6}}) {
    std::vector<float> w(size_t(rows) * cols);
    orthogonal_fill(w.data(), rows, cols, 2.0f, rng);
    const bool tall = rows >= cols;  // columns orthonormal (tall) or rows orthonormal (wide)
    const int k = tall ? cols : rows;
    for (int a = 0; a < k; a++)
      for (int b = 0; b < k; b++) {
        double dot = 0;
        for (int i = 0; i < (tall ? rows : cols); i++)
          dot += tall ? double(w[size_t(i) * cols + a]) * w[size_t(i) * cols + b] : double(w[size_t(a) * cols + i]) * w[size_t(b) * cols + i];
        EXPECT_NEAR(dot, a == b ? 4.0 : 0.0, 1e-5) << rows << "x" << cols;
      }
  }
}

TEST(Mlp, BackwardMatchesFiniteDifferences) {
  for (Activation act : {Activation::tanh, Activation::relu}) {
    ParamLayout layout;
    const MlpView mlp = mlp_add(layout, "net", {5, 7, 6, 3}, act);
    std::vector<float> p = normals(layout.total, 1);
    for (auto& x : p) x *= 0.5f;
    const int B = 4;
    const std::vector<float> x = normals(size_t(B) * 5, 2), target = normals(size_t(B) * 3, 3);
    // Loss = 0.5 sum (y - target)^2 -> dout = y - target.
    auto loss = [&](const std::vector<float>& q) {
      MlpActs acts;
      const float* y = mlp_forward(mlp, q.data(), x.data(), B, acts);
      double l = 0;
      for (size_t i = 0; i < target.size(); i++) l += 0.5 * double(y[i] - target[i]) * (y[i] - target[i]);
      return l;
    };
    MlpActs acts;
    const float* y = mlp_forward(mlp, p.data(), x.data(), B, acts);
    std::vector<float> dout(target.size()), grads(p.size(), 0.0f), scratch, dx(size_t(B) * 5);
    for (size_t i = 0; i < dout.size(); i++) dout[i] = y[i] - target[i];
    mlp_backward(mlp, p.data(), x.data(), acts, dout.data(), B, grads.data(), scratch, dx.data());
    for (const auto& t : layout.tensors) {  // one random direction per tensor
      std::vector<float> dir(p.size(), 0.0f);
      const auto d = normals(t.numel, 7 + t.offset);
      std::copy(d.begin(), d.end(), dir.begin() + t.offset);
      EXPECT_LT(directional_error(loss, p, grads, dir, 1e-3), 2e-3) << t.name;
    }
    // Input gradient, one coordinate.
    auto loss_x = [&](float dx0) {
      std::vector<float> x2 = x;
      x2[0] += dx0;
      MlpActs a2;
      const float* y2 = mlp_forward(mlp, p.data(), x2.data(), B, a2);
      double l = 0;
      for (size_t i = 0; i < target.size(); i++) l += 0.5 * double(y2[i] - target[i]) * (y2[i] - target[i]);
      return l;
    };
    EXPECT_NEAR(dx[0], (loss_x(1e-3f) - loss_x(-1e-3f)) / 2e-3, 2e-3 * (1 + std::fabs(dx[0])));
  }
}

TEST(KeyedNoise, ReproducibleIndependentOfLengthAndStandardNormal) {
  const NoiseKey key{42, 0, 3, 7};
  std::vector<float> a(10001), b(37);
  keyed_normals(key, 5, a.data(), int64_t(a.size()));
  keyed_normals(key, 5, b.data(), int64_t(b.size()));
  for (size_t i = 0; i < b.size(); i++) EXPECT_EQ(a[i], b[i]);  // any prefix regenerates alone
  std::vector<float> other(37);
  for (const auto& [k, pair] : {std::pair{NoiseKey{42, 1, 3, 7}, 5u}, std::pair{NoiseKey{42, 0, 4, 7}, 5u},
                                std::pair{NoiseKey{42, 0, 3, 8}, 5u}, std::pair{NoiseKey{43, 0, 3, 7}, 5u},
                                std::pair{key, 6u}}) {
    keyed_normals(k, pair, other.data(), 37);
    EXPECT_NE(other, b) << "tensor " << k.tensor << " layer " << k.layer << " epoch " << k.epoch << " pair " << pair;
  }
  double m = 0, v = 0;
  for (float z : a) m += z;
  m /= double(a.size());
  for (float z : a) v += (z - m) * (z - m);
  v /= double(a.size());
  EXPECT_NEAR(m, 0.0, 0.04);
  EXPECT_NEAR(v, 1.0, 0.05);
}

TEST(Eggroll, LowRankForwardEqualsMaterialisedPerturbedWeights) {
  const int n = 9, m = 6, r = 3, N = 8, P = N / 2;
  const float sigma = 0.3f;
  LowRankFactors f;
  lowrank_generate(f, NoiseKey{1, 0, 0, 0}, 0, P, m, n, r);
  VectorNoise bn;
  vector_noise_generate(bn, NoiseKey{1, 1, 0, 0}, 0, P, m);
  // The factors are the (n + m) x r normal block of the spec, split B | A.
  std::vector<float> block(size_t(n + m) * r);
  keyed_normals(NoiseKey{1, 0, 0, 0}, 2, block.data(), int64_t(block.size()));
  EXPECT_EQ(f.b(2)[1 * n + 4], block[4 * r + 1]);        // B[4][1]
  EXPECT_EQ(f.a(2)[2 * m + 5], block[(n + 5) * r + 2]);  // A[5][2]

  const std::vector<float> w = normals(size_t(m) * n, 5), bias = normals(m, 6);
  const int batch = 11;
  const std::vector<float> x = normals(size_t(batch) * n, 7);
  std::vector<int32_t> member(batch);
  for (int b = 0; b < batch; b++) member[b] = (b * 5) % N;  // rows in any order, members repeated
  std::vector<float> y(size_t(batch) * m);
  lowrank_linear_forward(x.data(), batch, w.data(), bias.data(), member.data(), f, &bn, sigma, y.data());
  for (int b = 0; b < batch; b++) {
    const int p = member[b] / 2, s = member[b] % 2 == 0 ? 1 : -1;
    for (int j = 0; j < m; j++) {
      double ref = bias[j] + s * sigma * bn.at(p)[j];
      for (int i = 0; i < n; i++) {
        double e = 0;  // E = A B^T / sqrt(r), sign and sigma folded in
        for (int k = 0; k < r; k++) e += double(f.a(p)[k * m + j]) * f.b(p)[k * n + i];
        ref += (w[size_t(j) * n + i] + s * sigma * e / std::sqrt(double(r))) * x[size_t(b) * n + i];
      }
      EXPECT_NEAR(y[size_t(b) * m + j], ref, 1e-4) << "row " << b << " out " << j;
    }
  }
}

TEST(Eggroll, OneGemmUpdateEqualsTheSumOverMembers) {
  const int n = 7, m = 5, r = 2, N = 10, P = N / 2;
  const float sigma = 0.1f;
  LowRankFactors f;
  lowrank_generate(f, NoiseKey{9, 0, 1, 3}, 0, P, m, n, r);
  const std::vector<float> fit = normals(N, 11);
  std::vector<float> g(size_t(m) * n), scratch;
  lowrank_update(f, fit.data(), N, sigma, g.data(), scratch);
  for (int j = 0; j < m; j++)
    for (int i = 0; i < n; i++) {
      double ref = 0;  // (1/N) sum_i f_i s_i (sigma / sqrt r) A_p B_p^T, member by member
      for (int mem = 0; mem < N; mem++) {
        const int p = mem / 2, s = mem % 2 == 0 ? 1 : -1;
        for (int k = 0; k < r; k++) ref += fit[mem] * s * sigma / std::sqrt(double(r)) * f.a(p)[k * m + j] * f.b(p)[k * n + i];
      }
      EXPECT_NEAR(g[size_t(j) * n + i], ref / N, 1e-6);
    }
  VectorNoise v;
  vector_noise_generate(v, NoiseKey{9, 1, 1, 3}, 0, P, m);
  std::vector<float> gb(m);
  vector_noise_update(v, fit.data(), N, sigma, gb.data());
  for (int j = 0; j < m; j++) {
    double ref = 0;
    for (int mem = 0; mem < N; mem++) ref += fit[mem] * (mem % 2 == 0 ? 1 : -1) * sigma * v.at(mem / 2)[j];
    EXPECT_NEAR(gb[j], ref / N, 1e-6);
  }
}

TEST(OpenAiEs, FullRankForwardAndUpdateEqualThePlainFormulas) {
  const int n = 6, m = 4, N = 6, P = 3;
  const float sigma = 0.2f;
  FullRankNoise e;
  fullrank_generate(e, NoiseKey{2, 0, 0, 0}, 0, P, m, n);
  const std::vector<float> w = normals(size_t(m) * n, 1), bias = normals(m, 2), x = normals(size_t(N) * n, 3);
  std::vector<int32_t> member(N);
  std::iota(member.begin(), member.end(), 0);
  std::vector<float> y(size_t(N) * m);
  fullrank_linear_forward(x.data(), N, w.data(), bias.data(), member.data(), e, nullptr, sigma, y.data());
  for (int b = 0; b < N; b++)
    for (int j = 0; j < m; j++) {
      double ref = bias[j];
      for (int i = 0; i < n; i++) ref += (w[size_t(j) * n + i] + (b % 2 ? -1 : 1) * sigma * e.at(b / 2)[j * n + i]) * x[size_t(b) * n + i];
      EXPECT_NEAR(y[size_t(b) * m + j], ref, 1e-5);
    }
  const std::vector<float> fit = normals(N, 4);
  std::vector<float> g(size_t(m) * n);
  fullrank_update(e, fit.data(), N, sigma, g.data());
  for (size_t q = 0; q < g.size(); q++) {
    double ref = 0;
    for (int mem = 0; mem < N; mem++) ref += fit[mem] * (mem % 2 ? -1 : 1) * sigma * e.at(mem / 2)[q];
    EXPECT_NEAR(g[q], ref / N, 1e-6);
  }
}

TEST(Eggroll, LowRankEstimateApproachesFullRankEsAsRankGrows) {
  // For a linear fitness f_i = <s_i E_p, T> both estimators are unbiased for T (E[<E,T> E] = T,
  // since A B^T / sqrt(r) has identity covariance); the low-rank one has heavier tails, so its
  // error with P pairs exceeds the full-rank error and approaches it as r grows (the paper's O(1/r)).
  const int n = 12, m = 10, N = 4000, P = N / 2;
  const std::vector<float> T = normals(size_t(m) * n, 21);
  auto rel_err = [&](const std::vector<float>& g) {
    double err = 0, norm = 0;
    for (size_t q = 0; q < g.size(); q++) err += (g[q] - T[q]) * (g[q] - T[q]), norm += T[q] * T[q];
    return std::sqrt(err / norm);
  };
  auto fitness_of = [&](const std::function<double(int p, size_t q)>& e) {
    std::vector<float> fit(N);
    for (int mem = 0; mem < N; mem++) {
      double dot = 0;
      for (size_t q = 0; q < T.size(); q++) dot += e(mem / 2, q) * T[q];
      fit[mem] = static_cast<float>((mem % 2 == 0 ? 1 : -1) * dot);
    }
    return fit;
  };
  FullRankNoise full;
  fullrank_generate(full, NoiseKey{5, 0, 0, 0}, 0, P, m, n);
  std::vector<float> g(size_t(m) * n), scratch;
  auto fit = fitness_of([&](int p, size_t q) { return full.at(p)[q]; });
  fullrank_update(full, fit.data(), N, 1.0f, g.data());
  const double full_err = rel_err(g);
  std::vector<double> gaps;
  for (int r : {1, 4, 32}) {
    LowRankFactors f;
    lowrank_generate(f, NoiseKey{5, 0, 0, 0}, 0, P, m, n, r);
    fit = fitness_of([&](int p, size_t q) {
      const size_t j = q / n, i = q % n;
      double e = 0;
      for (int k = 0; k < r; k++) e += double(f.a(p)[k * m + j]) * f.b(p)[k * n + i];
      return e / std::sqrt(double(r));
    });
    lowrank_update(f, fit.data(), N, 1.0f, g.data(), scratch);
    gaps.push_back(std::fabs(rel_err(g) - full_err));
  }
  EXPECT_LT(full_err, 0.35);  // ~ sqrt(mn / P): the Monte Carlo error itself
  EXPECT_GT(gaps[0], gaps[2]) << "rank 1 gap " << gaps[0] << ", rank 32 gap " << gaps[2];
  EXPECT_LT(gaps[2], 0.1 * full_err);
}

TEST(FitnessShaping, HandComputedCases) {
  const std::vector<float> R = {1, 3, 2, 6};
  // mean 3, var (4 + 0 + 1 + 9) / 4 = 3.5
  const auto z = shape_fitness(R, "zscore", 0);
  const double sd = std::sqrt(3.5 + 1e-5);
  EXPECT_NEAR(z[0], -2 / sd, 1e-6);
  EXPECT_NEAR(z[3], 3 / sd, 1e-6);
  // groups {1,3} (mean 2) and {2,6} (mean 4), global std
  const auto g = shape_fitness(R, "zscore", 2);
  EXPECT_NEAR(g[0], -1 / sd, 1e-6);
  EXPECT_NEAR(g[1], 1 / sd, 1e-6);
  EXPECT_NEAR(g[2], -2 / sd, 1e-6);
  EXPECT_NEAR(g[3], 2 / sd, 1e-6);
  // ranks 0, 2, 1, 3 of 4 -> r / 3 - 0.5
  const auto c = shape_fitness(R, "centered_rank", 0);
  EXPECT_FLOAT_EQ(c[0], -0.5f);
  EXPECT_FLOAT_EQ(c[1], 2.0f / 3 - 0.5f);
  EXPECT_FLOAT_EQ(c[2], 1.0f / 3 - 0.5f);
  EXPECT_FLOAT_EQ(c[3], 0.5f);
  EXPECT_NE(error_of([&] { shape_fitness(R, "zscore", 3); }).find("does not divide"), std::string::npos);
}

TEST(Ppo, LossGradientMatchesFiniteDifferences) {
  for (const char* env : {"CartPole-v1", "Acrobot-v1", "Pendulum-v1"}) {
    SCOPED_TRACE(env);
    const Config cfg = resolve_config(suite_schema(), "", {std::string("--env.name=") + env, "--policy.hidden_size=8"});
    auto e = envs::make_env(env, 1, 1, 0);
    const PpoAgent agent = make_ppo_agent(cfg, e.spec());
    std::vector<float> p(agent.layout.total);
    Rng init(4, Stream::init);
    init_ppo_agent(agent, p.data(), init);
    // A bigger actor head than CleanRL's 0.01 so the policy term is not negligible in the check.
    for (int l = 0; l < agent.actor.layers(); l++)
      for (int q = 0; q < agent.actor.sizes[l + 1] * agent.actor.sizes[l]; q++) p[agent.actor.w_off[l] + q] *= 3.0f;
    if (agent.continuous) p[agent.logstd_off] = -0.3f;
    const int n = 16, D = e.spec().obs_dim, K = agent.actions;
    const std::vector<float> obs = normals(size_t(n) * D, 8), adv = normals(n, 9), ret = normals(n, 10);
    std::vector<float> act_c = normals(size_t(n) * K, 11), logp_old(n), vold(n);
    std::vector<int32_t> act_d(n);
    for (int b = 0; b < n; b++) act_d[b] = b % std::max(1, K);
    // Old log-probs and values near the current ones: some samples clip, most do not.
    PpoWorkspace ws;
    MlpActs acts;
    const float* out = mlp_forward(agent.actor, p.data(), obs.data(), n, acts);
    for (int b = 0; b < n; b++)
      logp_old[b] = static_cast<float>(log_prob(agent, out + size_t(b) * K, agent.continuous ? p.data() + agent.logstd_off : nullptr,
                                                &act_d[b], act_c.data() + size_t(b) * K)) + 0.3f * normals(n, 12)[b];
    const float* v = mlp_forward(agent.critic, p.data(), obs.data(), n, acts);
    for (int b = 0; b < n; b++) vold[b] = v[b] + 0.3f * normals(n, 13)[b];
    PpoMinibatch mb{n, obs.data(), agent.continuous ? nullptr : act_d.data(), agent.continuous ? act_c.data() : nullptr,
                    logp_old.data(), adv.data(), ret.data(), vold.data()};
    PpoCoefs coefs;
    coefs.ent = 0.05f;
    std::vector<float> grads(p.size(), 0.0f);
    const PpoLoss L = ppo_loss(agent, p.data(), mb, coefs, grads.data(), ws);
    EXPECT_GT(L.clipfrac, 0.0);
    auto loss = [&](const std::vector<float>& q) {
      PpoWorkspace w2;
      return ppo_loss(agent, q.data(), mb, coefs, nullptr, w2).loss;
    };
    for (const auto& t : agent.layout.tensors) {
      std::vector<float> dir(p.size(), 0.0f);
      const auto d = normals(t.numel, 30 + t.offset);
      std::copy(d.begin(), d.end(), dir.begin() + t.offset);
      EXPECT_LT(directional_error(loss, p, grads, dir, 1e-3), 1e-2) << t.name;
    }
  }
}

// GAE on a hand-computed rollout: one environment, 5 steps; the episode terminates after step 1
// (the pole fell) and is truncated after step 3 (time limit). CleanRL does not bootstrap through
// either: the advantage chain restarts at steps 2 and 4, and V(s') of the ended episodes is unused.
TEST(Ppo, GaeMatchesAHandComputedRolloutWithATerminationAndATruncation) {
  const float gamma = 0.9f, lambda = 0.8f;
  const std::vector<float> r = {1.0f, 2.0f, 0.5f, 1.5f, 1.0f};
  const std::vector<float> v = {0.4f, 0.3f, 0.6f, 0.2f, 0.7f};
  const std::vector<uint8_t> terminated = {0, 1, 0, 0, 0}, truncated = {0, 0, 0, 1, 0};
  // dones[t] = the observation of step t starts a new episode = step t - 1 ended one.
  std::vector<float> dones(5, 0.0f);
  for (int t = 1; t < 5; t++) dones[t] = (terminated[t - 1] || truncated[t - 1]) ? 1.0f : 0.0f;
  const float next_value = 0.5f, next_done = 0.0f;  // the rollout stops mid-episode: bootstrap
  std::vector<float> adv(5);
  gae(r.data(), v.data(), dones.data(), &next_value, &next_done, 5, 1, gamma, lambda, adv.data());
  // By hand, backwards. Step 4 bootstraps from the next value; step 3 was truncated: no V(s').
  const double d4 = 1.0 + 0.9 * 0.5 - 0.7, a4 = d4;
  const double d3 = 1.5 - 0.2, a3 = d3;  // no bootstrap, no chain
  const double d2 = 0.5 + 0.9 * 0.2 - 0.6, a2 = d2 + 0.9 * 0.8 * a3;
  const double d1 = 2.0 - 0.3, a1 = d1;  // terminated
  const double d0 = 1.0 + 0.9 * 0.3 - 0.4, a0 = d0 + 0.9 * 0.8 * a1;
  const double want[5] = {a0, a1, a2, a3, a4};
  for (int t = 0; t < 5; t++) EXPECT_NEAR(adv[t], want[t], 1e-6) << "step " << t;

  // Two environments interleaved (row t * n + i) give each its own chain.
  std::vector<float> r2(10), v2(10), d2v(10), adv2(10);
  for (int t = 0; t < 5; t++) {
    r2[2 * t] = r[t], v2[2 * t] = v[t], d2v[2 * t] = dones[t];
    r2[2 * t + 1] = 1.0f, v2[2 * t + 1] = 0.0f, d2v[2 * t + 1] = 0.0f;
  }
  const float nv2[2] = {0.5f, 0.0f}, nd2[2] = {0.0f, 1.0f};
  gae(r2.data(), v2.data(), d2v.data(), nv2, nd2, 5, 2, gamma, lambda, adv2.data());
  for (int t = 0; t < 5; t++) EXPECT_EQ(adv2[2 * t], adv[t]) << "step " << t;
  // Environment 1: rewards 1, values 0, never done until after the last step: A_t = sum (0.72)^k.
  double a = 0;
  for (int t = 4; t >= 0; t--) {
    a = 1.0 + 0.72 * a;
    EXPECT_NEAR(adv2[2 * t + 1], a, 1e-6) << "step " << t;
  }
}
