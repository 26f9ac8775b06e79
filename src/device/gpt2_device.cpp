#include "device/gpt2_device.hpp"

#include "core/error.hpp"
#include "model/gpt2_pass.hpp"

namespace frugal {

namespace {

// Two per-thread device buffers for the LoRA adapters' (N, r) intermediates, grown on demand.
float* lora_scratch(int which, size_t n) {
  thread_local cuda::DeviceBuffer buffers[2];
  return buffers[which].grow(n);
}

}  // namespace

void block_linear_forward(float* out, const float* inp, const float* w, const float* b, const LoraMatrix& lora, int N,
                          int C, int OC, DeviceTag) {
  cuda::matmul_forward(out, inp, w, b, N, C, OC);
  if (!lora.A) return;
  float* h = lora_scratch(0, size_t(N) * lora.rank);
  cuda::sgemm_nt(N, lora.rank, C, 1.0f, inp, lora.A, 0.0f, h);          // h = inp A^T
  cuda::sgemm_nt(N, OC, lora.rank, lora.scale, h, lora.B, 1.0f, out);   // out += s h B^T
}

void block_linear_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                           const LoraMatrix& lora, int N, int C, int OC, DeviceTag) {
  cuda::matmul_backward(dinp, dw, db, dout, inp, w, N, C, OC);
  if (!lora.A) return;
  const int r = lora.rank;
  float* h = lora_scratch(0, size_t(N) * r);
  float* dh = lora_scratch(1, size_t(N) * r);
  cuda::sgemm_nt(N, r, C, 1.0f, inp, lora.A, 0.0f, h);              // h = inp A^T   (recomputed)
  cuda::sgemm_nn(N, r, OC, lora.scale, dout, lora.B, 0.0f, dh);     // dh = s dout B (N, r)
  cuda::sgemm_tn(OC, r, N, lora.scale, dout, h, 1.0f, lora.dB);     // dB += s dout^T h
  cuda::sgemm_tn(r, C, N, 1.0f, dh, inp, 1.0f, lora.dA);            // dA += dh^T inp
  if (dinp) cuda::sgemm_nn(N, C, r, 1.0f, dh, lora.A, 1.0f, dinp);  // dinp += dh A
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
  static void resize(cuda::DeviceBuffer& b, size_t n) {
    b.grow(n);
    b.zero();
  }
  static void zero(cuda::DeviceBuffer& b) { b.zero(); }
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

}  // namespace

GPT2Device gpt2_to_device(const GPT2& host) {
  GPT2Device d;
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
  return gpt2_pass::forward<CudaKernels>(model, inputs, targets, B, T, blocks);
}

void gpt2_backward(GPT2Device& model, BlockHook<GPT2Device>* blocks) {
  gpt2_pass::backward<CudaKernels>(model, blocks);
}

float* gpt2_dlogits(GPT2Device& model) { return gpt2_pass::dlogits<CudaKernels>(model); }

void gpt2_backward_from_dlogits(GPT2Device& model, BlockHook<GPT2Device>* blocks) {
  gpt2_pass::backward_from_dlogits<CudaKernels>(model, blocks);
}

void gpt2_zero_grad(GPT2Device& model) { model.grads.zero(); }

}  // namespace frugal
