#include "model/gpt2.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/config.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "kernels/cpu/attention.hpp"
#include "kernels/cpu/crossentropy.hpp"
#include "kernels/cpu/encoder.hpp"
#include "kernels/cpu/layernorm.hpp"
#include "kernels/cpu/matmul.hpp"
#include "kernels/cpu/pointwise.hpp"
#include "kernels/cpu/profile.hpp"

namespace frugal {

using namespace frugal::cpu;

ParamLayout gpt2_layout(const GPT2Config& c) {
  const int64_t Vp = c.padded_vocab_size, C = c.channels, L = c.num_layers, maxT = c.max_seq_len;
  ParamLayout p;  // order and shapes are llm.c's, so its checkpoints are a straight copy
  p.add("wte", {Vp, C});
  p.add("wpe", {maxT, C});
  p.add("ln1w", {L, C}, true);
  p.add("ln1b", {L, C}, true);
  p.add("qkvw", {L, 3 * C, C}, true);
  p.add("qkvb", {L, 3 * C}, true);
  p.add("attprojw", {L, C, C}, true);
  p.add("attprojb", {L, C}, true);
  p.add("ln2w", {L, C}, true);
  p.add("ln2b", {L, C}, true);
  p.add("fcw", {L, 4 * C, C}, true);
  p.add("fcb", {L, 4 * C}, true);
  p.add("fcprojw", {L, C, 4 * C}, true);
  p.add("fcprojb", {L, C}, true);
  p.add("lnfw", {C});
  p.add("lnfb", {C});
  return p;
}

GPT2Tensors gpt2_views(const ParamLayout& layout, float* base) {
  float* v[16];
  FRUGAL_CHECK(layout.tensors.size() == 16, "internal: GPT-2 layout must have 16 tensors");
  for (size_t i = 0; i < 16; i++) v[i] = base + layout.tensors[i].offset;
  return {v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15]};
}

GPT2 gpt2_create(const GPT2Config& c) {
  FRUGAL_CHECK(c.channels % c.num_heads == 0, "model.n_embd (", c.channels, ") must be divisible by model.n_head (",
               c.num_heads, ")");
  FRUGAL_CHECK(c.padded_vocab_size >= c.vocab_size, "internal: padded vocab smaller than vocab");
  GPT2 m;
  m.config = c;
  m.layout = gpt2_layout(c);
  m.params.assign(m.layout.total, 0.0f);
  m.grads.assign(m.layout.total, 0.0f);
  return m;
}

void gpt2_init_weights(GPT2& model, uint64_t seed, float std) {
  const float residual_std = std / std::sqrt(2.0f * model.config.num_layers);
  for (size_t i = 0; i < model.layout.tensors.size(); i++) {
    const TensorSpec& t = model.layout.tensors[i];
    float* p = model.params.data() + t.offset;
    const bool gain = t.name == "ln1w" || t.name == "ln2w" || t.name == "lnfw";
    const bool matrix = t.is_matrix();
    if (gain) {
      std::fill(p, p + t.numel, 1.0f);
    } else if (!matrix) {
      std::fill(p, p + t.numel, 0.0f);  // biases
    } else {
      const float s = (t.name == "attprojw" || t.name == "fcprojw") ? residual_std : std;
      Rng rng(seed, Stream::init, static_cast<uint32_t>(i));  // one stream per tensor
      for (size_t j = 0; j < t.numel; j++) p[j] = s * rng.normal();
    }
  }
  // Padded vocabulary rows are never used by a real token; keep them 0 so they stay inert.
  const auto& c = model.config;
  std::fill(model.params.begin() + static_cast<ptrdiff_t>(static_cast<size_t>(c.vocab_size) * c.channels),
            model.params.begin() + static_cast<ptrdiff_t>(static_cast<size_t>(c.padded_vocab_size) * c.channels), 0.0f);
}

