// DiLoCo (Douillard et al. 2023) - the communication baseline: R workers (= ranks), each with its
// own data and its own inner AdamW state (never synchronised), run H inner steps from the global
// parameters theta_g with no communication; then one dense all-reduce averages the
// pseudo-gradients Delta_r = theta_g - theta_r and an outer Nesterov SGD step moves theta_g:
//   m <- mu m + Delta;   theta_g <- theta_g - eta (Delta + mu m)
// and every worker restarts from the new theta_g.
#include <cmath>

#include "methods/lm.hpp"

namespace frugal {
namespace {

class DiLoCo final : public LmMethod {
 public:
  explicit DiLoCo(RunContext& ctx)
      : LmMethod(ctx, "diloco.inner.", "diloco.global"), momentum_(global_.size(), 0.0f), delta_(global_.size()),
        inner_steps_(ctx.config.integer("diloco.inner_steps")),
        outer_lr_(static_cast<float>(ctx.config.real("diloco.outer_lr"))),
        mu_(static_cast<float>(ctx.config.real("diloco.outer_momentum"))), nesterov_(ctx.config.boolean("diloco.nesterov")) {
    w_.grads_on_device = w_.device != nullptr;  // local steps only: the gradients never leave the GPU
  }

  StepResult step(int64_t step) override {
    StepResult r = lm_local_adamw_step(w_, data_.train, step, ctx_.comm.rank());
    if ((step + 1) % inner_steps_ == 0) outer_step();
    return r;
  }

  void state(StateFields& f) override {
    LmMethod::state(f);  // inner worker and global parameters
    f.field("diloco.momentum", momentum_);
  }

 private:
  // On a GPU the inner steps run there and this outer step on the host (parameters down, the new
  // global parameters up: two transfers per H steps).
  void outer_step() {
    lm_params_to_host(w_);
    const size_t n = global_.size();
    const float* local = w_.model.params.data();
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) delta_[i] = global_[i] - local[i];
    ctx_.comm.allreduce(std::span<float>(delta_), ReduceOp::sum, "diloco.outer");
    const float inv = 1.0f / static_cast<float>(ctx_.comm.size());
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
      const float d = delta_[i] * inv;
      momentum_[i] = mu_ * momentum_[i] + d;
      global_[i] -= outer_lr_ * (nesterov_ ? d + mu_ * momentum_[i] : momentum_[i]);
    }
    w_.model.params = global_;  // every worker restarts from theta_g; inner AdamW state is kept
    lm_params_to_device(w_);
  }

  std::vector<float> momentum_, delta_;
  const int64_t inner_steps_;
  const float outer_lr_, mu_;
  const bool nesterov_;
};

void add_keys(Schema& s) {
  s.add("diloco.inner_steps", int64_t{15}, "H: inner AdamW steps between outer steps (paper 500; SparseLoCo's comparison 15)", 1, 1e9);
  s.add("diloco.outer_lr", 0.7, "eta: outer learning rate", 0.0, 100.0);
  s.add("diloco.outer_momentum", 0.9, "mu: outer momentum", 0.0, 0.9999);
  s.add("diloco.nesterov", true, "Nesterov outer momentum (theta -= eta (Delta + mu m)); false: heavy ball (theta -= eta m)");
}

}  // namespace

FRUGAL_REGISTER_METHOD(diloco, MethodInfo{"diloco", "H local AdamW steps, then one dense all-reduce of pseudo-gradients and outer Nesterov SGD",
                                          Domain::language, {add_model_keys, add_data_keys, add_optim_keys, add_keys},
                                          [](RunContext& ctx) { return std::make_unique<DiLoCo>(ctx); }, /*cuda=*/true});

}  // namespace frugal
