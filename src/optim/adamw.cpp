#include "optim/adamw.hpp"

#include <cmath>

#include "core/config.hpp"
#include "core/error.hpp"

namespace frugal {

void adamw_state(StateFields& f, AdamW& opt, const std::string& prefix) {
  f.field(prefix + "adam_m", opt.m);
  f.field(prefix + "adam_v", opt.v);
  f.field(prefix + "adam_t", opt.t);
}

AdamW adamw_create(const AdamWConfig& config, const ParamLayout& layout) {
  AdamW opt;
  opt.config = config;
  opt.m.assign(layout.total, 0.0f);
  opt.v.assign(layout.total, 0.0f);
  for (const auto& t : layout.tensors) {
    opt.decay.push_back(t.is_matrix() || config.decay_vectors ? 1 : 0);
    opt.tensors.push_back({t.offset, t.numel});
  }
  return opt;
}

void adamw_step(AdamW& opt, std::span<float> params, std::span<const float> grads, float lr,
                std::span<const uint8_t> update_mask, float grad_scale) {
  FRUGAL_CHECK(params.size() == opt.m.size() && grads.size() == opt.m.size(), "internal: AdamW buffer size mismatch");
  FRUGAL_CHECK(update_mask.empty() || update_mask.size() == opt.m.size(), "internal: AdamW update mask size mismatch");
  opt.t++;
  const AdamWConfig& c = opt.config;
  const float bc1 = 1.0f - std::pow(c.beta1, static_cast<float>(opt.t));
  const float bc2 = 1.0f - std::pow(c.beta2, static_cast<float>(opt.t));
  for (size_t k = 0; k < opt.tensors.size(); k++) {
    const AdamW::Span& t = opt.tensors[k];
    const float wd = opt.decay[k] ? c.weight_decay : 0.0f;
    float* p = params.data() + t.offset;
    const float* g = grads.data() + t.offset;
    float* m = opt.m.data() + t.offset;
    float* v = opt.v.data() + t.offset;
    const auto update = [&](size_t i) {
      const float gi = g[i] * grad_scale;  // exact when grad_scale is 1
      m[i] = c.beta1 * m[i] + (1.0f - c.beta1) * gi;
      v[i] = c.beta2 * v[i] + (1.0f - c.beta2) * gi * gi;
      const float mhat = m[i] / bc1, vhat = v[i] / bc2;
      p[i] -= lr * (mhat / (std::sqrt(vhat) + c.eps) + wd * p[i]);
    };
    if (update_mask.empty()) {  // two loops, so the dense one stays branch-free
#pragma omp parallel for schedule(static)
      for (size_t i = 0; i < t.numel; i++) update(i);
    } else {
      const uint8_t* keep = update_mask.data() + t.offset;
#pragma omp parallel for schedule(static)
      for (size_t i = 0; i < t.numel; i++)
        if (keep[i]) update(i);
    }
  }
}

float schedule_lr(const Schedule& s, int64_t step) {
  if (s.warmup > 0 && step < s.warmup) return s.lr * static_cast<float>(step + 1) / static_cast<float>(s.warmup);
  if (s.kind == "constant") return s.lr;
  const int64_t span = std::max<int64_t>(1, s.total - s.warmup);
  const double frac = std::min(1.0, static_cast<double>(step - s.warmup) / static_cast<double>(span));
  const double min_lr = s.min_lr_ratio * s.lr;
  const double shape = s.kind == "linear" ? 1.0 - frac : 0.5 * (1.0 + std::cos(M_PI * frac));
  return static_cast<float>(min_lr + (s.lr - min_lr) * shape);
}

double global_norm(std::span<const float> grads) {
  // Fixed-size blocks summed in order: deterministic for any thread count.
  constexpr size_t kBlock = 1 << 14;
  const size_t nb = (grads.size() + kBlock - 1) / kBlock;
  std::vector<double> partial(nb, 0.0);
#pragma omp parallel for schedule(static)
  for (size_t b = 0; b < nb; b++) {
    double s = 0.0;
    const size_t end = std::min(grads.size(), (b + 1) * kBlock);
    for (size_t i = b * kBlock; i < end; i++) s += double(grads[i]) * grads[i];
    partial[b] = s;
  }
  double total = 0.0;
  for (double p : partial) total += p;
  return std::sqrt(total);
}

float clip_scale(double norm, double max_norm) {
  return max_norm > 0 && norm > max_norm ? static_cast<float>(max_norm / (norm + 1e-6)) : 1.0f;
}

double clip_grad_norm(std::span<float> grads, double max_norm) {
  const double norm = global_norm(grads);
  if (const float scale = clip_scale(norm, max_norm); scale != 1.0f) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < grads.size(); i++) grads[i] *= scale;
  }
  return norm;
}

void add_optim_keys(Schema& s) {
  s.add("optim.lr", 1e-3, "peak learning rate", 0.0, 1e3);
  s.add("optim.schedule", std::string("cosine"), "learning-rate decay after warmup", {}, {}, {"cosine", "linear", "constant"});
  s.add("optim.warmup_steps", int64_t{10}, "linear warmup steps", 0, 1e12);
  s.add("optim.min_lr_ratio", 0.1, "final learning rate as a fraction of optim.lr", 0.0, 1.0);
  s.add("optim.beta1", 0.9, "AdamW beta1", 0.0, 0.999999);
  s.add("optim.beta2", 0.95, "AdamW beta2", 0.0, 0.999999);
  s.add("optim.eps", 1e-8, "AdamW epsilon", 0.0, 1.0);
  s.add("optim.weight_decay", 0.1, "decoupled weight decay", 0.0, 10.0);
  s.add("optim.decay_vectors", false, "also decay biases and LayerNorm parameters");
  s.add("optim.grad_clip", 1.0, "global gradient-norm clip (0 = off)", 0.0, 1e12);
}

AdamWConfig adamw_config_from(const Config& cfg) {
  AdamWConfig c;
  c.lr = static_cast<float>(cfg.real("optim.lr"));
  c.beta1 = static_cast<float>(cfg.real("optim.beta1"));
  c.beta2 = static_cast<float>(cfg.real("optim.beta2"));
  c.eps = static_cast<float>(cfg.real("optim.eps"));
  c.weight_decay = static_cast<float>(cfg.real("optim.weight_decay"));
  c.decay_vectors = cfg.boolean("optim.decay_vectors");
  return c;
}

Schedule schedule_from(const Config& cfg, int64_t total_steps) {
  Schedule s;
  s.kind = cfg.str("optim.schedule");
  s.lr = static_cast<float>(cfg.real("optim.lr"));
  s.warmup = cfg.integer("optim.warmup_steps");
  s.total = total_steps;
  s.min_lr_ratio = static_cast<float>(cfg.real("optim.min_lr_ratio"));
  return s;
}

}  // namespace frugal
