#pragma once
// GPT-2's forward and backward passes, written once for every device. A pass is a fixed sequence
// of kernel calls on the model's flat parameter/gradient buffers and its activations; what differs
// between the CPU and a GPU is only which kernels run and where the buffers live. So the passes are
// templates over
//   Model  GPT2 (std::vector buffers) or GPT2Device (device arrays): params, grads, inputs,
//          targets, config, layout, forward_hook - the same member names;
//   Acts   the activations and their gradients, passed in (model.acts and model.grad_acts on the
//          CPU; fp32 or bf16 ones on a GPU): a GPT2ActivationsOf of any element type, which the
//          kernel set's overloads accept;
//   K      the kernel set: static callables with kernels/cpu's names and signatures (encoder_,
//          layernorm_, attention_, gelu_, residual_, softmax_crossentropy_ forward/backward,
//          block_linear_forward/backward, matmul_forward/backward), plus the buffer chores
//          resize (allocate, zeroed), zero, copy (dst = src), accumulate (dst += src),
//          set_tokens (host ints into the model's token buffer) and mean_loss (mean of the
//          per-position losses, summed in double on the host in position order).
// gpt2.cpp instantiates them with the CPU kernels, device/gpt2_device.cpp with the CUDA ones.
// Internal to those two files: everyone else calls gpt2_forward / gpt2_backward.
#include <cstddef>

#include "core/error.hpp"
#include "model/gpt2.hpp"

