#include "model/lora.hpp"

#include <cmath>

#include "core/config.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "kernels/cpu/matmul.hpp"

namespace frugal {

LoraAdapters::LoraAdapters(const GPT2Config& c, const LoraConfig& config, uint64_t seed) : config_(config) {
  FRUGAL_CHECK(config.rank >= 1, "lora.rank must be at least 1");
  const int L = c.num_layers;
  for (int s = 0; s < 4; s++) {
    block_matrix_shape(c, s, &out_[s], &in_[s]);
    if (!config.targets[s]) continue;
    FRUGAL_CHECK(config.rank <= std::min(in_[s], out_[s]), "lora.rank ", config.rank, " exceeds the size of the ",
                 block_matrix_name(s), " matrix (", out_[s], " x ", in_[s], ")");
    tensor_[s] = static_cast<int>(layout_.tensors.size());
    layout_.add(std::string(block_matrix_name(s)) + ".A", {L, config.rank, in_[s]}, true);
    layout_.add(std::string(block_matrix_name(s)) + ".B", {L, out_[s], config.rank}, true);
  }
  params.assign(layout_.total, 0.0f);
  grads.assign(layout_.total, 0.0f);
  for (int s = 0; s < 4; s++) {
    if (tensor_[s] < 0) continue;
    const TensorSpec& a = layout_.tensors[size_t(tensor_[s])];
    const float bound = 1.0f / std::sqrt(static_cast<float>(in_[s]));
    Rng rng(seed, Stream::lora_init, static_cast<uint32_t>(s));
    for (size_t i = 0; i < a.numel; i++) params[a.offset + i] = bound * (2.0f * rng.uniform() - 1.0f);
  }
}

LoraMatrix LoraAdapters::matrix(int l, int s, const float* params, float* grads) const {
  if (tensor_[s] < 0) return {};
  const TensorSpec& a = layout_.tensors[size_t(tensor_[s])];
  const TensorSpec& b = layout_.tensors[size_t(tensor_[s]) + 1];
  const size_t a_off = a.offset + size_t(l) * config_.rank * in_[s];
  const size_t b_off = b.offset + size_t(l) * out_[s] * config_.rank;
  return LoraMatrix{params + a_off, params + b_off, grads + a_off, grads + b_off, config_.rank,
                    config_.alpha / static_cast<float>(config_.rank)};
}

GPT2BlockWeights LoraAdapters::weights(GPT2& model, int l) {
  GPT2BlockWeights w = gpt2_block_weights(model, l);
  w.dqkvw = w.dattprojw = w.dfcw = w.dfcprojw = nullptr;  // the base is frozen
  for (int s = 0; s < 4; s++) w.lora[s] = matrix(l, s, params.data(), grads.data());
  return w;
}

void LoraAdapters::merge_into(GPT2& model, float sign) const {
  const float scale = sign * config_.alpha / static_cast<float>(config_.rank);
  for (int l = 0; l < model.config.num_layers; l++) {
    const GPT2BlockWeights w = gpt2_block_weights(model, l);
    float* W[4] = {const_cast<float*>(w.qkvw), const_cast<float*>(w.attprojw), const_cast<float*>(w.fcw),
                   const_cast<float*>(w.fcprojw)};
    for (int s = 0; s < 4; s++) {
      if (tensor_[s] < 0) continue;
      const float* A = params.data() + layout_.tensors[size_t(tensor_[s])].offset + size_t(l) * config_.rank * in_[s];
      const float* B = params.data() + layout_.tensors[size_t(tensor_[s]) + 1].offset + size_t(l) * out_[s] * config_.rank;
      cpu::sgemm_nn(out_[s], in_[s], config_.rank, scale, B, A, 1.0f, W[s]);  // W (out, in) += s B (out, r) A (r, in)
    }
  }
}

void add_lora_keys(Schema& s) {
  s.add("lora.rank", int64_t{8}, "adapter rank r", 1, 1 << 16);
  s.add("lora.alpha", 16.0, "adapter scale numerator: updates are (alpha / r) B A", 0.0, 1e6);
  s.add("lora.targets", std::string("qkv,attproj,fc,fcproj"),
        "comma-separated block matrices that get adapters: any of qkv, attproj (attention), fc, fcproj (MLP)");
}

LoraConfig lora_config_from(const Config& cfg) {
  LoraConfig c;
  c.rank = static_cast<int>(cfg.integer("lora.rank"));
  c.alpha = static_cast<float>(cfg.real("lora.alpha"));
  const std::array<bool, 4> on = parse_block_matrices(cfg.str("lora.targets"), "lora.targets");
  for (int t = 0; t < 4; t++) c.targets[t] = on[size_t(t)];
  return c;
}

}  // namespace frugal
