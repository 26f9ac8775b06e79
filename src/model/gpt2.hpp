#pragma once
// GPT-2 family transformer, fp32, forward and backward by hand (llm.c layout and math):
// token + position embeddings, pre-LayerNorm blocks (causal multi-head attention, GELU MLP),
// final LayerNorm, LM head tied to the token embedding. Parameters and gradients each live in
// one flat buffer (core/params.hpp) with named views.
#include <array>
#include <cstdint>
#include <string>
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

// Activations of one forward pass for a (B, T) batch, kept for the backward. Buf is the storage:
// std::vector<float> on the CPU, a device array on the GPU (device/gpt2_device.hpp); the passes
// only ever call .data() on it. Stats holds the LayerNorm statistics, the probabilities and the
// losses, which stay fp32 when the activations are bf16 (a GPU's model.dtype = bf16): the
// cross-entropy backward's p - 1 at the target must not lose its digits to bf16 as p nears 1.
template <class Buf, class Stats = Buf>
struct GPT2ActivationsOf {
  int B = 0, T = 0;
  Buf encoded;      // (B,T,C)
  Buf ln1;          // (L,B,T,C)
  Stats ln1_mean;   // (L,B,T)
  Stats ln1_rstd;   // (L,B,T)
  Buf qkv;          // (L,B,T,3C)
  Buf atty;         // (L,B,T,C)
  Buf att;          // (L,B,NH,T,T)
  Buf attproj;      // (L,B,T,C)
  Buf residual2;    // (L,B,T,C)
  Buf ln2;          // (L,B,T,C)
  Stats ln2_mean;   // (L,B,T)
  Stats ln2_rstd;   // (L,B,T)
  Buf fch;          // (L,B,T,4C)
  Buf fch_gelu;     // (L,B,T,4C)
  Buf fcproj;       // (L,B,T,C)
  Buf residual3;    // (L,B,T,C)
  Buf lnf;          // (B,T,C)
  Stats lnf_mean;   // (B,T)
  Stats lnf_rstd;   // (B,T)
  Buf logits;       // (B,T,Vp)
  Stats probs;      // (B,T,Vp)
  Stats losses;     // (B,T)
};
using GPT2Activations = GPT2ActivationsOf<std::vector<float>>;

// A low-rank adapter on one linear layer y = x W^T + b (W: out x in): the layer computes
// y = x W^T + b + scale (x A^T) B^T, never forming W + scale B A (model/lora.hpp).
struct LoraMatrix {
  const float* A = nullptr;  // (rank, in); null: no adapter on this matrix
  const float* B = nullptr;  // (out, rank)
  float* dA = nullptr;       // gradients, accumulated (+=) by the backward
  float* dB = nullptr;
  int rank = 0;
  float scale = 0;  // alpha / rank
};
enum LoraSlot { lora_qkv = 0, lora_attproj = 1, lora_fc = 2, lora_fcproj = 3 };

// The four matrices of a block, indexed like LoraSlot - what LoRA adapts and EGGROLL perturbs:
// their config names ("qkv", "attproj", "fc", "fcproj") and full shapes (rows = out, cols = in).
const char* block_matrix_name(int slot);
void block_matrix_shape(const GPT2Config& c, int slot, int* rows, int* cols);
// A comma-separated subset of the names (the value of config key `key`): which slots it names.
// Unknown or no names are errors naming the key.
std::array<bool, 4> parse_block_matrices(const std::string& list, const std::string& key);

// The weights one block computes with (row-major, llm.c layout) and where their gradients go:
// by default the model's own slices of the stacked tensors; a GPT2BlockHook may substitute
// smaller gathered copies (EST's subnetworks, model/subnet.hpp) or add adapters (LoRA). A null
// weight gradient (dqkvw, dattprojw, dfcw, dfcprojw) means that matrix is frozen: its weight
// gradient GEMM is skipped.
struct GPT2BlockWeights {
  const float *qkvw, *qkvb, *attprojw, *fcw, *fcb, *fcprojw;  // (3CH, C) (3CH) (C, CH) (M, C) (M) (C, M)
  float *dqkvw, *dqkvb, *dattprojw, *dfcw, *dfcb, *dfcprojw;
  int heads, CH, M;  // running heads, their width heads * hs, running MLP units
  LoraMatrix lora[4] = {};  // indexed by LoraSlot
};

