// The extrapolators of RL trajectories (src/extrapolate): the linear algebra against hand cases and
// references, the trajectory file, and every extrapolator on synthetic trajectories whose future is
// known - exactly linear (all must recover it; NExt within its fit error) and quadratic (the table
// printed shows which methods do).
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <random>

#include "extrapolate/extrapolate.hpp"
#include "extrapolate/linalg.hpp"
#include "extrapolate/trajectory.hpp"
#include "test_util.hpp"

using namespace frugal;

namespace {

std::vector<float> random_vector(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(gen);
  return v;
}

void normalise(std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += double(x) * x;
  for (float& x : v) x = static_cast<float>(x / std::sqrt(s));
}

// The leading singular value by power iteration in double: an independent reference.
double power_sigma(const std::vector<float>& M, int rows, int cols) {
  std::vector<double> v(static_cast<size_t>(cols), 1.0), u(static_cast<size_t>(rows));
  double sigma = 0;
  for (int it = 0; it < 3000; it++) {
    for (int i = 0; i < rows; i++) {
      u[size_t(i)] = 0;
      for (int j = 0; j < cols; j++) u[size_t(i)] += M[size_t(i) * cols + j] * v[size_t(j)];
    }
    double n = 0;
    for (int j = 0; j < cols; j++) {
      v[size_t(j)] = 0;
      for (int i = 0; i < rows; i++) v[size_t(j)] += M[size_t(i) * cols + j] * u[size_t(i)];
      n += v[size_t(j)] * v[size_t(j)];
    }
    n = std::sqrt(n);
    for (double& x : v) x /= n;
    sigma = std::sqrt(n);
  }
  return sigma;
}

double frobenius(const std::vector<float>& a) {
  double s = 0;
  for (float x : a) s += double(x) * x;
  return std::sqrt(s);
}

}  // namespace

TEST(Rank1Svd, RecoversAHandMadeRank1MatrixTallAndWide) {
  for (const auto& [rows, cols] : {std::pair{5, 3}, std::pair{3, 7}}) {
    std::vector<float> u = random_vector(size_t(rows), 1), v = random_vector(size_t(cols), 2);
    normalise(u), normalise(v);
    std::vector<float> M(size_t(rows) * cols);
    for (int i = 0; i < rows; i++)
      for (int j = 0; j < cols; j++) M[size_t(i) * cols + j] = 2.5f * u[size_t(i)] * v[size_t(j)];
    double flops = 0;
    const Rank1 r = rank1_svd(M.data(), rows, cols, &flops);
    EXPECT_NEAR(r.sigma, 2.5, 1e-5);
    EXPECT_GT(flops, 0);
    // The pair's sign is free: compare u v^T.
    for (int i = 0; i < rows; i++)
      for (int j = 0; j < cols; j++) EXPECT_NEAR(r.u[size_t(i)] * r.v[size_t(j)], u[size_t(i)] * v[size_t(j)], 1e-6);
  }
  std::vector<float> zero(12, 0.0f);
  const Rank1 z = rank1_svd(zero.data(), 3, 4);
  EXPECT_EQ(z.sigma, 0.0);
  EXPECT_EQ(z.u.size(), 3u);
  EXPECT_EQ(z.v.size(), 4u);
}

TEST(Rank1Svd, MatchesPowerIterationAndTheEckartYoungBoundOnRandomMatrices) {
  for (const auto& [rows, cols] : {std::pair{40, 24}, std::pair{16, 33}}) {
    const std::vector<float> M = random_vector(size_t(rows) * cols, uint32_t(rows * 7 + cols));
    const Rank1 r = rank1_svd(M.data(), rows, cols);
    EXPECT_NEAR(r.sigma, power_sigma(M, rows, cols), 1e-4 * r.sigma);
    // |M - sigma u v^T|_F^2 = |M|_F^2 - sigma^2 for the leading triple (and no rank-1 matrix does better).
    std::vector<float> residual = M;
    for (int i = 0; i < rows; i++)
      for (int j = 0; j < cols; j++) residual[size_t(i) * cols + j] -= float(r.sigma) * r.u[size_t(i)] * r.v[size_t(j)];
    const double f = frobenius(M), e = frobenius(residual);
    EXPECT_NEAR(e * e, f * f - r.sigma * r.sigma, 1e-3 * f * f);
    EXPECT_GE(r.sigma * r.sigma, f * f / std::min(rows, cols));
    EXPECT_NEAR(frobenius(r.u), 1.0, 1e-5);
    EXPECT_NEAR(frobenius(r.v), 1.0, 1e-5);
  }
}

