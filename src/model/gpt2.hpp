#pragma once
// GPT-2 family transformer, fp32, forward and backward by hand (llm.c layout and math):
// token + position embeddings, pre-LayerNorm blocks (causal multi-head attention, GELU MLP),
// final LayerNorm, LM head tied to the token embedding. Parameters and gradients each live in
// one flat buffer (core/params.hpp) with named views.
#include <cstdint>
#include <vector>

#include "core/params.hpp"

namespace frugal {

class Schema;
class Config;

struct GPT2Config {
  int max_seq_len = 64;        // maxT: rows of the position embedding
  int vocab_size = 256;        // V: real tokens
  int padded_vocab_size = 256; // Vp: V rounded up (llm.c pads 50257 -> 50304 for GEMM shapes)
  int num_layers = 2;          // L
  int num_heads = 2;           // NH
  int channels = 64;           // C
};

// Named views into a flat buffer laid out by gpt2_layout(): the same struct serves parameters and
// gradients. Per-layer tensors are stacked with a leading L dimension.
struct GPT2Tensors {
  float* wte;       // (Vp, C)
  float* wpe;       // (maxT, C)
  float* ln1w;      // (L, C)
  float* ln1b;      // (L, C)
  float* qkvw;      // (L, 3C, C)
  float* qkvb;      // (L, 3C)
  float* attprojw;  // (L, C, C)
  float* attprojb;  // (L, C)
  float* ln2w;      // (L, C)
  float* ln2b;      // (L, C)
  float* fcw;       // (L, 4C, C)
  float* fcb;       // (L, 4C)
  float* fcprojw;   // (L, C, 4C)
  float* fcprojb;   // (L, C)
  float* lnfw;      // (C)
  float* lnfb;      // (C)
};

ParamLayout gpt2_layout(const GPT2Config& c);
GPT2Tensors gpt2_views(const ParamLayout& layout, float* base);

// Activations of one forward pass for a (B, T) batch, kept for the backward.
struct GPT2Activations {
  int B = 0, T = 0;
  std::vector<float> encoded;    // (B,T,C)
  std::vector<float> ln1;        // (L,B,T,C)
  std::vector<float> ln1_mean;   // (L,B,T)
  std::vector<float> ln1_rstd;   // (L,B,T)
  std::vector<float> qkv;        // (L,B,T,3C)
  std::vector<float> atty;       // (L,B,T,C)
  std::vector<float> att;        // (L,B,NH,T,T)
  std::vector<float> attproj;    // (L,B,T,C)
  std::vector<float> residual2;  // (L,B,T,C)
  std::vector<float> ln2;        // (L,B,T,C)
  std::vector<float> ln2_mean;   // (L,B,T)
  std::vector<float> ln2_rstd;   // (L,B,T)
  std::vector<float> fch;        // (L,B,T,4C)
  std::vector<float> fch_gelu;   // (L,B,T,4C)
  std::vector<float> fcproj;     // (L,B,T,C)
  std::vector<float> residual3;  // (L,B,T,C)
  std::vector<float> lnf;        // (B,T,C)
  std::vector<float> lnf_mean;   // (B,T)
  std::vector<float> lnf_rstd;   // (B,T)
  std::vector<float> logits;     // (B,T,Vp)
  std::vector<float> probs;      // (B,T,Vp)
  std::vector<float> losses;     // (B,T)
};

// A structured subnetwork for one step (EST): which blocks run and, in each running block, which
// attention heads and MLP hidden units. Sampling, masks and the estimator's scaling are described
// in model/subnet.hpp; an empty layer_on means the dense model.
struct GPT2Subnet {
  std::vector<uint8_t> layer_on;        // (L) 1 = the block runs, 0 = identity
  std::vector<std::vector<int>> heads;  // (L) kept head ids, ascending (empty for a skipped block)
  std::vector<std::vector<int>> units;  // (L) kept MLP hidden units in [0, 4C), ascending
};

// One block's weight slices for a subnetwork, gathered contiguous so the GEMMs shrink (not masks):
// CH = kept heads * hs columns of attention, M = kept units of the MLP. W_O and W_proj slices are
// stored pre-multiplied by 1/p_H and 1/p_M, so the rescaling costs no extra pass.
struct GPT2BlockSlices {
  bool attn = false, mlp = false;  // this module runs on slices (false: on the full weights)
  float attn_scale = 1.0f, mlp_scale = 1.0f;
  std::vector<float> qkvw, qkvb, attprojw;  // (3CH, C), (3CH), (C, CH)
  std::vector<float> fcw, fcb, fcprojw;     // (M, C), (M), (C, M)
  std::vector<float> dqkvw, dqkvb, dattprojw, dfcw, dfcb, dfcprojw;  // their gradients (scratch)
};

struct GPT2 {
  GPT2Config config;
  ParamLayout layout;
  std::vector<float> params;  // flat, layout.total floats
  std::vector<float> grads;   // same layout
  GPT2Activations acts;
  GPT2Activations grad_acts;  // gradients of the activations (scratch for the backward)
  std::vector<int> inputs, targets;  // copy of the last batch, for the backward
  GPT2Subnet subnet;                   // subnetwork of the last forward (empty: dense)
  std::vector<GPT2BlockSlices> slices; // (L) its gathered weights, for the backward
};

// Builds the model with zero parameters; call gpt2_init_weights or load a checkpoint.
GPT2 gpt2_create(const GPT2Config& c);
// GPT-2 initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2L), LayerNorm gains 1,
// biases 0. Deterministic from the seed (counter-based RNG, independent of thread count).
void gpt2_init_weights(GPT2& model, uint64_t seed, float std = 0.02f);

// Forward over inputs/targets (B*T ints each). Returns the mean loss over the B*T positions, or 0
// if targets is null (then only logits are computed). With a subnetwork, only its blocks, heads and
// units are computed (smaller GEMMs on gathered slices); null = the dense model.
float gpt2_forward(GPT2& model, const int* inputs, const int* targets, int B, int T,
                   const GPT2Subnet* subnet = nullptr);
// Backward of the mean loss of the last forward (of its subnetwork): grads += d(mean loss)/d(params).
// Parameters outside the subnetwork get exactly zero.
void gpt2_backward(GPT2& model);
void gpt2_zero_grad(GPT2& model);

// FLOPs of one forward over B sequences of T tokens, counting exactly what the kernels issue
// (all GEMMs, including the Vp-wide head, and causal attention) - of the subnetwork if one is given:
// per running block 2 BT C (3 CH + CH + 2 M) for the GEMMs plus 2 B CH T (T+1) for attention.
// Backward = 2 x forward (every GEMM computes both its input and weight gradient).
double gpt2_forward_flops(const GPT2Config& c, int B, int T, const GPT2Subnet* subnet = nullptr);

// Config keys of the [model] section, and the GPT2Config they describe (vocab from the data).
void add_model_keys(Schema& schema);
GPT2Config gpt2_config_from(const Config& config, int data_vocab_size);

}  // namespace frugal
