// EST's subnetworks (model/subnet.hpp, the sliced paths of model/gpt2.cpp) and schedule
// (methods/est.hpp): full selection = the dense model bit for bit; a sampled subnetwork equals the
// dense model with the dropped structure masked out; its gradients match finite differences; the
// sampled modules are unbiased; the FLOPs formula equals the work the kernels issue; the sampler is
// uniform; the masked AdamW leaves unselected parameters alone.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "core/config.hpp"
#include "kernels/cpu/flop_counter.hpp"
#include "methods/est.hpp"
#include "harness/method.hpp"
#include "model/subnet.hpp"
#include "optim/adamw.hpp"
#include "gpt2_fixtures.hpp"
#include "test_util.hpp"

using namespace frugal;
using namespace frugal::testing;

namespace {

// 3 blocks, 4 heads of width 4, 64 MLP units: large enough for real subsets of everything.
GPT2Config est_config() { return tiny_config(3, 4, 16); }

GPT2Subnet sampled(const GPT2Config& c, uint64_t seed, double layers = 2.0 / 3, double heads = 0.5, double mlp = 0.5,
                   bool share = false) {
  Rng rng(seed, 77u, 0u);
  return subnet_sample(c, {layers, heads, mlp}, share, rng);
}

struct LossAndGrads {
  double loss;
  std::vector<float> grads;
};

// One forward of `sub` (null: the dense model) as EST runs it, through a SubnetSlices hook.
double forward_of(GPT2& m, const Batch& b, const GPT2Subnet* sub, SubnetSlices& slices) {
  if (!sub) return gpt2_forward(m, b.in.data(), b.tg.data(), b.B, b.T);
  slices.set(*sub, m.config);
  return gpt2_forward(m, b.in.data(), b.tg.data(), b.B, b.T, &slices);
}

double flops_of(const GPT2Config& c, int B, int T, const GPT2Subnet* sub) {
  return sub ? subnet_forward_flops(c, B, T, *sub) : gpt2_forward_flops(c, B, T);
}

LossAndGrads forward_backward(GPT2& m, const Batch& b, const GPT2Subnet* sub) {
  SubnetSlices slices;
  gpt2_zero_grad(m);
  const double loss = forward_of(m, b, sub, slices);
  gpt2_backward(m, sub ? &slices : nullptr);
  return {loss, m.grads};
}

}  // namespace

TEST(Est, FullSubnetworkGivesExactlyTheDenseForwardAndGradients) {
  const GPT2Config c = est_config();
  GPT2 m = gpt2_create(c);
  randomise(m, 3);
  const Batch b = random_batch(c.vocab_size, 4);
  const LossAndGrads dense = forward_backward(m, b, nullptr);
  const GPT2Subnet full = subnet_full(c);
  Rng rng(1, 77u, 0u);
  const GPT2Subnet rates_one = subnet_sample(c, {1.0, 1.0, 1.0}, false, rng);
  EXPECT_TRUE(subnet_is_full(rates_one, c));
  for (const GPT2Subnet* sub : {&full, &rates_one}) {
    const LossAndGrads s = forward_backward(m, b, sub);
    EXPECT_EQ(s.loss, dense.loss);
    ASSERT_EQ(0, std::memcmp(s.grads.data(), dense.grads.data(), dense.grads.size() * sizeof(float)));
  }
  EXPECT_EQ(flops_of(c, b.B, b.T, &full), gpt2_forward_flops(c, b.B, b.T));
}

