#pragma once
// A language-model worker's model and AdamW state on its rank's GPU (run.device = "cuda"): the
// device twins of src/device behind calls that plain C++ builds without CUDA too (they then fail
// with a clear message). The worker's host model stays the reference copy for what the harness
// does on the host: checkpoints (lm_device_to_host / from_host around StateFields) and the
// gradient all-reduce, which goes through the host (MPI; NCCL on device buffers is issue 14's next
// step): lm_device_forward_backward leaves the gradients in the host model, lm_device_update takes
// them back.
#include <memory>

#include "model/gpt2.hpp"
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
// Zeroes the gradients, runs forward and backward on host token ids, and downloads the gradients
// into host.grads. Returns the mean loss.
float lm_device_forward_backward(LmDevice& d, GPT2& host, const int* inputs, const int* targets, int B, int T);
// Mean loss of a forward only (evaluation).
float lm_device_loss(LmDevice& d, const int* inputs, const int* targets, int B, int T);
// Uploads host.grads (e.g. after the all-reduce), clips them to max_norm (<= 0: no clipping) and
// takes one AdamW step with learning rate lr on the device. Returns the norm before clipping.
double lm_device_update(LmDevice& d, const GPT2& host, double max_norm, float lr);
// The parameters alone, device -> host.params and host.params -> device: an outer step staged on
// the host (DiLoCo, SparseLoCo, DeMo), or evaluating other parameters.
void lm_device_params_to_host(const LmDevice& d, GPT2& host);
void lm_device_params_from_host(LmDevice& d, const GPT2& host);
// One step with no communication (DiLoCo's and SparseLoCo's inner steps): forward, backward, clip
// and AdamW with the gradients never leaving the GPU. Returns the mean loss; *grad_norm gets the
// norm before clipping.
float lm_device_local_step(LmDevice& d, const int* inputs, const int* targets, int B, int T, double max_norm, float lr,
                           double* grad_norm);
// Parameters and AdamW state (moments, step count) device -> host, and host -> device.
void lm_device_to_host(const LmDevice& d, GPT2& host, AdamW& opt);
void lm_device_from_host(LmDevice& d, const GPT2& host, const AdamW& opt);

}  // namespace frugal