TEST(AlignSigns, FlipsTriplesThatPointAgainstTheirPredecessor) {
  std::vector<float> u = random_vector(6, 3), v = random_vector(4, 4);
  normalise(u), normalise(v);
  std::vector<Rank1> seq;
  const int signs[5] = {1, -1, -1, 1, -1};
  for (int s : signs) {
    Rank1 r{1.0, u, v};
    for (float& x : r.u) x *= float(s);
    for (float& x : r.v) x *= float(s);
    seq.push_back(r);
  }
  std::vector<Rank1> raw = seq;
  EXPECT_EQ(align_signs(seq), 3);
  for (const Rank1& r : seq) {
    for (size_t i = 0; i < u.size(); i++) EXPECT_EQ(r.u[i], u[i]);
    for (size_t i = 0; i < v.size(); i++) EXPECT_EQ(r.v[i], v[i]);
  }
  EXPECT_EQ(align_signs(seq), 0);  // already aligned
  EXPECT_EQ(raw[1].u[0], -u[0]);   // the unaligned copy kept its flips
}

TEST(Pls1, HandCases) {
  // One informative column: w = (1, 0), t = (-1, 0, 1), q = 1, loading (1, 0).
  Pls1 a = pls1_fit({1, 0, 2, 0, 3, 0}, 3, 2, {1, 2, 3});
  EXPECT_NEAR(a.q, 1.0, 1e-12);
  EXPECT_NEAR(a.w[0], 1.0, 1e-12);
  EXPECT_NEAR(a.w[1], 0.0, 1e-12);
  const float x5[2] = {5, 0};
  EXPECT_NEAR(a.predict(x5), 5.0, 1e-12);
  const std::vector<double> xa = a.solve(4.0);
  EXPECT_NEAR(xa[0], 4.0, 1e-12);
  EXPECT_NEAR(xa[1], 0.0, 1e-12);
  // Two collinear columns (x2 = 2 x1), y = 2 x1: w = (1, 2)/sqrt5, q = 2/sqrt5, loading = (1, 2)/sqrt5,
  // and y = 8 is reached at x = (4, 8).
  Pls1 b = pls1_fit({1, 2, 2, 4, 3, 6}, 3, 2, {2, 4, 6});
  EXPECT_NEAR(b.q, 2.0 / std::sqrt(5.0), 1e-12);
  EXPECT_NEAR(b.loading[1], 2.0 / std::sqrt(5.0), 1e-12);
  const std::vector<double> xb = b.solve(8.0);
  EXPECT_NEAR(xb[0], 4.0, 1e-12);
  EXPECT_NEAR(xb[1], 8.0, 1e-12);
  // A flat accuracy has no slope to solve along: a clear error.
  Pls1 c = pls1_fit({1, 2, 3}, 3, 1, {0.5, 0.5, 0.5});
  EXPECT_NE(error_of([&] { c.solve(0.6); }).find("slope is zero"), std::string::npos);
}

TEST(LeastSquaresLine, HandCase) {
  const Line l = least_squares_line({0, 1, 2, 3}, {1, 3, 5, 7});
  EXPECT_NEAR(l.a, 1.0, 1e-12);
  EXPECT_NEAR(l.b, 2.0, 1e-12);
  EXPECT_NEAR(least_squares_line({2}, {4}).at(10), 4.0, 1e-12);  // one point: flat
}