namespace {

void size_activations(GPT2Activations& a, const GPT2Config& c, int B, int T) {
  if (a.B == B && a.T == T) return;
  const size_t L = c.num_layers, C = c.channels, NH = c.num_heads, Vp = c.padded_vocab_size, BT = size_t(B) * T;
  a.B = B;
  a.T = T;
  a.encoded.assign(BT * C, 0);
  a.ln1.assign(L * BT * C, 0);
  a.ln1_mean.assign(L * BT, 0);
  a.ln1_rstd.assign(L * BT, 0);
  a.qkv.assign(L * BT * 3 * C, 0);
  a.atty.assign(L * BT * C, 0);
  a.att.assign(L * B * NH * T * T, 0);
  a.attproj.assign(L * BT * C, 0);
  a.residual2.assign(L * BT * C, 0);
  a.ln2.assign(L * BT * C, 0);
  a.ln2_mean.assign(L * BT, 0);
  a.ln2_rstd.assign(L * BT, 0);
  a.fch.assign(L * BT * 4 * C, 0);
  a.fch_gelu.assign(L * BT * 4 * C, 0);
  a.fcproj.assign(L * BT * C, 0);
  a.residual3.assign(L * BT * C, 0);
  a.lnf.assign(BT * C, 0);
  a.lnf_mean.assign(BT, 0);
  a.lnf_rstd.assign(BT, 0);
  a.logits.assign(BT * Vp, 0);
  a.probs.assign(BT * Vp, 0);
  a.losses.assign(BT, 0);
}

void zero(std::vector<float>& v) {
  const KernelTimer timer(Kernel::zero);
  float* p = v.data();
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < v.size(); i++) p[i] = 0.0f;
}

}  // namespace

GPT2BlockWeights gpt2_block_weights(GPT2& model, int l) {
  const GPT2Config& c = model.config;
  const size_t C = c.channels, lC = size_t(l) * C;
  const GPT2Tensors p = gpt2_views(model.layout, model.params.data());
  const GPT2Tensors d = gpt2_views(model.layout, model.grads.data());
  GPT2BlockWeights w;
  w.qkvw = p.qkvw + lC * 3 * C, w.qkvb = p.qkvb + lC * 3, w.attprojw = p.attprojw + lC * C;
  w.fcw = p.fcw + lC * 4 * C, w.fcb = p.fcb + lC * 4, w.fcprojw = p.fcprojw + lC * 4 * C;
  w.dqkvw = d.qkvw + lC * 3 * C, w.dqkvb = d.qkvb + lC * 3, w.dattprojw = d.attprojw + lC * C;
  w.dfcw = d.fcw + lC * 4 * C, w.dfcb = d.fcb + lC * 4, w.dfcprojw = d.fcprojw + lC * 4 * C;
  w.heads = c.num_heads, w.CH = c.channels, w.M = 4 * c.channels;
  return w;
}

const char* block_matrix_name(int slot) {
  static const char* const names[4] = {"qkv", "attproj", "fc", "fcproj"};
  return names[slot];
}

void block_matrix_shape(const GPT2Config& c, int slot, int* rows, int* cols) {
  const int C = c.channels;
  const int out[4] = {3 * C, C, 4 * C, C}, in[4] = {C, C, C, 4 * C};
  *rows = out[slot], *cols = in[slot];
}

std::array<bool, 4> parse_block_matrices(const std::string& list, const std::string& key) {
  std::array<bool, 4> on{};
  std::stringstream names(list);
  std::string name;
  int count = 0;
  while (std::getline(names, name, ',')) {
    int slot = -1;
    for (int s = 0; s < 4; s++)
      if (name == block_matrix_name(s)) slot = s;
    FRUGAL_CHECK(slot >= 0, key, ": unknown matrix '", name, "' (choose from qkv, attproj, fc, fcproj)");
    on[size_t(slot)] = true;
    count++;
  }
  FRUGAL_CHECK(count > 0, key, " names no matrix (choose from qkv, attproj, fc, fcproj)");
  return on;
}

