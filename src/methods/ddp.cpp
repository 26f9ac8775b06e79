// DDP - the dense baseline: every step, every rank computes gradients on its slice of the global
// batch, the gradients are averaged with one all-reduce, and every rank applies the same AdamW
// update. With one rank this is plain single-process AdamW. With run.device = "cuda" the model and
// AdamW run on each rank's GPU (methods/lm_device.hpp) and the gradients cross ranks through the
// host (MPI), or with run.device_comm = "nccl" on the GPUs (NCCL), never leaving them.
#include "methods/lm.hpp"

namespace frugal {
namespace {

class Ddp final : public LmMethod {
 public:
  explicit Ddp(RunContext& ctx) : LmMethod(ctx, "ddp.") { w_.grads_on_device = w_.device && ctx.comm.has_device_backend(); }

  StepResult step(int64_t step) override {
    StepResult r;
    r.loss = lm_forward_backward(w_, data_.train, step, ctx_.comm.rank());
    lm_allreduce_grads_mean(w_, ctx_.comm, "ddp.grad");
    lm_adamw_update(w_, step, r);
    return r;
  }
};

}  // namespace

FRUGAL_REGISTER_METHOD(ddp, MethodInfo{"ddp", "data-parallel AdamW, gradients all-reduced every step (1 rank = plain AdamW)",
                                       Domain::language, {add_model_keys, add_data_keys, add_optim_keys},
                                       [](RunContext& ctx) { return std::make_unique<Ddp>(ctx); }, /*cuda=*/true,
                                       /*device_comm=*/true});

}  // namespace frugal