namespace {

const GPT2Config kModel{8, 16, 16, 1, 2, 8};  // maxT 8, V 16, L 1, 2 heads, C 8

// A trajectory of kModel with checkpoints at steps 0, c, ..., K c: the matrices move along
// W_0 + f(t / c) D_j with D_j rank 1, h0.qkvb along W_0 + f(t / c) d; everything else stays.
// accuracy(t) = 0.2 + 0.01 f(t / c) (so it is linear in the weights' position along the path).
// (move_bias = false: only the matrices move, as under LoRA.)
Trajectory synthetic(int K, int64_t c, const std::function<double(double)>& f, bool move_bias = true) {
  Trajectory t;
  t.path = "synthetic";
  t.model = kModel;
  const std::vector<NamedTensor> specs = gpt2_named_tensors(kModel);
  const std::vector<float> w0 = random_vector(gpt2_layout(kModel).total, 11, 0.1f);
  for (int i = 0; i <= K; i++) t.steps.push_back(i * c), t.accuracy.push_back(0.2 + 0.01 * f(double(i)));
  uint32_t seed = 100;
  for (const NamedTensor& s : specs) {
    TrajectoryTensor x{s, std::vector<float>(size_t(K + 1) * s.numel)};
    std::vector<float> direction(s.numel, 0.0f);
    if (s.is_matrix() && s.name != "wte" && s.name != "wpe") {
      std::vector<float> u = random_vector(size_t(s.shape[0]), seed++), v = random_vector(size_t(s.shape[1]), seed++);
      normalise(u), normalise(v);
      for (int64_t a = 0; a < s.shape[0]; a++)
        for (int64_t b = 0; b < s.shape[1]; b++) direction[size_t(a * s.shape[1] + b)] = 0.05f * u[size_t(a)] * v[size_t(b)];
    } else if (s.name == "h0.qkvb" && move_bias) {
      direction = random_vector(s.numel, seed++, 0.01f);
    }
    for (int i = 0; i <= K; i++)
      for (size_t j = 0; j < s.numel; j++)
        x.data[size_t(i) * s.numel + j] = static_cast<float>(w0[s.offset + j] + f(double(i)) * direction[j]);
    t.tensors.push_back(std::move(x));
  }
  return t;
}

// The weights of the synthetic path at RL step `step` (any, beyond K too), flat.
std::vector<float> synthetic_at(const Trajectory& longer, int checkpoint) { return trajectory_params(longer, checkpoint); }

// |predicted - true| / |true - last observed| over the moving tensors: 0 = recovered exactly,
// 1 = no better than standing still at W_K.
double relative_error(const std::vector<float>& predicted, const std::vector<float>& truth, const std::vector<float>& last) {
  double e = 0, d = 0;
  for (size_t i = 0; i < truth.size(); i++) {
    e += std::pow(double(predicted[i]) - truth[i], 2);
    d += std::pow(double(truth[i]) - last[i], 2);
  }
  return std::sqrt(e / d);
}

NextSettings fast_next(int k, double alpha) {
  NextSettings s;
  s.k = k;
  s.alpha = alpha;
  s.predictor.hidden = 32;
  s.predictor.epochs = 1500;
  s.predictor.lr = 5e-3f;
  s.predictor.lr_min = 1e-4f;
  s.predictor.weight_decay = 0.0f;
  return s;
}

}  // namespace

TEST(RlExtra, IsTheLineFromW0ThroughWkWithNormsCopied) {
  Trajectory t = synthetic(2, 10, [](double i) { return i * i; });  // quadratic: the formula, not the path
  // Move a LayerNorm gain too, to see it copied rather than extrapolated.
  for (TrajectoryTensor& x : t.tensors)
    if (x.spec.name == "h0.ln1w")
      for (size_t j = 0; j < x.spec.numel; j++) x.data[2 * x.spec.numel + j] += 0.5f;
  const Extrapolation e = extrapolate_rl_extra(t, 50);  // a = (50 - 0) / (20 - 0) = 2.5
  for (const TrajectoryTensor& x : t.tensors)
    for (size_t j = 0; j < x.spec.numel; j++) {
      const double want = x.spec.is_norm ? x.at(2)[j] : x.at(0)[j] + 2.5 * (double(x.at(2)[j]) - x.at(0)[j]);
      ASSERT_NEAR(e.params[x.spec.offset + j], want, 1e-6) << x.spec.name;
    }
  EXPECT_NE(error_of([&] { extrapolate_rl_extra(t, 20); }).find("beyond the last checkpoint"), std::string::npos);
}

