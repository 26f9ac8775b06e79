#include "device/gpt2_device.hpp"

#include "core/error.hpp"
#include "model/gpt2_pass.hpp"

namespace frugal {

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

  // Adapters (LoRA) are host-side hooks so far; no device hook hands one out.
  static void block_linear_forward(float* out, const float* inp, const float* w, const float* b,
                                   const LoraMatrix& lora, int N, int C, int OC) {
    FRUGAL_CHECK(!lora.A, "LoRA adapters run on the CPU only (run.device = \"cpu\")");
    cuda::matmul_forward(out, inp, w, b, N, C, OC);
  }
  static void block_linear_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp,
                                    const float* w, const LoraMatrix& lora, int N, int C, int OC) {
    FRUGAL_CHECK(!lora.A, "LoRA adapters run on the CPU only (run.device = \"cpu\")");
    cuda::matmul_backward(dinp, dw, db, dout, inp, w, N, C, OC);
  }

  static void resize(cuda::DeviceBuffer& b, size_t n) {
    b = cuda::DeviceBuffer(n);
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
