#pragma once
// Inference with a KV cache: batched autoregressive generation for RL on a language model.
//
// decode_forward is the whole model on a set of rows, each one token of one sequence at its own
// position: a row's key and value go into the cache at (sequence slot, position) and its query
// attends over that slot's cached positions [0, pos]. The same call serves the prefill (every
// prompt token of every sequence as rows, one GEMM per matrix) and each decoding step (one row per
// live sequence). With a PopulationNoise every row also belongs to an ES member and each block
// matrix computes EGGROLL's perturbed product x W^T + (x B) A^T: one shared GEMM for all members'
// rows plus each member's rank-r correction (model/perturb.hpp), W + E never formed. Adapters
// (LoRA) come through the block hook, as in the training forward.
//
// generate() samples one completion per prompt: temperature, then top-k, then top-p (nucleus) on
// the temperature-scaled distribution; stop at the end token or after max_new_tokens (truncated).
// The random number behind token t of a sequence is Philox(seed, Stream::sampling, sequence id,
// (step << 16) | t): a completion depends on (seed, step, sequence id) and the model only - not on
// which other sequences share the batch, the rank, or the thread count - up to the float rounding
// of the shared GEMMs (OpenBLAS's result for one row can change in the last bits, ~1e-6, with the
// rows around it; a token flips only if its draw falls that close to a boundary of the CDF).
#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "model/gpt2.hpp"
#include "model/perturb.hpp"

namespace frugal {

struct KVCache {
  int slots = 0, max_len = 0, channels = 0;
  std::vector<float> k, v;  // (L, slots, max_len, C)
};
// Room for `slots` sequences of up to `max_len` positions (<= the model's context): sized to what
// a generation needs, not to the context (GPT-2's 1024 positions x 64 sequences would be 4.8 GB).
// The buffers only grow, so a reused cache is not touched again.
void kv_cache_reserve(KVCache& cache, const GPT2Config& c, int slots, int max_len);

// EGGROLL's perturbation of the block matrices for a population: factors[l][slot] (nullptr = that
// matrix is not perturbed), indexed like LoraSlot. Each decode row names its member.
struct PopulationNoise {
  float sigma = 0;
  std::vector<std::array<const LowRankFactors*, 4>> factors;  // (L)
};

// The key of block `layer`'s matrix `slot` (LoraSlot) in the LM EGGROLL's population noise:
// NoiseKey{seed, 16 + slot, layer, epoch}. One owner, because the CPU and the GPU factors must agree.
inline NoiseKey population_factor_key(uint64_t seed, int layer, int slot, uint32_t epoch) {
  return NoiseKey{seed, 16u + uint32_t(slot), uint32_t(layer), epoch};
}

// The LM EGGROLL's population noise over the block matrices: the rank-r factors of every pair for
// the matrices `perturbed` (by LoraSlot) of every block, keyed by population_factor_key, and the
// PopulationNoise pointing at them (the others left unperturbed). The method
// (methods/eggroll_lm.cpp) and the generation benchmarks generate them here, and the GPU's twin is
// device/decode_device.hpp's.
struct PopulationFactors {
  std::vector<std::array<LowRankFactors, 4>> factors;  // (L) x LoraSlot
  PopulationNoise noise;
};
void population_factors_generate(PopulationFactors& p, const GPT2Config& c, const std::array<bool, 4>& perturbed,
                                 uint64_t seed, uint32_t epoch, int pairs, int rank, float sigma);

struct DecodeRows {
  std::vector<int> token, slot, pos;
  std::vector<int32_t> member;  // per row, with a PopulationNoise
  std::vector<int> want;        // rows whose logits are wanted, in output order
  void clear() { token.clear(), slot.clear(), pos.clear(), member.clear(), want.clear(); }
  void add(int tok, int s, int p, int32_t m = 0) { token.push_back(tok), slot.push_back(s), pos.push_back(p), member.push_back(m); }
};

// Activations of one decode_forward (reused across calls).
struct DecodeScratch {
  std::vector<float> x, ln, qkv, atty, proj, fch, fch_gelu, lnf_rows, logits, mean, rstd;
};
// The host-side checks of a decode call (both back ends): token ids in the vocabulary, positions in
// the context and the cache, slots in the cache, wanted rows among the rows.
void decode_check_rows(const GPT2Config& c, int cache_slots, int cache_max_len, const DecodeRows& rows);

// logits (want.size(), Vp) of the wanted rows, in s.logits. blocks: a hook supplying the weights
// (LoRA) or nullptr; noise: EGGROLL's perturbation or nullptr.
void decode_forward(GPT2& model, GPT2BlockHook* blocks, const PopulationNoise* noise, KVCache& cache,
                    const DecodeRows& rows, DecodeScratch& s);

struct SamplingSettings {
  float temperature = 1.0f;  // 0 = greedy (argmax, first on ties)
  int top_k = 0;             // keep the k most likely tokens (0 = all)
  float top_p = 1.0f;        // keep the smallest set whose probability reaches top_p (1 = all)
  int max_new_tokens = 16;
  int end_token = '\n';
};

struct Completion {
  std::vector<int> tokens;      // generated tokens, the end token included when produced
  std::vector<float> logprobs;  // log softmax(logits / T) of each generated token, full vocabulary
                                // (T = 1 when greedy): the policy the training loss differentiates
  bool truncated = false;       // stopped by max_new_tokens before the end token
};

struct GenerateRequest {
  std::span<const std::vector<int>> prompts;
  std::span<const uint32_t> sequence_ids;  // per prompt: names its random stream (with seed, step)
  std::span<const int32_t> members;        // per prompt, with a PopulationNoise (else empty)
  uint64_t seed = 0;
  int64_t step = 0;
};

struct Generator {
  KVCache cache;
  DecodeRows rows;
  DecodeScratch scratch;
  std::vector<float> probs;
  int64_t tokens_generated = 0;  // of the last call
  double flops = 0;              // of the last call (GEMMs and attention, as gpt2_forward_flops counts)
};

void generate(GPT2& model, GPT2BlockHook* blocks, const PopulationNoise* noise, const GenerateRequest& request,
              const SamplingSettings& sampling, Generator& g, std::vector<Completion>& out);

// One token from a logits row (length >= V): the sampling rule above with uniform u in (0, 1].
// Returns the token and writes its log-probability. `probs` is scratch (V floats).
int sample_token(const float* logits, int V, const SamplingSettings& s, float u, float* logprob, std::vector<float>& probs);

}  // namespace frugal
