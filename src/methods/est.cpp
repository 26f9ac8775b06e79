// EST - evolving subnetwork training (Li et al., ICML 2024; methods.md section 5). Data-parallel
// AdamW like DDP, except that each step trains one sampled subnetwork: a subset of the blocks and,
// in each kept block, of the attention heads and MLP hidden units, computed on gathered weight
// slices (model/subnet.cpp) with the 1/p rescaling that keeps every module unbiased. A three-stage
// schedule (methods/est.hpp) anneals from sampled blocks, to sampled heads and units only, to the
// dense model. Evaluation always uses the dense model.
//
// Choices the paper leaves open (no public code), documented here:
// - The subnetwork is drawn from a counter-based stream keyed by (run.seed, step): every rank and
//   every micro-batch of a step uses the same one, nothing is sent, and a resumed run redraws it.
// - Only the subnetwork's gradients travel: they are packed, all-reduced (tag est.grad) and
//   unpacked, so the wire bytes shrink with the subnetwork. Gradients outside it are exactly 0.
// - est.unselected = "no_update" leaves parameters outside the subnetwork and their Adam moments
//   untouched (torch.optim.SparseAdam's convention; the step count advances for all);
//   "zero_grad_adamw" runs AdamW on them with a zero gradient (moments decay, momentum and weight
//   decay still move them), what a masked implementation in PyTorch would do.
// - Gradient clipping uses the norm of the subnetwork's gradient (the rest is 0).
// run.device = "cuda": the subnetwork's forward and backward run on the GPU (device/subnet_device.hpp
// gathers the slices there), the gradients come to the host to be packed and all-reduced, and the
// masked AdamW runs on the GPU.
#include "methods/est.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.hpp"
#include "methods/lm.hpp"

