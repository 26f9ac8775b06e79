// OpenAI-ES (Salimans et al., 2017) - the full-rank baseline of EGGROLL: each antithetic pair's
// perturbation of a weight is a full m x n Gaussian matrix, and each member's forward is its own
// matrix-vector product with W + s sigma E. Same loop as EGGROLL (methods/es.cpp); full-rank
// arithmetic in model/perturb.cpp (run.device = "cuda": methods/es_device.cpp).
#include "methods/es.hpp"
#include "methods/es_device.hpp"

namespace frugal {
namespace {

class FullRankPerturbation final : public EsPerturbation {
 public:
  explicit FullRankPerturbation(float sigma) : sigma_(sigma) {}

  void generate(const MlpView& mlp, uint64_t seed, uint32_t epoch_key, int pairs) override {
    weights_.resize(mlp.layers());
    biases_.resize(mlp.layers());
    for (int l = 0; l < mlp.layers(); l++) {
      fullrank_generate(weights_[l], NoiseKey{seed, 0, uint32_t(l), epoch_key}, 0, pairs, mlp.sizes[l + 1], mlp.sizes[l]);
      vector_noise_generate(biases_[l], NoiseKey{seed, 1, uint32_t(l), epoch_key}, 0, pairs, mlp.sizes[l + 1]);
    }
  }
  void forward(int l, const MlpView& mlp, const float* params, const float* x, int batch, const int32_t* member,
               float* y) override {
    fullrank_linear_forward(x, batch, params + mlp.w_off[l], params + mlp.b_off[l], member, weights_[l], &biases_[l],
                            sigma_, y);
  }
  void update(int l, const MlpView&, const float* fitness, int members, float* gw, float* gb) override {
    fullrank_update(weights_[l], fitness, members, sigma_, gw);
    vector_noise_update(biases_[l], fitness, members, sigma_, gb);
  }

 private:
  float sigma_;
  std::vector<FullRankNoise> weights_;
  std::vector<VectorNoise> biases_;
};

}  // namespace

FRUGAL_REGISTER_METHOD(openai_es, MethodInfo{"openai_es", "evolution strategies with full-rank Gaussian perturbations (OpenAI-ES)",
                                             Domain::rl, {add_rl_keys, add_es_keys},
                                             [](RunContext& ctx) {
                                               const float sigma = static_cast<float>(ctx.config.real("es.sigma"));
                                               return make_es_method(ctx, "openai_es",
                                                                     ctx.config.str("run.device") == "cuda"
                                                                         ? make_fullrank_perturbation_cuda(sigma)
                                                                         : std::make_unique<FullRankPerturbation>(sigma));
                                             },
                                             /*cuda=*/true});

}  // namespace frugal