TEST(Extrapolators, EveryOneRecoversAnExactlyLinearTrajectory) {
  // Observed: checkpoints 0..6 (steps 0..60); the truth at step 100 is checkpoint 10 of the same path.
  const auto linear = [](double i) { return i; };
  const Trajectory full = synthetic(10, 10, linear);
  const Trajectory seen = synthetic(6, 10, linear);
  const std::vector<float> truth = synthetic_at(full, 10), last = synthetic_at(full, 6);
  EXPECT_LT(relative_error(extrapolate_rl_extra(seen, 100).params, truth, last), 1e-4);
  EXPECT_LT(relative_error(extrapolate_relex(seen, 100).params, truth, last), 1e-4);
  // AlphaRL extrapolates the matrices only (vectors stay at W_K): on a LoRA-like path it is exact.
  const Trajectory lora_seen = synthetic(6, 10, linear, false), lora_full = synthetic(10, 10, linear, false);
  const Extrapolation a = extrapolate_alpharl(lora_seen, 100, std::nan(""));
  EXPECT_LT(relative_error(a.params, synthetic_at(lora_full, 10), synthetic_at(lora_full, 6)), 1e-3);
  // NExt predicts the delta k checkpoints ahead: k = 2 and alpha = 2 reach checkpoint 10.
  const Extrapolation n = extrapolate_next(seen, fast_next(2, 2.0));
  const double err = relative_error(n.params, truth, last);
  std::printf("NExt on a linear path: relative error %.4f, fit L1 %.2e -> %.2e\n", err,
              n.info[0].second, n.fit_loss);
  EXPECT_LT(n.fit_loss, 0.2 * n.info[0].second);  // the predictor learnt
  EXPECT_LT(err, 0.15);
  EXPECT_GT(n.cost.fit_flops, 0);
  EXPECT_GT(n.cost.linalg_flops, 0);
}

TEST(Extrapolators, AQuadraticTrajectoryShowsWhichMethodsFollowCurvature) {
  const auto quadratic = [](double i) { return i * i / 6.0; };
  const Trajectory full = synthetic(10, 10, quadratic), seen = synthetic(6, 10, quadratic);
  const std::vector<float> truth = synthetic_at(full, 10), last = synthetic_at(full, 6);
  const double rl_extra = relative_error(extrapolate_rl_extra(seen, 100).params, truth, last);
  const double relex = relative_error(extrapolate_relex(seen, 100).params, truth, last);
  const double alpharl = relative_error(extrapolate_alpharl(seen, 100, std::nan("")).params, truth, last);
  // NExt's target is W_{i+k} - W_i, whose size grows with i on this path: the predictor can follow it.
  const double next = relative_error(extrapolate_next(seen, fast_next(2, 2.0)).params, truth, last);
  std::printf("quadratic path, error relative to the remaining distance (0 = recovered, 1 = stayed at W_K):\n"
              "  RL-Extra %.3f  RELEX %.3f  AlphaRL %.3f  NExt %.3f\n", rl_extra, relex, alpharl, next);
  // A line through W_0 and W_K falls short of a curve that accelerates: (100/60) (36/6) = 10 vs 100/6.
  EXPECT_GT(rl_extra, 0.3);
  EXPECT_GT(relex, 0.1);
  EXPECT_TRUE(std::isfinite(next) && std::isfinite(alpharl));
}

TEST(Extrapolators, SignAlignmentIsASwitchAndTooFewCheckpointsAreAnError) {
  const Trajectory seen = synthetic(6, 10, [](double i) { return i; });
  NextSettings on = fast_next(2, 2.0), off = on;
  off.align_signs = false;
  on.predictor.epochs = off.predictor.epochs = 10;
  const Extrapolation a = extrapolate_next(seen, on), b = extrapolate_next(seen, off);
  EXPECT_EQ(a.info.size(), b.info.size());
  const Trajectory short_one = synthetic(2, 10, [](double i) { return i; });
  EXPECT_NE(error_of([&] { extrapolate_next(short_one, fast_next(5, 1.5)); }).find("at least 6 more"), std::string::npos);
  EXPECT_NE(error_of([&] { extrapolate_relex(synthetic(1, 10, [](double i) { return i; }), 50); }).find("at least 2 more"),
            std::string::npos);
  EXPECT_NE(error_of([&] { extrapolate_alpharl(synthetic(1, 10, [](double i) { return i; }), 50, 0.5); }).find("at least 2 more"),
            std::string::npos);
}