namespace frugal::gpt2_pass {

// Sizes the activations of a (B, T) batch. For their gradients (gradients = true) the buffers
// the backward never touches stay empty: the softmax, probabilities, losses and LayerNorm
// statistics (at GPT-2 124M, B 16 x T 1024, that is 13 GB of a GPU's memory).
template <class K, class Buf, class Stats>
void size_activations(GPT2ActivationsOf<Buf, Stats>& a, const GPT2Config& c, int B, int T, bool gradients = false) {
  if (a.B == B && a.T == T) return;
  const size_t L = c.num_layers, C = c.channels, NH = c.num_heads, Vp = c.padded_vocab_size, BT = size_t(B) * T;
  a.B = B;
  a.T = T;
  K::resize(a.encoded, BT * C);
  K::resize(a.ln1, L * BT * C);
  K::resize(a.ln1_mean, gradients ? 0 : L * BT);
  K::resize(a.ln1_rstd, gradients ? 0 : L * BT);
  K::resize(a.qkv, L * BT * 3 * C);
  K::resize(a.atty, L * BT * C);
  K::resize(a.att, gradients ? 0 : L * B * NH * T * T);
  K::resize(a.attproj, L * BT * C);
  K::resize(a.residual2, L * BT * C);
  K::resize(a.ln2, L * BT * C);
  K::resize(a.ln2_mean, gradients ? 0 : L * BT);
  K::resize(a.ln2_rstd, gradients ? 0 : L * BT);
  K::resize(a.fch, L * BT * 4 * C);
  K::resize(a.fch_gelu, L * BT * 4 * C);
  K::resize(a.fcproj, L * BT * C);
  K::resize(a.residual3, L * BT * C);
  K::resize(a.lnf, BT * C);
  K::resize(a.lnf_mean, gradients ? 0 : BT);
  K::resize(a.lnf_rstd, gradients ? 0 : BT);
  K::resize(a.logits, BT * Vp);
  K::resize(a.probs, gradients ? 0 : BT * Vp);
  K::resize(a.losses, gradients ? 0 : BT);
}

// Block l's weights and gradient slices in the model's own stacked tensors (the dense block).
template <class Model>
GPT2BlockWeights block_weights(Model& model, int l) {
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

// Forward over host token ids inputs/targets (B*T each; targets may be null: logits only), keeping
// the activations in a.
template <class K, class Model, class Acts>
float forward(Model& model, Acts& a, const int* inputs, const int* targets, int B, int T, BlockHook<Model>* blocks) {
  const GPT2Config& c = model.config;
  FRUGAL_CHECK(T <= c.max_seq_len, "sequence length ", T, " exceeds model.block_size ", c.max_seq_len);
  const int L = c.num_layers, C = c.channels, NH = c.num_heads, V = c.vocab_size, Vp = c.padded_vocab_size;
  const int BT = B * T;
  for (int i = 0; i < BT; i++) {
    FRUGAL_CHECK(inputs[i] >= 0 && inputs[i] < V, "token id ", inputs[i], " is outside the vocabulary [0, ", V, ")");
    FRUGAL_CHECK(!targets || (targets[i] >= 0 && targets[i] < V), "target id ", targets ? targets[i] : 0,
                 " is outside the vocabulary [0, ", V, ")");
  }
  size_activations<K>(a, c, B, T);
  K::set_tokens(model.inputs, inputs, BT);
  if (targets) K::set_tokens(model.targets, targets, BT);
  const GPT2Tensors p = gpt2_views(model.layout, model.params.data());
  model.forward_hook = blocks;

  K::encoder_forward(a.encoded.data(), model.inputs.data(), p.wte, p.wpe, B, T, C);
  for (int l = 0; l < L; l++) {
    const size_t lC = size_t(l) * C, lBTC = size_t(l) * BT * C, lBT = size_t(l) * BT;
    const auto* residual = l == 0 ? a.encoded.data() : a.residual3.data() + (lBTC - size_t(BT) * C);
    auto* ln1 = a.ln1.data() + lBTC;
    auto* qkv = a.qkv.data() + lBTC * 3;
    auto* atty = a.atty.data() + lBTC;
    auto* attproj = a.attproj.data() + lBTC;
    auto* residual2 = a.residual2.data() + lBTC;
    auto* ln2 = a.ln2.data() + lBTC;
    auto* fch = a.fch.data() + lBTC * 4;
    auto* fch_gelu = a.fch_gelu.data() + lBTC * 4;
    auto* fcproj = a.fcproj.data() + lBTC;
    auto* residual3 = a.residual3.data() + lBTC;
    if (blocks && !blocks->runs(l)) {  // skipped block: identity
      K::copy(residual3, residual, size_t(BT) * C);
      continue;
    }
    // Narrower weights (a hook's) use the leading part of each activation slot: qkv (BT, 3CH),
    // att (B, heads, T, T), fch (BT, M).
    const GPT2BlockWeights w = blocks ? blocks->forward_weights(model, l) : block_weights(model, l);

    K::layernorm_forward(ln1, a.ln1_mean.data() + lBT, a.ln1_rstd.data() + lBT, residual, p.ln1w + lC, p.ln1b + lC,
                         BT, C);
    K::block_linear_forward(qkv, ln1, w.qkvw, w.qkvb, w.lora[lora_qkv], BT, C, 3 * w.CH);
    K::attention_forward(atty, a.att.data() + size_t(l) * B * NH * T * T, qkv, B, T, w.CH, w.heads);
    K::block_linear_forward(attproj, atty, w.attprojw, p.attprojb + lC, w.lora[lora_attproj], BT, w.CH, C);
    K::residual_forward(residual2, residual, attproj, size_t(BT) * C);
    K::layernorm_forward(ln2, a.ln2_mean.data() + lBT, a.ln2_rstd.data() + lBT, residual2, p.ln2w + lC, p.ln2b + lC,
                         BT, C);
    K::block_linear_forward(fch, ln2, w.fcw, w.fcb, w.lora[lora_fc], BT, C, w.M);
    K::gelu_forward(fch_gelu, fch, size_t(BT) * w.M);
    K::block_linear_forward(fcproj, fch_gelu, w.fcprojw, p.fcprojb + lC, w.lora[lora_fcproj], BT, w.M, C);
    K::residual_forward(residual3, residual2, fcproj, size_t(BT) * C);
  }
  const auto* last = a.residual3.data() + size_t(L - 1) * BT * C;
  K::layernorm_forward(a.lnf.data(), a.lnf_mean.data(), a.lnf_rstd.data(), last, p.lnfw, p.lnfb, BT, C);
  K::matmul_forward(a.logits.data(), a.lnf.data(), p.wte, nullptr, BT, C, Vp);  // tied head
  if (!targets) return 0.0f;
  K::softmax_crossentropy_forward(a.probs.data(), a.losses.data(), a.logits.data(), model.targets.data(), BT, V, Vp);
  return K::mean_loss(a.losses, BT);
}

// The gradient buffer g.logits (B,T,Vp) of the last forward (into a), sized on first use.
template <class K, class Model, class Acts>
auto* dlogits(Model& model, const Acts& a, Acts& g) {
  size_activations<K>(g, model.config, a.B, a.T, /*gradients=*/true);
  return g.logits.data();
}

// grads += d(loss)/d(params) given dlogits(model, a, g) filled with d(loss)/d(logits); a holds the
// forward's activations, g their gradients.
template <class K, class Model, class Acts>
void backward_from_dlogits(Model& model, Acts& a, Acts& g, BlockHook<Model>* blocks) {
  const GPT2Config& c = model.config;
  const int B = a.B, T = a.T, BT = B * T;
  FRUGAL_CHECK(BT > 0 && model.inputs.size() == size_t(BT), "gpt2_backward needs a forward first");
  FRUGAL_CHECK(blocks == model.forward_hook, "internal: gpt2_backward must get the block hook its forward had");
  const int L = c.num_layers, C = c.channels, NH = c.num_heads, Vp = c.padded_vocab_size;
  const bool frozen = blocks && blocks->base_frozen();
  FRUGAL_CHECK(g.B == B && g.T == T, "internal: fill gpt2_dlogits before gpt2_backward_from_dlogits");
  // Only the buffers that backward accumulates into (+=) need zeroing; the rest are overwritten.
  K::zero(g.encoded), K::zero(g.ln1), K::zero(g.qkv), K::zero(g.atty), K::zero(g.residual2), K::zero(g.ln2);
  K::zero(g.fch), K::zero(g.fch_gelu), K::zero(g.residual3), K::zero(g.lnf);
  const GPT2Tensors p = gpt2_views(model.layout, model.params.data());
  const GPT2Tensors d = gpt2_views(model.layout, model.grads.data());

  K::matmul_backward(g.lnf.data(), frozen ? nullptr : d.wte, nullptr, g.logits.data(), a.lnf.data(), p.wte, BT, C,
                     Vp);
  auto* dlast = g.residual3.data() + size_t(L - 1) * BT * C;
  const auto* last = a.residual3.data() + size_t(L - 1) * BT * C;
  K::layernorm_backward(dlast, d.lnfw, d.lnfb, g.lnf.data(), last, p.lnfw, a.lnf_mean.data(), a.lnf_rstd.data(), BT,
                        C);

  for (int l = L - 1; l >= 0; l--) {
    const size_t lC = size_t(l) * C, lBTC = size_t(l) * BT * C, lBT = size_t(l) * BT;
    const auto* residual = l == 0 ? a.encoded.data() : a.residual3.data() + (lBTC - size_t(BT) * C);
    auto* dresidual = l == 0 ? g.encoded.data() : g.residual3.data() + (lBTC - size_t(BT) * C);
    auto* dresidual3 = g.residual3.data() + lBTC;
    auto* dresidual2 = g.residual2.data() + lBTC;
    if (blocks && !blocks->runs(l)) {  // identity block: the gradient passes through
      K::accumulate(dresidual, dresidual3, size_t(BT) * C);
      continue;
    }
    const GPT2BlockWeights w = blocks ? blocks->backward_weights(model, l) : block_weights(model, l);
    // residual3 = residual2 + fcproj: dfcproj = dresidual3 (used in place), dresidual2 += dresidual3
    const auto* dfcproj = dresidual3;
    K::accumulate(dresidual2, dresidual3, size_t(BT) * C);
    K::block_linear_backward(g.fch_gelu.data() + lBTC * 4, w.dfcprojw, d.fcprojb + lC, dfcproj,
                             a.fch_gelu.data() + lBTC * 4, w.fcprojw, w.lora[lora_fcproj], BT, w.M, C);
    K::gelu_backward(g.fch.data() + lBTC * 4, a.fch.data() + lBTC * 4, g.fch_gelu.data() + lBTC * 4,
                     size_t(BT) * w.M);
    K::block_linear_backward(g.ln2.data() + lBTC, w.dfcw, w.dfcb, g.fch.data() + lBTC * 4, a.ln2.data() + lBTC, w.fcw,
                             w.lora[lora_fc], BT, C, w.M);
    K::layernorm_backward(dresidual2, d.ln2w + lC, d.ln2b + lC, g.ln2.data() + lBTC, a.residual2.data() + lBTC,
                          p.ln2w + lC, a.ln2_mean.data() + lBT, a.ln2_rstd.data() + lBT, BT, C);
    // residual2 = residual + attproj
    const auto* dattproj = dresidual2;
    K::accumulate(dresidual, dresidual2, size_t(BT) * C);
    K::block_linear_backward(g.atty.data() + lBTC, w.dattprojw, d.attprojb + lC, dattproj, a.atty.data() + lBTC,
                             w.attprojw, w.lora[lora_attproj], BT, w.CH, C);
    K::attention_backward(g.qkv.data() + lBTC * 3, g.atty.data() + lBTC, a.qkv.data() + lBTC * 3,
                          a.att.data() + size_t(l) * B * NH * T * T, B, T, w.CH, w.heads);
    K::block_linear_backward(g.ln1.data() + lBTC, w.dqkvw, w.dqkvb, g.qkv.data() + lBTC * 3, a.ln1.data() + lBTC,
                             w.qkvw, w.lora[lora_qkv], BT, C, 3 * w.CH);
    K::layernorm_backward(dresidual, d.ln1w + lC, d.ln1b + lC, g.ln1.data() + lBTC, residual, p.ln1w + lC,
                          a.ln1_mean.data() + lBT, a.ln1_rstd.data() + lBT, BT, C);
    if (blocks) blocks->backward_done(model, l);
  }
  if (!frozen) K::encoder_backward(d.wte, d.wpe, g.encoded.data(), model.inputs.data(), B, T, C);
}

// Backward of the mean cross-entropy of the last forward (which had targets).
template <class K, class Model, class Acts>
void backward(Model& model, Acts& a, Acts& g, BlockHook<Model>* blocks) {
  const int BT = a.B * a.T;
  FRUGAL_CHECK(BT > 0 && model.targets.size() == size_t(BT), "gpt2_backward needs a forward with targets first");
  const GPT2Config& c = model.config;
  K::softmax_crossentropy_backward(dlogits<K>(model, a, g), a.probs.data(), model.targets.data(), 1.0f / BT, BT,
                                   c.vocab_size, c.padded_vocab_size);
  backward_from_dlogits<K>(model, a, g, blocks);
}

}  // namespace frugal::gpt2_pass
