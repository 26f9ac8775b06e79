// SparseLoCo (Sarfi et al. 2025): DiLoCo's inner loop, but the outer step sends a compressed
// pseudo-gradient - error feedback, per-chunk top-k, 2-bit values - and replaces outer momentum
// by the error-feedback buffer. Per replica r and outer step (methods.md section 7):
//   g = theta_g - theta_r;  e <- beta e + g;  keep the top-k |e| per chunk, 2-bit quantise;
//   e <- e - sent;  all-gather (indices, codes, levels) from every replica;
//   aggregate each coordinate as the mean over the replicas that selected it;
//   theta_g <- theta_g - alpha * aggregate;  theta_r <- theta_g.
// Aggregation runs in rank order, so every replica ends the outer step with bit-identical theta_g.
// run.device = "cuda": the inner steps run wholly on the GPU, and so do the pseudo-gradient, the error
// feedback and the top-k of the outer step (methods/sparseloco_device.hpp: the kept entries come down,
// the host quantises them); the exchange, aggregation and outer update run on the host, whose global
// parameters go back up once per outer step.
#include <cmath>

#include "compress/error_feedback.hpp"
#include "methods/lm.hpp"
#include "methods/outer_sync.hpp"
#include "methods/sparseloco_device.hpp"

namespace frugal {
namespace {

using namespace compress;

class SparseLoCo final : public LmMethod {
 public:
  explicit SparseLoCo(RunContext& ctx)
      : LmMethod(ctx, "sparseloco.inner.", "sparseloco.global"), error_(global_.size(), 0.0f),
        aggregate_(global_.size()) {
    const Config& c = ctx.config;
    inner_steps_ = c.integer("sparseloco.inner_steps");
    opt_.beta = static_cast<float>(c.real("sparseloco.ef_beta"));
    outer_lr_ = static_cast<float>(c.real("sparseloco.outer_lr"));
    opt_.top_k = c.integer("sparseloco.top_k");
    opt_.quantize = c.boolean("sparseloco.quantize");
    wire_.index = index_coding_from(c.str("sparseloco.index_coding"));
    wire_.values = value_coding_from(c.str("sparseloco.value_coding"));
    mode_ = c.str("sparseloco.aggregation") == "mean_all" ? Aggregation::mean_all : Aggregation::mean_selected;
    blocks_ = blocks_for(w_.model.layout);
    sent_.resize(blocks_.size());
    w_.grads_on_device = w_.device != nullptr;  // local steps only: the gradients never leave the GPU
    if (w_.device) device_ = sparseloco_device_create(global_, error_);
  }

  StepResult step(int64_t step) override {
    StepResult r = lm_local_adamw_step(w_, data_.train, step, ctx_.comm.rank());
    if ((step + 1) % inner_steps_ == 0) {
      const WireStats stats = outer_step();
      r.metrics = wire_metrics(&stats);
    } else {
      r.metrics = wire_metrics(nullptr);
    }
    return r;
  }

  void state(StateFields& f) override {
    LmMethod::state(f);  // inner worker and global parameters
    if (device_ && !f.loading()) sparseloco_device_error_to_host(*device_, error_);
    f.field("sparseloco.error", error_);
    if (device_ && f.loading()) sparseloco_device_restore(*device_, global_, error_);
  }

 private:
  WireStats outer_step() {
    const size_t n = global_.size();
    if (device_) {  // steps 1-7 on the GPU, the quantiser on the host
      sparseloco_device_compress(*device_, *w_.device, blocks_, opt_, sent_);
    } else {
      pseudo_grad_.resize(n);  // the CPU's scratch (on a GPU the pseudo-gradient lives there)
#pragma omp parallel for schedule(static)
      for (size_t i = 0; i < n; i++) pseudo_grad_[i] = global_[i] - w_.model.params[i];
      for (size_t b = 0; b < blocks_.size(); b++)  // steps 3-7, per tensor (block)
        ef_compress(error_.data() + blocks_[b].offset, pseudo_grad_.data() + blocks_[b].offset, blocks_[b].layout, opt_,
                    sent_[b]);
    }
    const WireStats stats =
        sparse_allgather_aggregate(ctx_.comm, sent_, blocks_, mode_, wire_, aggregate_.data(), workspace_, "sparseloco.outer");
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) global_[i] -= outer_lr_ * aggregate_[i];  // plain SGD: EF is the momentum
    w_.model.params = global_;
    if (device_) sparseloco_device_adopt_global(*device_, *w_.device, global_);
    return stats;
  }

  std::vector<float> error_, pseudo_grad_, aggregate_;
  std::vector<CompressBlock> blocks_;
  std::vector<SparseTensor> sent_;
  DecodeWorkspace workspace_;
  EfOptions opt_;
  EncodeOptions wire_;
  Aggregation mode_ = Aggregation::mean_selected;
  SparseLocoDevicePtr device_;  // run.device = "cuda" only
  int64_t inner_steps_ = 15;
  float outer_lr_ = 1.0f;  // alpha: applied once, to the aggregate (methods.md section 7)
};

void add_keys(Schema& s) {
  s.add("sparseloco.inner_steps", int64_t{15}, "H: inner AdamW steps between outer steps", 1, 1e9);
  s.add("sparseloco.outer_lr", 1.0, "alpha: outer learning rate, theta_g <- theta_g - alpha * aggregate (the error buffer accumulates g unscaled)", 0.0, 100.0);
  s.add("sparseloco.ef_beta", 0.95, "beta: error-feedback decay", 0.0, 1.0);
  s.add("sparseloco.top_k", int64_t{128}, "values kept per 4096 elements of each chunk (128 = 3.125% density)", 1, 4096);
  s.add("sparseloco.quantize", true, "2-bit values (false: fp32 values, an ablation)");
  s.add("sparseloco.index_coding", std::string("best"), "in-chunk index code on the wire: packed12, rice (Golomb-Rice of sorted gaps), best (smaller per tensor)",
        {}, {}, {"packed12", "rice", "best"});
  s.add("sparseloco.value_coding", std::string("best"), "2-bit codes on the wire: plain (2 bits each), zstd (entropy-coded), best (smaller per tensor)",
        {}, {}, {"plain", "zstd", "best"});
  s.add("sparseloco.aggregation", std::string("mean_selected"), "mean over the replicas that selected a coordinate, or mean_all = (1/R) sum",
        {}, {}, {"mean_selected", "mean_all"});
}

}  // namespace

FRUGAL_REGISTER_METHOD(sparseloco, MethodInfo{"sparseloco", "DiLoCo inner loop; outer step sends error-feedback top-k, 2-bit pseudo-gradients (all-gather)",
                                              Domain::language, {add_model_keys, add_data_keys, add_optim_keys, add_keys},
                                              [](RunContext& ctx) { return std::make_unique<SparseLoCo>(ctx); }, /*cuda=*/true});

}  // namespace frugal