namespace {

std::string scratch(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("frugal_test_extrapolate_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

GPT2 model_at(float value) {
  GPT2 m = gpt2_create(kModel);
  for (size_t i = 0; i < m.params.size(); i++) m.params[i] = value + 1e-3f * float(i);
  return m;
}

}  // namespace

TEST(TrajectoryFile, RoundTripsTruncatesOnRewriteAndReadsAPrefix) {
  const std::string path = scratch("round_trip.h5");
  for (int i = 0; i < 3; i++) write_trajectory_checkpoint(path, i, 10 * i, 0.1 * i, model_at(float(i)));
  Trajectory t = read_trajectory(path);
  ASSERT_EQ(t.checkpoints(), 3);
  EXPECT_EQ(t.steps, (std::vector<int64_t>{0, 10, 20}));
  EXPECT_DOUBLE_EQ(t.accuracy[2], 0.2);
  EXPECT_EQ(t.model.channels, kModel.channels);
  for (int i = 0; i < 3; i++) EXPECT_EQ(trajectory_params(t, i), model_at(float(i)).params);
  EXPECT_EQ(read_trajectory(path, 15).checkpoints(), 2);
  // A resumed run rewrites checkpoint 1: the rows after it go.
  write_trajectory_checkpoint(path, 1, 10, 0.5, model_at(7.0f));
  t = read_trajectory(path);
  ASSERT_EQ(t.checkpoints(), 2);
  EXPECT_DOUBLE_EQ(t.accuracy[1], 0.5);
  EXPECT_EQ(trajectory_params(t, 1), model_at(7.0f).params);
  // Layer-stacked tensors are split by layer, matrices are 2-D.
  bool found = false;
  for (const TrajectoryTensor& x : t.tensors)
    if (x.spec.name == "h0.fcw") found = x.spec.is_matrix() && x.spec.shape[0] == 4 * kModel.channels;
  EXPECT_TRUE(found);
}

TEST(TrajectoryFile, BadFilesGetClearErrors) {
  EXPECT_NE(error_of([] { read_trajectory(scratch("missing.h5")); }).find("does not exist"), std::string::npos);
  const std::string text = scratch("text.h5");
  std::FILE* f = std::fopen(text.c_str(), "w");
  std::fputs("not hdf5\n", f);
  std::fclose(f);
  EXPECT_NE(error_of([&] { read_trajectory(text); }).find("not a readable HDF5 file"), std::string::npos);
  const std::string bare = scratch("bare.h5");
  H5Fclose(H5Fcreate(bare.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  EXPECT_NE(error_of([&] { read_trajectory(bare); }).find("not a trajectory file"), std::string::npos);
  // A missing tensor, and a tensor whose shape is not the model's.
  const std::string path = scratch("damaged.h5");
  for (int i = 0; i < 2; i++) write_trajectory_checkpoint(path, i, 10 * i, 0.1, model_at(float(i)));
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  H5Ldelete(file, "h0.attprojw", H5P_DEFAULT);
  H5Fclose(file);
  EXPECT_NE(error_of([&] { read_trajectory(path); }).find("has no tensor 'h0.attprojw'"), std::string::npos);
  for (int i = 0; i < 2; i++) write_trajectory_checkpoint(path, i, 10 * i, 0.1, model_at(float(i)));
  file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  const int64_t wider = kModel.channels * 2;
  hid_t attr = H5Aopen(file, "n_embd", H5P_DEFAULT);
  H5Awrite(attr, H5T_NATIVE_INT64, &wider);
  H5Aclose(attr);
  H5Fclose(file);
  EXPECT_NE(error_of([&] { read_trajectory(path); }).find("but the model needs"), std::string::npos);
  EXPECT_NE(error_of([&] { write_trajectory_checkpoint(scratch("nothing.h5"), 3, 30, 0.1, model_at(0)); }).find("is missing"),
            std::string::npos);
}
