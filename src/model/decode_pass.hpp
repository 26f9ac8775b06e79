#pragma once
// The KV-cached decoder's forward (model/decode.hpp) written once over a kernel set, as
// model/gpt2_pass.hpp is for training: the CPU's decode_forward (model/decode.cpp) and the GPU's
// (device/decode_device.cpp) both run these lines. K supplies the kernels and the buffers:
//
//   K::resize(buf, n)                                    scratch of at least n floats
//   K::embed_rows(x, wte, wpe, rows, R, C)               x[i] = wte[token_i] + wpe[pos_i]
//   K::layernorm_forward / residual_forward / gelu_forward / matmul_forward   (kernels' signatures)
//   K::block_matrix(y, x, R, w, b, lora, noise, l, slot, rows, C, OC)
//                                                        one block matrix: EGGROLL's perturbed
//                                                        product where noise has factors, else plain
//   K::cache_layer(cache, l, &k, &v)                     layer l's (slots, max_len, C) K and V
//   K::kv_write(k, v, qkv, rows, R, C, max_len)          each row's key and value into its slot/pos
//   K::cached_attention(out, qkv, k, v, rows, R, C, NH, max_len)
//   K::gather_wanted(dst, x, rows, W, C)                 the rows whose logits are wanted
//
// `rows` is the back end's view of a DecodeRows (host vectors on the CPU, device copies on a GPU);
// R rows, W of them wanted. The caller checks the rows (token and position ranges) on the host.
#include <algorithm>
#include <numeric>
#include <vector>

#include "core/rng.hpp"
#include "model/decode.hpp"
#include "model/gpt2_pass.hpp"