void block_linear_forward(float* out, const float* inp, const float* w, const float* b, const LoraMatrix& lora, int N,
                          int C, int OC) {
  matmul_forward(out, inp, w, b, N, C, OC);
  if (!lora.A) return;
  // h (N, r) = inp A^T, then out += scale h B^T: two thin GEMMs, W + BA is never formed.
  std::vector<float> h(size_t(N) * lora.rank);
  sgemm_nt(N, lora.rank, C, 1.0f, inp, lora.A, 0.0f, h.data());
  sgemm_nt(N, OC, lora.rank, lora.scale, h.data(), lora.B, 1.0f, out);
}

void block_linear_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                           const LoraMatrix& lora, int N, int C, int OC) {
  matmul_backward(dinp, dw, db, dout, inp, w, N, C, OC);
  if (!lora.A) return;
  const int r = lora.rank;
  std::vector<float> h(size_t(N) * r), dh(size_t(N) * r);
  sgemm_nt(N, r, C, 1.0f, inp, lora.A, 0.0f, h.data());                     // h = inp A^T   (recomputed)
  sgemm_nn(N, r, OC, lora.scale, dout, lora.B, 0.0f, dh.data());            // dh = s dout B (N, r)
  sgemm_tn(OC, r, N, lora.scale, dout, h.data(), 1.0f, lora.dB);            // dB += s dout^T h
  sgemm_tn(r, C, N, 1.0f, dh.data(), inp, 1.0f, lora.dA);                   // dA += dh^T inp
  if (dinp) sgemm_nn(N, C, r, 1.0f, dh.data(), lora.A, 1.0f, dinp);         // dinp += dh A
}

float gpt2_forward(GPT2& model, const int* inputs, const int* targets, int B, int T, GPT2BlockHook* blocks) {
  const GPT2Config& c = model.config;
  FRUGAL_CHECK(T <= c.max_seq_len, "sequence length ", T, " exceeds model.block_size ", c.max_seq_len);
  const int L = c.num_layers, C = c.channels, NH = c.num_heads, V = c.vocab_size, Vp = c.padded_vocab_size;
  const int BT = B * T;
  for (int i = 0; i < BT; i++) {
    FRUGAL_CHECK(inputs[i] >= 0 && inputs[i] < V, "token id ", inputs[i], " is outside the vocabulary [0, ", V, ")");
    FRUGAL_CHECK(!targets || (targets[i] >= 0 && targets[i] < V), "target id ", targets ? targets[i] : 0,
                 " is outside the vocabulary [0, ", V, ")");
  }
  size_activations(model.acts, c, B, T);
  model.inputs.assign(inputs, inputs + BT);
  if (targets) model.targets.assign(targets, targets + BT);
  GPT2Activations& a = model.acts;
  const GPT2Tensors p = gpt2_views(model.layout, model.params.data());
  model.forward_hook = blocks;

  encoder_forward(a.encoded.data(), inputs, p.wte, p.wpe, B, T, C);
  for (int l = 0; l < L; l++) {
    const size_t lC = size_t(l) * C, lBTC = size_t(l) * BT * C, lBT = size_t(l) * BT;
    const float* residual = l == 0 ? a.encoded.data() : a.residual3.data() + (lBTC - size_t(BT) * C);
    float* ln1 = a.ln1.data() + lBTC;
    float* qkv = a.qkv.data() + lBTC * 3;
    float* atty = a.atty.data() + lBTC;
    float* attproj = a.attproj.data() + lBTC;
    float* residual2 = a.residual2.data() + lBTC;
    float* ln2 = a.ln2.data() + lBTC;
    float* fch = a.fch.data() + lBTC * 4;
    float* fch_gelu = a.fch_gelu.data() + lBTC * 4;
    float* fcproj = a.fcproj.data() + lBTC;
    float* residual3 = a.residual3.data() + lBTC;
    if (blocks && !blocks->runs(l)) {  // skipped block: identity
#pragma omp parallel for schedule(static)
      for (size_t i = 0; i < size_t(BT) * C; i++) residual3[i] = residual[i];
      continue;
    }
    // Narrower weights (a hook's) use the leading part of each activation slot: qkv (BT, 3CH),
    // att (B, heads, T, T), fch (BT, M).
    const GPT2BlockWeights w = blocks ? blocks->forward_weights(model, l) : gpt2_block_weights(model, l);

    layernorm_forward(ln1, a.ln1_mean.data() + lBT, a.ln1_rstd.data() + lBT, residual, p.ln1w + lC, p.ln1b + lC, BT, C);
    block_linear_forward(qkv, ln1, w.qkvw, w.qkvb, w.lora[lora_qkv], BT, C, 3 * w.CH);
    attention_forward(atty, a.att.data() + size_t(l) * B * NH * T * T, qkv, B, T, w.CH, w.heads);
    block_linear_forward(attproj, atty, w.attprojw, p.attprojb + lC, w.lora[lora_attproj], BT, w.CH, C);
    residual_forward(residual2, residual, attproj, size_t(BT) * C);
    layernorm_forward(ln2, a.ln2_mean.data() + lBT, a.ln2_rstd.data() + lBT, residual2, p.ln2w + lC, p.ln2b + lC, BT, C);
    block_linear_forward(fch, ln2, w.fcw, w.fcb, w.lora[lora_fc], BT, C, w.M);
    gelu_forward(fch_gelu, fch, size_t(BT) * w.M);
    block_linear_forward(fcproj, fch_gelu, w.fcprojw, p.fcprojb + lC, w.lora[lora_fcproj], BT, w.M, C);
    residual_forward(residual3, residual2, fcproj, size_t(BT) * C);
  }
  const float* last = a.residual3.data() + size_t(L - 1) * BT * C;
  layernorm_forward(a.lnf.data(), a.lnf_mean.data(), a.lnf_rstd.data(), last, p.lnfw, p.lnfb, BT, C);
  matmul_forward(a.logits.data(), a.lnf.data(), p.wte, nullptr, BT, C, Vp);  // tied head
  if (!targets) return 0.0f;
  softmax_crossentropy_forward(a.probs.data(), a.losses.data(), a.logits.data(), targets, BT, V, Vp);
  double sum = 0.0;
  for (int i = 0; i < BT; i++) sum += a.losses[i];
  return static_cast<float>(sum / BT);
}

