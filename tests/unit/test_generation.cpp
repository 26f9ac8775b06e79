// Generation for RL on a language model (model/decode.hpp) and LoRA (model/lora.hpp):
// KV-cached decoding against the full forward (plain, LoRA, EGGROLL population noise), generate()
// (greedy against step-by-step argmax, stopping, truncation, reproducibility independent of the
// batch split, order and thread count), sample_token on hand distributions, the per-token
// log-probability kernels against a double reference and finite differences, and LoRA's gradients,
// merge and initialisation.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "core/rng.hpp"
#include "kernels/cpu/crossentropy.hpp"
#include "model/decode.hpp"
#include "model/gpt2.hpp"
#include "model/lora.hpp"
#include "model/perturb.hpp"
#include "gpt2_fixtures.hpp"
#include "test_util.hpp"

using namespace frugal;
using namespace frugal::testing;

namespace {

// A small model with a padded vocabulary (V = 125 of Vp = 128), 2 blocks, 2 heads of width 16.
GPT2Config gen_config(int channels = 32, int block_size = 24) {
  GPT2Config c;
  c.max_seq_len = block_size;
  c.vocab_size = 125;
  c.padded_vocab_size = 128;
  c.num_layers = 2;
  c.num_heads = 2;
  c.channels = channels;
  return c;
}

// gpt2_init_weights, then every LayerNorm gain/bias and bias randomised (fixtures' randomise).
GPT2 make_model(const GPT2Config& c, uint64_t seed) {
  GPT2 m = gpt2_create(c);
  randomise(m, seed);
  return m;
}

// Give the padded rows of the tied head large random weights: their logits are then large, and a
// decoder that let them into sampling or argmax would be caught. Real tokens never read them.
void poison_padding_rows(GPT2& m, uint64_t seed) {
  const GPT2Config& c = m.config;
  Rng rng(seed, 91u, 0u);
  for (size_t i = size_t(c.vocab_size) * c.channels; i < size_t(c.padded_vocab_size) * c.channels; i++)
    m.params[i] = 1.0f * rng.normal();
}

std::vector<int> random_tokens(int n, int V, uint64_t seed, uint32_t sub = 0) {
  Rng rng(seed, 90u, sub);
  std::vector<int> t(static_cast<size_t>(n));
  for (int& x : t) x = static_cast<int>(rng.below(static_cast<uint32_t>(V)));
  return t;
}

void fill_random(std::vector<float>& v, float scale, uint64_t seed) {
  Rng rng(seed, 89u, 0u);
  for (float& x : v) x = scale * rng.normal();
}

// LoRA on all four matrices with every parameter (A and B) random and non-zero.
LoraAdapters random_lora(const GPT2Config& c, int rank, float alpha, float scale, uint64_t seed,
                         std::array<bool, 4> targets = {true, true, true, true}) {
  LoraConfig lc;
  lc.rank = rank;
  lc.alpha = alpha;
  for (int s = 0; s < 4; s++) lc.targets[s] = targets[size_t(s)];
  LoraAdapters lora(c, lc, seed);
  fill_random(lora.params, scale, seed + 1000);
  return lora;
}

double max_abs_diff(const float* a, const float* b, size_t n) {
  double d = 0;
  for (size_t i = 0; i < n; i++) d = std::max(d, std::fabs(double(a[i]) - double(b[i])));
  return d;
}

// The tolerance of two computations of the same logits in fp32: 1e-5 relative to the logit scale
// (max |logit|, at least 1). Measured differences are ~1.5e-6 relative (GEMM blocking, summation
// order); a wrong cache, position, mask or perturbation is off by O(0.1) or more.
double logit_tol(const std::vector<std::vector<float>>& logits) {
  double d = 1.0;
  for (const auto& v : logits)
    for (float x : v) d = std::max(d, std::fabs(double(x)));
  return 1e-5 * d;
}

// Full forward of B sequences (padded to the longest with random tokens, which causality makes
// irrelevant): logits[i] = (len_i, Vp) of sequence i.
std::vector<std::vector<float>> full_logits(GPT2& m, GPT2BlockHook* hook, const std::vector<std::vector<int>>& seqs) {
  const int B = static_cast<int>(seqs.size()), Vp = m.config.padded_vocab_size;
  int T = 0;
  for (const auto& s : seqs) T = std::max(T, static_cast<int>(s.size()));
  std::vector<int> in = random_tokens(B * T, m.config.vocab_size, 4242);
  for (int b = 0; b < B; b++) std::copy(seqs[size_t(b)].begin(), seqs[size_t(b)].end(), in.begin() + ptrdiff_t(b) * T);
  gpt2_forward(m, in.data(), nullptr, B, T, hook);
  std::vector<std::vector<float>> out(seqs.size());
  for (int b = 0; b < B; b++) {
    const float* row = m.acts.logits.data() + size_t(b) * T * Vp;
    out[size_t(b)].assign(row, row + seqs[size_t(b)].size() * Vp);
  }
  return out;
}

// decode_forward over the sequences: a prefill of the first `prefill` tokens of every sequence
// (rows in position-major order, sequences interleaved), then one row per sequence per step.
// Sequence i lives in cache slot slots[i] and (with noise) belongs to members[i]. Every row is
// wanted: logits[i] = (len_i, Vp).
std::vector<std::vector<float>> decode_logits(GPT2& m, GPT2BlockHook* hook, const PopulationNoise* noise,
                                              const std::vector<std::vector<int>>& seqs, int prefill,
                                              const std::vector<int>& slots, const std::vector<int32_t>& members) {
  const int n = static_cast<int>(seqs.size()), Vp = m.config.padded_vocab_size;
  int T = 0;
  for (const auto& s : seqs) T = std::max(T, static_cast<int>(s.size()));
  KVCache cache;
  kv_cache_reserve(cache, m.config, *std::max_element(slots.begin(), slots.end()) + 1, m.config.max_seq_len);
  DecodeScratch scratch;
  DecodeRows rows;
  std::vector<std::vector<float>> out(seqs.size());
  for (int i = 0; i < n; i++) out[size_t(i)].assign(seqs[size_t(i)].size() * Vp, NAN);
  std::vector<std::pair<int, int>> where;  // (sequence, position) of each wanted row
  const auto run = [&] {
    decode_forward(m, hook, noise, cache, rows, scratch);
    EXPECT_EQ(scratch.logits.size(), where.size() * Vp);
    for (size_t j = 0; j < where.size(); j++)
      std::copy_n(scratch.logits.data() + j * Vp, Vp, out[size_t(where[j].first)].data() + size_t(where[j].second) * Vp);
  };
  rows.clear(), where.clear();
  for (int t = 0; t < std::min(prefill, T); t++)
    for (int i = 0; i < n; i++)
      if (t < static_cast<int>(seqs[size_t(i)].size())) {
        rows.add(seqs[size_t(i)][size_t(t)], slots[size_t(i)], t, members.empty() ? 0 : members[size_t(i)]);
        rows.want.push_back(static_cast<int>(rows.token.size()) - 1);
        where.emplace_back(i, t);
      }
  run();
  for (int t = prefill; t < T; t++) {
    rows.clear(), where.clear();
    for (int i = 0; i < n; i++)
      if (t < static_cast<int>(seqs[size_t(i)].size())) {
        rows.add(seqs[size_t(i)][size_t(t)], slots[size_t(i)], t, members.empty() ? 0 : members[size_t(i)]);
        rows.want.push_back(static_cast<int>(rows.token.size()) - 1);
        where.emplace_back(i, t);
      }
    run();
  }
  return out;
}

double max_diff_all(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
  double d = 0;
  EXPECT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); i++) {
    EXPECT_EQ(a[i].size(), b[i].size());
    for (size_t k = 0; k < a[i].size(); k++) {
      const double e = std::fabs(double(a[i][k]) - double(b[i][k]));
      d = std::max(d, std::isnan(e) ? INFINITY : e);
    }
  }
  return d;
}

