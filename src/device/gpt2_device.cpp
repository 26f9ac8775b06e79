#include "device/gpt2_device.hpp"

#include "core/error.hpp"
#include "model/gpt2_pass.hpp"

namespace frugal {

namespace {

// Two per-thread device buffers for the LoRA adapters' (N, r) intermediates, grown on demand.
template <typename T>
T* lora_scratch(int which, size_t n) {
  thread_local cuda::DeviceArray<T> buffers[2];
  return buffers[which].grow(n);
}
// The adapters rounded to bf16 for the bf16 path (cuda::to_bf16_scratch's slots of their own).
constexpr int kLoraASlot = cuda::kMatmulScratchSlots, kLoraBSlot = cuda::kMatmulScratchSlots + 1;
static_assert(kLoraBSlot < cuda::kBf16ScratchSlots);

}  // namespace

void block_linear_forward(float* out, const float* inp, const float* w, const float* b, const LoraMatrix& lora, int N,
                          int C, int OC, DeviceTag) {
  cuda::matmul_forward(out, inp, w, b, N, C, OC);
  if (!lora.A) return;
  float* h = lora_scratch<float>(0, size_t(N) * lora.rank);
  cuda::sgemm_nt(N, lora.rank, C, 1.0f, inp, lora.A, 0.0f, h);          // h = inp A^T
  cuda::sgemm_nt(N, OC, lora.rank, lora.scale, h, lora.B, 1.0f, out);   // out += s h B^T
}

void block_linear_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                           const LoraMatrix& lora, int N, int C, int OC, DeviceTag) {
  cuda::matmul_backward(dinp, dw, db, dout, inp, w, N, C, OC);
  if (!lora.A) return;
  const int r = lora.rank;
  float* h = lora_scratch<float>(0, size_t(N) * r);
  float* dh = lora_scratch<float>(1, size_t(N) * r);
  cuda::sgemm_nt(N, r, C, 1.0f, inp, lora.A, 0.0f, h);              // h = inp A^T   (recomputed)
  cuda::sgemm_nn(N, r, OC, lora.scale, dout, lora.B, 0.0f, dh);     // dh = s dout B (N, r)
  cuda::sgemm_tn(OC, r, N, lora.scale, dout, h, 1.0f, lora.dB);     // dB += s dout^T h
  cuda::sgemm_tn(r, C, N, 1.0f, dh, inp, 1.0f, lora.dA);            // dA += dh^T inp
  if (dinp) cuda::sgemm_nn(N, C, r, 1.0f, dh, lora.A, 1.0f, dinp);  // dinp += dh A
}

void block_linear_forward(cuda::bf16* out, const cuda::bf16* inp, const float* w, const float* b,
                          const LoraMatrix& lora, int N, int C, int OC, DeviceTag) {
  cuda::matmul_forward(out, inp, w, b, N, C, OC);
  if (!lora.A) return;
  const int r = lora.rank;
  const cuda::bf16* A = cuda::to_bf16_scratch(kLoraASlot, lora.A, size_t(r) * C);
  const cuda::bf16* Bm = cuda::to_bf16_scratch(kLoraBSlot, lora.B, size_t(OC) * r);
  cuda::bf16* h = lora_scratch<cuda::bf16>(0, size_t(N) * r);
  cuda::gemm(false, true, N, r, C, 1.0f, inp, A, 0.0f, h);             // h = inp A^T
  cuda::gemm(false, true, N, OC, r, lora.scale, h, Bm, 1.0f, out);     // out += s h B^T
}

void block_linear_backward(cuda::bf16* dinp, float* dw, float* db, const cuda::bf16* dout, const cuda::bf16* inp,
                           const float* w, const LoraMatrix& lora, int N, int C, int OC, DeviceTag) {
  cuda::matmul_backward(dinp, dw, db, dout, inp, w, N, C, OC);
  if (!lora.A) return;
  const int r = lora.rank;
  const cuda::bf16* A = cuda::to_bf16_scratch(kLoraASlot, lora.A, size_t(r) * C);
  const cuda::bf16* Bm = cuda::to_bf16_scratch(kLoraBSlot, lora.B, size_t(OC) * r);
  cuda::bf16* h = lora_scratch<cuda::bf16>(0, size_t(N) * r);
  cuda::bf16* dh = lora_scratch<cuda::bf16>(1, size_t(N) * r);
  cuda::gemm(false, true, N, r, C, 1.0f, inp, A, 0.0f, h);                // h = inp A^T   (recomputed)
  cuda::gemm(false, false, N, r, OC, lora.scale, dout, Bm, 0.0f, dh);     // dh = s dout B (N, r)
  cuda::gemm(true, false, OC, r, N, lora.scale, dout, h, 1.0f, lora.dB);  // dB += s dout^T h
  cuda::gemm(true, false, r, C, N, 1.0f, dh, inp, 1.0f, lora.dA);         // dA += dh^T inp
  if (dinp) cuda::gemm(false, false, N, C, r, 1.0f, dh, A, 1.0f, dinp);   // dinp += dh A
}

