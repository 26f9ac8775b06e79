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
#include "model/gpt2_pass.hpp"

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

// The CPU kernel set of the shared passes (model/gpt2_pass.hpp).
struct CpuKernels {
  static constexpr auto encoder_forward = [](auto... a) { cpu::encoder_forward(a...); };
  static constexpr auto encoder_backward = [](auto... a) { cpu::encoder_backward(a...); };
  static constexpr auto layernorm_forward = [](auto... a) { cpu::layernorm_forward(a...); };
  static constexpr auto layernorm_backward = [](auto... a) { cpu::layernorm_backward(a...); };
  static constexpr auto attention_forward = [](auto... a) { cpu::attention_forward(a...); };
  static constexpr auto attention_backward = [](auto... a) { cpu::attention_backward(a...); };
  static constexpr auto gelu_forward = [](auto... a) { cpu::gelu_forward(a...); };
  static constexpr auto gelu_backward = [](auto... a) { cpu::gelu_backward(a...); };
  static constexpr auto residual_forward = [](auto... a) { cpu::residual_forward(a...); };
  static constexpr auto matmul_forward = [](auto... a) { cpu::matmul_forward(a...); };
  static constexpr auto matmul_backward = [](auto... a) { cpu::matmul_backward(a...); };
  static constexpr auto block_linear_forward = [](auto... a) { frugal::block_linear_forward(a...); };
  static constexpr auto block_linear_backward = [](auto... a) { frugal::block_linear_backward(a...); };
  static constexpr auto softmax_crossentropy_forward = [](auto... a) { cpu::softmax_crossentropy_forward(a...); };
  static constexpr auto softmax_crossentropy_backward = [](auto... a) { cpu::softmax_crossentropy_backward(a...); };

  static void resize(std::vector<float>& v, size_t n) { v.assign(n, 0.0f); }
  static void zero(std::vector<float>& v) {
    const KernelTimer timer(Kernel::zero);
    float* p = v.data();
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < v.size(); i++) p[i] = 0.0f;
  }
  static void copy(float* dst, const float* src, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dst[i] = src[i];
  }
  static void accumulate(float* dst, const float* src, size_t n) {
    const KernelTimer timer(Kernel::residual);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
  }
  static void set_tokens(std::vector<int>& tokens, const int* host, int n) { tokens.assign(host, host + n); }
  static float mean_loss(const std::vector<float>& losses, int n) {
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += losses[i];
    return static_cast<float>(sum / n);
  }
};

}  // namespace

GPT2BlockWeights gpt2_block_weights(GPT2& model, int l) { return gpt2_pass::block_weights(model, l); }

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
  return gpt2_pass::forward<CpuKernels>(model, model.acts, inputs, targets, B, T, blocks);
}

void gpt2_zero_grad(GPT2& model) { CpuKernels::zero(model.grads); }

void gpt2_backward(GPT2& model, GPT2BlockHook* blocks) {
  gpt2_pass::backward<CpuKernels>(model, model.acts, model.grad_acts, blocks);
}

float* gpt2_dlogits(GPT2& model) { return gpt2_pass::dlogits<CpuKernels>(model, model.acts, model.grad_acts); }

void gpt2_backward_from_dlogits(GPT2& model, GPT2BlockHook* blocks) {
  gpt2_pass::backward_from_dlogits<CpuKernels>(model, model.acts, model.grad_acts, blocks);
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
  s.add("model.dtype", std::string("fp32"),
        "precision on a GPU: fp32, tf32 (TF32 tensor cores), bf16 (bf16 activations and matmuls, fp32 accumulation, "
        "master weights and optimiser state: llm.c's scheme); the CPU computes in fp32 only",
        {}, {}, {"fp32", "tf32", "bf16"});
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