// log softmax(row[0..V) / T)[tok] in double.
double ref_logprob(const float* row, int V, double temperature, int tok) {
  double mx = -INFINITY;
  for (int v = 0; v < V; v++) mx = std::max(mx, double(row[v]) / temperature);
  double s = 0;
  for (int v = 0; v < V; v++) s += std::exp(double(row[v]) / temperature - mx);
  return double(row[tok]) / temperature - mx - std::log(s);
}

int argmax_first(const float* row, int V) {
  int best = 0;
  for (int v = 1; v < V; v++)
    if (row[v] > row[best]) best = v;
  return best;
}

// The block matrices' shapes (rows = out, cols = in), indexed by LoraSlot.
std::array<std::array<int, 2>, 4> matrix_shapes(int C) { return {{{3 * C, C}, {C, C}, {4 * C, C}, {C, 4 * C}}}; }

float* block_matrix_ptr(GPT2& m, int l, int slot) {
  const int C = m.config.channels;
  const GPT2Tensors p = gpt2_views(m.layout, m.params.data());
  switch (slot) {
    case lora_qkv: return p.qkvw + size_t(l) * 3 * C * C;
    case lora_attproj: return p.attprojw + size_t(l) * C * C;
    case lora_fc: return p.fcw + size_t(l) * 4 * C * C;
    default: return p.fcprojw + size_t(l) * 4 * C * C;
  }
}

// EGGROLL's perturbation of member `member`, materialised: W <- W + s sigma / sqrt(r) A_p B_p^T
// (A_p (m x r) = At[p]^T, B_p (n x r) = Bt[p]^T), in double, for every matrix that has factors.
void materialise_member(GPT2& m, const PopulationNoise& noise, int member) {
  for (int l = 0; l < m.config.num_layers; l++)
    for (int s = 0; s < 4; s++) {
      const LowRankFactors* f = noise.factors[size_t(l)][size_t(s)];
      if (!f) continue;
      const int p = member / 2, rows = f->rows, cols = f->cols, r = f->rank;
      const double c = (member % 2 == 0 ? 1.0 : -1.0) * double(noise.sigma) / std::sqrt(double(r));
      const float* at = f->a(p);
      const float* bt = f->b(p);
      float* W = block_matrix_ptr(m, l, s);
      for (int j = 0; j < rows; j++)
        for (int i = 0; i < cols; i++) {
          double e = 0;
          for (int k = 0; k < r; k++) e += double(at[size_t(k) * rows + j]) * double(bt[size_t(k) * cols + i]);
          W[size_t(j) * cols + i] = static_cast<float>(double(W[size_t(j) * cols + i]) + c * e);
        }
    }
}

}  // namespace

// ---- 1. KV-cached decoding == the full forward ----------------------------------------------

TEST(Decode, CachedDecodingEqualsTheFullForwardPlainAndWithLora) {
  const GPT2Config c = gen_config(32, 20);
  GPT2 m = make_model(c, 3);
  poison_padding_rows(m, 3);
  LoraAdapters lora = random_lora(c, 2, 4.0f, 0.3f, 17);
  const std::vector<std::vector<int>> seqs = {random_tokens(20, c.vocab_size, 1, 0), random_tokens(13, c.vocab_size, 1, 1),
                                              random_tokens(7, c.vocab_size, 1, 2)};
  const std::vector<int> slots = {2, 0, 1};  // not the sequence index: the slot mapping is exercised too
  std::vector<std::vector<float>> plain_ref;
  for (GPT2BlockHook* hook : {static_cast<GPT2BlockHook*>(nullptr), static_cast<GPT2BlockHook*>(&lora)}) {
    const auto ref = full_logits(m, hook, seqs);
    if (!hook) plain_ref = ref;
    double scale = 0;  // over the real vocabulary
    for (const auto& r : ref)
      for (size_t k = 0; k < r.size(); k++)
        if (int(k % c.padded_vocab_size) < c.vocab_size) scale = std::max(scale, std::fabs(double(r[k])));
    ASSERT_GT(scale, 0.5);  // logits of order 1-10
    ASSERT_LT(scale, 20.0);
    const double tol = logit_tol(ref);
    // (a) one prefill of every token of every sequence
    const auto one = decode_logits(m, hook, nullptr, seqs, 1000, slots, {});
    EXPECT_LE(max_diff_all(one, ref), tol) << (hook ? "lora" : "plain") << ": one prefill";
    // (b) a prefill of the first 5 tokens, then one row per sequence per step
    const auto steps = decode_logits(m, hook, nullptr, seqs, 5, slots, {});
    EXPECT_LE(max_diff_all(steps, ref), tol) << (hook ? "lora" : "plain") << ": prefill 5 + steps";
    // (c) no prefill beyond the first token: every later token is a decoding step
    const auto single = decode_logits(m, hook, nullptr, seqs, 1, slots, {});
    EXPECT_LE(max_diff_all(single, ref), tol) << (hook ? "lora" : "plain") << ": prefill 1 + steps";
  }
  // The adapters are material (so the LoRA comparison above is not the plain one again).
  EXPECT_GT(max_diff_all(full_logits(m, &lora, seqs), plain_ref), 1e-2);
}

// ---- 2. EGGROLL population noise in the decoder ---------------------------------------------