// The sliced computation against an independent reference: the dense model with the dropped
// structure masked out of the weights - W_O columns of dropped heads and W_proj columns of dropped
// units set to 0, kept ones scaled by 1/p; a skipped block's output projections and biases zeroed,
// which makes it the identity. Loss and every subnetwork gradient must agree; gradients outside
// the subnetwork must be exactly 0.
TEST(Est, SampledSubnetworkEqualsTheMaskedDenseModel) {
  const GPT2Config c = est_config();
  const size_t C = c.channels, hs = C / c.num_heads, M = 4 * C;
  // Sampled subnetworks (per-block and shared sets), plus hand-made ones for the edge cases: the
  // first or the last block skipped, all heads with a sampled MLP, sampled heads with the full MLP.
  std::vector<std::pair<std::string, GPT2Subnet>> cases;
  for (uint64_t seed : {1, 2, 3})
    for (bool share : {false, true})
      cases.push_back({"seed " + std::to_string(seed) + (share ? " shared" : " per block"),
                       sampled(c, seed, 2.0 / 3, 0.5, 0.25, share)});
  GPT2Subnet first_off = sampled(c, 4, 1.0, 0.5, 0.25), last_off = first_off, mixed = subnet_full(c);
  first_off.layer_on[0] = 0, first_off.heads[0].clear(), first_off.units[0].clear();
  last_off.layer_on[2] = 0, last_off.heads[2].clear(), last_off.units[2].clear();
  mixed.units[0] = {1, 5, 9, 30, 63};  // block 0: every head, 5 of 64 units
  mixed.heads[1] = {2};                // block 1: 1 of 4 heads, every unit
  cases.push_back({"first block skipped", first_off});
  cases.push_back({"last block skipped", last_off});
  cases.push_back({"full attention + sampled MLP, sampled attention + full MLP", mixed});
  uint64_t seed = 0;
  for (const auto& [name, sub] : cases) {
    SCOPED_TRACE(name);
    seed++;
    GPT2 m = gpt2_create(c);
    randomise(m, 10 + seed);
    const Batch b = random_batch(c.vocab_size, 20 + seed);
    const LossAndGrads s = forward_backward(m, b, &sub);

    GPT2 ref = gpt2_create(c);
    ref.params = m.params;
    const size_t attprojw = m.layout.get("attprojw").offset, attprojb = m.layout.get("attprojb").offset;
    const size_t fcprojw = m.layout.get("fcprojw").offset, fcprojb = m.layout.get("fcprojb").offset;
    std::vector<float> attn_factor(c.num_layers * C), mlp_factor(c.num_layers * M);  // chain-rule factors
    for (size_t l = 0; l < size_t(c.num_layers); l++) {
      if (!sub.layer_on[l]) {
        std::fill_n(ref.params.begin() + attprojw + l * C * C, C * C, 0.0f);
        std::fill_n(ref.params.begin() + attprojb + l * C, C, 0.0f);
        std::fill_n(ref.params.begin() + fcprojw + l * C * M, C * M, 0.0f);
        std::fill_n(ref.params.begin() + fcprojb + l * C, C, 0.0f);
        continue;
      }
      const float sh = float(c.num_heads) / float(sub.heads[l].size()), sm = float(M) / float(sub.units[l].size());
      for (int h : sub.heads[l])
        for (size_t i = 0; i < hs; i++) attn_factor[l * C + h * hs + i] = sh;
      for (int u : sub.units[l]) mlp_factor[l * M + u] = sm;
      for (size_t o = 0; o < C; o++) {
        for (size_t i = 0; i < C; i++) ref.params[attprojw + (l * C + o) * C + i] *= attn_factor[l * C + i];
        for (size_t u = 0; u < M; u++) ref.params[fcprojw + (l * C + o) * M + u] *= mlp_factor[l * M + u];
      }
    }
    const LossAndGrads r = forward_backward(ref, b, nullptr);
    EXPECT_NEAR(s.loss, r.loss, 1e-5 * std::fabs(r.loss));

    std::vector<uint8_t> mask;
    subnet_param_mask(sub, c, m.layout, mask);
    size_t checked = 0, zeros = 0;
    for (size_t i = 0; i < mask.size(); i++) {
      if (!mask[i]) {
        ASSERT_EQ(s.grads[i], 0.0f) << "parameter " << i << " is outside the subnetwork";
        zeros++;
        continue;
      }
      double expect = r.grads[i];  // d/dW of (s W) = s d/d(sW)
      if (i >= attprojw && i < attprojw + c.num_layers * C * C) {
        const size_t k = i - attprojw;
        expect *= attn_factor[(k / (C * C)) * C + k % C];
      } else if (i >= fcprojw && i < fcprojw + c.num_layers * C * M) {
        const size_t k = i - fcprojw;
        expect *= mlp_factor[(k / (C * M)) * M + k % M];
      }
      EXPECT_NEAR(s.grads[i], expect, 1e-4 * std::max(1e-2, std::fabs(expect))) << "parameter " << i;
      checked++;
    }
    EXPECT_GT(zeros, size_t(0));
    EXPECT_GT(checked, size_t(0));
  }
}

