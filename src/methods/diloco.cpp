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

class DiLoCo final : public Method {
 public:
  explicit DiLoCo(RunContext& ctx)
      : ctx_(ctx), w_(make_lm_worker(ctx)), global_(w_.model.params), momentum_(global_.size(), 0.0f),
        delta_(global_.size()) {
    inner_steps_ = ctx.config.integer("diloco.inner_steps");
    outer_lr_ = static_cast<float>(ctx.config.real("diloco.outer_lr"));
    mu_ = static_cast<float>(ctx.config.real("diloco.outer_momentum"));
    nesterov_ = ctx.config.boolean("diloco.nesterov");
  }

  StepResult step(int64_t step) override {
    StepResult r = lm_local_adamw_step(w_, ctx_.data.train, step, ctx_.comm.rank());
    if ((step + 1) % inner_steps_ == 0) outer_step();
    return r;
  }

  double evaluate(int64_t batches) override {
    // The global parameters: what the method would ship, not one worker's drift.
    return lm_evaluate_params(w_, global_, ctx_.data.val, batches, ctx_.config.integer("eval.batch_size"), ctx_.comm);
  }
  void save(StateWriter& out) const override {
    lm_save(w_, out, "diloco.inner.");
    out.put("diloco.global", global_);
    out.put("diloco.momentum", momentum_);
  }
  void load(const StateReader& in) override {
    lm_load(w_, in, "diloco.inner.");
    in.get("diloco.global", global_);
    in.get("diloco.momentum", momentum_);
  }
  int64_t num_params() const override { return static_cast<int64_t>(global_.size()); }

 private:
  void outer_step() {
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
  }

  RunContext& ctx_;
  LmWorker w_;
  std::vector<float> global_, momentum_, delta_;
  int64_t inner_steps_ = 1;
  float outer_lr_ = 0.7f, mu_ = 0.9f;
  bool nesterov_ = true;
};

void add_keys(Schema& s) {
  s.add("diloco.inner_steps", int64_t{15}, "H: inner AdamW steps between outer steps (paper 500; SparseLoCo's comparison 15)", 1, 1e9);
  s.add("diloco.outer_lr", 0.7, "eta: outer learning rate", 0.0, 100.0);
  s.add("diloco.outer_momentum", 0.9, "mu: outer momentum", 0.0, 0.9999);
  s.add("diloco.nesterov", true, "Nesterov outer momentum (theta -= eta (Delta + mu m)); false: heavy ball (theta -= eta m)");
}

}  // namespace

FRUGAL_REGISTER_METHOD(diloco, MethodInfo{"diloco", "H local AdamW steps, then one dense all-reduce of pseudo-gradients and outer Nesterov SGD",
                                          add_keys, [](RunContext& ctx) { return std::make_unique<DiLoCo>(ctx); }});

}  // namespace frugal