TEST(Decode, PopulationNoiseEqualsTheMaterialisedPerturbedWeights) {
  const GPT2Config c = gen_config(32, 16);
  GPT2 m = make_model(c, 5);
  const int members = 6, pairs = members / 2;
  const std::vector<std::vector<int>> seqs = {
      random_tokens(9, c.vocab_size, 2, 0), random_tokens(6, c.vocab_size, 2, 1), random_tokens(12, c.vocab_size, 2, 2),
      random_tokens(4, c.vocab_size, 2, 3), random_tokens(10, c.vocab_size, 2, 4), random_tokens(7, c.vocab_size, 2, 5),
      random_tokens(8, c.vocab_size, 2, 6)};
  // Every member appears, member 3 twice (two sequences of one member in the same calls).
  const std::vector<int32_t> member_of = {3, 0, 5, 1, 4, 2, 3};
  const std::vector<int> slots = {0, 1, 2, 3, 4, 5, 6};
  const auto shapes = matrix_shapes(c.channels);
  // rank 9 = one group of 8 plus a single rank (both branches of lowrank_linear_forward).
  for (int rank : {1, 2, 9}) {
    SCOPED_TRACE("rank " + std::to_string(rank));
    std::vector<std::array<LowRankFactors, 4>> store(size_t(c.num_layers));
    PopulationNoise noise;
    noise.sigma = 0.05f;
    noise.factors.resize(size_t(c.num_layers));
    for (int l = 0; l < c.num_layers; l++)
      for (int s = 0; s < 4; s++) {
        NoiseKey key;
        key.seed = 77, key.tensor = uint32_t(s), key.layer = uint32_t(l), key.epoch = 3;
        lowrank_generate(store[size_t(l)][size_t(s)], key, 0, pairs, shapes[size_t(s)][0], shapes[size_t(s)][1], rank);
        noise.factors[size_t(l)][size_t(s)] = &store[size_t(l)][size_t(s)];
      }
    noise.factors[1][lora_attproj] = nullptr;  // one matrix unperturbed: the plain path in the same block
    const auto perturbed = decode_logits(m, nullptr, &noise, seqs, 3, slots, member_of);
    const auto one_call = decode_logits(m, nullptr, &noise, seqs, 1000, slots, member_of);
    const auto plain = decode_logits(m, nullptr, nullptr, seqs, 1000, slots, {});
    const double tol = logit_tol(plain);
    EXPECT_LE(max_diff_all(perturbed, one_call), tol);
    for (size_t i = 0; i < seqs.size(); i++) {
      GPT2 mi = m;
      materialise_member(mi, noise, member_of[i]);
      const auto ref = decode_logits(mi, nullptr, nullptr, {seqs[i]}, 1000, {0}, {});
      EXPECT_LE(max_abs_diff(perturbed[i].data(), ref[0].data(), ref[0].size()), tol) << "sequence " << i;
      EXPECT_GT(max_abs_diff(perturbed[i].data(), plain[i].data(), ref[0].size()), 1e-3)
          << "sequence " << i << ": the noise must change the logits";
    }
    // Antithetic members of one pair differ (sign), members of different pairs differ (factors).
    GPT2 m0 = m, m1 = m, m2 = m;
    materialise_member(m0, noise, 0), materialise_member(m1, noise, 1), materialise_member(m2, noise, 2);
    const auto l0 = decode_logits(m0, nullptr, nullptr, {seqs[0]}, 1000, {0}, {});
    const auto l1 = decode_logits(m1, nullptr, nullptr, {seqs[0]}, 1000, {0}, {});
    const auto l2 = decode_logits(m2, nullptr, nullptr, {seqs[0]}, 1000, {0}, {});
    EXPECT_GT(max_diff_all(l0, l1), 1e-3);
    EXPECT_GT(max_diff_all(l0, l2), 1e-3);
  }
}

TEST(Generate, GreedyWithPopulationNoiseEqualsGreedyOnTheMaterialisedMember) {
  const GPT2Config c = gen_config(32, 24);
  GPT2 m = make_model(c, 8);
  const int members = 4;
  const auto shapes = matrix_shapes(c.channels);
  std::vector<std::array<LowRankFactors, 4>> store(size_t(c.num_layers));
  PopulationNoise noise;
  noise.sigma = 0.05f;
  noise.factors.resize(size_t(c.num_layers));
  for (int l = 0; l < c.num_layers; l++)
    for (int s = 0; s < 4; s++) {
      NoiseKey key;
      key.seed = 5, key.tensor = uint32_t(s), key.layer = uint32_t(l);
      lowrank_generate(store[size_t(l)][size_t(s)], key, 0, members / 2, shapes[size_t(s)][0], shapes[size_t(s)][1], 4);
      noise.factors[size_t(l)][size_t(s)] = &store[size_t(l)][size_t(s)];
    }
  const std::vector<std::vector<int>> prompts = {random_tokens(5, c.vocab_size, 6, 0), random_tokens(5, c.vocab_size, 6, 0),
                                                 random_tokens(5, c.vocab_size, 6, 0), random_tokens(8, c.vocab_size, 6, 1)};
  const std::vector<uint32_t> ids = {0, 1, 2, 3};
  const std::vector<int32_t> mem = {0, 1, 2, 3};
  SamplingSettings s;
  s.temperature = 0, s.max_new_tokens = 10, s.end_token = -1;
  GenerateRequest req;
  req.prompts = prompts, req.sequence_ids = ids, req.members = mem;
  Generator g;
  std::vector<Completion> out;
  generate(m, nullptr, &noise, req, s, g, out);
  ASSERT_EQ(out.size(), prompts.size());
  for (size_t i = 0; i < prompts.size(); i++) {
    GPT2 mi = m;
    materialise_member(mi, noise, mem[i]);
    GenerateRequest one;
    one.prompts = std::span(prompts).subspan(i, 1), one.sequence_ids = std::span(ids).subspan(i, 1);
    Generator gi;
    std::vector<Completion> ref;
    generate(mi, nullptr, nullptr, one, s, gi, ref);
    EXPECT_EQ(out[i].tokens, ref[0].tokens) << "prompt " << i;
    for (size_t t = 0; t < ref[0].logprobs.size() && t < out[i].logprobs.size(); t++)
      EXPECT_NEAR(out[i].logprobs[t], ref[0].logprobs[t], 1e-5) << "prompt " << i << " token " << t;
  }
}

// ---- 3. generate(): greedy --------------------------------------------------------------------