namespace frugal {

void add_est_keys(Schema& s) {
  s.add("est.stage1_end", 0.2, "end of stage 1 (sampled blocks, heads, units) as a fraction of run.steps", 0.0, 1.0);
  s.add("est.stage2_end", 0.65, "end of stage 2 (all blocks, sampled heads and units) as a fraction of run.steps; "
        "the rest is dense", 0.0, 1.0);
  s.add("est.stage1_layers", 0.5, "stage 1: fraction of blocks kept per step (p_L)", 0.0, 1.0);
  s.add("est.stage1_heads", 0.5, "stage 1: fraction of attention heads kept per kept block (p_H)", 0.0, 1.0);
  s.add("est.stage1_mlp", 0.5, "stage 1: fraction of MLP hidden units kept per kept block (p_M)", 0.0, 1.0);
  s.add("est.stage2_heads", 0.5, "stage 2: fraction of attention heads kept per block (p_H)", 0.0, 1.0);
  s.add("est.stage2_mlp", 0.5, "stage 2: fraction of MLP hidden units kept per block (p_M)", 0.0, 1.0);
  s.add("est.share_across_layers", false, "one head set and one unit set for all kept blocks of a step (default: "
        "redrawn per block)");
  s.add("est.unselected", std::string("no_update"), "parameters outside the step's subnetwork: no_update (value and "
        "Adam moments untouched) or zero_grad_adamw (AdamW step with a zero gradient)", {}, {},
        {"no_update", "zero_grad_adamw"});
}

EstSchedule est_schedule_from(const Config& cfg, int64_t total_steps) {
  EstSchedule s;
  const double end1 = cfg.real("est.stage1_end"), end2 = cfg.real("est.stage2_end");
  FRUGAL_CHECK(end1 <= end2, "est.stage1_end (", end1, ") must not be after est.stage2_end (", end2, ")");
  s.total_steps = total_steps;
  s.stage1_end = std::llround(end1 * double(total_steps));
  s.stage2_end = std::llround(end2 * double(total_steps));
  s.stage1 = {cfg.real("est.stage1_layers"), cfg.real("est.stage1_heads"), cfg.real("est.stage1_mlp")};
  s.stage2 = {1.0, cfg.real("est.stage2_heads"), cfg.real("est.stage2_mlp")};
  for (const char* key : {"est.stage1_layers", "est.stage1_heads", "est.stage1_mlp", "est.stage2_heads", "est.stage2_mlp"})
    FRUGAL_CHECK(cfg.real(key) > 0, key, " must be > 0 (a rate of 0 keeps nothing to train)");
  s.share_across_layers = cfg.boolean("est.share_across_layers");
  s.update_unselected = cfg.str("est.unselected") == "zero_grad_adamw";
  return s;
}

int est_stage(const EstSchedule& s, int64_t step) { return step < s.stage1_end ? 1 : step < s.stage2_end ? 2 : 3; }

GPT2Subnet est_subnet(const EstSchedule& s, const GPT2Config& c, uint64_t seed, int64_t step) {
  const int stage = est_stage(s, step);
  if (stage == 3) return subnet_full(c);
  Rng rng(seed, Stream::est_subnet, static_cast<uint32_t>(step));
  return subnet_sample(c, stage == 1 ? s.stage1 : s.stage2, s.share_across_layers, rng);
}

double est_flops_saving(const EstSchedule& s, const GPT2Config& c, int B, int T) {
  const double dense = gpt2_forward_flops(c, B, T);
  double est = 0;
  for (int stage = 1; stage <= 3; stage++) {
    const int64_t first = stage == 1 ? 0 : stage == 2 ? s.stage1_end : s.stage2_end;
    const int64_t last = stage == 1 ? s.stage1_end : stage == 2 ? s.stage2_end : s.total_steps;
    if (last <= first) continue;
    const GPT2Subnet sub = est_subnet(s, c, 0, first);  // every step of a stage keeps the same counts
    est += double(last - first) * subnet_forward_flops(c, B, T, sub);
  }
  return s.total_steps > 0 ? 1.0 - est / (dense * double(s.total_steps)) : 0.0;
}

namespace {

// The subnetwork's gradients, packed contiguous for the all-reduce and unpacked after it. Both
// passes run over the whole model every sampled step, so they are parallel: fixed blocks count their
// kept entries, a prefix sum gives each block its place in the packed buffer, then blocks copy.
class MaskedPacker {
 public:
  void plan(const std::vector<uint8_t>& mask) {
    const size_t blocks = (mask.size() + kBlock - 1) / kBlock;
    start_.assign(blocks + 1, 0);
#pragma omp parallel for schedule(static)
    for (size_t b = 0; b < blocks; b++) {
      const size_t end = std::min(mask.size(), (b + 1) * kBlock);
      size_t n = 0;
      for (size_t i = b * kBlock; i < end; i++) n += mask[i];
      start_[b + 1] = n;
    }
    for (size_t b = 0; b < blocks; b++) start_[b + 1] += start_[b];
  }
  size_t packed_size() const { return start_.back(); }
  // packed[j] = g[i] for the j-th i with mask[i] = 1.
  void pack(const std::vector<float>& g, const std::vector<uint8_t>& mask, std::vector<float>& packed) const {
    packed.resize(packed_size());
#pragma omp parallel for schedule(static)
    for (size_t b = 0; b < start_.size() - 1; b++) {
      size_t j = start_[b];
      const size_t end = std::min(mask.size(), (b + 1) * kBlock);
      for (size_t i = b * kBlock; i < end; i++)
        if (mask[i]) packed[j++] = g[i];
    }
  }
  // g[i] = scale * packed[j], the inverse of pack (entries outside the mask are left alone: 0).
  void unpack(const std::vector<float>& packed, const std::vector<uint8_t>& mask, float scale, std::vector<float>& g) const {
#pragma omp parallel for schedule(static)
    for (size_t b = 0; b < start_.size() - 1; b++) {
      size_t j = start_[b];
      const size_t end = std::min(mask.size(), (b + 1) * kBlock);
      for (size_t i = b * kBlock; i < end; i++)
        if (mask[i]) g[i] = packed[j++] * scale;
    }
  }

