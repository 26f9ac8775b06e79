#pragma once
// GPT-2 on a GPU: the model of model/gpt2.hpp with its parameters, gradients, activations and token
// batch in device memory, running the very passes the CPU runs (model/gpt2_pass.hpp) on the CUDA
// kernels (kernels/cuda/kernels.hpp). Only the token batch goes up and the loss comes down.
// Same layout as the host model, so parameters move between the two with one copy.
// Activations are fp32, or bf16 (model.dtype = bf16, llm.c's scheme): the same passes over the
// kernels' bf16 overloads, with fp32 master weights, parameter gradients and LayerNorm statistics.
#include <vector>

#include "kernels/cuda/kernels.hpp"
#include "model/gpt2.hpp"

namespace frugal {

using GPT2ActivationsBf16 = GPT2ActivationsOf<cuda::DeviceArray<cuda::bf16>, cuda::DeviceBuffer>;

struct GPT2Device {
  GPT2Config config;
  ParamLayout layout;
  cuda::DeviceBuffer params;  // flat, layout.total floats
  cuda::DeviceBuffer grads;   // same layout
  // The passes keep their activations and activation gradients in one of the two sets, the other
  // stays empty (no memory): acts/grad_acts (fp32) unless bf16_activations.
  bool bf16_activations = false;
  GPT2ActivationsOf<cuda::DeviceBuffer> acts, grad_acts;
  GPT2ActivationsBf16 acts_bf16, grad_acts_bf16;
  cuda::IntDeviceBuffer inputs, targets;  // the last batch, for the backward
  const BlockHook<GPT2Device>* forward_hook = nullptr;
};

// The host model's parameters on the current device, gradients zero; activations fp32 or bf16.
GPT2Device gpt2_to_device(const GPT2& host, bool bf16_activations = false);
// Device parameters (and gradients) into the host model of the same configuration.
void gpt2_to_host(const GPT2Device& device, GPT2& host);

// As the host functions of model/gpt2.hpp, with inputs/targets host token ids (B*T each).
float gpt2_forward(GPT2Device& model, const int* inputs, const int* targets, int B, int T,
                   BlockHook<GPT2Device>* blocks = nullptr);
void gpt2_backward(GPT2Device& model, BlockHook<GPT2Device>* blocks = nullptr);
void gpt2_backward_from_dlogits(GPT2Device& model, BlockHook<GPT2Device>* blocks = nullptr);
void gpt2_zero_grad(GPT2Device& model);
// Positions (B*T) of the last forward.
size_t gpt2_positions(const GPT2Device& model);

// The token head of RL and SFT on the last forward's logits, whatever their storage:
// cuda::token_logprob_forward into device logp (and entropy, if non-null) of device targets (B*T);
// and its backward, the gradient of sum_n weight[n] logp_n (device weights) into the logits'
// gradient buffer, ready for gpt2_backward_from_dlogits.
void gpt2_token_logprob_forward(GPT2Device& model, float* logp, float* entropy, const int* targets, float inv_temp);
void gpt2_token_logprob_backward(GPT2Device& model, const int* targets, const float* weight, float inv_temp);

// model/gpt2.hpp's block_linear_forward/backward on device pointers (the tag picks the overload): the
// linear layer plus its LoRA adapter's two thin GEMMs (device/lora_device.hpp), shared by the
// training passes and the decoder.
struct DeviceTag {};
void block_linear_forward(float* out, const float* inp, const float* w, const float* b, const LoraMatrix& lora, int N,
                          int C, int OC, DeviceTag);
void block_linear_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                           const LoraMatrix& lora, int N, int C, int OC, DeviceTag);
// The same on bf16 activations (weights, adapters and their gradients fp32; the adapters rounded to
// bf16 per call).
void block_linear_forward(cuda::bf16* out, const cuda::bf16* inp, const float* w, const float* b,
                          const LoraMatrix& lora, int N, int C, int OC, DeviceTag);
void block_linear_backward(cuda::bf16* dinp, float* dw, float* db, const cuda::bf16* dout, const cuda::bf16* inp,
                           const float* w, const LoraMatrix& lora, int N, int C, int OC, DeviceTag);

}  // namespace frugal
