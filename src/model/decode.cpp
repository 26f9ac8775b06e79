#include "model/decode.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "kernels/cpu/attention.hpp"
#include "kernels/cpu/flop_counter.hpp"
#include "kernels/cpu/layernorm.hpp"
#include "kernels/cpu/matmul.hpp"
#include "kernels/cpu/pointwise.hpp"
#include "model/decode_pass.hpp"

namespace frugal {

using namespace frugal::cpu;

void kv_cache_reserve(KVCache& cache, const GPT2Config& c, int slots, int max_len) {
  FRUGAL_CHECK(max_len >= 1 && max_len <= c.max_seq_len, "internal: KV cache length ", max_len, " outside [1, ",
               c.max_seq_len, "]");
  const size_t need = size_t(c.num_layers) * slots * max_len * c.channels;
  cache.slots = slots;
  cache.max_len = max_len;
  cache.channels = c.channels;
  if (cache.k.size() < need) cache.k.resize(need), cache.v.resize(need);
}

namespace {

// One block matrix on the rows: EGGROLL's perturbed product where the matrix has factors, else the
// plain (or adapted) linear layer.
void block_matrix(float* y, const float* x, int R, const float* w, const float* b, const LoraMatrix& lora,
                  const LowRankFactors* f, const DecodeRows& rows, float sigma, int C, int OC) {
  if (f) {
    FRUGAL_CHECK(!lora.A, "internal: a matrix is either perturbed (ES) or adapted (LoRA), not both");
    lowrank_linear_forward(x, R, w, b, rows.member.data(), *f, nullptr, sigma, y);
  } else {
    block_linear_forward(y, x, w, b, lora, R, C, OC);
  }
}

// Causal attention of each row over its slot's cached keys/values [0, pos], in the arithmetic order
// of cpu::attention_forward (so cached decoding reproduces the full forward).
void cached_attention(float* out, const float* qkv, const float* kc, const float* vc, const DecodeRows& rows, int R,
                      int C, int NH, int max_len) {
  const int hs = C / NH;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
  int64_t macs = 0;
#pragma omp parallel reduction(+ : macs)
  {
    std::vector<float> a(static_cast<size_t>(max_len));
#pragma omp for collapse(2) schedule(static)
    for (int i = 0; i < R; i++) {
      for (int h = 0; h < NH; h++) {
        const int pos = rows.pos[size_t(i)];
        const size_t base = size_t(rows.slot[size_t(i)]) * max_len * C;
        const float* q = qkv + size_t(i) * 3 * C + h * hs;
        macs += 2 * int64_t{pos + 1} * hs;
        float maxval = -1e30f;
        for (int t2 = 0; t2 <= pos; t2++) {
          const float* k = kc + base + size_t(t2) * C + h * hs;
          float dot = 0.0f;
          for (int j = 0; j < hs; j++) dot += q[j] * k[j];
          dot *= scale;
          a[size_t(t2)] = dot;
          if (dot > maxval) maxval = dot;
        }
        float sum = 0.0f;
        for (int t2 = 0; t2 <= pos; t2++) {
          a[size_t(t2)] = std::exp(a[size_t(t2)] - maxval);
          sum += a[size_t(t2)];
        }
        const float inv = 1.0f / sum;
        float* o = out + size_t(i) * C + h * hs;
        for (int j = 0; j < hs; j++) o[j] = 0.0f;
        for (int t2 = 0; t2 <= pos; t2++) {
          const float* v = vc + base + size_t(t2) * C + h * hs;
          const float w = a[size_t(t2)] * inv;
          for (int j = 0; j < hs; j++) o[j] += w * v[j];
        }
      }
    }
  }
  count_flops(2 * macs);
}

}  // namespace

namespace {

// The CPU kernel set of the shared decoder pass (model/decode_pass.hpp).
struct CpuDecodeKernels {
  static void resize(std::vector<float>& v, size_t n) { v.resize(n); }
  static void embed_rows(float* x, const float* wte, const float* wpe, const DecodeRows& rows, int R, int C) {
    for (int i = 0; i < R; i++) {
      const float* te = wte + size_t(rows.token[size_t(i)]) * C;
      const float* pe = wpe + size_t(rows.pos[size_t(i)]) * C;
      float* xi = x + size_t(i) * C;
      for (int j = 0; j < C; j++) xi[j] = te[j] + pe[j];
    }
  }
  static constexpr auto layernorm_forward = [](auto... a) { cpu::layernorm_forward(a...); };
  static constexpr auto residual_forward = [](auto... a) { cpu::residual_forward(a...); };
  static constexpr auto gelu_forward = [](auto... a) { cpu::gelu_forward(a...); };
  static constexpr auto matmul_forward = [](auto... a) { cpu::matmul_forward(a...); };
  static void block_matrix(float* y, const float* x, int R, const float* w, const float* b, const LoraMatrix& lora,
                           const PopulationNoise* noise, int l, int slot, const DecodeRows& rows, int C, int OC) {
    const LowRankFactors* f = noise ? noise->factors[size_t(l)][size_t(slot)] : nullptr;
    frugal::block_matrix(y, x, R, w, b, lora, f, rows, noise ? noise->sigma : 0.0f, C, OC);
  }
  static void cache_layer(KVCache& cache, int l, float** k, float** v) {
    const size_t layer = size_t(l) * cache.slots * cache.max_len * cache.channels;
    *k = cache.k.data() + layer, *v = cache.v.data() + layer;
  }
  static void kv_write(float* kc, float* vc, const float* qkv, const DecodeRows& rows, int R, int C, int max_len) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < R; i++) {
      const size_t at = (size_t(rows.slot[size_t(i)]) * max_len + size_t(rows.pos[size_t(i)])) * C;
      std::copy_n(qkv + size_t(i) * 3 * C + C, C, kc + at);
      std::copy_n(qkv + size_t(i) * 3 * C + 2 * C, C, vc + at);
    }
  }
  static void cached_attention(float* out, const float* qkv, const float* kc, const float* vc, const DecodeRows& rows,
                               int R, int C, int NH, int max_len) {
    frugal::cached_attention(out, qkv, kc, vc, rows, R, C, NH, max_len);
  }
  static void gather_wanted(float* dst, const float* x, const DecodeRows& rows, int W, int C) {
    for (int j = 0; j < W; j++) std::copy_n(x + size_t(rows.want[size_t(j)]) * C, C, dst + size_t(j) * C);
  }
};

}  // namespace

