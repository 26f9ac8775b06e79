// AdamW against a hand-computed step, the schedule's shape, clipping, and the network model's
// formulas against hand-computed values.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "comm/network_model.hpp"
#include "optim/adamw.hpp"

using namespace frugal;

TEST(AdamW, FirstTwoStepsMatchHandComputation) {
  ParamLayout layout;
  layout.add("w", {2, 2});
  layout.add("b", {2});
  AdamWConfig c;
  c.lr = 0.1f;
  c.beta1 = 0.9f;
  c.beta2 = 0.99f;
  c.eps = 1e-8f;
  c.weight_decay = 0.5f;
  AdamW opt = adamw_create(c, layout);
  std::vector<float> p = {1, -1, 2, 0.5f, 3, -3}, g = {0.1f, -0.2f, 0.3f, 0.0f, 1.0f, -1.0f};
  adamw_step(opt, p, g, c.lr);
  // step 1: mhat = g, vhat = g^2 -> update = sign(g) (for g != 0) + wd * p (matrices only)
  EXPECT_NEAR(p[0], 1 - 0.1 * (1 + 0.5 * 1), 1e-6);
  EXPECT_NEAR(p[1], -1 - 0.1 * (-1 + 0.5 * -1), 1e-6);
  EXPECT_NEAR(p[3], 0.5 - 0.1 * (0 + 0.5 * 0.5), 1e-6);
  EXPECT_NEAR(p[4], 3 - 0.1 * 1, 1e-6);  // vector: no decay
  const float p0 = p[0];
  adamw_step(opt, p, g, c.lr);
  const double m = 0.9 * 0.1 * 0.1 + 0.1 * 0.1, v = 0.99 * 0.01 * 0.01 + 0.01 * 0.01;
  const double mhat = m / (1 - 0.81), vhat = v / (1 - 0.9801);
  EXPECT_NEAR(p[0], p0 - 0.1 * (mhat / (std::sqrt(vhat) + 1e-8) + 0.5 * p0), 1e-6);
}

TEST(Schedule, WarmupThenCosineToTheFloor) {
  Schedule s;
  s.lr = 1.0f;
  s.warmup = 10;
  s.total = 110;
  s.min_lr_ratio = 0.1f;
  EXPECT_FLOAT_EQ(schedule_lr(s, 0), 0.1f);
  EXPECT_FLOAT_EQ(schedule_lr(s, 9), 1.0f);
  EXPECT_FLOAT_EQ(schedule_lr(s, 10), 1.0f);
  EXPECT_NEAR(schedule_lr(s, 60), 0.55, 1e-6);  // halfway: (1 + 0.1) / 2
  EXPECT_NEAR(schedule_lr(s, 110), 0.1, 1e-6);
  s.kind = "linear";
  EXPECT_NEAR(schedule_lr(s, 60), 0.55, 1e-6);
  s.kind = "constant";
  EXPECT_FLOAT_EQ(schedule_lr(s, 100), 1.0f);
}

TEST(Clipping, ScalesToTheMaximumNorm) {
  std::vector<float> g = {3, 4};
  EXPECT_NEAR(clip_grad_norm(g, 1.0), 5.0, 1e-9);
  EXPECT_NEAR(std::hypot(g[0], g[1]), 1.0, 1e-5);
  std::vector<float> small = {0.3f, 0.4f};
  clip_grad_norm(small, 1.0);
  EXPECT_FLOAT_EQ(small[0], 0.3f);
}

