#pragma once
// A language-model worker's model and AdamW state on its rank's GPU (run.device = "cuda"): the
// device twins of src/device behind calls that plain C++ builds without CUDA too (they then fail
// with a clear message). The worker's host model stays the reference copy for what the harness
// does on the host: checkpoints (lm_device_to_host / from_host around StateFields), outer steps
// (parameters staged), and - unless the gradients are all-reduced on the GPU (NCCL) - the gradient
// all-reduce (lm_device_grads_to_host, MPI, lm_device_grads_from_host).
#include <memory>
#include <span>

#include "model/decode.hpp"
#include "model/gpt2.hpp"
#include "model/lora.hpp"
#include "model/subnet.hpp"
#include "optim/adamw.hpp"

namespace frugal {

struct LmDevice;  // defined in lm_device.cpp (CUDA builds)
struct LmDeviceDeleter {
  void operator()(LmDevice* d) const;
};
using LmDevicePtr = std::unique_ptr<LmDevice, LmDeviceDeleter>;

// Uploads the host model's parameters and the optimiser's state to the current GPU (placement made
// it current).
LmDevicePtr lm_device_create(const GPT2& model, const AdamW& opt);
// Zeroes the gradients and runs forward and backward on host token ids, of the subnetwork if one is
// given (EST: device/subnet_device.hpp gathers its slices); the gradients stay on the device.
// Returns the mean loss.
float lm_device_forward_backward(LmDevice& d, const int* inputs, const int* targets, int B, int T,
                                 const GPT2Subnet* subnet = nullptr);
// Mean loss of a forward only (evaluation).
float lm_device_loss(LmDevice& d, const int* inputs, const int* targets, int B, int T);
// The teacher-forced head of RL and SFT on a language model: a forward (logits only) of host token
// ids, and the log-probabilities (B*T, to the host) of the targets under softmax(logits inv_temp),
// with their distributions' entropies when entropy is non-null.
// With LoRA adapters attached (lm_device_attach_lora) the policy is base + adapters unless adapters
// is false (GRPO's reference: the base alone).
void lm_device_token_logprobs(LmDevice& d, const int* inputs, const int* targets, int B, int T, float inv_temp,
                              float* logp, float* entropy = nullptr, bool adapters = true);
// Zeroes the gradients and runs the backward of sum_n weight[n] logp_n (weight: B*T host floats) for
// the last lm_device_token_logprobs; the gradients stay on the device (the adapters' only, with
// adapters: the base is frozen).
void lm_device_logprob_backward(LmDevice& d, const float* weight, float inv_temp);
// LoRA on the device (device/lora_device.hpp): the adapters' parameters go up and their gradients come
// down (they are small: the optimiser stays on the host). `host` must outlive the worker.
void lm_device_attach_lora(LmDevice& d, const LoraAdapters& host);
void lm_device_lora_params_from_host(LmDevice& d, const LoraAdapters& host);
void lm_device_lora_grads_to_host(const LmDevice& d, LoraAdapters& host);
// KV-cached generation (model/decode.hpp's generate) on the device model, with the attached adapters
// if any; tokens generated and FLOPs as Generator's.
void lm_device_generate(LmDevice& d, const GenerateRequest& request, const SamplingSettings& sampling,
                        std::vector<Completion>& out, int64_t* tokens_generated, double* flops);
// A second parameter set on the device (GRPO's frozen reference), and swapping it with the model's:
// two swaps around a forward compute the reference policy.
void lm_device_set_reference(LmDevice& d, const std::vector<float>& params);
void lm_device_swap_reference(LmDevice& d);
// Clips the device gradients to max_norm (<= 0: no clipping) and takes one AdamW step with learning
// rate lr on the device, only where update_mask is 1 if one is given (EST; host bytes, one per
// parameter, uploaded). Returns the norm before clipping.
double lm_device_update(LmDevice& d, double max_norm, float lr, std::span<const uint8_t> update_mask = {});
// The gradients device -> host.grads and host.grads -> device: an all-reduce through the host (MPI).
void lm_device_grads_to_host(const LmDevice& d, GPT2& host);
void lm_device_grads_from_host(LmDevice& d, const GPT2& host);
// The device parameter buffer (the worker's own parameters, as a compressor on the GPU reads them).
std::span<float> lm_device_params(LmDevice& d);
// The device gradient buffer (for a collective on the GPU: NCCL), and scaling it in place.
std::span<float> lm_device_grads(LmDevice& d);
void lm_device_scale_grads(LmDevice& d, float s);
// The parameters alone, device -> host.params and host.params -> device: an outer step staged on
// the host (DiLoCo, SparseLoCo, DeMo), or evaluating other parameters.
void lm_device_params_to_host(const LmDevice& d, GPT2& host);
void lm_device_params_from_host(LmDevice& d, const GPT2& host);
// Parameters and AdamW state (moments, step count) device -> host, and host -> device.
void lm_device_to_host(const LmDevice& d, GPT2& host, AdamW& opt);
void lm_device_from_host(LmDevice& d, const GPT2& host, const AdamW& opt);

}  // namespace frugal