void gpt2_zero_grad(GPT2& model) { zero(model.grads); }

void gpt2_backward(GPT2& model, GPT2BlockHook* blocks) {
  const int BT = model.acts.B * model.acts.T;
  FRUGAL_CHECK(BT > 0 && model.targets.size() == size_t(BT), "gpt2_backward needs a forward with targets first");
  const GPT2Config& c = model.config;
  softmax_crossentropy_backward(gpt2_dlogits(model), model.acts.probs.data(), model.targets.data(), 1.0f / BT, BT,
                                c.vocab_size, c.padded_vocab_size);
  gpt2_backward_from_dlogits(model, blocks);
}

float* gpt2_dlogits(GPT2& model) {
  size_activations(model.grad_acts, model.config, model.acts.B, model.acts.T);
  return model.grad_acts.logits.data();
}

void gpt2_backward_from_dlogits(GPT2& model, GPT2BlockHook* blocks) {
  const GPT2Config& c = model.config;
  GPT2Activations& a = model.acts;
  const int B = a.B, T = a.T, BT = B * T;
  FRUGAL_CHECK(BT > 0 && model.inputs.size() == size_t(BT), "gpt2_backward needs a forward first");
  FRUGAL_CHECK(blocks == model.forward_hook, "internal: gpt2_backward must get the block hook its forward had");
  const int L = c.num_layers, C = c.channels, NH = c.num_heads, Vp = c.padded_vocab_size;
  const bool frozen = blocks && blocks->base_frozen();
  GPT2Activations& g = model.grad_acts;
  FRUGAL_CHECK(g.B == B && g.T == T, "internal: fill gpt2_dlogits before gpt2_backward_from_dlogits");
  // Only the buffers that backward accumulates into (+=) need zeroing; the rest are overwritten.
  zero(g.encoded), zero(g.ln1), zero(g.qkv), zero(g.atty), zero(g.residual2), zero(g.ln2), zero(g.fch);
  zero(g.fch_gelu), zero(g.residual3), zero(g.lnf);
  const GPT2Tensors p = gpt2_views(model.layout, model.params.data());
  const GPT2Tensors d = gpt2_views(model.layout, model.grads.data());

  matmul_backward(g.lnf.data(), frozen ? nullptr : d.wte, nullptr, g.logits.data(), a.lnf.data(), p.wte, BT, C, Vp);
  float* dlast = g.residual3.data() + size_t(L - 1) * BT * C;
  const float* last = a.residual3.data() + size_t(L - 1) * BT * C;
  layernorm_backward(dlast, d.lnfw, d.lnfb, g.lnf.data(), last, p.lnfw, a.lnf_mean.data(), a.lnf_rstd.data(), BT, C);

  for (int l = L - 1; l >= 0; l--) {
    const size_t lC = size_t(l) * C, lBTC = size_t(l) * BT * C, lBT = size_t(l) * BT;
    const float* residual = l == 0 ? a.encoded.data() : a.residual3.data() + (lBTC - size_t(BT) * C);
    float* dresidual = l == 0 ? g.encoded.data() : g.residual3.data() + (lBTC - size_t(BT) * C);
    float* dresidual3 = g.residual3.data() + lBTC;
    float* dresidual2 = g.residual2.data() + lBTC;
    if (blocks && !blocks->runs(l)) {  // identity block: the gradient passes through
#pragma omp parallel for schedule(static)
      for (size_t i = 0; i < size_t(BT) * C; i++) dresidual[i] += dresidual3[i];
      continue;
    }
    const GPT2BlockWeights w = blocks ? blocks->backward_weights(model, l) : gpt2_block_weights(model, l);
    // residual3 = residual2 + fcproj: dfcproj = dresidual3 (used in place), dresidual2 += dresidual3
    const float* dfcproj = dresidual3;
    {
      const KernelTimer timer(Kernel::residual);
#pragma omp parallel for schedule(static)
      for (size_t i = 0; i < size_t(BT) * C; i++) dresidual2[i] += dresidual3[i];
    }
    block_linear_backward(g.fch_gelu.data() + lBTC * 4, w.dfcprojw, d.fcprojb + lC, dfcproj, a.fch_gelu.data() + lBTC * 4,
                          w.fcprojw, w.lora[lora_fcproj], BT, w.M, C);
    gelu_backward(g.fch.data() + lBTC * 4, a.fch.data() + lBTC * 4, g.fch_gelu.data() + lBTC * 4, size_t(BT) * w.M);
    block_linear_backward(g.ln2.data() + lBTC, w.dfcw, w.dfcb, g.fch.data() + lBTC * 4, a.ln2.data() + lBTC, w.fcw,
                          w.lora[lora_fc], BT, C, w.M);
    layernorm_backward(dresidual2, d.ln2w + lC, d.ln2b + lC, g.ln2.data() + lBTC, a.residual2.data() + lBTC,
                       p.ln2w + lC, a.ln2_mean.data() + lBT, a.ln2_rstd.data() + lBT, BT, C);
    // residual2 = residual + attproj
    const float* dattproj = dresidual2;
    {
      const KernelTimer timer(Kernel::residual);
#pragma omp parallel for schedule(static)
      for (size_t i = 0; i < size_t(BT) * C; i++) dresidual[i] += dresidual2[i];
    }
    block_linear_backward(g.atty.data() + lBTC, w.dattprojw, d.attprojb + lC, dattproj, a.atty.data() + lBTC,
                          w.attprojw, w.lora[lora_attproj], BT, w.CH, C);
    attention_backward(g.qkv.data() + lBTC * 3, g.atty.data() + lBTC, a.qkv.data() + lBTC * 3,
                       a.att.data() + size_t(l) * B * NH * T * T, B, T, w.CH, w.heads);
    block_linear_backward(g.ln1.data() + lBTC, w.dqkvw, w.dqkvb, g.qkv.data() + lBTC * 3, a.ln1.data() + lBTC, w.qkvw,
                          w.lora[lora_qkv], BT, C, 3 * w.CH);
    layernorm_backward(dresidual, d.ln1w + lC, d.ln1b + lC, g.ln1.data() + lBTC, residual, p.ln1w + lC,
                       a.ln1_mean.data() + lBT, a.ln1_rstd.data() + lBT, BT, C);
    if (blocks) blocks->backward_done(model, l);
  }
  if (!frozen) encoder_backward(d.wte, d.wpe, g.encoded.data(), model.inputs.data(), B, T, C);
}