void population_factors_generate(PopulationFactors& p, const GPT2Config& c, const std::array<bool, 4>& perturbed,
                                 uint64_t seed, uint32_t epoch, int pairs, int rank, float sigma) {
  p.factors.resize(size_t(c.num_layers));
  p.noise.sigma = sigma;
  p.noise.factors.assign(size_t(c.num_layers), {});
  for (int l = 0; l < c.num_layers; l++)
    for (int k = 0; k < 4; k++) {
      if (!perturbed[size_t(k)]) continue;
      int rows = 0, cols = 0;
      block_matrix_shape(c, k, &rows, &cols);
      LowRankFactors& f = p.factors[size_t(l)][size_t(k)];
      lowrank_generate(f, population_factor_key(seed, l, k, epoch), 0, pairs, rows, cols, rank);
      p.noise.factors[size_t(l)][size_t(k)] = &f;
    }
}

void decode_check_rows(const GPT2Config& c, int cache_slots, int cache_max_len, const DecodeRows& rows) {
  for (size_t i = 0; i < rows.token.size(); i++) {
    const int tok = rows.token[i], pos = rows.pos[i];
    FRUGAL_CHECK(tok >= 0 && tok < c.vocab_size, "token id ", tok, " is outside the vocabulary [0, ", c.vocab_size, ")");
    FRUGAL_CHECK(pos >= 0 && pos < c.max_seq_len, "position ", pos, " is beyond the model's context (", c.max_seq_len, ")");
    FRUGAL_CHECK(pos < cache_max_len, "internal: position ", pos, " beyond the KV cache (", cache_max_len, ")");
    FRUGAL_CHECK(rows.slot[i] >= 0 && rows.slot[i] < cache_slots, "internal: decode row slot out of range");
  }
  for (int w : rows.want)
    FRUGAL_CHECK(w >= 0 && size_t(w) < rows.token.size(), "internal: a wanted decode row out of range");
}

