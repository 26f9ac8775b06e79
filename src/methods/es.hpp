#pragma once
// The evolution-strategies loop that EGGROLL (methods/eggroll.cpp) and OpenAI-ES
// (methods/openai_es.cpp) share - they differ only in how a member's parameters are perturbed,
// which each file supplies as an EsPerturbation. One epoch (= one optimiser step):
//
//   1. every rank regenerates all pairs' noise from the keys (nothing is stored across epochs or sent)
//   2. rank r evaluates members [r N/R, (r+1) N/R): member i plays one episode in its own environment
//      (environment i of the epoch's set, seeded by (seed, epoch): the same start states whatever the
//      rank count); the episode return is its fitness
//   3. the N fitness values are all-gathered - the only bytes that cross the network
//   4. fitness shaping (z-score, group-normalised z-score, or centred ranks)
//   5. every rank computes the identical update g = -sqrt(N) G, G = (1/N) sum_i f_i s_i sigma E_i,
//      and applies it with SGD or Adam: the replicas never diverge.
//
// The policy is a deterministic MLP (greedy action: argmax of logits, or the mean action).
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "harness/method.hpp"
#include "methods/rl.hpp"
#include "model/mlp.hpp"
#include "model/perturb.hpp"
#include "optim/adamw.hpp"

namespace frugal {

// Perturbed forward of one linear layer for a population, and that layer's update direction.
class EsPerturbation {
 public:
  virtual ~EsPerturbation() = default;
  // Regenerate the noise of every pair for this epoch' (key.epoch) and every layer of `mlp`.
  virtual void generate(const MlpView& mlp, uint64_t seed, uint32_t epoch_key, int pairs) = 0;
  // The policy's parameters for this epoch's forwards, given once per epoch before them: a
  // perturbation that computes elsewhere (the GPU: methods/es_device.hpp) copies them there, and its
  // forward then ignores `params`.
  virtual void set_params(std::span<const float> params) { (void)params; }
  // y (batch x out) of layer `layer` for rows owned by members member[b] (before the activation).
  virtual void forward(int layer, const MlpView& mlp, const float* params, const float* x, int batch,
                       const int32_t* member, float* y) = 0;
  // G of layer `layer` (weight into gw, bias into gb) from the shaped fitness of all N members.
  virtual void update(int layer, const MlpView& mlp, const float* fitness, int members, float* gw, float* gb) = 0;
};

// es.population, es.sigma, es.lr, es.optimizer, es.fitness, es.group_size, es.noise_reuse, es.weight_decay.
void add_es_keys(Schema& schema);

// Fitness shaping of raw returns (see methods.md section 1):
//   zscore:        (R - mean) / sqrt(var + 1e-5)
//   group_size G:  subtract the mean of each group of G consecutive members, divide by the global std
//   centered_rank: rank / (N - 1) - 0.5 (ties get distinct ranks in index order)
std::vector<float> shape_fitness(const std::vector<float>& returns, const std::string& kind, int group_size);

// The optimiser of the ES update g = -sqrt(N) G (es.optimizer): Adam (lr es.lr, betas 0.9 / 0.999,
// eps 1e-8, es.weight_decay on matrices) or plain SGD, which keeps no state (empty moments).
AdamW es_optimizer(const Config& config, const ParamLayout& layout);
// params -= lr g (SGD), or one Adam step.
void es_apply(AdamW& opt, std::span<float> params, std::span<const float> g, float lr);

std::unique_ptr<Method> make_es_method(RunContext& ctx, const std::string& name, std::unique_ptr<EsPerturbation> perturbation);

}  // namespace frugal