double gpt2_head_flops(const GPT2Config& c, int B, int T) {
  return double(matmul_forward_flops(int64_t{B} * T, c.channels, c.padded_vocab_size));  // the tied head
}

double gpt2_block_flops(const GPT2Config& c, int B, int T, int64_t CH, int64_t M) {
  const int64_t BT = int64_t{B} * T, C = c.channels;
  return double(matmul_forward_flops(BT, C, 3 * CH) + matmul_forward_flops(BT, CH, C) + matmul_forward_flops(BT, C, M) +
                matmul_forward_flops(BT, M, C)) +
         double(B) * double(attention_forward_flops(T, CH));
}

double gpt2_forward_flops(const GPT2Config& c, int B, int T) {
  double flops = gpt2_head_flops(c, B, T);
  for (int l = 0; l < c.num_layers; l++) flops += gpt2_block_flops(c, B, T, c.channels, 4 * c.channels);
  return flops;
}

void add_model_keys(Schema& s) {
  s.add("model.n_layer", int64_t{2}, "transformer blocks (L)", 1, 1024);
  s.add("model.n_head", int64_t{2}, "attention heads per block; must divide n_embd", 1, 1024);
  s.add("model.n_embd", int64_t{64}, "width C", 1, 65536);
  s.add("model.block_size", int64_t{64}, "maximum context (rows of the position embedding)", 1, 1 << 20);
  s.add("model.vocab_size", int64_t{0}, "vocabulary size; 0 = from the data source", 0, 1 << 20);
  s.add("model.vocab_multiple", int64_t{64}, "pad the vocabulary to a multiple of this (GEMM-friendly shapes)", 1, 4096);
  s.add("model.init_std", 0.02, "standard deviation of the weight initialisation", 0.0, 10.0);
  s.add("model.init_from", std::string(""), "llm.c GPT-2 checkpoint (.bin) to start from instead of random weights");
}

GPT2Config gpt2_config_from(const Config& cfg, int data_vocab_size) {
  GPT2Config c;
  c.num_layers = static_cast<int>(cfg.integer("model.n_layer"));
  c.num_heads = static_cast<int>(cfg.integer("model.n_head"));
  c.channels = static_cast<int>(cfg.integer("model.n_embd"));
  c.max_seq_len = static_cast<int>(cfg.integer("model.block_size"));
  const int64_t v = cfg.integer("model.vocab_size");
  c.vocab_size = static_cast<int>(v > 0 ? v : data_vocab_size);
  FRUGAL_CHECK(c.vocab_size >= data_vocab_size, "model.vocab_size (", c.vocab_size,
               ") is smaller than the data's vocabulary (", data_vocab_size, ")");
  const int m = static_cast<int>(cfg.integer("model.vocab_multiple"));
  c.padded_vocab_size = (c.vocab_size + m - 1) / m * m;
  FRUGAL_CHECK(c.channels % c.num_heads == 0, "model.n_embd (", c.channels, ") must be divisible by model.n_head (",
               c.num_heads, ")");
  return c;
}

}  // namespace frugal