TEST(Est, SampledSubnetworkGradientsMatchFiniteDifferences) {
  const GPT2Config c = est_config();
  GPT2 m = gpt2_create(c);
  randomise(m, 5);
  const Batch b = random_batch(c.vocab_size, 6);
  const GPT2Subnet sub = sampled(c, 9, 2.0 / 3, 0.5, 0.25);
  const LossAndGrads s = forward_backward(m, b, &sub);
  std::vector<uint8_t> mask;
  subnet_param_mask(sub, c, m.layout, mask);
  SubnetSlices slices;
  auto loss_at = [&](size_t i, float value) {
    const float saved = m.params[i];
    m.params[i] = value;
    const double l = forward_of(m, b, &sub, slices);
    m.params[i] = saved;
    return l;
  };
  for (const auto& t : m.layout.tensors) {
    // The largest subnetwork gradients of each tensor (well above fp32 finite-difference noise),
    // plus one parameter outside the subnetwork whose finite difference must be 0 too.
    std::vector<size_t> idx, outside;
    for (size_t i = t.offset; i < t.offset + t.numel; i++) (mask[i] ? idx : outside).push_back(i);
    if (t.name == "wte") idx.resize(size_t(c.vocab_size) * c.channels);
    std::sort(idx.begin(), idx.end(), [&](size_t a, size_t z) { return std::fabs(s.grads[a]) > std::fabs(s.grads[z]); });
    idx.resize(std::min<size_t>(idx.size(), 10));
    double max_rel = 0;
    for (size_t i : idx) {
      const float h = 1e-2f * std::max(1.0f, std::fabs(m.params[i]));
      const double fd = (loss_at(i, m.params[i] + h) - loss_at(i, m.params[i] - h)) / (2.0 * h);
      max_rel = std::max(max_rel, std::fabs(fd - s.grads[i]) / std::max({std::fabs(fd), std::fabs(double(s.grads[i])), 1e-3}));
    }
    EXPECT_LT(max_rel, 2e-2) << "tensor " << t.name;
    EXPECT_GT(std::fabs(s.grads[idx[0]]), 1e-6) << "tensor " << t.name;
    if (!outside.empty()) {
      const size_t i = outside[outside.size() / 2];
      EXPECT_EQ(loss_at(i, m.params[i] + 0.5f), loss_at(i, m.params[i] - 0.5f)) << "tensor " << t.name;
    }
  }
}

// Inverted dropout at structure granularity: averaged over draws, a sampled module's output is the
// dense module's. With the block's input fixed (one block; the MLP test keeps every head so its
// input is the dense one), (a) the average over all C(4,2) head subsets - each equally likely - is
// the dense attention output exactly, and (b) Monte Carlo averages of the sampler's own draws are
// within 5 standard errors of the dense output for every element.
TEST(Est, SampledModulesAreUnbiased) {
  const GPT2Config c = tiny_config(1, 4, 16);
  GPT2 m = gpt2_create(c);
  randomise(m, 8);
  const Batch b = random_batch(c.vocab_size, 9);
  gpt2_forward(m, b.in.data(), b.tg.data(), b.B, b.T);
  const std::vector<float> dense_attn = m.acts.attproj, dense_mlp = m.acts.fcproj;
  const size_t n = dense_attn.size();

  GPT2Subnet sub = subnet_full(c);
  SubnetSlices slices;
  std::vector<double> mean(n, 0.0);
  int subsets = 0;
  for (int h1 = 0; h1 < 4; h1++)
    for (int h2 = h1 + 1; h2 < 4; h2++) {
      sub.heads[0] = {h1, h2};
      forward_of(m, b, &sub, slices);
      for (size_t i = 0; i < n; i++) mean[i] += m.acts.attproj[i];
      subsets++;
    }
  for (size_t i = 0; i < n; i++) EXPECT_NEAR(mean[i] / subsets, dense_attn[i], 1e-5) << "element " << i;

  const auto monte_carlo = [&](const SubnetRates& rates, std::vector<float> GPT2Activations::*module,
                               const std::vector<float>& dense, const char* what) {
    const int draws = 3000;
    std::vector<double> sum(n, 0.0), sum2(n, 0.0);
    Rng rng(4, 77u, 0u);
    for (int d = 0; d < draws; d++) {
      const GPT2Subnet s = subnet_sample(c, rates, false, rng);
      forward_of(m, b, &s, slices);
      const std::vector<float>& out = m.acts.*module;
      for (size_t i = 0; i < n; i++) sum[i] += out[i], sum2[i] += double(out[i]) * out[i];
    }
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
      const double mu = sum[i] / draws, var = std::max(0.0, sum2[i] / draws - mu * mu);
      const double z = std::fabs(mu - dense[i]) / std::max(std::sqrt(var / draws), 1e-7);
      worst = std::max(worst, z);
    }
    EXPECT_LT(worst, 5.0) << what << ": worst element is " << worst << " standard errors from the dense output";
  };
  monte_carlo({1.0, 0.5, 1.0}, &GPT2Activations::attproj, dense_attn, "attention, 2 of 4 heads");
  monte_carlo({1.0, 1.0, 0.25}, &GPT2Activations::fcproj, dense_mlp, "MLP, 16 of 64 units");
}

