// The ES methods' perturbations on the device (methods/es_device.hpp: what eggroll and openai_es
// run with run.device = cuda) against the CPU functions the CPU perturbations call
// (model/perturb.hpp): a policy MLP's perturbed forward, layer by layer, for a batch whose members
// are a shuffled subset of the population (as a rollout's active members are), and every layer's
// update direction. Same keys on both sides, so the noise is identical; the sums run in another order
// (cuBLAS vs OpenBLAS): relative L2 error within 1e-5, outputs poisoned with NaN first. Skipped
// without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/cuda/kernels.hpp"
#include "methods/es_device.hpp"
#include "model/mlp.hpp"
#include "model/perturb.hpp"

namespace {

using namespace frugal;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

double rel_l2(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < want.size(); i++) {
    if (std::isnan(got[i])) return std::numeric_limits<double>::infinity();
    num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    den += double(want[i]) * want[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

class CudaEs : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda::device_available()) GTEST_SKIP() << "no CUDA device visible: skipping";
    mlp = mlp_add(layout, "policy", {6, 32, 24, 3}, Activation::tanh);
    params.resize(layout.total);
    std::mt19937 rng(5);
    std::normal_distribution<float> dist(0.0f, 0.3f);
    for (float& p : params) p = dist(rng);  // biases non-zero too
    // A batch of 11 of the 16 members, out of order, as a rollout compacts the ones still playing.
    std::vector<int32_t> all(kPopulation);
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), rng);
    members.assign(all.begin(), all.begin() + kBatch);
    x.resize(size_t(kBatch) * mlp.in());
    for (float& v : x) v = dist(rng) * 3.0f;
    fitness.resize(kPopulation);
    for (float& f : fitness) f = dist(rng);
  }
  static constexpr int kPopulation = 16, kBatch = 11;
  static constexpr uint64_t kSeed = 7;
  static constexpr uint32_t kEpoch = 3;
  static constexpr float kSigma = 0.1f;
  ParamLayout layout;
  MlpView mlp;
  std::vector<float> params, x, fitness;
  std::vector<int32_t> members;
};

TEST_F(CudaEs, EggrollForwardAndUpdateMatchTheCpu) {
  for (int rank : {1, 3, 8}) {
    auto dev = make_lowrank_perturbation_cuda(rank, kSigma);
    dev->generate(mlp, kSeed, kEpoch, kPopulation / 2);
    dev->set_params(params);
    std::vector<float> h = x;
    for (int l = 0; l < mlp.layers(); l++) {
      const int rows = mlp.sizes[size_t(l) + 1], cols = mlp.sizes[size_t(l)];
      LowRankFactors f;  // methods/eggroll.cpp's keys
      VectorNoise eps;
      lowrank_generate(f, NoiseKey{kSeed, 0, uint32_t(l), kEpoch}, 0, kPopulation / 2, rows, cols, rank);
      vector_noise_generate(eps, NoiseKey{kSeed, 1, uint32_t(l), kEpoch}, 0, kPopulation / 2, rows);
      std::vector<float> want(size_t(kBatch) * rows), got(want.size(), kNaN);
      lowrank_linear_forward(h.data(), kBatch, params.data() + mlp.w_off[size_t(l)], params.data() + mlp.b_off[size_t(l)],
                             members.data(), f, &eps, kSigma, want.data());
      dev->forward(l, mlp, params.data(), h.data(), kBatch, members.data(), got.data());
      EXPECT_LT(rel_l2(got, want), 1e-5) << "rank " << rank << " layer " << l << " forward";

      std::vector<float> gw_want(size_t(rows) * cols), gb_want(static_cast<size_t>(rows)), scratch;
      std::vector<float> gw(gw_want.size(), kNaN), gb(gb_want.size(), kNaN);
      lowrank_update(f, fitness.data(), kPopulation, kSigma, gw_want.data(), scratch);
      vector_noise_update(eps, fitness.data(), kPopulation, kSigma, gb_want.data());
      dev->update(l, mlp, fitness.data(), kPopulation, gw.data(), gb.data());
      EXPECT_LT(rel_l2(gw, gw_want), 1e-5) << "rank " << rank << " layer " << l << " weight update";
      EXPECT_LT(rel_l2(gb, gb_want), 1e-5) << "rank " << rank << " layer " << l << " bias update";

      if (l + 1 < mlp.layers()) activate(mlp.act, want.data(), want.size());
      h = want;  // the next layer's input: the CPU's, so that errors do not compound
    }
  }
}

