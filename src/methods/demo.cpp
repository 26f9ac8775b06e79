// DeMo (Peng et al. 2024, "Decoupled Momentum Optimization"), the third comparison: no inner
// loop; every step each rank folds its gradient into a local momentum, transmits only the largest
// DCT coefficients of it, keeps the rest as error feedback, and applies the sign of the averaged
// transmitted component (methods.md section 8):
//   delta <- decay delta + lr g;  C = DCT-II(delta) per 64x64 tile;  keep top-k |C| per tile;
//   delta <- delta - IDCT(kept);  all-gather kept;  p <- p - lr (sign(IDCT(mean kept)) + wd p).
// The residual is held as DCT(delta) (compress/dct.hpp: the same step, one transform instead of two).
#include <cmath>

#include "compress/dct.hpp"
#include "methods/lm.hpp"
#include "methods/outer_sync.hpp"

namespace frugal {
namespace {

using namespace compress;

class Demo final : public LmMethod {
 public:
  explicit Demo(RunContext& ctx)
      : LmMethod(ctx, "demo."), delta_dct_(w_.model.params.size(), 0.0f), coeffs_(delta_dct_.size()),
        update_(delta_dct_.size()) {
    const Config& c = ctx.config;
    opt_.decay = static_cast<float>(c.real("demo.decay"));
    opt_.top_k = c.integer("demo.top_k");
    weight_decay_ = static_cast<float>(c.real("optim.weight_decay"));
    wire_.index = index_coding_from(c.str("demo.index_coding"));
    blocks_ = blocks_for(w_.model.layout);
    for (const auto& b : blocks_) plans_.push_back(make_dct_plan(b.layout));
    sent_.resize(blocks_.size());
  }

  StepResult step(int64_t step) override {
    StepResult r;
    r.loss = lm_forward_backward(w_, data_.train, step, ctx_.comm.rank());
    r.grad_norm = clip_grad_norm(w_.model.grads, w_.grad_clip);
    r.lr = schedule_lr(w_.schedule, step);
    opt_.lr = static_cast<float>(r.lr);
    for (size_t b = 0; b < blocks_.size(); b++)
      demo_compress(delta_dct_.data() + blocks_[b].offset, w_.model.grads.data() + blocks_[b].offset, blocks_[b].layout,
                    plans_[b], opt_, sent_[b]);
    const WireStats stats = sparse_allgather_aggregate(ctx_.comm, sent_, blocks_, Aggregation::mean_all, wire_,
                                                       coeffs_.data(), workspace_, "demo.coeffs");
    for (size_t b = 0; b < blocks_.size(); b++)
      idct_tiles(coeffs_.data() + blocks_[b].offset, blocks_[b].layout, plans_[b], update_.data() + blocks_[b].offset);
    float* p = w_.model.params.data();
    const float lr = opt_.lr, wd = weight_decay_;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < update_.size(); i++) {
      const float s = update_[i] > 0 ? 1.0f : (update_[i] < 0 ? -1.0f : 0.0f);
      p[i] -= lr * (s + wd * p[i]);
    }
    lm_params_to_device(w_);  // on a GPU: only the forward and backward run there
    r.samples = int64_t(w_.local_batch) * w_.seq_len;
    r.flops = lm_step_flops(w_);
    r.metrics = wire_metrics(&stats);
    return r;
  }

  // No AdamW: the parameters and the local residual are the whole state.
  // The host parameters are the reference copy: every update happens on the host.
  void state(StateFields& f) override {
    f.field("demo.params", w_.model.params);
    f.field("demo.delta_dct", delta_dct_);
    if (f.loading()) lm_params_to_device(w_);
  }

 private:
  std::vector<float> delta_dct_, coeffs_, update_;  // residual DCT(delta), aggregate, its inverse
  std::vector<CompressBlock> blocks_;
  std::vector<DctPlan> plans_;
  std::vector<SparseTensor> sent_;
  DecodeWorkspace workspace_;
  DemoOptions opt_;
  float weight_decay_ = 0;
  EncodeOptions wire_;  // fp32 coefficients: the value coding does not apply
};

void add_keys(Schema& s) {
  s.add("demo.decay", 0.999, "momentum decay of the local residual delta", 0.0, 1.0);
  s.add("demo.top_k", int64_t{32}, "DCT coefficients kept per 4096 (32 per 64x64 tile)", 1, 4096);
  s.add("demo.index_coding", std::string("best"), "in-chunk index code: packed12, rice, best", {}, {}, {"packed12", "rice", "best"});
}

}  // namespace

FRUGAL_REGISTER_METHOD(demo, MethodInfo{"demo", "DCT top-k of a local momentum every step, all-gathered; sign update (no inner loop)",
                                        Domain::language, {add_model_keys, add_data_keys, add_optim_keys, add_keys},
                                        [](RunContext& ctx) { return std::make_unique<Demo>(ctx); }, /*cuda=*/true});

}  // namespace frugal