// One linear layer of a block, with its adapter if it has one: out (N, OC) = inp (N, C) W^T + b
// (+ the adapter). The backward adds dinp (if non-null), dW (if non-null), db (if non-null) and the
// adapter's dA, dB. Shared by the training forward and the KV-cached decoder (model/decode.hpp).
void block_linear_forward(float* out, const float* inp, const float* w, const float* b, const LoraMatrix& lora, int N,
                          int C, int OC);
void block_linear_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                           const LoraMatrix& lora, int N, int C, int OC);

struct GPT2;
GPT2BlockWeights gpt2_block_weights(GPT2& model, int l);

// The narrow hook through which a forward/backward pair runs on part of the model: which blocks
// run (a skipped block is the identity), and which weights each running block uses. The forward
// asks for forward_weights, the backward for backward_weights and, once the block's gradients are
// computed, calls backward_done. The same hook object must be passed to both passes. Model is the
// model the passes run on (GPT2 here, GPT2Device on a GPU): the weights it hands out live there.
template <class Model>
class BlockHook {
 public:
  virtual ~BlockHook() = default;
  virtual bool runs(int l) const = 0;
  virtual GPT2BlockWeights forward_weights(Model& model, int l) = 0;
  virtual GPT2BlockWeights backward_weights(Model& model, int l) = 0;
  virtual void backward_done(Model& model, int l) = 0;
  // True when only the hook's own parameters train (LoRA): the backward then skips the gradients
  // of the embeddings and the tied head's weight (block weights are frozen through null dW).
  virtual bool base_frozen() const { return false; }
};
using GPT2BlockHook = BlockHook<GPT2>;

struct GPT2 {
  GPT2Config config;
  ParamLayout layout;
  std::vector<float> params;  // flat, layout.total floats
  std::vector<float> grads;   // same layout
  GPT2Activations acts;
  GPT2Activations grad_acts;  // gradients of the activations (scratch for the backward)
  std::vector<int> inputs, targets;  // copy of the last batch, for the backward
  const GPT2BlockHook* forward_hook = nullptr;  // the last forward's hook: checked by the backward
};

// Builds the model with zero parameters; call gpt2_init_weights or load a checkpoint.
GPT2 gpt2_create(const GPT2Config& c);
// GPT-2 initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2L), LayerNorm gains 1,
// biases 0. Deterministic from the seed (counter-based RNG, independent of thread count).
void gpt2_init_weights(GPT2& model, uint64_t seed, float std = 0.02f);

// Forward over inputs/targets (B*T ints each). Returns the mean loss over the B*T positions, or 0
// if targets is null (then only logits are computed). With a hook, only the blocks and weights it
// chooses are computed (null = the dense model).
float gpt2_forward(GPT2& model, const int* inputs, const int* targets, int B, int T, GPT2BlockHook* blocks = nullptr);
// Backward of the mean loss of the last forward: grads += d(mean loss)/d(params). Give it the hook
// the forward had; parameters the hook left out get exactly zero.
void gpt2_backward(GPT2& model, GPT2BlockHook* blocks = nullptr);
// The same backward for any loss of the logits: fill gpt2_dlogits(model) (B,T,Vp) with the loss's
// gradient wrt the last forward's logits, then call gpt2_backward_from_dlogits. Used by losses
// other than the mean cross-entropy (per-token weights: SFT's answer-only loss, GRPO).
float* gpt2_dlogits(GPT2& model);
void gpt2_backward_from_dlogits(GPT2& model, GPT2BlockHook* blocks = nullptr);
void gpt2_zero_grad(GPT2& model);

// FLOPs of one forward over B sequences of T tokens, counting exactly what the kernels issue
// (all GEMMs, including the Vp-wide head, and causal attention): the head plus, per block,
// gpt2_block_flops = 2 BT C (3 CH + CH + 2 M) for the GEMMs plus 2 B CH T (T+1) for attention.
// Backward = 2 x forward (every GEMM computes both its input and weight gradient).
double gpt2_forward_flops(const GPT2Config& c, int B, int T);
double gpt2_head_flops(const GPT2Config& c, int B, int T);
double gpt2_block_flops(const GPT2Config& c, int B, int T, int64_t CH, int64_t M);

// Config keys of the [model] section, and the GPT2Config they describe (vocab from the data).
void add_model_keys(Schema& schema);
GPT2Config gpt2_config_from(const Config& config, int data_vocab_size);

}  // namespace frugal