namespace {

// The CUDA kernel set of the shared passes (model/gpt2_pass.hpp): the same calls as the CPU's.
struct CudaKernels {
  static constexpr auto encoder_forward = [](auto... a) { cuda::encoder_forward(a...); };
  static constexpr auto encoder_backward = [](auto... a) { cuda::encoder_backward(a...); };
  static constexpr auto layernorm_forward = [](auto... a) { cuda::layernorm_forward(a...); };
  static constexpr auto layernorm_backward = [](auto... a) { cuda::layernorm_backward(a...); };
  static constexpr auto attention_forward = [](auto... a) { cuda::attention_forward(a...); };
  static constexpr auto attention_backward = [](auto... a) { cuda::attention_backward(a...); };
  static constexpr auto gelu_forward = [](auto... a) { cuda::gelu_forward(a...); };
  static constexpr auto gelu_backward = [](auto... a) { cuda::gelu_backward(a...); };
  static constexpr auto residual_forward = [](auto... a) { cuda::residual_forward(a...); };
  static constexpr auto matmul_forward = [](auto... a) { cuda::matmul_forward(a...); };
  static constexpr auto matmul_backward = [](auto... a) { cuda::matmul_backward(a...); };
  static constexpr auto softmax_crossentropy_forward = [](auto... a) { cuda::softmax_crossentropy_forward(a...); };
  static constexpr auto softmax_crossentropy_backward = [](auto... a) { cuda::softmax_crossentropy_backward(a...); };
  static constexpr auto copy = [](auto... a) { cuda::copy(a...); };
  static constexpr auto accumulate = [](auto... a) { cuda::accumulate(a...); };

  static constexpr auto block_linear_forward = [](auto... a) { frugal::block_linear_forward(a..., DeviceTag{}); };
  static constexpr auto block_linear_backward = [](auto... a) { frugal::block_linear_backward(a..., DeviceTag{}); };

  // Grow-only: a batch of another (B, T) (RL's minibatches, evaluation) reuses the allocation instead
  // of a cudaFree (which synchronises) and a cudaMalloc per forward; the passes index by (B, T), never
  // by a buffer's size. Zeroed like the CPU's assign.
  template <typename T>
  static void resize(cuda::DeviceArray<T>& b, size_t n) {
    b.grow(n);
    b.zero();
  }
  template <typename T>
  static void zero(cuda::DeviceArray<T>& b) {
    b.zero();
  }
  static void set_tokens(cuda::IntDeviceBuffer& tokens, const int* host, int n) {
    if (tokens.size() != size_t(n)) tokens = cuda::IntDeviceBuffer(size_t(n));
    tokens.upload(host, size_t(n));
  }
  // The losses come down (B*T floats) and are summed as on the CPU: same losses, same mean.
  static float mean_loss(const cuda::DeviceBuffer& losses, int n) {
    thread_local std::vector<float> host;
    host.resize(size_t(n));
    losses.download(host.data(), size_t(n));
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += host[size_t(i)];
    return static_cast<float>(sum / n);
  }
};

// Runs f on the model's activation set and its gradients, fp32 or bf16.
template <class F>
auto with_activations(GPT2Device& model, F&& f) {
  return model.bf16_activations ? f(model.acts_bf16, model.grad_acts_bf16) : f(model.acts, model.grad_acts);
}

}  // namespace

GPT2Device gpt2_to_device(const GPT2& host, bool bf16_activations) {
  GPT2Device d;
  d.bf16_activations = bf16_activations;
  d.config = host.config;
  d.layout = host.layout;
  d.params = cuda::DeviceBuffer(host.params);
  d.grads = cuda::DeviceBuffer(host.layout.total);
  d.grads.zero();
  return d;
}

void gpt2_to_host(const GPT2Device& device, GPT2& host) {
  FRUGAL_CHECK(host.layout.total == device.layout.total, "internal: gpt2_to_host between different models");
  device.params.download(host.params.data(), host.params.size());
  device.grads.download(host.grads.data(), host.grads.size());
}

float gpt2_forward(GPT2Device& model, const int* inputs, const int* targets, int B, int T,
                   BlockHook<GPT2Device>* blocks) {
  return with_activations(model, [&](auto& a, auto&) {
    return gpt2_pass::forward<CudaKernels>(model, a, inputs, targets, B, T, blocks);
  });
}

void gpt2_backward(GPT2Device& model, BlockHook<GPT2Device>* blocks) {
  with_activations(model, [&](auto& a, auto& g) { gpt2_pass::backward<CudaKernels>(model, a, g, blocks); });
}

void gpt2_backward_from_dlogits(GPT2Device& model, BlockHook<GPT2Device>* blocks) {
  with_activations(model,
                   [&](auto& a, auto& g) { gpt2_pass::backward_from_dlogits<CudaKernels>(model, a, g, blocks); });
}

size_t gpt2_positions(const GPT2Device& model) {
  return model.bf16_activations ? size_t(model.acts_bf16.B) * model.acts_bf16.T : size_t(model.acts.B) * model.acts.T;
}

void gpt2_token_logprob_forward(GPT2Device& model, float* logp, float* entropy, const int* targets, float inv_temp) {
  const GPT2Config& c = model.config;
  with_activations(model, [&](auto& a, auto&) {
    cuda::token_logprob_forward(logp, entropy, a.logits.data(), targets, a.B * a.T, c.vocab_size, c.padded_vocab_size,
                                inv_temp);
  });
}

void gpt2_token_logprob_backward(GPT2Device& model, const int* targets, const float* weight, float inv_temp) {
  const GPT2Config& c = model.config;
  with_activations(model, [&](auto& a, auto& g) {
    cuda::token_logprob_backward(gpt2_pass::dlogits<CudaKernels>(model, a, g), a.logits.data(), targets, weight,
                                 a.B * a.T, c.vocab_size, c.padded_vocab_size, inv_temp);
  });
}

void gpt2_zero_grad(GPT2Device& model) { model.grads.zero(); }

}  // namespace frugal
