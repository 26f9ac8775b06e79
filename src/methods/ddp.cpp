// DDP - the dense baseline: every step, every rank computes gradients on its slice of the global
// batch, the gradients are averaged with one all-reduce, and every rank applies the same AdamW
// update. With one rank this is plain single-process AdamW.
#include "methods/lm.hpp"

namespace frugal {
namespace {

class Ddp final : public Method {
 public:
  explicit Ddp(RunContext& ctx) : ctx_(ctx), w_(make_lm_worker(ctx)) {}

  StepResult step(int64_t step) override {
    StepResult r;
    r.loss = lm_forward_backward(w_, ctx_.data.train, step, ctx_.comm.rank());
    lm_average_grads(w_, ctx_.comm, "ddp.grad");
    lm_adamw_update(w_, step, r);
    return r;
  }

  double evaluate(int64_t batches) override {
    return lm_evaluate(w_, ctx_.data.val, batches, ctx_.config.integer("eval.batch_size"), ctx_.comm);
  }
  void save(StateWriter& out) const override { lm_save(w_, out, "ddp."); }
  void load(const StateReader& in) override { lm_load(w_, in, "ddp."); }
  int64_t num_params() const override { return static_cast<int64_t>(w_.model.params.size()); }

 private:
  RunContext& ctx_;
  LmWorker w_;
};

}  // namespace

FRUGAL_REGISTER_METHOD(ddp, MethodInfo{"ddp", "data-parallel AdamW, gradients all-reduced every step (1 rank = plain AdamW)",
                                       nullptr, [](RunContext& ctx) { return std::make_unique<Ddp>(ctx); }});

}  // namespace frugal
