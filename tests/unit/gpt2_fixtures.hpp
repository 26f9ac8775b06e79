#pragma once
// Tiny GPT-2 models and batches shared by the model tests (test_gpt2, test_est).
#include <vector>

#include "core/rng.hpp"
#include "model/gpt2.hpp"

namespace frugal::testing {

inline GPT2Config tiny_config(int layers = 2, int heads = 2, int channels = 8) {
  GPT2Config c;
  c.max_seq_len = 8;
  c.vocab_size = 13;
  c.padded_vocab_size = 16;
  c.num_layers = layers;
  c.num_heads = heads;
  c.channels = channels;
  return c;
}

struct Batch {
  int B = 2, T = 6;
  std::vector<int> in, tg;
};

inline Batch random_batch(int V, uint64_t seed, int B = 2, int T = 6) {
  Batch b;
  b.B = B, b.T = T;
  Rng rng(seed, 99u, 0u);
  for (int i = 0; i < b.B * b.T; i++) b.in.push_back(static_cast<int>(rng.below(V)));
  for (int i = 0; i < b.B * b.T; i++) b.tg.push_back(static_cast<int>(rng.below(V)));
  return b;
}

// Randomise every parameter (LayerNorm gains around 1, biases non-zero) so that no gradient is
// trivially zero and every code path is exercised.
inline void randomise(GPT2& m, uint64_t seed) {
  gpt2_init_weights(m, seed, 0.3f);
  Rng rng(seed, 98u, 0u);
  for (const auto& t : m.layout.tensors) {
    if (t.is_matrix()) continue;
    for (size_t i = 0; i < t.numel; i++) m.params[t.offset + i] += 0.2f * rng.normal();
  }
}

}  // namespace frugal::testing