// The clip folded into AdamW (grad_scale) gives the same bits as clipping the buffer first, and
// leaves the gradients as they were.
TEST(Clipping, FoldedIntoAdamWEqualsClippingTheBufferFirst) {
  ParamLayout layout;
  layout.add("w", {16, 8});
  layout.add("b", {8});
  std::vector<float> g(layout.total), p(layout.total);
  for (size_t i = 0; i < g.size(); i++) g[i] = std::sin(0.37f * float(i) + 0.1f) * (1.0f + float(i % 5));
  for (size_t i = 0; i < p.size(); i++) p[i] = std::cos(0.11f * float(i));
  AdamW folded = adamw_create(AdamWConfig{}, layout), first = folded;
  std::vector<float> pf = p, pc = p;
  for (int step = 0; step < 3; step++) {
    std::vector<float> gf = g, gc = g;
    const double norm = global_norm(gf);
    const float scale = clip_scale(norm, 1.0);
    ASSERT_LT(scale, 1.0f);  // clipping is active
    adamw_step(folded, pf, gf, 1e-2f, {}, scale);
    EXPECT_EQ(clip_grad_norm(gc, 1.0), norm);
    adamw_step(first, pc, gc, 1e-2f);
    for (size_t i = 0; i < p.size(); i++) ASSERT_EQ(pf[i], pc[i]) << "step " << step << " element " << i;
    EXPECT_EQ(gf, g);  // the folded clip leaves the gradients untouched
  }
  EXPECT_EQ(folded.m, first.m);
  EXPECT_EQ(folded.v, first.v);
  EXPECT_EQ(clip_scale(0.5, 1.0), 1.0f);  // within the norm
  EXPECT_EQ(clip_scale(5.0, 0.0), 1.0f);  // clipping off
  EXPECT_FLOAT_EQ(clip_scale(4.0, 1.0), float(1.0 / (4.0 + 1e-6)));
}

// The norm's fixed order, written plainly: blocks of 2^14 elements each summed in element order in
// double, then the blocks in order. global_norm runs blocks side by side; the value must not move.
TEST(Clipping, GlobalNormKeepsItsFixedOrder) {
  constexpr size_t kBlock = 1 << 14;
  for (size_t n : {size_t(1), size_t(1000), kBlock, 8 * kBlock, 8 * kBlock + 1, 19 * kBlock + 77, 40 * kBlock}) {
    std::vector<float> g(n);
    for (size_t i = 0; i < n; i++) g[i] = std::sin(0.013f * float(i)) * (1.0f + float(i % 97) * 1e-3f);
    double total = 0.0;
    for (size_t b = 0; b * kBlock < n; b++) {
      double s = 0.0;
      for (size_t i = b * kBlock; i < std::min(n, (b + 1) * kBlock); i++) s += double(g[i]) * g[i];
      total += s;
    }
    EXPECT_EQ(global_norm(g), std::sqrt(total)) << n << " elements";
  }
}

TEST(NetworkModel, BusBandwidthFactorsAreNcclTests) {
  EXPECT_DOUBLE_EQ(busbw_factor(Op::allreduce, 4), 1.5);
  EXPECT_DOUBLE_EQ(busbw_factor(Op::allgather, 4), 0.75);
  EXPECT_DOUBLE_EQ(busbw_factor(Op::reducescatter, 8), 0.875);
  EXPECT_DOUBLE_EQ(busbw_factor(Op::broadcast, 8), 1.0);
  EXPECT_DOUBLE_EQ(busbw_factor(Op::allreduce, 1), 0.0);
}

TEST(NetworkModel, AlphaBetaTimesByHand) {
  const Network wan = network_preset("wan");  // 1 Gbit/s = 1.25e8 B/s, 10 ms
  const Network dc = network_preset("datacenter");  // 100 Gbit/s = 1.25e10 B/s, 5 us
  const int64_t MB = 1000000;
  // ring all-reduce, n = 4, 1 MB: 2*3*alpha + 2*3/4 * 1e6 / beta
  EXPECT_NEAR(modelled_time(Op::allreduce, MB, 4, wan), 6 * 0.01 + 1.5 * 1e6 / 1.25e8, 1e-12);
  EXPECT_NEAR(modelled_time(Op::allreduce, MB, 4, dc), 6 * 5e-6 + 1.5 * 1e6 / 1.25e10, 1e-15);
  EXPECT_NEAR(modelled_time(Op::allgather, MB, 8, wan), 7 * 0.01 + 7.0 / 8 * 1e6 / 1.25e8, 1e-12);
  EXPECT_NEAR(modelled_time(Op::broadcast, MB, 5, wan), 3 * (0.01 + 1e6 / 1.25e8), 1e-12);  // ceil(log2 5) = 3
  EXPECT_DOUBLE_EQ(modelled_time(Op::allreduce, MB, 1, wan), 0.0);
  EXPECT_EQ(wire_bytes(Op::allreduce, 1000, 4, 0), 1500);
  EXPECT_EQ(wire_bytes(Op::allgather, 1000, 4, 2), 750);
  EXPECT_EQ(wire_bytes(Op::broadcast, 1000, 4, 3), 0);
  EXPECT_EQ(wire_bytes(Op::broadcast, 1000, 4, 0), 1000);
}
