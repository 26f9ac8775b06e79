#pragma once
// The GPT-2 small shape the training-step benchmarks share (width 768, 12 blocks, 12 heads, vocab
// 50257 padded to 50304) and a seeded random batch for it.
#include <vector>

#include "core/rng.hpp"
#include "model/gpt2.hpp"

namespace frugal::bench {

inline GPT2Config gpt2_small() {
  GPT2Config c;
  c.num_layers = 12, c.num_heads = 12, c.channels = 768, c.max_seq_len = 1024;
  c.vocab_size = 50257, c.padded_vocab_size = 50304;
  return c;
}

// B*T random input and target token ids.
inline void random_tokens(const GPT2Config& c, int B, int T, std::vector<int>& in, std::vector<int>& tg) {
  in.resize(size_t(B) * T), tg.resize(size_t(B) * T);
  Rng rng(1, 5u, 0u);
  const uint32_t V = static_cast<uint32_t>(c.vocab_size);
  for (size_t i = 0; i < in.size(); i++) in[i] = static_cast<int>(rng.below(V)), tg[i] = static_cast<int>(rng.below(V));
}

}  // namespace frugal::bench
