#pragma once
// Counter-based random numbers (Random123 Philox4x32-10). A stream is named by (seed, stream id);
// the n-th number of a stream is a pure function of (seed, stream, n), so every rank - and the CUDA
// kernels, which include the same header - can regenerate any number without communication, and
// the state to checkpoint is just a counter.
#include <Random123/philox.h>

#include <cmath>
#include <cstdint>

// Marks the functions that CUDA kernels call too (the same source, so the same bits on both).
#if defined(__CUDACC__)
#define FRUGAL_HOST_DEVICE __host__ __device__
#else
#define FRUGAL_HOST_DEVICE
#endif

namespace frugal {

// Well-known stream ids: each consumer of randomness gets its own, so adding one never shifts another.
enum class Stream : uint32_t {
  init = 1,        // parameter initialisation
  corpus = 2,      // built-in corpus generation
  data_order = 3,  // data sampling order
  env = 4,         // RL environment resets (one sub-stream per environment)
  method = 16,     // first id free for methods; the methods' own:
  es_noise = 17,     // ES perturbations (EGGROLL, OpenAI-ES), keyed per tensor/layer/epoch
  ppo_actions = 18,  // PPO action sampling, one sub-stream per environment
  ppo_shuffle = 19,  // PPO minibatch shuffling, one sub-stream per rank
  est_subnet = 20,   // EST subnetworks, one sub-stream per step
  lora_init = 21,    // LoRA's A matrices, one sub-stream per adapted matrix kind
  sampling = 22,     // token sampling in generation, one sub-stream per sequence (model/decode.hpp)
  rlvr_prompts = 23, // which training problems an RLVR step draws, one sub-stream per step
  next_predictor = 24,  // NExt trajectory predictors' initialisation, one sub-stream per vector length
};

// Four 32-bit words for block `block` of stream (seed, stream, sub).
FRUGAL_HOST_DEVICE inline r123::Philox4x32::ctr_type philox_block(uint64_t seed, uint32_t stream, uint32_t sub,
                                               uint64_t block) {
  r123::Philox4x32 gen;
  r123::Philox4x32::key_type key = {{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)}};
  r123::Philox4x32::ctr_type ctr = {
      {static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), stream, sub}};
  return gen(ctr, key);
}

// uniform in (0, 1]: never 0, so log() is safe.
FRUGAL_HOST_DEVICE inline float u32_to_unit(uint32_t x) { return (static_cast<float>(x >> 8) + 1.0f) * (1.0f / 16777216.0f); }
FRUGAL_HOST_DEVICE inline double u32_to_unit_double(uint32_t x) { return (static_cast<double>(x) + 1.0) / 4294967296.0; }

// A sequential reader over one stream. Checkpoint it by saving `counter`.
struct Rng {
  uint64_t seed = 0;
  uint32_t stream = 0;
  uint32_t sub = 0;
  uint64_t counter = 0;  // number of 32-bit words consumed

  Rng() = default;
  Rng(uint64_t seed_, Stream s, uint32_t sub_ = 0) : seed(seed_), stream(static_cast<uint32_t>(s)), sub(sub_) {}
  Rng(uint64_t seed_, uint32_t stream_, uint32_t sub_) : seed(seed_), stream(stream_), sub(sub_) {}

  uint32_t next_u32() {
    auto r = philox_block(seed, stream, sub, counter >> 2);
    return r.v[counter++ & 3];
  }
  uint64_t next_u64() { return (static_cast<uint64_t>(next_u32()) << 32) | next_u32(); }
  float uniform() { return u32_to_unit(next_u32()); }  // (0, 1]
  double uniform_double() { return u32_to_unit_double(next_u32()); }
  // Uniform integer in [0, n) by Lemire's multiply-shift (bias < n / 2^32, irrelevant here).
  uint32_t below(uint32_t n) { return static_cast<uint32_t>((static_cast<uint64_t>(next_u32()) * n) >> 32); }
  // Standard normal by Box-Muller (uses two words; deterministic, no cached spare).
  float normal() {
    const double u1 = uniform_double(), u2 = uniform_double();
    return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }
};

}  // namespace frugal