TEST(Generate, GreedyEqualsStepByStepArgmaxOfTheFullForwardAndStopsCorrectly) {
  const GPT2Config c = gen_config(32, 24);
  GPT2 m = make_model(c, 11);
  poison_padding_rows(m, 11);
  LoraAdapters lora = random_lora(c, 2, 4.0f, 0.3f, 23);
  const std::vector<std::vector<int>> prompts = {random_tokens(3, c.vocab_size, 7, 0), random_tokens(6, c.vocab_size, 7, 1),
                                                 random_tokens(1, c.vocab_size, 7, 2), random_tokens(9, c.vocab_size, 7, 3)};
  const std::vector<uint32_t> ids = {10, 11, 12, 13};
  GenerateRequest req;
  req.prompts = prompts, req.sequence_ids = ids, req.seed = 99, req.step = 4;
  for (GPT2BlockHook* hook : {static_cast<GPT2BlockHook*>(nullptr), static_cast<GPT2BlockHook*>(&lora)}) {
    SCOPED_TRACE(hook ? "lora" : "plain");
    SamplingSettings s;
    s.temperature = 0, s.max_new_tokens = 8, s.end_token = -1;  // no end token: every completion runs to 8
    Generator g;
    std::vector<Completion> free_run, again;
    generate(m, hook, nullptr, req, s, g, free_run);
    generate(m, hook, nullptr, req, s, g, again);  // the same generator, reused
    ASSERT_EQ(free_run.size(), prompts.size());
    int64_t total = 0;
    for (size_t i = 0; i < prompts.size(); i++) {
      EXPECT_EQ(free_run[i].tokens, again[i].tokens);
      EXPECT_EQ(free_run[i].logprobs, again[i].logprobs);  // deterministic: bitwise
      ASSERT_EQ(free_run[i].tokens.size(), 8u);
      ASSERT_EQ(free_run[i].logprobs.size(), 8u);
      EXPECT_TRUE(free_run[i].truncated);
      total += 8;
      // Step by step against the full forward over prompt + generated tokens.
      std::vector<int> seq = prompts[i];
      for (size_t t = 0; t < free_run[i].tokens.size(); t++) {
        const auto full = full_logits(m, hook, {seq});
        const float* last = full[0].data() + (seq.size() - 1) * c.padded_vocab_size;
        const int tok = free_run[i].tokens[t];
        EXPECT_EQ(tok, argmax_first(last, c.vocab_size)) << "prompt " << i << " token " << t;
        EXPECT_NEAR(free_run[i].logprobs[t], ref_logprob(last, c.vocab_size, 1.0, tok), 1e-5)
            << "prompt " << i << " token " << t;
        seq.push_back(tok);
      }
    }
    EXPECT_EQ(g.tokens_generated, total);
    // The end token: the earliest token of prompt 0's greedy completion that some other completion
    // never produces. Every completion is then its free-running one cut after the first end token,
    // truncated exactly when it has none within max_new_tokens.
    s.end_token = -1;
    for (int tok : free_run[0].tokens) {
      bool absent_somewhere = false;
      for (size_t i = 1; i < prompts.size(); i++)
        absent_somewhere |= std::find(free_run[i].tokens.begin(), free_run[i].tokens.end(), tok) == free_run[i].tokens.end();
      if (absent_somewhere) {
        s.end_token = tok;
        break;
      }
    }
    ASSERT_GE(s.end_token, 0) << "test data: every completion holds every token of prompt 0's; change the seeds";
    std::vector<Completion> stopped;
    generate(m, hook, nullptr, req, s, g, stopped);
    int ended = 0, truncated = 0;
    int64_t total_stopped = 0;
    for (size_t i = 0; i < prompts.size(); i++) {
      const auto& ft = free_run[i].tokens;
      const auto it = std::find(ft.begin(), ft.end(), s.end_token);
      const std::vector<int> expect(ft.begin(), it == ft.end() ? ft.end() : it + 1);
      EXPECT_EQ(stopped[i].tokens, expect) << "prompt " << i;
      EXPECT_EQ(stopped[i].truncated, it == ft.end()) << "prompt " << i;
      ASSERT_EQ(stopped[i].logprobs.size(), stopped[i].tokens.size());
      // Not bitwise: once some sequences stop, the others' rows sit in smaller GEMMs, and OpenBLAS
      // rounds a row differently with the batch size (a few ulps of the logits).
      for (size_t t = 0; t < stopped[i].tokens.size(); t++)
        EXPECT_NEAR(stopped[i].logprobs[t], free_run[i].logprobs[t], 1e-5) << "prompt " << i << " token " << t;
      (it == ft.end() ? truncated : ended)++;
      total_stopped += static_cast<int64_t>(stopped[i].tokens.size());
    }
    EXPECT_EQ(g.tokens_generated, total_stopped);
    EXPECT_FALSE(stopped[0].truncated);
    EXPECT_GE(ended, 1);
    EXPECT_GE(truncated, 1) << "test data: no completion ran to max_new_tokens; choose another end token";
  }
  // A prompt plus max_new_tokens beyond the context is refused.
  SamplingSettings s;
  s.temperature = 0, s.max_new_tokens = 16;
  Generator g;
  std::vector<Completion> out;
  EXPECT_NE(error_of([&] { generate(m, nullptr, nullptr, req, s, g, out); }).find("exceeds the model's context"),
            std::string::npos);
}

// ---- 4. sampling: reproducible, independent of the batch split, order and thread count --------

