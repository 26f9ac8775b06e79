// EGGROLL (Sarkar et al., "Evolution Strategies at the Hyperscale", 2025): evolution strategies
// whose matrix perturbations are rank r, E = A B^T / sqrt(r), so that the population's forward is
// one shared GEMM plus r dot products and r axpys per member, and the update is one GEMM over the
// stacked factors. The loop (rollout, fitness all-gather, shaping, optimiser) is methods/es.cpp;
// the low-rank arithmetic is model/perturb.cpp (run.device = "cuda": methods/es_device.cpp). Biases
// get full-rank noise.
#include "methods/es.hpp"
#include "methods/es_device.hpp"

namespace frugal {
namespace {

class LowRankPerturbation final : public EsPerturbation {
 public:
  LowRankPerturbation(int rank, float sigma) : rank_(rank), sigma_(sigma) {}

  void generate(const MlpView& mlp, uint64_t seed, uint32_t epoch_key, int pairs) override {
    weights_.resize(mlp.layers());
    biases_.resize(mlp.layers());
    for (int l = 0; l < mlp.layers(); l++) {
      // Keys: (seed, tensor 0 = weight / 1 = bias, layer, epoch', pair).
      lowrank_generate(weights_[l], NoiseKey{seed, 0, uint32_t(l), epoch_key}, 0, pairs, mlp.sizes[l + 1], mlp.sizes[l], rank_);
      vector_noise_generate(biases_[l], NoiseKey{seed, 1, uint32_t(l), epoch_key}, 0, pairs, mlp.sizes[l + 1]);
    }
  }
  void forward(int l, const MlpView& mlp, const float* params, const float* x, int batch, const int32_t* member,
               float* y) override {
    lowrank_linear_forward(x, batch, params + mlp.w_off[l], params + mlp.b_off[l], member, weights_[l], &biases_[l],
                           sigma_, y);
  }
  void update(int l, const MlpView&, const float* fitness, int members, float* gw, float* gb) override {
    lowrank_update(weights_[l], fitness, members, sigma_, gw, scratch_);
    vector_noise_update(biases_[l], fitness, members, sigma_, gb);
  }

 private:
  int rank_;
  float sigma_;
  std::vector<LowRankFactors> weights_;
  std::vector<VectorNoise> biases_;
  std::vector<float> scratch_;
};

void add_eggroll_keys(Schema& s) {
  s.add("eggroll.rank", int64_t{8}, "rank r of each matrix perturbation", 1, 1 << 20);
}

}  // namespace

FRUGAL_REGISTER_METHOD(eggroll, MethodInfo{"eggroll", "evolution strategies with rank-r perturbations (EGGROLL), population sharded over ranks",
                                           Domain::rl, {add_rl_keys, add_es_keys, add_eggroll_keys},
                                           [](RunContext& ctx) {
                                             const int rank = static_cast<int>(ctx.config.integer("eggroll.rank"));
                                             const float sigma = static_cast<float>(ctx.config.real("es.sigma"));
                                             return make_es_method(ctx, "eggroll",
                                                                   ctx.config.str("run.device") == "cuda"
                                                                       ? make_lowrank_perturbation_cuda(rank, sigma)
                                                                       : std::make_unique<LowRankPerturbation>(rank, sigma));
                                           },
                                           /*cuda=*/true});

}  // namespace frugal