// FLOPs: the formula the trace reports equals the GEMM and attention work the kernels issue,
// forward and backward (= 2 x forward), dense and for sampled subnetworks.
TEST(Est, FlopsFormulaEqualsTheWorkTheKernelsIssue) {
  const GPT2Config c = est_config();
  GPT2 m = gpt2_create(c);
  randomise(m, 1);
  const Batch b = random_batch(c.vocab_size, 2);
  const GPT2Subnet a = sampled(c, 1), bb = sampled(c, 2, 1.0, 0.75, 0.5, true), cc = sampled(c, 3, 1.0 / 3, 0.25, 0.1);
  for (const GPT2Subnet* sub : {static_cast<const GPT2Subnet*>(nullptr), &a, &bb, &cc}) {
    SubnetSlices slices;
    cpu::issued_flops() = 0;
    gpt2_zero_grad(m);
    forward_of(m, b, sub, slices);
    const int64_t fwd = cpu::issued_flops().exchange(0);
    gpt2_backward(m, sub ? &slices : nullptr);
    const int64_t bwd = cpu::issued_flops().exchange(0);
    const double formula = flops_of(c, b.B, b.T, sub);
    EXPECT_EQ(double(fwd), formula);
    EXPECT_EQ(double(bwd), 2 * formula);
  }
  // A sampled subnetwork really issues less work.
  EXPECT_LT(flops_of(c, b.B, b.T, &cc), 0.5 * gpt2_forward_flops(c, b.B, b.T));
}

TEST(Est, SamplerKeepsRoundedCountsUniformlyWithoutReplacement) {
  const GPT2Config c = tiny_config(6, 4, 8);  // 6 blocks, 4 heads, 32 units
  EXPECT_EQ(subnet_count(0.5, 6), 3);
  EXPECT_EQ(subnet_count(0.01, 6), 1);  // never empty
  EXPECT_EQ(subnet_count(0.9, 32), 29);
  std::map<int, int> block_hits, unit_hits;
  const int draws = 6000;
  Rng rng(12, 77u, 0u);
  for (int d = 0; d < draws; d++) {
    const GPT2Subnet s = subnet_sample(c, {0.5, 0.5, 0.25}, false, rng);
    int kept = 0;
    for (int l = 0; l < 6; l++) {
      if (!s.layer_on[l]) {
        EXPECT_TRUE(s.heads[l].empty() && s.units[l].empty());
        continue;
      }
      kept++;
      block_hits[l]++;
      ASSERT_EQ(s.heads[l].size(), 2u);
      ASSERT_EQ(s.units[l].size(), 8u);
      EXPECT_TRUE(std::is_sorted(s.units[l].begin(), s.units[l].end()));
      EXPECT_EQ(std::adjacent_find(s.units[l].begin(), s.units[l].end()), s.units[l].end());  // distinct
      for (int u : s.units[l]) unit_hits[u]++;
    }
    EXPECT_EQ(kept, 3);
  }
  // Inclusion frequencies: blocks 1/2, units 1/4 (given a kept block); 5 sigma bounds.
  for (int l = 0; l < 6; l++) EXPECT_NEAR(block_hits[l] / double(draws), 0.5, 5 * std::sqrt(0.25 / draws));
  const double unit_trials = 3.0 * draws;
  for (int u = 0; u < 32; u++) EXPECT_NEAR(unit_hits[u] / unit_trials, 0.25, 5 * std::sqrt(0.1875 / unit_trials));
  // Shared sets: every kept block has the same heads and units.
  const GPT2Subnet shared = sampled(c, 5, 0.5, 0.5, 0.25, true);
  const size_t first = std::find(shared.layer_on.begin(), shared.layer_on.end(), 1) - shared.layer_on.begin();
  for (size_t l = first + 1; l < 6; l++)
    if (shared.layer_on[l]) {
      EXPECT_TRUE(shared.units[l] == shared.units[first] && shared.heads[l] == shared.heads[first]);
    }
}