TEST(Generate, SamplingDependsOnlyOnSeedStepAndSequenceId) {
  const GPT2Config c = gen_config(32, 24);
  GPT2 m = make_model(c, 13);
  poison_padding_rows(m, 13);
  std::vector<std::vector<int>> prompts;
  for (int i = 0; i < 6; i++) prompts.push_back(random_tokens(2 + 2 * i, c.vocab_size, 8, uint32_t(i)));
  const std::vector<uint32_t> ids = {0, 1, 2, 3, 4, 5};
  SamplingSettings plain;
  plain.temperature = 1.0f, plain.max_new_tokens = 8;
  SamplingSettings filtered;
  filtered.temperature = 0.8f, filtered.top_k = 20, filtered.top_p = 0.9f, filtered.max_new_tokens = 8;
  const auto gen = [&](const std::vector<std::vector<int>>& p, const std::vector<uint32_t>& id, const SamplingSettings& s,
                       uint64_t seed, int64_t step) {
    GenerateRequest req;
    req.prompts = p, req.sequence_ids = id, req.seed = seed, req.step = step;
    Generator g;
    std::vector<Completion> out;
    generate(m, nullptr, nullptr, req, s, g, out);
    return out;
  };
  const auto same = [](const Completion& a, const Completion& b, const std::string& what) {
    EXPECT_EQ(a.tokens, b.tokens) << what;
    EXPECT_EQ(a.truncated, b.truncated) << what;
    ASSERT_EQ(a.logprobs.size(), b.logprobs.size()) << what;
    // 1e-5, not bitwise: a row's GEMM result in OpenBLAS depends in the last bits on how many rows
    // share the call and where the row sits (measured: up to ~4 ulps of a logit), so the logprobs
    // of the same tokens differ by up to ~3e-6 between batch splits and orders.
    for (size_t t = 0; t < a.logprobs.size(); t++) EXPECT_NEAR(a.logprobs[t], b.logprobs[t], 1e-5) << what << " token " << t;
  };
  for (const SamplingSettings* s : {&plain, &filtered}) {
    SCOPED_TRACE(s == &plain ? "temperature 1" : "temperature 0.8, top_k 20, top_p 0.9");
    const auto all = gen(prompts, ids, *s, 2024, 7);
    ASSERT_EQ(all.size(), 6u);
    // Two calls of three.
    const std::vector<std::vector<int>> pa(prompts.begin(), prompts.begin() + 3), pb(prompts.begin() + 3, prompts.end());
    const auto a = gen(pa, {0, 1, 2}, *s, 2024, 7), b = gen(pb, {3, 4, 5}, *s, 2024, 7);
    for (int i = 0; i < 3; i++) same(all[size_t(i)], a[size_t(i)], "split, prompt " + std::to_string(i));
    for (int i = 0; i < 3; i++) same(all[size_t(i + 3)], b[size_t(i)], "split, prompt " + std::to_string(i + 3));
    // Reverse order.
    const std::vector<std::vector<int>> pr(prompts.rbegin(), prompts.rend());
    const auto r = gen(pr, {5, 4, 3, 2, 1, 0}, *s, 2024, 7);
    for (int i = 0; i < 6; i++) same(all[size_t(i)], r[size_t(5 - i)], "reversed, prompt " + std::to_string(i));
    // Thread count.
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    const auto t1 = gen(prompts, ids, *s, 2024, 7);
    omp_set_num_threads(2);
    const auto t2 = gen(prompts, ids, *s, 2024, 7);
    omp_set_num_threads(threads);
    for (int i = 0; i < 6; i++) same(t1[size_t(i)], t2[size_t(i)], "threads 1 vs 2, prompt " + std::to_string(i));
    for (int i = 0; i < 6; i++) same(all[size_t(i)], t1[size_t(i)], "threads 1 vs default, prompt " + std::to_string(i));
    // Another step, another seed: other samples.
    const auto other_step = gen(prompts, ids, *s, 2024, 8), other_seed = gen(prompts, ids, *s, 2025, 7);
    int differ_step = 0, differ_seed = 0;
    for (int i = 0; i < 6; i++) {
      differ_step += all[size_t(i)].tokens != other_step[size_t(i)].tokens;
      differ_seed += all[size_t(i)].tokens != other_seed[size_t(i)].tokens;
    }
    EXPECT_GE(differ_step, 1);
    EXPECT_GE(differ_seed, 1);
    // Every sample is a real token, its logprob is log softmax(logits / T) of the full forward over
    // the whole vocabulary, and with filtering it lies inside the top-k and the nucleus.
    int distinct_first = 0;
    for (int i = 0; i < 6; i++) {
      std::vector<int> seq = prompts[size_t(i)];
      const Completion& comp = all[size_t(i)];
      if (i > 0 && comp.tokens[0] != all[0].tokens[0]) distinct_first++;
      for (size_t t = 0; t < comp.tokens.size(); t++) {
        const int tok = comp.tokens[t];
        ASSERT_GE(tok, 0);
        ASSERT_LT(tok, c.vocab_size) << "a padded-vocabulary token was sampled";
        const auto full = full_logits(m, nullptr, {seq});
        const float* last = full[0].data() + (seq.size() - 1) * c.padded_vocab_size;
        EXPECT_NEAR(comp.logprobs[t], ref_logprob(last, c.vocab_size, s->temperature, tok), 1e-5)
            << "prompt " << i << " token " << t;
        if (s == &filtered) {
          int higher = 0;  // tokens strictly more likely than the sample
          double mass_higher = 0, mass_top = 0;
          std::vector<double> p(size_t(c.vocab_size));
          for (int v = 0; v < c.vocab_size; v++) p[size_t(v)] = std::exp(ref_logprob(last, c.vocab_size, s->temperature, v));
          std::vector<double> sorted = p;
          std::sort(sorted.rbegin(), sorted.rend());
          for (int k = 0; k < s->top_k; k++) mass_top += sorted[size_t(k)];
          for (int v = 0; v < c.vocab_size; v++)
            if (p[size_t(v)] > p[size_t(tok)]) higher++, mass_higher += p[size_t(v)];
          EXPECT_LT(higher, s->top_k) << "outside the top-k";
          EXPECT_LT(mass_higher, s->top_p * mass_top + 1e-6) << "outside the nucleus";
        }
        seq.push_back(tok);
      }
      EXPECT_EQ(comp.truncated, comp.tokens.back() != s->end_token);
      if (comp.truncated) {
        EXPECT_EQ(comp.tokens.size(), size_t(s->max_new_tokens));
      }
      EXPECT_EQ(std::count(comp.tokens.begin(), comp.tokens.end() - 1, s->end_token), 0) << "tokens after the end token";
    }
    EXPECT_GE(distinct_first, 1);
  }
}

// ---- 5. sample_token on hand distributions ----------------------------------------------------

