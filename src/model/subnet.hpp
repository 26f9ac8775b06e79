#pragma once
// Structured subnetworks of GPT-2 for EST, methods.md section 5: which blocks run, and inside each
// running block which attention heads and MLP hidden units. gpt2_forward / gpt2_backward given a
// SubnetSlices (their block hook) compute only the subnetwork, on gathered contiguous weight slices:
//   attention = (1/p_H) sum_{h in I_H} head_h W_O[:, h] + b_O      p_H = |I_H| / n_head
//   MLP       = (1/p_M) gelu(x W_fc[I_M, :]^T + b_fc[I_M]) W_proj[:, I_M]^T + b_proj
//                                                                   p_M = |I_M| / (4 n_embd)
// and a skipped block is the identity (its residual passes through). p is the realised fraction
// |I| / N, not the configured rate, so every module is an unbiased estimate of the dense one
// (each head / unit is kept with probability exactly |I| / N under uniform sampling without
// replacement) even where round() moves the count.
#include <cstdint>
#include <vector>

#include "core/params.hpp"
#include "core/rng.hpp"
#include "model/gpt2.hpp"

namespace frugal {

// A structured subnetwork for one step: which blocks run and, in each running block, which
// attention heads and MLP hidden units.
struct GPT2Subnet {
  std::vector<uint8_t> layer_on;        // (L) 1 = the block runs, 0 = identity
  std::vector<std::vector<int>> heads;  // (L) kept head ids, ascending (empty for a skipped block)
  std::vector<std::vector<int>> units;  // (L) kept MLP hidden units in [0, 4C), ascending
};

// One block's weight slices, gathered contiguous so the GEMMs shrink (not masks): CH = kept heads
// * hs columns of attention, M = kept units of the MLP. W_O and W_proj slices are stored
// pre-multiplied by 1/p_H and 1/p_M, so the rescaling costs no extra pass.
struct GPT2BlockSlices {
  bool attn = false, mlp = false;  // this module runs on slices (false: on the full weights)
  float attn_scale = 1.0f, mlp_scale = 1.0f;
  std::vector<float> qkvw, qkvb, attprojw;  // (3CH, C), (3CH), (C, CH)
  std::vector<float> fcw, fcb, fcprojw;     // (M, C), (M), (C, M)
  std::vector<float> dqkvw, dqkvb, dattprojw, dfcw, dfcb, dfcprojw;  // their gradients (scratch)
};

// Block l's slices as the index lists a gathering back end (the GPU: device/subnet_device.hpp) needs,
// and the choices both back ends share: whether a module is sliced (not when it keeps everything)
// and its 1/p scale.
struct BlockSlicePlan {
  bool attn = false, mlp = false;
  float attn_scale = 1.0f, mlp_scale = 1.0f;
  int heads = 0, CH = 0, M = 0;  // kept heads, their width, kept units
  std::vector<int> qkv_rows;     // (3 CH) rows of W_qkv and entries of b_qkv: q | k | v, each the kept heads' rows
  std::vector<int> head_cols;    // (CH) columns of W_O
  std::vector<int> units;        // (M) rows of W_fc, entries of b_fc, columns of W_proj
};
BlockSlicePlan subnet_block_plan(const GPT2Subnet& subnet, const GPT2Config& c, int l, bool with_indices = true);

// A subnetwork as GPT-2's block hook: the forward gathers each running block's slices (a module
// that keeps everything runs on the full weights), the backward computes the slices' gradients
// and adds them into the model's (times 1/p for W_O and W_proj: the chain rule of the scaled
// slices). Pass the same object to gpt2_forward and gpt2_backward; reuse it across steps to keep
// its buffers.
class SubnetSlices final : public GPT2BlockHook {
 public:
  void set(const GPT2Subnet& subnet, const GPT2Config& c);
  const GPT2Subnet& subnet() const { return subnet_; }
  bool runs(int l) const override { return subnet_.layer_on[size_t(l)] != 0; }
  GPT2BlockWeights forward_weights(GPT2& model, int l) override;
  GPT2BlockWeights backward_weights(GPT2& model, int l) override;
  void backward_done(GPT2& model, int l) override;

 private:
  GPT2BlockWeights weights(GPT2& model, int l);
  GPT2Subnet subnet_;
  std::vector<GPT2BlockSlices> blocks_;  // (L)
};

// FLOPs of one forward of the subnetwork (gpt2_forward_flops's count over its running blocks).
double subnet_forward_flops(const GPT2Config& c, int B, int T, const GPT2Subnet& s);

// Configured keep rates; counts are round(rate * N), at least 1.
struct SubnetRates {
  double layers = 1.0, heads = 1.0, mlp = 1.0;
};

// How many of n to keep at rate p: round(p n), clamped to [1, n].
int subnet_count(double rate, int n);
// Every block, head and unit.
GPT2Subnet subnet_full(const GPT2Config& c);
// Uniform without replacement: round(p_L L) blocks, then per kept block round(p_H NH) heads and
// round(p_M 4C) units, drawn afresh per block unless share_across_layers (one head set and one unit
// set for all kept blocks). A pure function of the rng's position: every rank that starts from the
// same (seed, step) stream draws the same subnetwork without communicating.
GPT2Subnet subnet_sample(const GPT2Config& c, const SubnetRates& rates, bool share_across_layers, Rng& rng);
bool subnet_is_full(const GPT2Subnet& s, const GPT2Config& c);
// Fractions for the trace: kept blocks / L, and kept heads / units over all L blocks' slots.
double subnet_layer_fraction(const GPT2Subnet& s);
double subnet_head_fraction(const GPT2Subnet& s, const GPT2Config& c);
double subnet_unit_fraction(const GPT2Subnet& s, const GPT2Config& c);
// mask[i] = 1 where parameter i is part of the subnetwork (its gradient can be non-zero): the
// embeddings and final LayerNorm always; in a kept block its LayerNorms, output biases, the q/k/v
// rows and W_O columns of kept heads, the W_fc rows, b_fc entries and W_proj columns of kept units.
void subnet_param_mask(const GPT2Subnet& s, const GPT2Config& c, const ParamLayout& layout, std::vector<uint8_t>& mask);

}  // namespace frugal