TEST(Est, ScheduleStagesSubnetworksAndPlannedSaving) {
  const Config cfg = resolve_config(suite_schema(), "", {"--run.method=est", "--est.stage1_end=0.25", "--est.stage2_end=0.5"});
  const EstSchedule s = est_schedule_from(cfg, 100);
  EXPECT_EQ(est_stage(s, 0), 1);
  EXPECT_EQ(est_stage(s, 24), 1);
  EXPECT_EQ(est_stage(s, 25), 2);
  EXPECT_EQ(est_stage(s, 49), 2);
  EXPECT_EQ(est_stage(s, 50), 3);
  const GPT2Config c = est_config();
  // The same (seed, step) gives the same subnetwork (every rank, every resume); steps differ.
  const GPT2Subnet a = est_subnet(s, c, 7, 3), again = est_subnet(s, c, 7, 3), next = est_subnet(s, c, 7, 4);
  EXPECT_EQ(a.layer_on, again.layer_on);
  EXPECT_EQ(a.units, again.units);
  EXPECT_NE(a.units, next.units);
  EXPECT_EQ(subnet_layer_fraction(est_subnet(s, c, 7, 30)), 1.0);  // stage 2 keeps every block
  EXPECT_TRUE(subnet_is_full(est_subnet(s, c, 7, 60), c));         // stage 3 is dense
  // Planned saving = the step-by-step sum of the subnetworks' FLOPs.
  double est = 0, dense = 0;
  for (int64_t step = 0; step < 100; step++) {
    const GPT2Subnet sub = est_subnet(s, c, 7, step);
    est += flops_of(c, 2, 8, &sub);
    dense += gpt2_forward_flops(c, 2, 8);
  }
  EXPECT_NEAR(est_flops_saving(s, c, 2, 8), 1.0 - est / dense, 1e-12);
  // The defaults save about a quarter of GPT-2 124M's training FLOPs at T = 1024.
  GPT2Config gpt2 = c;
  gpt2.num_layers = 12, gpt2.num_heads = 12, gpt2.channels = 768, gpt2.max_seq_len = 1024;
  gpt2.vocab_size = 50257, gpt2.padded_vocab_size = 50304;
  const EstSchedule defaults = est_schedule_from(resolve_config(suite_schema(), "", {"--run.method=est"}), 1000);
  EXPECT_NEAR(est_flops_saving(defaults, gpt2, 1, 1024), 0.2661, 5e-4);  // by hand: 0.2 x 0.5322 + 0.45 x 0.3548
  // Contradictory stages are a clear error.
  EXPECT_NE(error_of([] {
              est_schedule_from(resolve_config(suite_schema(), "", {"--est.stage1_end=0.7", "--est.stage2_end=0.5"}), 10);
            }).find("est.stage1_end"),
            std::string::npos);
}

TEST(Est, MaskedAdamWLeavesUnselectedParametersAndMomentsAlone) {
  const GPT2Config c = est_config();
  GPT2 m = gpt2_create(c);
  randomise(m, 2);
  const GPT2Subnet sub = sampled(c, 4);
  std::vector<uint8_t> mask;
  subnet_param_mask(sub, c, m.layout, mask);
  AdamWConfig ac;
  ac.weight_decay = 0.1f;
  AdamW masked = adamw_create(ac, m.layout);
  std::vector<float> pm = m.params, g(m.params.size());
  Rng rng(3, 77u, 1u);
  // Two dense steps first, so every parameter has non-zero moments to keep (or lose).
  for (int step = 0; step < 2; step++) {
    for (float& x : g) x = rng.normal();
    adamw_step(masked, pm, g, 1e-2f);
  }
  AdamW dense = masked;  // the zero-gradient AdamW from the same state
  std::vector<float> pd = pm;
  const std::vector<float> p0 = pm, m0 = masked.m, v0 = masked.v;
  for (int step = 0; step < 3; step++) {
    for (size_t i = 0; i < g.size(); i++) g[i] = mask[i] ? rng.normal() : 0.0f;
    adamw_step(masked, pm, g, 1e-2f, mask);
    adamw_step(dense, pd, g, 1e-2f);
  }
  EXPECT_EQ(masked.t, 5);
  size_t off = 0, moved = 0;
  for (size_t i = 0; i < g.size(); i++) {
    if (mask[i]) {
      ASSERT_EQ(pm[i], pd[i]);  // the same arithmetic where the mask is 1
    } else {
      off++;
      ASSERT_EQ(pm[i], p0[i]);  // value and moments bitwise untouched
      ASSERT_EQ(masked.m[i], m0[i]);
      ASSERT_EQ(masked.v[i], v0[i]);
      moved += pd[i] != p0[i];  // while the zero-gradient update does move them
    }
  }
  EXPECT_GT(off, size_t(0));
  EXPECT_EQ(moved, off);
}
