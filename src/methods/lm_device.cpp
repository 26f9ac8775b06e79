#include "methods/lm_device.hpp"

#include "core/error.hpp"
#include "harness/placement.hpp"
#ifdef FRUGAL_HAVE_CUDA
#include "device/adamw_device.hpp"
#include "device/decode_device.hpp"
#include "device/gpt2_device.hpp"
#include "device/lora_device.hpp"
#include "device/subnet_device.hpp"
#include "kernels/cuda/kernels.hpp"
#endif

namespace frugal {

#ifdef FRUGAL_HAVE_CUDA

struct LmDevice {
  GPT2Device model;
  AdamWDevice opt;
  // The token head's last batch: targets for the backward, the per-row log-probabilities and weights.
  cuda::IntDeviceBuffer head_targets;
  cuda::DeviceBuffer head_rows;
  float head_inv_temp = 1.0f;
  // EST: this step's subnetwork as the model's block hook, and the update mask.
  SubnetSlicesDevice subnet;
  cuda::ByteDeviceBuffer update_mask;
  // RL: generation, the reference parameters, the entropies of the token head.
  GeneratorDevice gen;
  cuda::DeviceBuffer reference, head_entropy;
  // LoRA: the adapters on the device, and the hook of the token head's last forward.
  std::unique_ptr<LoraDevice> lora;
  BlockHook<GPT2Device>* head_hook = nullptr;
  // Forwards so far, and the token head's: its backward needs the activations of its own forward,
  // of the parameters then current (not a reference forward's or an evaluation's since).
  uint64_t forwards = 0, head_forward = 0;
  const float* head_params = nullptr;
};

void LmDeviceDeleter::operator()(LmDevice* d) const { delete d; }

LmDevicePtr lm_device_create(const GPT2& model, const AdamW& opt) {
  LmDevicePtr d(new LmDevice);
  // model.dtype = bf16 (placement set this thread's matmul precision from it) means bf16 activations.
  d->model = gpt2_to_device(model, cuda::matmul_precision() == cuda::MatmulPrecision::bf16);
  d->opt = adamw_to_device(opt);
  return d;
}

float lm_device_forward_backward(LmDevice& d, const int* inputs, const int* targets, int B, int T,
                                 const GPT2Subnet* subnet) {
  BlockHook<GPT2Device>* blocks = nullptr;
  if (subnet) {
    d.subnet.set(*subnet, d.model.config);
    blocks = &d.subnet;
  }
  gpt2_zero_grad(d.model);
  const float loss = gpt2_forward(d.model, inputs, targets, B, T, blocks);
  d.forwards++;
  gpt2_backward(d.model, blocks);
  return loss;
}

float lm_device_loss(LmDevice& d, const int* inputs, const int* targets, int B, int T) {
  d.forwards++;
  return gpt2_forward(d.model, inputs, targets, B, T);
}

void lm_device_token_logprobs(LmDevice& d, const int* inputs, const int* targets, int B, int T, float inv_temp,
                              float* logp, float* entropy, bool adapters) {
  const GPT2Config& c = d.model.config;
  const size_t BT = size_t(B) * T;
  for (size_t i = 0; i < BT; i++)
    FRUGAL_CHECK(targets[i] >= 0 && targets[i] < c.vocab_size, "target id ", targets[i], " at position ", i,
                 " is outside the vocabulary [0, ", c.vocab_size, ")");
  d.head_hook = adapters && d.lora ? d.lora.get() : nullptr;
  gpt2_forward(d.model, inputs, nullptr, B, T, d.head_hook);
  d.head_forward = ++d.forwards;
  d.head_params = d.model.params.data();
  if (d.head_targets.size() != BT) d.head_targets = cuda::IntDeviceBuffer(BT);
  d.head_targets.upload(targets, BT);
  d.head_rows.grow(BT);
  if (entropy) d.head_entropy.grow(BT);
  gpt2_token_logprob_forward(d.model, d.head_rows.data(), entropy ? d.head_entropy.data() : nullptr,
                             d.head_targets.data(), inv_temp);
  d.head_rows.download(logp, BT);
  if (entropy) d.head_entropy.download(entropy, BT);
  d.head_inv_temp = inv_temp;
}

void lm_device_logprob_backward(LmDevice& d, const float* weight, float inv_temp) {
  const size_t BT = d.head_targets.size();
  FRUGAL_CHECK(BT > 0 && BT == gpt2_positions(d.model) && inv_temp == d.head_inv_temp &&
                   d.head_forward == d.forwards && d.head_params == d.model.params.data(),
               "internal: lm_device_logprob_backward needs lm_device_token_logprobs of the same batch and parameters "
               "as the last forward");
  d.head_rows.upload(weight, BT);  // the log-probabilities are on the host now: reuse the buffer
  gpt2_zero_grad(d.model);  // with adapters: the frozen base's bias and LayerNorm gradients, unused scratch
  if (d.head_hook) d.lora->grads.zero();
  gpt2_token_logprob_backward(d.model, d.head_targets.data(), d.head_rows.data(), inv_temp);
  gpt2_backward_from_dlogits(d.model, d.head_hook);
}

void lm_device_generate(LmDevice& d, const GenerateRequest& request, const SamplingSettings& sampling,
                        std::vector<Completion>& out, int64_t* tokens_generated, double* flops) {
  generate(d.model, d.lora.get(), nullptr, request, sampling, d.gen, out);
  *tokens_generated = d.gen.tokens_generated;
  *flops = d.gen.flops;
}

void lm_device_attach_lora(LmDevice& d, const LoraAdapters& host) { d.lora = std::make_unique<LoraDevice>(host); }

void lm_device_lora_params_from_host(LmDevice& d, const LoraAdapters& host) {
  FRUGAL_CHECK(d.lora, "internal: no LoRA adapters attached to the device worker");
  d.lora->params.upload(host.params.data(), host.params.size());
}

void lm_device_lora_grads_to_host(const LmDevice& d, LoraAdapters& host) {
  FRUGAL_CHECK(d.lora, "internal: no LoRA adapters attached to the device worker");
  d.lora->grads.download(host.grads.data(), host.grads.size());
}

void lm_device_set_reference(LmDevice& d, const std::vector<float>& params) {
  FRUGAL_CHECK(params.size() == d.model.params.size(), "internal: reference parameters of another model");
  d.reference = cuda::DeviceBuffer(params);
}

void lm_device_swap_reference(LmDevice& d) {
  FRUGAL_CHECK(d.reference.size() == d.model.params.size(), "internal: no reference parameters on the device");
  std::swap(d.model.params, d.reference);
}

double lm_device_update(LmDevice& d, double max_norm, float lr, std::span<const uint8_t> update_mask) {
  const double norm = cuda::clip_grad_norm(d.model.grads.data(), d.model.grads.size(), max_norm);
  const uint8_t* keep = nullptr;
  if (!update_mask.empty()) {
    FRUGAL_CHECK(update_mask.size() == d.model.params.size(), "internal: an update mask of ", update_mask.size(),
                 " entries for ", d.model.params.size(), " parameters");
    if (d.update_mask.size() != update_mask.size()) d.update_mask = cuda::ByteDeviceBuffer(update_mask.size());
    d.update_mask.upload(update_mask.data(), update_mask.size());
    keep = d.update_mask.data();
  }
  adamw_step(d.opt, d.model.params.data(), d.model.grads.data(), lr, keep);
  return norm;
}

void lm_device_grads_to_host(const LmDevice& d, GPT2& host) {
  d.model.grads.download(host.grads.data(), host.grads.size());
}

void lm_device_grads_from_host(LmDevice& d, const GPT2& host) {
  d.model.grads.upload(host.grads.data(), host.grads.size());
}

std::span<float> lm_device_params(LmDevice& d) { return {d.model.params.data(), d.model.params.size()}; }

std::span<float> lm_device_grads(LmDevice& d) { return {d.model.grads.data(), d.model.grads.size()}; }

void lm_device_scale_grads(LmDevice& d, float s) { cuda::scale(d.model.grads.data(), s, d.model.grads.size()); }

void lm_device_params_to_host(const LmDevice& d, GPT2& host) {
  d.model.params.download(host.params.data(), host.params.size());
}

void lm_device_params_from_host(LmDevice& d, const GPT2& host) {
  d.model.params.upload(host.params.data(), host.params.size());
}

void lm_device_to_host(const LmDevice& d, GPT2& host, AdamW& opt) {
  lm_device_params_to_host(d, host);
  d.opt.m.download(opt.m.data(), opt.m.size());
  d.opt.v.download(opt.v.data(), opt.v.size());
  opt.t = d.opt.host.t;
}

void lm_device_from_host(LmDevice& d, const GPT2& host, const AdamW& opt) {
  lm_device_params_from_host(d, host);
  d.opt.m.upload(opt.m.data(), opt.m.size());
  d.opt.v.upload(opt.v.data(), opt.v.size());
  d.opt.host.t = opt.t;
}

#else  // a build without CUDA: placement refuses run.device = "cuda" first; these say it again

struct LmDevice {};
void LmDeviceDeleter::operator()(LmDevice* d) const { delete d; }
LmDevicePtr lm_device_create(const GPT2&, const AdamW&) { fail_without_cuda(); }
float lm_device_forward_backward(LmDevice&, const int*, const int*, int, int, const GPT2Subnet*) { fail_without_cuda(); }
float lm_device_loss(LmDevice&, const int*, const int*, int, int) { fail_without_cuda(); }
void lm_device_token_logprobs(LmDevice&, const int*, const int*, int, int, float, float*, float*, bool) { fail_without_cuda(); }
void lm_device_attach_lora(LmDevice&, const LoraAdapters&) { fail_without_cuda(); }
void lm_device_lora_params_from_host(LmDevice&, const LoraAdapters&) { fail_without_cuda(); }
void lm_device_lora_grads_to_host(const LmDevice&, LoraAdapters&) { fail_without_cuda(); }
void lm_device_generate(LmDevice&, const GenerateRequest&, const SamplingSettings&, std::vector<Completion>&, int64_t*,
                        double*) {
  fail_without_cuda();
}
void lm_device_set_reference(LmDevice&, const std::vector<float>&) { fail_without_cuda(); }
void lm_device_swap_reference(LmDevice&) { fail_without_cuda(); }
void lm_device_logprob_backward(LmDevice&, const float*, float) { fail_without_cuda(); }
double lm_device_update(LmDevice&, double, float, std::span<const uint8_t>) { fail_without_cuda(); }
void lm_device_grads_to_host(const LmDevice&, GPT2&) { fail_without_cuda(); }
void lm_device_grads_from_host(LmDevice&, const GPT2&) { fail_without_cuda(); }
std::span<float> lm_device_params(LmDevice&) { fail_without_cuda(); }
std::span<float> lm_device_grads(LmDevice&) { fail_without_cuda(); }
void lm_device_scale_grads(LmDevice&, float) { fail_without_cuda(); }
void lm_device_params_to_host(const LmDevice&, GPT2&) { fail_without_cuda(); }
void lm_device_params_from_host(LmDevice&, const GPT2&) { fail_without_cuda(); }
void lm_device_to_host(const LmDevice&, GPT2&, AdamW&) { fail_without_cuda(); }
void lm_device_from_host(LmDevice&, const GPT2&, const AdamW&) { fail_without_cuda(); }

#endif

}  // namespace frugal
