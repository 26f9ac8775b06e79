#include "device/decode_device.hpp"

#include "core/error.hpp"
#include "model/decode_pass.hpp"

namespace frugal {

namespace {

// The rows' device copies, as the kernel set sees them.
struct DeviceRows {
  const int *token, *slot, *pos, *want;
  const int32_t* member;
};

// The CUDA kernel set of the shared decoder pass (model/decode_pass.hpp).
struct CudaDecodeKernels {
  static void resize(cuda::DeviceBuffer& b, size_t n) { b.grow(n); }
  static void embed_rows(float* x, const float* wte, const float* wpe, const DeviceRows& rows, int R, int C) {
    cuda::embed_rows(x, wte, wpe, rows.token, rows.pos, R, C);
  }
  static constexpr auto layernorm_forward = [](auto... a) { cuda::layernorm_forward(a...); };
  static constexpr auto residual_forward = [](auto... a) { cuda::residual_forward(a...); };
  static constexpr auto gelu_forward = [](auto... a) { cuda::gelu_forward(a...); };
  static constexpr auto matmul_forward = [](auto... a) { cuda::matmul_forward(a...); };
  static void block_matrix(float* y, const float* x, int R, const float* w, const float* b, const LoraMatrix& lora,
                           const PopulationNoiseDevice* noise, int l, int slot, const DeviceRows& rows, int C, int OC) {
    const cuda::LowRankView<float>* f = noise ? noise->factors[size_t(l)][size_t(slot)] : nullptr;
    if (f) {
      FRUGAL_CHECK(!lora.A, "internal: a matrix is either perturbed (ES) or adapted (LoRA), not both");
      FRUGAL_CHECK(f->rows == OC && f->cols == C, "internal: factors of another shape for block matrix ", slot);
      cuda::lowrank_linear_forward(y, x, R, w, b, rows.member, *f, nullptr, noise->sigma);
    } else {
      block_linear_forward(y, x, w, b, lora, R, C, OC, DeviceTag{});
    }
  }
  static void cache_layer(KVCacheDevice& cache, int l, float** k, float** v) {
    const size_t layer = size_t(l) * cache.slots * cache.max_len * cache.channels;
    *k = cache.k.data() + layer, *v = cache.v.data() + layer;
  }
  static void kv_write(float* kc, float* vc, const float* qkv, const DeviceRows& rows, int R, int C, int max_len) {
    cuda::kv_write(kc, vc, qkv, rows.slot, rows.pos, R, C, max_len);
  }
  static void cached_attention(float* out, const float* qkv, const float* kc, const float* vc, const DeviceRows& rows,
                               int R, int C, int NH, int max_len) {
    cuda::cached_attention(out, qkv, kc, vc, rows.slot, rows.pos, R, C, NH, max_len);
  }
  static void gather_wanted(float* dst, const float* x, const DeviceRows& rows, int W, int C) {
    cuda::gather_rows(dst, x, rows.want, W, C, 1.0f);
  }
};

}  // namespace

void population_factors_generate(PopulationFactorsDevice& p, const GPT2Config& c, const std::array<bool, 4>& perturbed,
                                 uint64_t seed, uint32_t epoch, int pairs, int rank, float sigma) {
  p.factors.resize(size_t(c.num_layers));
  p.noise.sigma = sigma;
  p.noise.factors.assign(size_t(c.num_layers), {});
  for (int l = 0; l < c.num_layers; l++)
    for (int k = 0; k < 4; k++) {
      if (!perturbed[size_t(k)]) continue;
      int rows = 0, cols = 0;
      block_matrix_shape(c, k, &rows, &cols);
      PopulationFactorsDevice::Factors& f = p.factors[size_t(l)][size_t(k)];
      f.Bt.grow(size_t(pairs) * rank * cols), f.At.grow(size_t(pairs) * rank * rows);
      cuda::lowrank_generate(f.Bt.data(), f.At.data(), population_factor_key(seed, l, k, epoch), 0, pairs,
                             rows, cols, rank);
      f.view = cuda::LowRankView<float>{f.Bt.data(), f.At.data(), 0, pairs, rank, rows, cols};
      p.noise.factors[size_t(l)][size_t(k)] = &f.view;
    }
}

void kv_cache_reserve(KVCacheDevice& cache, const GPT2Config& c, int slots, int max_len) {
  FRUGAL_CHECK(max_len >= 1 && max_len <= c.max_seq_len, "internal: KV cache length ", max_len, " outside [1, ",
               c.max_seq_len, "]");
  const size_t need = size_t(c.num_layers) * slots * max_len * c.channels;
  cache.slots = slots, cache.max_len = max_len, cache.channels = c.channels;
  cache.k.grow(need), cache.v.grow(need);
}

void decode_forward(GPT2Device& model, BlockHook<GPT2Device>* blocks, const PopulationNoiseDevice* noise,
                    KVCacheDevice& cache, const DecodeRows& rows, DecodeScratchDevice& s, bool download) {
  const GPT2Config& c = model.config;
  const int L = c.num_layers;
  FRUGAL_CHECK(cache.max_len <= c.max_seq_len && cache.channels == c.channels &&
                   cache.k.size() >= size_t(L) * cache.slots * cache.max_len * c.channels,
               "internal: KV cache not reserved for this model");
  FRUGAL_CHECK(!noise || noise->factors.size() == size_t(L), "internal: population noise for another depth");
  decode_check_rows(c, cache.slots, cache.max_len, rows);
  const DeviceRows d{s.token.grow_and_upload(rows.token), s.slot.grow_and_upload(rows.slot),
                     s.pos.grow_and_upload(rows.pos), s.want.grow_and_upload(rows.want),
                     noise ? s.member.grow_and_upload(rows.member) : nullptr};
  const int R = static_cast<int>(rows.token.size()), W = static_cast<int>(rows.want.size());
  decode_pass::forward<CudaDecodeKernels>(model, blocks, noise, cache, d, R, W, s);
  if (!download) return;
  s.host_logits.resize(size_t(W) * c.padded_vocab_size);
  if (W > 0) s.logits.download(s.host_logits.data(), s.host_logits.size());
}

void generate(GPT2Device& model, BlockHook<GPT2Device>* blocks, const PopulationNoiseDevice* noise,
              const GenerateRequest& req, const SamplingSettings& sampling, GeneratorDevice& g,
              std::vector<Completion>& out) {
  decode_pass::generate(
      model.config, noise != nullptr, req, sampling, g.rows, g.tokens_generated, g.flops, out,
      [&](int slots, int max_len) { kv_cache_reserve(g.cache, model.config, slots, max_len); },
      [&](const DecodeRows& rows) {
        decode_forward(model, blocks, noise, g.cache, rows, g.scratch);
        return static_cast<const float*>(g.scratch.host_logits.data());
      });
}

}  // namespace frugal