TEST(SampleToken, HandDistributions) {
  // probs {0.1, 0.2, 0.3, 0.4}; a fifth, huge logit beyond V must be ignored.
  const float logits[5] = {0.0f, std::log(2.0f), std::log(3.0f), std::log(4.0f), 100.0f};
  const int V = 4;
  std::vector<float> scratch;
  float lp = 0;
  using UT = std::pair<float, int>;
  const auto draw = [&](const SamplingSettings& s, float u) { return sample_token(logits, V, s, u, &lp, scratch); };
  const double p[4] = {0.1, 0.2, 0.3, 0.4};
  SamplingSettings s;
  // Greedy: argmax, log-probability at T = 1.
  s.temperature = 0;
  for (float u : {1e-6f, 0.5f, 1.0f}) {
    EXPECT_EQ(draw(s, u), 3);
    EXPECT_NEAR(lp, std::log(0.4), 1e-6);
  }
  // Temperature 1, unfiltered: the draw walks token order, cumulative {0.1, 0.3, 0.6, 1.0}.
  s = SamplingSettings{};
  const std::pair<float, int> walk[] = {{1e-6f, 0}, {0.099f, 0}, {0.101f, 1}, {0.299f, 1}, {0.301f, 2},
                                        {0.599f, 2}, {0.601f, 3}, {1.0f, 3}};
  for (const auto& [u, tok] : walk) {
    EXPECT_EQ(draw(s, u), tok) << "u = " << u;
    EXPECT_NEAR(lp, std::log(p[tok]), 1e-6) << "u = " << u;
  }
  // top_k = 1: always the argmax.
  s.top_k = 1;
  for (float u : {1e-6f, 0.3f, 0.7f, 1.0f}) {
    EXPECT_EQ(draw(s, u), 3);
    EXPECT_NEAR(lp, std::log(0.4), 1e-6);  // of the full distribution, not the filtered one
  }
  // top_k = 2: {3, 2} walked by probability, cumulative {0.4, 0.7} of 0.7: boundary at 4/7.
  s.top_k = 2;
  for (const auto& [u, tok] : std::vector<UT>{{0.01f, 3}, {0.57f, 3}, {0.58f, 2}, {1.0f, 2}}) {
    EXPECT_EQ(draw(s, u), tok) << "top_k 2, u = " << u;
    EXPECT_NEAR(lp, std::log(p[tok]), 1e-6);
  }
  // top_p = 0.5: 0.4 < 0.5 <= 0.7 keeps {3, 2}: the same boundary.
  s = SamplingSettings{};
  s.top_p = 0.5f;
  for (const auto& [u, tok] : std::vector<UT>{{0.01f, 3}, {0.57f, 3}, {0.58f, 2}, {1.0f, 2}}) {
    EXPECT_EQ(draw(s, u), tok) << "top_p 0.5, u = " << u;
    EXPECT_NEAR(lp, std::log(p[tok]), 1e-6);
  }
  // top_p = 0.75 keeps {3, 2, 1} (0.7 < 0.75 <= 0.9): boundaries at 0.4/0.9 and 0.7/0.9.
  s.top_p = 0.75f;
  for (const auto& [u, tok] : std::vector<UT>{{0.44f, 3}, {0.45f, 2}, {0.77f, 2}, {0.78f, 1}, {1.0f, 1}}) {
    EXPECT_EQ(draw(s, u), tok) << "top_p 0.75, u = " << u;
    EXPECT_NEAR(lp, std::log(p[tok]), 1e-6);
  }
  // top_p = 0.35 keeps {3} only.
  s.top_p = 0.35f;
  for (float u : {1e-6f, 0.5f, 1.0f}) EXPECT_EQ(draw(s, u), 3);
  // top_k then top_p on the kept mass: top_k = 2 keeps 0.7; top_p = 0.55 of it is 0.385 <= 0.4,
  // so only {3} remains (on the full mass, 0.55 would have kept {3, 2}).
  s.top_k = 2, s.top_p = 0.55f;
  for (float u : {1e-6f, 0.6f, 1.0f}) EXPECT_EQ(draw(s, u), 3) << "top_k 2 + top_p 0.55, u = " << u;
  s.top_k = 3, s.top_p = 0.5f;  // top-3 mass 0.9, 0.45 of it: {3, 2}
  for (const auto& [u, tok] : std::vector<UT>{{0.57f, 3}, {0.58f, 2}, {1.0f, 2}}) EXPECT_EQ(draw(s, u), tok);
  // Temperature 0.5: probs proportional to p^2 = {1, 4, 9, 16} / 30, cumulative {1, 5, 14, 30} / 30.
  s = SamplingSettings{};
  s.temperature = 0.5f;
  for (const auto& [u, tok] :
       std::vector<UT>{{0.03f, 0}, {0.04f, 1}, {0.16f, 1}, {0.17f, 2}, {0.46f, 2}, {0.47f, 3}, {1.0f, 3}}) {
    EXPECT_EQ(draw(s, u), tok) << "T 0.5, u = " << u;
    EXPECT_NEAR(lp, std::log((tok + 1.0) * (tok + 1.0) / 30.0), 1e-6) << "T 0.5, u = " << u;
  }
  // Temperature 2: probs proportional to sqrt(p).
  s.temperature = 2.0f;
  const double zs = 1 + std::sqrt(2.0) + std::sqrt(3.0) + 2;
  for (const auto& [u, tok] : std::vector<UT>{{0.16f, 0}, {0.17f, 1}, {0.99f, 3}}) {
    EXPECT_EQ(draw(s, u), tok) << "T 2, u = " << u;
    EXPECT_NEAR(lp, std::log(std::sqrt(tok + 1.0) / zs), 1e-6);
  }
  // Ties: greedy takes the first; filtering keeps token order among equals (stable).
  const float tied[4] = {1.0f, 3.0f, 3.0f, 0.0f};
  const double zt = std::exp(1.0) + 2 * std::exp(3.0) + 1.0;
  s = SamplingSettings{};
  s.temperature = 0;
  EXPECT_EQ(sample_token(tied, 4, s, 0.9f, &lp, scratch), 1);
  EXPECT_NEAR(lp, 3.0 - std::log(zt), 1e-6);
  s = SamplingSettings{};
  s.top_k = 1;
  EXPECT_EQ(sample_token(tied, 4, s, 1.0f, &lp, scratch), 1);
  s.top_k = 2;  // {1, 2} equally likely, walked 1 then 2
  EXPECT_EQ(sample_token(tied, 4, s, 0.49f, &lp, scratch), 1);
  EXPECT_EQ(sample_token(tied, 4, s, 0.51f, &lp, scratch), 2);
  EXPECT_NEAR(lp, 3.0 - std::log(zt), 1e-6);
  // Large logits: no overflow; probs {0.25, 0.75}.
  const float big[2] = {1000.0f, 1000.0f + std::log(3.0f)};
  s = SamplingSettings{};
  EXPECT_EQ(sample_token(big, 2, s, 0.24f, &lp, scratch), 0);
  EXPECT_NEAR(lp, std::log(0.25), 1e-4);  // 1000 + log 3 is rounded to float (ulp 6e-5)
  EXPECT_EQ(sample_token(big, 2, s, 0.26f, &lp, scratch), 1);
  EXPECT_NEAR(lp, std::log(0.75), 1e-4);
}

// ---- 6. per-token log-probabilities: forward and backward ------------------------------------