namespace frugal::decode_pass {

template <class K, class Model, class Noise, class Cache, class Rows, class Scratch>
void forward(Model& model, BlockHook<Model>* blocks, const Noise* noise, Cache& cache, const Rows& rows, int R, int W,
             Scratch& s) {
  const GPT2Config& c = model.config;
  const int C = c.channels, L = c.num_layers, Vp = c.padded_vocab_size;
  const GPT2Tensors p = gpt2_views(model.layout, model.params.data());
  K::resize(s.x, size_t(R) * C), K::resize(s.ln, size_t(R) * C), K::resize(s.qkv, size_t(R) * 3 * C);
  K::resize(s.atty, size_t(R) * C), K::resize(s.proj, size_t(R) * C), K::resize(s.fch, size_t(R) * 4 * C);
  K::resize(s.fch_gelu, size_t(R) * 4 * C), K::resize(s.mean, size_t(std::max(R, 1))), K::resize(s.rstd, size_t(std::max(R, 1)));
  K::embed_rows(s.x.data(), p.wte, p.wpe, rows, R, C);
  for (int l = 0; l < L; l++) {
    if (blocks && !blocks->runs(l)) continue;  // a skipped block is the identity
    const GPT2BlockWeights w = blocks ? blocks->forward_weights(model, l) : gpt2_pass::block_weights(model, l);
    FRUGAL_CHECK(w.CH == C && w.M == 4 * C, "internal: the decoder runs full-width blocks only");
    const size_t lC = size_t(l) * C;
    K::layernorm_forward(s.ln.data(), s.mean.data(), s.rstd.data(), s.x.data(), p.ln1w + lC, p.ln1b + lC, R, C);
    K::block_matrix(s.qkv.data(), s.ln.data(), R, w.qkvw, w.qkvb, w.lora[lora_qkv], noise, l, lora_qkv, rows, C, 3 * C);
    float *kc = nullptr, *vc = nullptr;
    K::cache_layer(cache, l, &kc, &vc);
    K::kv_write(kc, vc, s.qkv.data(), rows, R, C, cache.max_len);
    K::cached_attention(s.atty.data(), s.qkv.data(), kc, vc, rows, R, C, c.num_heads, cache.max_len);
    K::block_matrix(s.proj.data(), s.atty.data(), R, w.attprojw, p.attprojb + lC, w.lora[lora_attproj], noise, l,
                    lora_attproj, rows, C, C);
    K::residual_forward(s.x.data(), s.x.data(), s.proj.data(), size_t(R) * C);
    K::layernorm_forward(s.ln.data(), s.mean.data(), s.rstd.data(), s.x.data(), p.ln2w + lC, p.ln2b + lC, R, C);
    K::block_matrix(s.fch.data(), s.ln.data(), R, w.fcw, w.fcb, w.lora[lora_fc], noise, l, lora_fc, rows, C, 4 * C);
    K::gelu_forward(s.fch_gelu.data(), s.fch.data(), size_t(R) * 4 * C);
    K::block_matrix(s.proj.data(), s.fch_gelu.data(), R, w.fcprojw, p.fcprojb + lC, w.lora[lora_fcproj], noise, l,
                    lora_fcproj, rows, 4 * C, C);
    K::residual_forward(s.x.data(), s.x.data(), s.proj.data(), size_t(R) * C);
  }
  // The head only for the wanted rows: a decoding step needs one row per sequence, a prefill one
  // per prompt.
  K::resize(s.lnf_rows, size_t(W) * C);
  K::gather_wanted(s.lnf_rows.data(), s.x.data(), rows, W, C);
  K::layernorm_forward(s.lnf_rows.data(), s.mean.data(), s.rstd.data(), s.lnf_rows.data(), p.lnfw, p.lnfb, W, C);
  K::resize(s.logits, size_t(W) * Vp);
  if (W > 0) K::matmul_forward(s.logits.data(), s.lnf_rows.data(), p.wte, nullptr, W, C, Vp);
}

// generate() (model/decode.hpp) for any back end: reserve(slots, max_len) sizes its KV cache,
// decode(rows) runs decode_forward on the rows and returns the wanted rows' logits on the host
// (want.size() x Vp). Sampling, stopping and the bookkeeping are the same whatever computes the logits.
template <class Reserve, class Decode>
void generate(const GPT2Config& c, bool has_noise, const GenerateRequest& req, const SamplingSettings& sampling,
              DecodeRows& rows, int64_t& tokens_generated, double& flops, std::vector<Completion>& out,
              Reserve&& reserve, Decode&& decode) {
  const int n = static_cast<int>(req.prompts.size());
  FRUGAL_CHECK(req.sequence_ids.size() == size_t(n), "internal: one sequence id per prompt");
  FRUGAL_CHECK(!has_noise || req.members.size() == size_t(n), "internal: one member per prompt with population noise");
  FRUGAL_CHECK(sampling.max_new_tokens >= 1, "max_new_tokens must be at least 1");
  size_t longest = 1;
  for (const auto& p : req.prompts) longest = std::max(longest, p.size());
  reserve(std::max(n, 1), static_cast<int>(std::min(longest + size_t(sampling.max_new_tokens), size_t(c.max_seq_len))));
  out.assign(size_t(n), Completion{});
  tokens_generated = 0;
  flops = 0;
  if (n == 0) return;
  const auto count = [&](const DecodeRows& r) {
    const double C = c.channels;
    double f = 2.0 * double(r.want.size()) * C * c.padded_vocab_size;
    for (int pos : r.pos) f += c.num_layers * (2.0 * 12.0 * C * C + 4.0 * C * (pos + 1));
    flops += f;
  };
  // Prefill: every prompt token as a row; logits of each prompt's last token.
  rows.clear();
  for (int i = 0; i < n; i++) {
    const std::vector<int>& prompt = req.prompts[size_t(i)];
    FRUGAL_CHECK(!prompt.empty(), "generation needs a non-empty prompt");
    FRUGAL_CHECK(prompt.size() + size_t(sampling.max_new_tokens) <= size_t(c.max_seq_len), "a prompt of ", prompt.size(),
                 " tokens plus max_new_tokens = ", sampling.max_new_tokens, " exceeds the model's context (model.block_size = ",
                 c.max_seq_len, ")");
    const int32_t member = has_noise ? req.members[size_t(i)] : 0;
    for (size_t t = 0; t < prompt.size(); t++) rows.add(prompt[t], i, static_cast<int>(t), member);
    rows.want.push_back(static_cast<int>(rows.token.size()) - 1);
  }
  std::vector<int> live(static_cast<size_t>(n));
  std::iota(live.begin(), live.end(), 0);
  const int V = c.vocab_size, Vp = c.padded_vocab_size;
  while (!live.empty()) {
    const float* logits = decode(static_cast<const DecodeRows&>(rows));
    count(rows);
    // Sample one token for every live sequence (row j of the logits is live[j]).
    std::vector<int> next(live.size());
#pragma omp parallel
    {
      std::vector<float> probs;
#pragma omp for schedule(static)
      for (size_t j = 0; j < live.size(); j++) {
        const int i = live[j];
        Completion& comp = out[size_t(i)];
        const uint64_t t = comp.tokens.size();
        const auto bits = philox_block(req.seed, static_cast<uint32_t>(Stream::sampling), req.sequence_ids[size_t(i)],
                                       (static_cast<uint64_t>(req.step) << 16) | t);
        float lp = 0;
        next[j] = sample_token(logits + j * size_t(Vp), V, sampling, u32_to_unit(bits.v[0]), &lp, probs);
        comp.tokens.push_back(next[j]);
        comp.logprobs.push_back(lp);
      }
    }
    tokens_generated += static_cast<int64_t>(live.size());
    std::vector<int> still;
    rows.clear();
    for (size_t j = 0; j < live.size(); j++) {
      const int i = live[j];
      Completion& comp = out[size_t(i)];
      if (next[j] == sampling.end_token) continue;
      if (comp.tokens.size() >= size_t(sampling.max_new_tokens)) {
        comp.truncated = true;
        continue;
      }
      still.push_back(i);
      const int pos = static_cast<int>(req.prompts[size_t(i)].size() + comp.tokens.size()) - 1;
      rows.add(next[j], i, pos, has_noise ? req.members[size_t(i)] : 0);
      rows.want.push_back(static_cast<int>(rows.token.size()) - 1);
    }
    live.swap(still);
  }
}

}  // namespace frugal::decode_pass