void decode_forward(GPT2& model, GPT2BlockHook* blocks, const PopulationNoise* noise, KVCache& cache,
                    const DecodeRows& rows, DecodeScratch& s) {
  const GPT2Config& c = model.config;
  const int L = c.num_layers;
  FRUGAL_CHECK(cache.max_len <= c.max_seq_len && cache.channels == c.channels &&
                   cache.k.size() >= size_t(L) * cache.slots * cache.max_len * c.channels,
               "internal: KV cache not reserved for this model");
  FRUGAL_CHECK(!noise || noise->factors.size() == size_t(L), "internal: population noise for another depth");
  decode_check_rows(c, cache.slots, cache.max_len, rows);
  decode_pass::forward<CpuDecodeKernels>(model, blocks, noise, cache, rows, static_cast<int>(rows.token.size()),
                                         static_cast<int>(rows.want.size()), s);
}

int sample_token(const float* logits, int V, const SamplingSettings& s, float u, float* logprob, std::vector<float>& probs) {
  const bool greedy = s.temperature <= 0.0f;
  const float inv_t = greedy ? 1.0f : 1.0f / s.temperature;
  float maxval = -INFINITY;
  int argmax = 0;
  for (int i = 0; i < V; i++)
    if (logits[i] > maxval) maxval = logits[i], argmax = i;
  probs.resize(size_t(V));
  double total = 0;
  for (int i = 0; i < V; i++) total += (probs[size_t(i)] = std::exp((logits[i] - maxval) * inv_t));
  const double log_total = std::log(total);
  const auto logp = [&](int tok) { return static_cast<float>(double((logits[tok] - maxval) * inv_t) - log_total); };
  if (greedy) {
    *logprob = logp(argmax);
    return argmax;
  }
  // Candidates in the order the draw walks them: token order, or by probability when filtered.
  std::vector<int> order(static_cast<size_t>(V));
  std::iota(order.begin(), order.end(), 0);
  size_t keep = order.size();
  const bool filtered = (s.top_k > 0 && s.top_k < V) || s.top_p < 1.0f;
  if (filtered) {
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return probs[size_t(a)] > probs[size_t(b)]; });
    if (s.top_k > 0 && s.top_k < V) keep = size_t(s.top_k);
    if (s.top_p < 1.0f) {
      double mass = 0;
      for (size_t j = 0; j < keep; j++) mass += probs[size_t(order[j])];
      double cum = 0;
      for (size_t j = 0; j < keep; j++) {
        cum += probs[size_t(order[j])];
        if (cum >= double(s.top_p) * mass) {
          keep = j + 1;
          break;
        }
      }
    }
  }
  double mass = 0;
  for (size_t j = 0; j < keep; j++) mass += probs[size_t(order[j])];
  const double target = double(u) * mass;
  double cum = 0;
  int tok = order[keep - 1];
  for (size_t j = 0; j < keep; j++) {
    cum += probs[size_t(order[j])];
    if (cum >= target) {
      tok = order[j];
      break;
    }
  }
  *logprob = logp(tok);
  return tok;
}

void generate(GPT2& model, GPT2BlockHook* blocks, const PopulationNoise* noise, const GenerateRequest& req,
              const SamplingSettings& sampling, Generator& g, std::vector<Completion>& out) {
  decode_pass::generate(
      model.config, noise != nullptr, req, sampling, g.rows, g.tokens_generated, g.flops, out,
      [&](int slots, int max_len) { kv_cache_reserve(g.cache, model.config, slots, max_len); },
      [&](const DecodeRows& rows) {
        decode_forward(model, blocks, noise, g.cache, rows, g.scratch);
        return static_cast<const float*>(g.scratch.logits.data());
      });
}

}  // namespace frugal