TEST(TokenLogprob, ForwardAndBackwardMatchADoubleReferenceAndFiniteDifferences) {
  const int N = 7, V = 37, Vp = 40;
  std::vector<float> logits(size_t(N) * Vp);
  fill_random(logits, 2.0f, 31);
  for (int n = 0; n < N; n++)
    for (int v = V; v < Vp; v++) logits[size_t(n) * Vp + v] = 50.0f;  // padding: must be ignored
  const std::vector<int> targets = random_tokens(N, V, 32);
  const std::vector<float> weight = {0.5f, 0.0f, -1.3f, 2.0f, 1.0f, 0.0f, 0.7f};
  for (float temperature : {1.0f, 0.7f}) {
    SCOPED_TRACE("temperature " + std::to_string(temperature));
    const float inv_t = 1.0f / temperature;
    std::vector<float> logp(static_cast<size_t>(N)), ent(static_cast<size_t>(N));
    cpu::token_logprob_forward(logp.data(), ent.data(), logits.data(), targets.data(), N, V, Vp, inv_t);
    std::vector<float> plain(static_cast<size_t>(N));
    cpu::token_logprob_forward(plain.data(), nullptr, logits.data(), targets.data(), N, V, Vp, inv_t);
    EXPECT_EQ(plain, logp);  // entropy optional, logp unchanged
    std::vector<float> dl(size_t(N) * Vp, 7.0f);  // garbage: the backward overwrites
    cpu::token_logprob_backward(dl.data(), logits.data(), targets.data(), weight.data(), N, V, Vp, inv_t);
    for (int n = 0; n < N; n++) {
      const float* l = logits.data() + size_t(n) * Vp;
      double mx = -INFINITY;
      for (int v = 0; v < V; v++) mx = std::max(mx, double(l[v]) * inv_t);
      double sum = 0;
      for (int v = 0; v < V; v++) sum += std::exp(double(l[v]) * inv_t - mx);
      const double lse = mx + std::log(sum);
      double h = 0;
      for (int v = 0; v < V; v++) h -= std::exp(double(l[v]) * inv_t - lse) * (double(l[v]) * inv_t - lse);
      EXPECT_NEAR(logp[size_t(n)], double(l[targets[size_t(n)]]) * inv_t - lse, 1e-5) << "row " << n;
      EXPECT_NEAR(ent[size_t(n)], h, 1e-5) << "row " << n;
      const float* d = dl.data() + size_t(n) * Vp;
      for (int v = V; v < Vp; v++) EXPECT_EQ(d[v], 0.0f) << "padding, row " << n;
      if (weight[size_t(n)] == 0.0f) {
        for (int v = 0; v < Vp; v++) EXPECT_EQ(d[v], 0.0f) << "weight-0 row " << n;
        continue;
      }
      // Analytic: w inv_t (onehot - softmax).
      for (int v = 0; v < V; v++) {
        const double ref = double(weight[size_t(n)]) * inv_t *
                           ((v == targets[size_t(n)] ? 1.0 : 0.0) - std::exp(double(l[v]) * inv_t - lse));
        EXPECT_NEAR(d[v], ref, 1e-6) << "row " << n << " col " << v;
      }
      // Central differences of w_n logp_n (only row n depends on its logits) on the target, the
      // four most likely columns and two others; step 1e-2. Tolerance 2e-3 relative plus 1e-4
      // absolute: the float forward's rounding (ulp of logp ~ 5e-7) over 2h = 2e-2, times |w| <= 2.
      std::vector<int> cols = {targets[size_t(n)]};
      std::vector<int> order(static_cast<size_t>(V));
      std::iota(order.begin(), order.end(), 0);
      std::sort(order.begin(), order.end(), [&](int a, int b) { return l[a] > l[b]; });
      for (int k = 0; k < 4; k++) cols.push_back(order[size_t(k)]);
      cols.push_back(order[size_t(V / 2)]), cols.push_back(order[size_t(V - 1)]);
      std::vector<float> row(l, l + Vp);
      for (int v : cols) {
        const float hstep = 1e-2f, saved = row[size_t(v)];
        float up = 0, down = 0;
        row[size_t(v)] = saved + hstep;
        cpu::token_logprob_forward(&up, nullptr, row.data(), &targets[size_t(n)], 1, V, Vp, inv_t);
        row[size_t(v)] = saved - hstep;
        cpu::token_logprob_forward(&down, nullptr, row.data(), &targets[size_t(n)], 1, V, Vp, inv_t);
        row[size_t(v)] = saved;
        const double fd = double(weight[size_t(n)]) * (double(up) - double(down)) / (2.0 * hstep);
        EXPECT_NEAR(fd, d[v], 2e-3 * std::fabs(d[v]) + 1e-4) << "row " << n << " col " << v;
      }
    }
  }
}

// ---- 7. LoRA gradients against finite differences ---------------------------------------------

TEST(Lora, AdapterGradientsMatchFiniteDifferencesAndTheBaseStaysFrozen) {
  const GPT2Config c = tiny_config();  // L 2, NH 2, C 8, V 13 of 16, maxT 8
  GPT2 m = gpt2_create(c);
  randomise(m, 21);
  const Batch b = random_batch(c.vocab_size, 22, 2, 6);
  const int N = b.B * b.T, V = c.vocab_size, Vp = c.padded_vocab_size;
  std::vector<float> w(static_cast<size_t>(N));
  fill_random(w, 1.0f, 23);
  w[3] = 0.0f, w[8] = 0.0f;  // tokens outside the loss
  const float inv_t = 1.0f / 0.8f;
  const std::array<std::array<bool, 4>, 2> target_sets = {{{true, true, true, true}, {false, true, true, false}}};
  for (const auto& targets : target_sets) {
    SCOPED_TRACE(targets[0] ? "all four matrices" : "attproj and fc");
    LoraAdapters lora = random_lora(c, 2, 4.0f, 0.5f, 24, targets);
    std::vector<float> logp(static_cast<size_t>(N));
    const auto objective = [&] {
      gpt2_forward(m, b.in.data(), nullptr, b.B, b.T, &lora);
      cpu::token_logprob_forward(logp.data(), nullptr, m.acts.logits.data(), b.tg.data(), N, V, Vp, inv_t);
      double s = 0;
      for (int n = 0; n < N; n++) s += double(w[size_t(n)]) * logp[size_t(n)];
      return s;
    };
    gpt2_zero_grad(m);
    std::fill(lora.grads.begin(), lora.grads.end(), 0.0f);
    objective();
    cpu::token_logprob_backward(gpt2_dlogits(m), m.acts.logits.data(), b.tg.data(), w.data(), N, V, Vp, inv_t);
    gpt2_backward_from_dlogits(m, &lora);
    const std::vector<float> grads = lora.grads;
    // The frozen base: no gradient for the block matrices, the embeddings or the tied head.
    for (const auto& t : m.layout.tensors)
      if (t.name == "qkvw" || t.name == "attprojw" || t.name == "fcw" || t.name == "fcprojw" || t.name == "wte" ||
          t.name == "wpe") {
        size_t nonzero = 0;
        for (size_t i = 0; i < t.numel; i++) nonzero += m.grads[t.offset + i] != 0.0f;
        EXPECT_EQ(nonzero, 0u) << "frozen tensor " << t.name << " got a gradient";
      }
    const int expect_tensors = 2 * int(std::count(targets.begin(), targets.end(), true));
    ASSERT_EQ(int(lora.layout().tensors.size()), expect_tensors);
    // Every entry of every adapter tensor, central differences with h = 1e-2. Bound: the fp32
    // objective (|sum w logp| ~ 30) is good to ~1e-5, i.e. ~5e-4 in the difference quotient; a
    // wrong backward is off by O(|g|). Tolerance 1e-2 |g| + 1e-3.
    for (const auto& t : lora.layout().tensors) {
      double worst = 0, largest = 0;
      size_t bad = 0;
      for (size_t i = t.offset; i < t.offset + t.numel; i++) {
        const float saved = lora.params[i], h = 1e-2f;
        lora.params[i] = saved + h;
        const double up = objective();
        lora.params[i] = saved - h;
        const double down = objective();
        lora.params[i] = saved;
        const double fd = (up - down) / (2.0 * h);
        const double err = std::fabs(fd - grads[i]);
        worst = std::max(worst, err / (std::fabs(grads[i]) + 0.1));
        largest = std::max(largest, std::fabs(double(grads[i])));
        if (err > 1e-2 * std::fabs(grads[i]) + 1e-3) {
          if (bad++ < 3) ADD_FAILURE() << t.name << "[" << i - t.offset << "]: fd " << fd << " analytic " << grads[i];
        }
      }
      EXPECT_EQ(bad, 0u) << t.name << " (worst error / (|g| + 0.1): " << worst << ")";
      EXPECT_GT(largest, 0.05) << t.name << ": gradients too small for the check to bite";
    }
  }
}

// ---- 8. merge ---------------------------------------------------------------------------------