TEST_F(CudaEs, OpenAiEsForwardAndUpdateMatchTheCpu) {
  auto dev = make_fullrank_perturbation_cuda(kSigma);
  dev->generate(mlp, kSeed, kEpoch, kPopulation / 2);
  dev->set_params(params);
  std::vector<float> h = x;
  for (int l = 0; l < mlp.layers(); l++) {
    const int rows = mlp.sizes[size_t(l) + 1], cols = mlp.sizes[size_t(l)];
    FullRankNoise e;  // methods/openai_es.cpp's keys
    VectorNoise eps;
    fullrank_generate(e, NoiseKey{kSeed, 0, uint32_t(l), kEpoch}, 0, kPopulation / 2, rows, cols);
    vector_noise_generate(eps, NoiseKey{kSeed, 1, uint32_t(l), kEpoch}, 0, kPopulation / 2, rows);
    std::vector<float> want(size_t(kBatch) * rows), got(want.size(), kNaN);
    fullrank_linear_forward(h.data(), kBatch, params.data() + mlp.w_off[size_t(l)], params.data() + mlp.b_off[size_t(l)],
                            members.data(), e, &eps, kSigma, want.data());
    dev->forward(l, mlp, params.data(), h.data(), kBatch, members.data(), got.data());
    EXPECT_LT(rel_l2(got, want), 1e-5) << "layer " << l << " forward";

    std::vector<float> gw_want(size_t(rows) * cols), gb_want(static_cast<size_t>(rows));
    std::vector<float> gw(gw_want.size(), kNaN), gb(gb_want.size(), kNaN);
    fullrank_update(e, fitness.data(), kPopulation, kSigma, gw_want.data());
    vector_noise_update(eps, fitness.data(), kPopulation, kSigma, gb_want.data());
    dev->update(l, mlp, fitness.data(), kPopulation, gw.data(), gb.data());
    EXPECT_LT(rel_l2(gw, gw_want), 1e-5) << "layer " << l << " weight update";
    EXPECT_LT(rel_l2(gb, gb_want), 1e-5) << "layer " << l << " bias update";

    if (l + 1 < mlp.layers()) activate(mlp.act, want.data(), want.size());
    h = want;
  }
}

// New parameters reach the device's forward only through set_params (once per epoch in es.cpp).
TEST_F(CudaEs, ForwardUsesTheParametersOfTheLastSetParams) {
  auto dev = make_lowrank_perturbation_cuda(2, kSigma);
  dev->generate(mlp, kSeed, kEpoch, kPopulation / 2);
  dev->set_params(params);
  std::vector<float> before(size_t(kBatch) * mlp.sizes[1]), after(before.size());
  dev->forward(0, mlp, params.data(), x.data(), kBatch, members.data(), before.data());
  std::vector<float> moved = params;
  for (float& p : moved) p += 0.5f;
  dev->set_params(moved);
  dev->forward(0, mlp, moved.data(), x.data(), kBatch, members.data(), after.data());
  LowRankFactors f;
  VectorNoise eps;
  lowrank_generate(f, NoiseKey{kSeed, 0, 0, kEpoch}, 0, kPopulation / 2, mlp.sizes[1], mlp.sizes[0], 2);
  vector_noise_generate(eps, NoiseKey{kSeed, 1, 0, kEpoch}, 0, kPopulation / 2, mlp.sizes[1]);
  std::vector<float> want(after.size());
  lowrank_linear_forward(x.data(), kBatch, moved.data() + mlp.w_off[0], moved.data() + mlp.b_off[0], members.data(), f,
                         &eps, kSigma, want.data());
  EXPECT_LT(rel_l2(after, want), 1e-5);
  EXPECT_GT(rel_l2(before, want), 1e-2);
}

}  // namespace
