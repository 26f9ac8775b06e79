#pragma once
// The LM EGGROLL's heavy parts on the rank's GPU (run.device = "cuda"): the model's parameters, every
// perturbed matrix's factors (regenerated there from the CPU's keys, bit-identical), the population's
// perturbed KV-cached generation (device/decode_device.hpp) and the update GEMMs over the stacked
// factors. The fitness, the shaping and the optimiser stay on the host with the host model, which
// stays the reference copy (evaluation, checkpoints): the update directions come down once per step
// and the new parameters go up once. In a build without CUDA every call fails with a clear message.
#include <array>
#include <memory>
#include <span>
#include <vector>

#include "model/decode.hpp"
#include "model/gpt2.hpp"

namespace frugal {

struct EggrollLmDevice;  // defined in eggroll_lm_device.cpp (CUDA builds)
struct EggrollLmDeviceDeleter {
  void operator()(EggrollLmDevice* d) const;
};
using EggrollLmDevicePtr = std::unique_ptr<EggrollLmDevice, EggrollLmDeviceDeleter>;

// The host model's parameters on the current GPU; sigma and rank of the perturbations.
EggrollLmDevicePtr eggroll_lm_device_create(const GPT2& model, float sigma, int rank);
// The host model's (new) parameters up to the device.
void eggroll_lm_device_params(EggrollLmDevice& d, const GPT2& model);
// Every pair's factors of the perturbed matrices (by LoraSlot) of epoch' key: NoiseKey{seed, 16 +
// matrix kind, layer, key}, as the CPU method.
void eggroll_lm_device_regenerate(EggrollLmDevice& d, uint64_t seed, uint32_t key, const std::array<bool, 4>& perturbed,
                                  int pairs);
// The population's perturbed generation; tokens generated and FLOPs as Generator's.
void eggroll_lm_device_generate(EggrollLmDevice& d, const GenerateRequest& request, const SamplingSettings& sampling,
                                std::vector<Completion>& out, int64_t* tokens_generated, double* flops);
// grads (host, the model's layout) = scale G_W for every perturbed matrix (one GEMM each on the
// device), 0 elsewhere; fitness: the N shaped values.
void eggroll_lm_device_update(EggrollLmDevice& d, std::span<const float> fitness, float scale, std::vector<float>& grads);

}  // namespace frugal