TEST(Lora, MergeComputesWhatTheHookComputesAndUnmergeRestores) {
  const GPT2Config c = gen_config(32, 16);
  GPT2 m = make_model(c, 31);
  const std::vector<std::vector<int>> seqs = {random_tokens(16, c.vocab_size, 9, 0), random_tokens(16, c.vocab_size, 9, 1)};
  for (const auto& targets : std::array<std::array<bool, 4>, 2>{{{true, true, true, true}, {true, false, true, false}}}) {
    SCOPED_TRACE(targets[1] ? "all four matrices" : "qkv and fc");
    const LoraAdapters lora = random_lora(c, 4, 8.0f, 0.1f, 32, targets);
    LoraAdapters hook = lora;
    const std::vector<float> original = m.params;
    const auto base = full_logits(m, nullptr, seqs);
    const auto hooked = full_logits(m, &hook, seqs);
    ASSERT_GT(max_diff_all(base, hooked), 1e-2);  // the adapters are material
    lora.merge_into(m);
    const auto merged = full_logits(m, nullptr, seqs);
    EXPECT_LE(max_diff_all(merged, hooked), logit_tol(hooked));
    // Only the adapted matrices changed.
    for (int l = 0; l < c.num_layers; l++)
      for (int s = 0; s < 4; s++) {
        const float* now = block_matrix_ptr(m, l, s);
        const size_t off = size_t(now - m.params.data());
        const size_t n = size_t(matrix_shapes(c.channels)[size_t(s)][0]) * matrix_shapes(c.channels)[size_t(s)][1];
        const double d = max_abs_diff(now, original.data() + off, n);
        if (targets[size_t(s)]) {
          EXPECT_GT(d, 1e-3) << "layer " << l << " slot " << s;
        } else {
          EXPECT_EQ(d, 0.0) << "layer " << l << " slot " << s << " is not adapted";
        }
      }
    lora.merge_into(m, -1.0f);
    EXPECT_LE(max_abs_diff(m.params.data(), original.data(), original.size()), 1e-6);
    m.params = original;
  }
}

// ---- 9. initialisation and configuration ------------------------------------------------------

TEST(Lora, InitialisationStartsAtTheBaseModelAndIsKeyedBySeed) {
  const GPT2Config c = gen_config(32, 16);
  GPT2 m = make_model(c, 41);
  LoraConfig lc;
  lc.rank = 4, lc.alpha = 8;
  LoraAdapters lora(c, lc, 7);
  const int C = c.channels, L = c.num_layers;
  const int in[4] = {C, C, C, 4 * C}, out[4] = {3 * C, C, 4 * C, C};
  const char* names[4] = {"qkv", "attproj", "fc", "fcproj"};
  ASSERT_EQ(lora.layout().tensors.size(), 8u);
  size_t total = 0;
  for (int s = 0; s < 4; s++) {
    const TensorSpec& a = lora.layout().tensors[size_t(2 * s)];
    const TensorSpec& bt = lora.layout().tensors[size_t(2 * s + 1)];
    EXPECT_EQ(a.name, std::string(names[s]) + ".A");
    EXPECT_EQ(bt.name, std::string(names[s]) + ".B");
    EXPECT_EQ(a.shape, (std::vector<int64_t>{L, lc.rank, in[s]}));
    EXPECT_EQ(bt.shape, (std::vector<int64_t>{L, out[s], lc.rank}));
    total += a.numel + bt.numel;
    const float bound = 1.0f / std::sqrt(float(in[s]));
    size_t zeros = 0, outside = 0;
    double mean_abs = 0;
    for (size_t i = 0; i < a.numel; i++) {
      const float x = lora.params[a.offset + i];
      zeros += x == 0.0f, outside += std::fabs(x) > bound;
      mean_abs += std::fabs(x) / double(a.numel);
    }
    EXPECT_EQ(zeros, 0u) << names[s] << ".A";
    EXPECT_EQ(outside, 0u) << names[s] << ".A beyond 1/sqrt(in)";
    EXPECT_NEAR(mean_abs, bound / 2, 0.15 * bound) << names[s] << ".A: U(-b, b) has mean |x| = b/2";
    for (size_t i = 0; i < bt.numel; i++) ASSERT_EQ(lora.params[bt.offset + i], 0.0f) << names[s] << ".B";
  }
  EXPECT_EQ(lora.params.size(), total);
  EXPECT_EQ(lora.grads.size(), total);
  // B = 0: the hooked forward is the plain forward exactly (the adapter GEMM adds exact zeros).
  const std::vector<std::vector<int>> seqs = {random_tokens(16, c.vocab_size, 10, 0), random_tokens(16, c.vocab_size, 10, 1)};
  const auto plain = full_logits(m, nullptr, seqs);
  const auto hooked = full_logits(m, &lora, seqs);
  EXPECT_EQ(max_diff_all(plain, hooked), 0.0);
  // Deterministic from the seed.
  const LoraAdapters same(c, lc, 7), other(c, lc, 8);
  EXPECT_EQ(same.params, lora.params);
  size_t differ = 0;
  for (size_t i = 0; i < lora.params.size(); i++) differ += other.params[i] != lora.params[i];
  size_t a_total = 0;
  for (int s = 0; s < 4; s++) a_total += lora.layout().tensors[size_t(2 * s)].numel;
  EXPECT_GT(differ, a_total * 9 / 10);  // (B is 0 in both)
  // A rank beyond a matrix's size is refused.
  LoraConfig too_big;
  too_big.rank = C + 1;
  EXPECT_NE(error_of([&] { LoraAdapters x(c, too_big, 1); }).find("exceeds"), std::string::npos);
}

TEST(Lora, ConfigKeysParseTargetsAndRejectUnknownNames) {
  Schema schema;
  add_lora_keys(schema);
  const LoraConfig def = lora_config_from(resolve_config(schema, "", {}));
  EXPECT_EQ(def.rank, 8);
  EXPECT_FLOAT_EQ(def.alpha, 16.0f);
  for (bool t : def.targets) EXPECT_TRUE(t);
  const LoraConfig sub = lora_config_from(resolve_config(schema, "", {"--lora.targets=fc,qkv", "--lora.rank=3", "--lora.alpha=6"}));
  EXPECT_EQ(sub.rank, 3);
  EXPECT_FLOAT_EQ(sub.alpha, 6.0f);
  EXPECT_TRUE(sub.targets[lora_qkv]);
  EXPECT_FALSE(sub.targets[lora_attproj]);
  EXPECT_TRUE(sub.targets[lora_fc]);
  EXPECT_FALSE(sub.targets[lora_fcproj]);
  const std::string e = error_of([&] { lora_config_from(resolve_config(schema, "", {"--lora.targets=qkv,mlp"})); });
  EXPECT_NE(e.find("unknown matrix 'mlp'"), std::string::npos) << e;
  EXPECT_NE(e.find("lora.targets"), std::string::npos) << e;
  const std::string e2 = error_of([&] { lora_config_from(resolve_config(schema, "", {"--lora.targets=QKV"})); });
  EXPECT_NE(e2.find("unknown matrix"), std::string::npos) << e2;
}