 private:
  static constexpr size_t kBlock = 1 << 16;
  std::vector<size_t> start_;  // (blocks + 1) packed offset of each block
};

class Est final : public LmMethod {
 public:
  explicit Est(RunContext& ctx) : LmMethod(ctx, "est."), sched_(est_schedule_from(ctx.config, ctx.total_steps)) {
    if (ctx.comm.rank() == 0) print_plan();
  }

  StepResult step(int64_t step) override {
    const GPT2Config& c = w_.model.config;
    const int stage = est_stage(sched_, step);
    if (stage < 3) slices_.set(est_subnet(sched_, c, ctx_.seed, step), c);
    else slices_ = SubnetSlices();  // the dense stage needs no slices: free them
    const GPT2Subnet* sub = stage < 3 ? &slices_.subnet() : nullptr;
    StepResult r;
    r.loss = lm_forward_backward(w_, data_.train, step, ctx_.comm.rank(), stage < 3 ? &slices_ : nullptr);
    if (sub) {
      // Only the subnetwork's gradients travel: pack them, all-reduce, unpack (averaged).
      auto& g = w_.model.grads;
      subnet_param_mask(*sub, c, w_.model.layout, mask_);
      packer_.plan(mask_);
      packer_.pack(g, mask_, packed_);
      ctx_.comm.allreduce(std::span<float>(packed_), ReduceOp::sum, "est.grad");
      packer_.unpack(packed_, mask_, 1.0f / static_cast<float>(ctx_.comm.size()), g);
    } else {
      allreduce_mean(ctx_.comm, std::span<float>(w_.model.grads), "est.grad");
    }
    const bool masked = sub && !sched_.update_unselected;
    lm_adamw_update(w_, step, r, sub, masked ? std::span<const uint8_t>(mask_) : std::span<const uint8_t>());
    r.metrics = {{"flops_dense", lm_step_flops(w_) * ctx_.comm.size()},  // all ranks, like the flops column
                 {"est_stage", double(stage)},
                 {"est_layers", sub ? subnet_layer_fraction(*sub) : 1.0},
                 {"est_heads", sub ? subnet_head_fraction(*sub, c) : 1.0},
                 {"est_mlp", sub ? subnet_unit_fraction(*sub, c) : 1.0}};
    return r;
  }

 private:
  void print_plan() const {
    const GPT2Config& c = w_.model.config;
    const auto counts = [&](const SubnetRates& r) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "blocks %d/%d, heads %d/%d, units %d/%d", subnet_count(r.layers, c.num_layers),
                    c.num_layers, subnet_count(r.heads, c.num_heads), c.num_heads, subnet_count(r.mlp, 4 * c.channels),
                    4 * c.channels);
      return std::string(buf);
    };
    std::printf("est: stage 1 steps [0, %lld): %s | stage 2 [%lld, %lld): %s | stage 3 [%lld, %lld): dense | "
                "training FLOPs %.1f%% below dense\n",
                static_cast<long long>(sched_.stage1_end), counts(sched_.stage1).c_str(),
                static_cast<long long>(sched_.stage1_end), static_cast<long long>(sched_.stage2_end),
                counts(sched_.stage2).c_str(), static_cast<long long>(sched_.stage2_end),
                static_cast<long long>(sched_.total_steps),
                100.0 * est_flops_saving(sched_, c, w_.local_batch, w_.seq_len));
  }

  EstSchedule sched_;
  SubnetSlices slices_;  // this step's subnetwork and its gathered weights (reused across steps)
  std::vector<uint8_t> mask_;
  MaskedPacker packer_;
  std::vector<float> packed_;
};

}  // namespace

FRUGAL_REGISTER_METHOD(est, MethodInfo{"est", "evolving subnetwork training: DDP AdamW on a sampled subnetwork per step "
                                       "(blocks, heads, MLP units), three-stage schedule to dense",
                                       Domain::language, {add_model_keys, add_data_keys, add_optim_keys, add_est_keys},
                                       [](RunContext& ctx) { return std::make_unique<Est>(ctx); }, /*cuda=*/true});

}  // namespace frugal
