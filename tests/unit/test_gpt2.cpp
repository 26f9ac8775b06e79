// GPT-2 model: gradients against finite differences for every parameter tensor, the loss at
// initialisation, and learning on the built-in corpus.
#include <gtest/gtest.h>

#include <cmath>

#include "core/rng.hpp"
#include "data/corpus.hpp"
#include "data/tokens.hpp"
#include "kernels/cpu/flop_counter.hpp"
#include "model/gpt2.hpp"
#include "optim/adamw.hpp"
#include "gpt2_fixtures.hpp"

using namespace frugal;

using namespace frugal::testing;

TEST(GPT2, GradientsMatchFiniteDifferencesForEveryTensor) {
  GPT2 m = gpt2_create(tiny_config());
  randomise(m, 7);
  const Batch b = random_batch(m.config.vocab_size, 3);
  gpt2_zero_grad(m);
  gpt2_forward(m, b.in.data(), b.tg.data(), b.B, b.T);
  gpt2_backward(m);
  const std::vector<float> grads = m.grads;
  auto loss_at = [&](size_t i, float value) {
    const float saved = m.params[i];
    m.params[i] = value;
    const double l = gpt2_forward(m, b.in.data(), b.tg.data(), b.B, b.T);
    m.params[i] = saved;
    return l;
  };
  const int V = m.config.vocab_size, C = m.config.channels;
  for (const auto& t : m.layout.tensors) {
    // Check the entries of this tensor with the largest analytic gradients (well above the fp32
    // noise floor of the finite difference) plus a spread of others; every tensor is covered.
    std::vector<size_t> idx;
    for (size_t i = 0; i < t.numel; i++) idx.push_back(t.offset + i);
    if (t.name == "wte") idx.resize(size_t(V) * C);  // padded rows are unused by construction
    std::sort(idx.begin(), idx.end(), [&](size_t a, size_t c) { return std::fabs(grads[a]) > std::fabs(grads[c]); });
    // The 12 largest, and 8 spread evenly over the rest of the magnitude order (small gradients,
    // where an entry the backward forgot would hide).
    std::vector<size_t> spread;
    for (size_t k = 1; k <= 8 && idx.size() > 12; k++) spread.push_back(idx[12 + (idx.size() - 13) * k / 8]);
    idx.resize(std::min<size_t>(idx.size(), 12));
    const auto fd_at = [&](size_t i) {
      const float h = 1e-2f * std::max(1.0f, std::fabs(m.params[i]));
      return (loss_at(i, m.params[i] + h) - loss_at(i, m.params[i] - h)) / (2.0 * h);
    };
    double max_rel = 0, max_abs_spread = 0;
    for (size_t i : idx) {
      const double fd = fd_at(i);
      const double rel = std::fabs(fd - grads[i]) / std::max({std::fabs(fd), std::fabs(double(grads[i])), 1e-3});
      max_rel = std::max(max_rel, rel);
    }
    for (size_t i : spread) max_abs_spread = std::max(max_abs_spread, std::fabs(fd_at(i) - grads[i]));
    // Bound: fp32 central differences with h = 1e-2 on a loss of ~3 are good to ~1e-3 relative
    // for gradients of this size; a wrong backward is off by O(1). Small gradients are checked in
    // absolute terms against the difference's noise floor (~1e-5 here).
    EXPECT_LT(max_rel, 2e-2) << "tensor " << t.name;
    EXPECT_LT(max_abs_spread, 2e-4) << "tensor " << t.name << " (spread entries)";
    // The gradient must not be identically zero (e.g. a forgotten accumulation).
    EXPECT_GT(std::fabs(grads[idx[0]]), 1e-6) << "tensor " << t.name;
  }
}

TEST(GPT2, DirectionalDerivativeMatchesForEveryTensor) {
  // A second, independent check: the derivative along a random direction of each whole tensor.
  GPT2 m = gpt2_create(tiny_config());
  randomise(m, 11);
  const Batch b = random_batch(m.config.vocab_size, 5);
  gpt2_zero_grad(m);
  gpt2_forward(m, b.in.data(), b.tg.data(), b.B, b.T);
  gpt2_backward(m);
  for (const auto& t : m.layout.tensors) {
    Rng rng(17, 97u, 0u);
    std::vector<float> dir(t.numel);
    double analytic = 0;
    for (size_t i = 0; i < t.numel; i++) {
      dir[i] = rng.normal();
      if (t.name == "wte" && i >= size_t(m.config.vocab_size) * m.config.channels) dir[i] = 0;
      analytic += double(dir[i]) * m.grads[t.offset + i];
    }
    const std::vector<float> saved(m.params.begin() + t.offset, m.params.begin() + t.offset + t.numel);
    auto shifted = [&](float eps) {
      for (size_t i = 0; i < t.numel; i++) m.params[t.offset + i] = saved[i] + eps * dir[i];
      return double(gpt2_forward(m, b.in.data(), b.tg.data(), b.B, b.T));
    };
    const float eps = 1e-3f;
    const double fd = (shifted(eps) - shifted(-eps)) / (2.0 * eps);
    std::copy(saved.begin(), saved.end(), m.params.begin() + t.offset);
    EXPECT_NEAR(fd, analytic, 2e-2 * std::max(1.0, std::fabs(analytic))) << "tensor " << t.name;
  }
}

