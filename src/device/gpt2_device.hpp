#pragma once
// GPT-2 on a GPU: the model of model/gpt2.hpp with its parameters, gradients, activations and token
// batch in device memory, running the very passes the CPU runs (model/gpt2_pass.hpp) on the CUDA
// kernels (kernels/cuda/kernels.hpp). Only the token batch goes up and the loss comes down.
// Same layout as the host model, so parameters move between the two with one copy.
#include <vector>

#include "kernels/cuda/kernels.hpp"
#include "model/gpt2.hpp"

namespace frugal {

struct GPT2Device {
  GPT2Config config;
  ParamLayout layout;
  cuda::DeviceBuffer params;  // flat, layout.total floats
  cuda::DeviceBuffer grads;   // same layout
  GPT2ActivationsOf<cuda::DeviceBuffer> acts;
  GPT2ActivationsOf<cuda::DeviceBuffer> grad_acts;
  cuda::IntDeviceBuffer inputs, targets;  // the last batch, for the backward
  const BlockHook<GPT2Device>* forward_hook = nullptr;
};

// The host model's parameters on the current device, gradients zero.
GPT2Device gpt2_to_device(const GPT2& host);
// Device parameters (and gradients) into the host model of the same configuration.
void gpt2_to_host(const GPT2Device& device, GPT2& host);

// As the host functions of model/gpt2.hpp, with inputs/targets host token ids (B*T each).
float gpt2_forward(GPT2Device& model, const int* inputs, const int* targets, int B, int T,
                   BlockHook<GPT2Device>* blocks = nullptr);
void gpt2_backward(GPT2Device& model, BlockHook<GPT2Device>* blocks = nullptr);
float* gpt2_dlogits(GPT2Device& model);  // a device pointer
void gpt2_backward_from_dlogits(GPT2Device& model, BlockHook<GPT2Device>* blocks = nullptr);
void gpt2_zero_grad(GPT2Device& model);

// model/gpt2.hpp's block_linear_forward/backward on device pointers (the tag picks the overload): the
// linear layer plus its LoRA adapter's two thin GEMMs (device/lora_device.hpp), shared by the
// training passes and the decoder.
struct DeviceTag {};
void block_linear_forward(float* out, const float* inp, const float* w, const float* b, const LoraMatrix& lora, int N,
                          int C, int OC, DeviceTag);
void block_linear_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                           const LoraMatrix& lora, int N, int C, int OC, DeviceTag);

}  // namespace frugal
