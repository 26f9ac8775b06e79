#pragma once
// LoRA (Hu et al. 2021) on GPT-2's block matrices: a chosen subset of qkv, attproj (attention) and
// fc, fcproj (MLP) gets a rank-r adapter, y = x W^T + b + (alpha / r) (x A^T) B^T with A (r x in)
// initialised from the run's seed and B (out x r) zero, so training starts at the base model. The
// adapters are their own flat parameter buffer (one (L, r, in) and one (L, out, r) tensor per
// adapted matrix) with their own gradients: an optimiser, a collective or a checkpoint sees one
// array. Given to gpt2_forward / gpt2_backward as the block hook, they run the dense model with the
// adapters added and the base frozen (the backward computes only dA, dB and what they need).
#include <cstdint>
#include <string>
#include <vector>

#include "core/params.hpp"
#include "model/gpt2.hpp"

namespace frugal {

class Schema;
class Config;

struct LoraConfig {
  int rank = 8;
  float alpha = 16;
  bool targets[4] = {true, true, true, true};  // indexed by LoraSlot: qkv, attproj, fc, fcproj
};

class LoraAdapters final : public GPT2BlockHook {
 public:
  LoraAdapters() = default;
  // Adapters for `model`'s shape; A ~ U(-1/sqrt(in), 1/sqrt(in)) (PEFT's Kaiming-uniform bound),
  // keyed by (seed, tensor), B = 0.
  LoraAdapters(const GPT2Config& model, const LoraConfig& config, uint64_t seed);

  const LoraConfig& config() const { return config_; }
  const ParamLayout& layout() const { return layout_; }
  std::vector<float> params, grads;  // layout().total each

  bool runs(int) const override { return true; }
  GPT2BlockWeights forward_weights(GPT2& model, int l) override { return weights(model, l); }
  GPT2BlockWeights backward_weights(GPT2& model, int l) override { return weights(model, l); }
  void backward_done(GPT2&, int) override {}
  bool base_frozen() const override { return true; }

  // Block l's adapter on matrix `slot` (LoraSlot) within a buffer of this layout that lives anywhere
  // (the host's params/grads, or a GPU's copies: device/lora_device.hpp); no adapter: A == nullptr.
  LoraMatrix matrix(int l, int slot, const float* params, float* grads) const;

  // W <- W + sign (alpha / r) B A for every adapted matrix of `model` (sign -1 unmerges): the
  // merged model computes what base + adapters compute, so it can be written as an llm.c checkpoint.
  void merge_into(GPT2& model, float sign = 1.0f) const;

 private:
  GPT2BlockWeights weights(GPT2& model, int l);
  LoraConfig config_;
  ParamLayout layout_;
  int tensor_[4] = {-1, -1, -1, -1};  // index in layout_ of slot s's A (its B follows)
  int in_[4] = {}, out_[4] = {};
};

// Section [lora]: lora.rank, lora.alpha, lora.targets ("qkv,attproj,fc,fcproj" or a subset).
void add_lora_keys(Schema& schema);
LoraConfig lora_config_from(const Config& config);

}  // namespace frugal
