// The KV-cached decoder on the GPU (device/decode_device.hpp) against the CPU's (model/decode.hpp):
// the logits of a prefill and of cached decoding steps, plain and with EGGROLL's population noise
// (device factors from cuda::lowrank_generate, bit-identical to the CPU's), and whole generations at
// temperature 1 with the same random streams: the same tokens, log-probabilities within 1e-4.
// Tolerances: the logits within 1e-4 relative L2 (cuBLAS vs OpenBLAS GEMM order, expf, the softmax
// sum's order). Skipped without a GPU.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <random>
#include <vector>

#include "device/decode_device.hpp"
#include "kernels/cuda/kernels.hpp"
#include "model/decode.hpp"
#include "model/gpt2.hpp"
#include "model/perturb.hpp"

namespace {

using namespace frugal;

double rel_l2(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); i++) {
    if (std::isnan(got[i])) return INFINITY;
    num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    den += double(want[i]) * want[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

class CudaDecode : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda::device_available()) GTEST_SKIP() << "no CUDA device visible: skipping";
    GPT2Config c;
    c.max_seq_len = 32, c.vocab_size = 90, c.padded_vocab_size = 128, c.num_layers = 2, c.num_heads = 4, c.channels = 64;
    cpu = gpt2_create(c);
    gpt2_init_weights(cpu, 5, 0.2f);  // a wide init: peaked distributions, not near-uniform ones
    std::mt19937 rng(17);
    std::uniform_int_distribution<int> token(0, c.vocab_size - 1);
    for (int i = 0; i < kSequences; i++) {
      prompts.emplace_back(size_t(3 + i % 5));
      for (int& t : prompts.back()) t = token(rng);
      ids.push_back(uint32_t(100 + i));
      members.push_back(int32_t(i));
    }
    // EGGROLL's noise on every block matrix, rank 2, for kSequences members.
    const int pairs = kSequences / 2, C = c.channels;
    const int shape[4][2] = {{3 * C, C}, {C, C}, {4 * C, C}, {C, 4 * C}};  // (rows, cols) per LoraSlot
    host_factors.resize(size_t(c.num_layers));
    device_Bt.resize(size_t(c.num_layers) * 4), device_At.resize(size_t(c.num_layers) * 4);
    device_views.resize(size_t(c.num_layers) * 4);
    host_noise.sigma = device_noise.sigma = 0.05f;
    host_noise.factors.assign(size_t(c.num_layers), {});
    device_noise.factors.assign(size_t(c.num_layers), {});
    for (int l = 0; l < c.num_layers; l++)
      for (int k = 0; k < 4; k++) {
        const int rows = shape[k][0], cols = shape[k][1];
        const NoiseKey key = population_factor_key(9, l, k, 1);
        lowrank_generate(host_factors[size_t(l)][size_t(k)], key, 0, pairs, rows, cols, kRank);
        host_noise.factors[size_t(l)][size_t(k)] = &host_factors[size_t(l)][size_t(k)];
        const size_t at = size_t(l) * 4 + size_t(k);
        device_Bt[at] = cuda::DeviceBuffer(size_t(pairs) * kRank * cols);
        device_At[at] = cuda::DeviceBuffer(size_t(pairs) * kRank * rows);
        cuda::lowrank_generate(device_Bt[at].data(), device_At[at].data(), key, 0, pairs, rows, cols, kRank);
        device_views[at] = cuda::LowRankView<float>{device_Bt[at].data(), device_At[at].data(), 0, pairs, kRank, rows, cols};
        device_noise.factors[size_t(l)][size_t(k)] = &device_views[at];
      }
  }
  static constexpr int kSequences = 12, kRank = 2;
  GPT2 cpu;
  std::vector<std::vector<int>> prompts;
  std::vector<uint32_t> ids;
  std::vector<int32_t> members;
  std::vector<std::array<LowRankFactors, 4>> host_factors;
  std::vector<cuda::DeviceBuffer> device_Bt, device_At;
  std::vector<cuda::LowRankView<float>> device_views;
  PopulationNoise host_noise;
  PopulationNoiseDevice device_noise;

  // Generation on both sides; the completions must match token for token.
  void expect_same_generation(bool perturbed) {
    GPT2Device dev = gpt2_to_device(cpu);
    SamplingSettings s;
    s.temperature = 1.0f, s.max_new_tokens = 10, s.end_token = 7;
    const GenerateRequest req{prompts, ids, members, 31, 2};
    Generator g;
    GeneratorDevice gd;
    std::vector<Completion> want, got;
    generate(cpu, nullptr, perturbed ? &host_noise : nullptr, req, s, g, want);
    generate(dev, nullptr, perturbed ? &device_noise : nullptr, req, s, gd, got);
    ASSERT_EQ(got.size(), want.size());
    int64_t tokens = 0;
    for (size_t i = 0; i < want.size(); i++) {
      EXPECT_EQ(got[i].tokens, want[i].tokens) << "sequence " << i;
      EXPECT_EQ(got[i].truncated, want[i].truncated) << "sequence " << i;
      ASSERT_EQ(got[i].logprobs.size(), want[i].logprobs.size());
      for (size_t t = 0; t < want[i].logprobs.size(); t++)
        EXPECT_NEAR(got[i].logprobs[t], want[i].logprobs[t], 1e-4 * (1 + std::fabs(want[i].logprobs[t])));
      tokens += int64_t(want[i].tokens.size());
    }
    EXPECT_EQ(gd.tokens_generated, g.tokens_generated);
    EXPECT_GT(tokens, int64_t(kSequences)) << "the test must decode past the first token";
  }
};

TEST_F(CudaDecode, PrefillAndStepLogitsMatchTheCpu) {
  for (const bool perturbed : {false, true}) {
    SCOPED_TRACE(perturbed ? "perturbed" : "plain");
    GPT2Device dev = gpt2_to_device(cpu);
    KVCache cache;
    KVCacheDevice dcache;
    kv_cache_reserve(cache, cpu.config, kSequences, cpu.config.max_seq_len);
    kv_cache_reserve(dcache, cpu.config, kSequences, cpu.config.max_seq_len);
    DecodeScratch s;
    DecodeScratchDevice ds;
    DecodeRows rows;
    // Prefill: every prompt token a row (slots reversed: a slot is not the row's sequence index);
    // then two cached steps, one row per sequence.
    for (int i = 0; i < kSequences; i++) {
      for (size_t t = 0; t < prompts[size_t(i)].size(); t++)
        rows.add(prompts[size_t(i)][t], kSequences - 1 - i, int(t), members[size_t(i)]);
      rows.want.push_back(int(rows.token.size()) - 1);
    }
    for (int step = 0; step < 3; step++) {
      decode_forward(cpu, nullptr, perturbed ? &host_noise : nullptr, cache, rows, s);
      decode_forward(dev, nullptr, perturbed ? &device_noise : nullptr, dcache, rows, ds);
      EXPECT_LT(rel_l2(ds.host_logits, s.logits), 1e-4) << "step " << step;
      DecodeRows next;
      for (int i = 0; i < kSequences; i++) {
        next.add((i * 7 + step) % cpu.config.vocab_size, kSequences - 1 - i, int(prompts[size_t(i)].size()) + step,
                 members[size_t(i)]);
        next.want.push_back(i);
      }
      rows = next;
    }
  }
}

TEST_F(CudaDecode, PlainGenerationMatchesTheCpu) { expect_same_generation(false); }

TEST_F(CudaDecode, PerturbedGenerationMatchesTheCpu) { expect_same_generation(true); }

}  // namespace