TEST(GPT2, LossAtInitialisationIsCloseToLogVocab) {
  GPT2Config c = tiny_config();
  c.vocab_size = 512;
  c.padded_vocab_size = 512;
  c.channels = 32;
  c.max_seq_len = 16;
  GPT2 m = gpt2_create(c);
  gpt2_init_weights(m, 1);
  const Batch b = random_batch(c.vocab_size, 9);
  const float loss = gpt2_forward(m, b.in.data(), b.tg.data(), b.B, b.T);
  EXPECT_NEAR(loss, std::log(512.0), 0.05);
}

TEST(GPT2, TrainingOnTheBuiltInCorpusBringsTheLossWellDown) {
  CorpusSpec spec;
  spec.vocab_size = 128;
  spec.seed = 5;
  const TokenStream train = TokenStream::from_tokens(generate_corpus(spec, 200000, 0), "train");
  const TokenStream val = TokenStream::from_tokens(generate_corpus(spec, 20000, 1), "val");
  GPT2Config c;
  c.vocab_size = c.padded_vocab_size = 128;
  c.max_seq_len = 32;
  c.num_layers = 2;
  c.num_heads = 2;
  c.channels = 32;
  GPT2 m = gpt2_create(c);
  gpt2_init_weights(m, 1);
  AdamWConfig oc;
  oc.lr = 3e-3f;
  AdamW opt = adamw_create(oc, m.layout);
  const int B = 8, T = 32;
  std::vector<int> in(B * T), tg(B * T);
  auto eval = [&] {
    double s = 0;
    for (int i = 0; i < 4; i++) {
      load_batch(val, uint64_t(i) * B, B, T, in.data(), tg.data());
      s += gpt2_forward(m, in.data(), tg.data(), B, T);
    }
    return s / 4;
  };
  const double before = eval();
  for (int step = 0; step < 300; step++) {
    load_batch(train, uint64_t(step) * B, B, T, in.data(), tg.data());
    gpt2_zero_grad(m);
    gpt2_forward(m, in.data(), tg.data(), B, T);
    gpt2_backward(m);
    clip_grad_norm(m.grads, 1.0);
    adamw_step(opt, m.params, m.grads, oc.lr);
  }
  const double after = eval();
  EXPECT_NEAR(before, std::log(128.0), 0.1);
  EXPECT_LT(after, 0.7 * before) << "before " << before << " after " << after;
}

TEST(GPT2, FlopCountMatchesTheKernelsIssued) {
  GPT2Config c = tiny_config();
  const int B = 3, T = 5;
  const double C = c.channels, L = c.num_layers, Vp = c.padded_vocab_size, BT = B * T;
  // Hand count: per layer qkv 2*C*3C, attproj 2*C*C, fc 2*C*4C, fcproj 2*4C*C per token;
  // head 2*C*Vp per token; attention 2*2*C per (t, t2<=t) pair and sequence.
  const double expected = BT * (L * (6 * C * C + 2 * C * C + 8 * C * C + 8 * C * C) + 2 * C * Vp) +
                          B * L * 4 * C * (T * (T + 1) / 2.0);
  EXPECT_DOUBLE_EQ(gpt2_forward_flops(c, B, T), expected);
  // And the kernels issue exactly that: forward = the count, backward = twice it.
  GPT2 m = gpt2_create(c);
  randomise(m, 2);
  const Batch b = random_batch(c.vocab_size, 3, B, T);
  cpu::issued_flops() = 0;
  gpt2_forward(m, b.in.data(), b.tg.data(), B, T);
  EXPECT_EQ(double(cpu::issued_flops().exchange(0)), expected);
  gpt2_backward(m);
  EXPECT_EQ(double(cpu::issued_flops().exchange(0)), 2 * expected);
}
