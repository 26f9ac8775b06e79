#include "methods/eggroll_lm_device.hpp"

#include "core/error.hpp"
#include "harness/placement.hpp"
#ifdef FRUGAL_HAVE_CUDA
#include "device/decode_device.hpp"
#include "device/gpt2_device.hpp"
#include "model/gpt2_pass.hpp"
#endif

namespace frugal {

#ifdef FRUGAL_HAVE_CUDA

struct EggrollLmDevice {
  GPT2Device model;
  float sigma = 0;
  int rank = 1;
  PopulationFactorsDevice population;
  GeneratorDevice gen;
};

void EggrollLmDeviceDeleter::operator()(EggrollLmDevice* d) const { delete d; }

EggrollLmDevicePtr eggroll_lm_device_create(const GPT2& model, float sigma, int rank) {
  EggrollLmDevicePtr d(new EggrollLmDevice);
  d->model = gpt2_to_device(model);
  d->sigma = sigma, d->rank = rank;
  return d;
}

void eggroll_lm_device_params(EggrollLmDevice& d, const GPT2& model) {
  d.model.params.upload(model.params.data(), model.params.size());
}

void eggroll_lm_device_regenerate(EggrollLmDevice& d, uint64_t seed, uint32_t key, const std::array<bool, 4>& perturbed,
                                  int pairs) {
  population_factors_generate(d.population, d.model.config, perturbed, seed, key, pairs, d.rank, d.sigma);
}

void eggroll_lm_device_generate(EggrollLmDevice& d, const GenerateRequest& request, const SamplingSettings& sampling,
                                std::vector<Completion>& out, int64_t* tokens_generated, double* flops) {
  generate(d.model, nullptr, &d.population.noise, request, sampling, d.gen, out);
  *tokens_generated = d.gen.tokens_generated;
  *flops = d.gen.flops;
}

void eggroll_lm_device_update(EggrollLmDevice& d, std::span<const float> fitness, float scale, std::vector<float>& grads) {
  // Only the perturbed matrices have an update: each is computed on the device and brought down into
  // its place in the host gradient, zero elsewhere.
  grads.assign(d.model.grads.size(), 0.0f);
  const float* base = d.model.grads.data();
  for (int l = 0; l < d.model.config.num_layers; l++) {
    const GPT2BlockWeights w = gpt2_pass::block_weights(d.model, l);
    float* grad[4] = {w.dqkvw, w.dattprojw, w.dfcw, w.dfcprojw};
    for (int k = 0; k < 4; k++) {
      const cuda::LowRankView<float>* f = d.population.noise.factors[size_t(l)][size_t(k)];
      if (!f) continue;
      const size_t n = size_t(f->rows) * f->cols;
      cuda::lowrank_update(grad[k], *f, fitness.data(), static_cast<int>(fitness.size()), d.sigma);
      cuda::scale(grad[k], scale, n);
      cuda::copy_to_host(grads.data() + (grad[k] - base), grad[k], n);
    }
  }
}

#else  // a build without CUDA: placement refuses run.device = "cuda" first; these say it again

struct EggrollLmDevice {};
void EggrollLmDeviceDeleter::operator()(EggrollLmDevice* d) const { delete d; }
EggrollLmDevicePtr eggroll_lm_device_create(const GPT2&, float, int) { fail_without_cuda(); }
void eggroll_lm_device_params(EggrollLmDevice&, const GPT2&) { fail_without_cuda(); }
void eggroll_lm_device_regenerate(EggrollLmDevice&, uint64_t, uint32_t, const std::array<bool, 4>&, int) { fail_without_cuda(); }
void eggroll_lm_device_generate(EggrollLmDevice&, const GenerateRequest&, const SamplingSettings&,
                                std::vector<Completion>&, int64_t*, double*) {
  fail_without_cuda();
}
void eggroll_lm_device_update(EggrollLmDevice&, std::span<const float>, float, std::vector<float>&) { fail_without_cuda(); }

#endif

}  // namespace frugal
