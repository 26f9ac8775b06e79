#include "optim/adamw.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

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

namespace {

// The step's scalars, copied into the update so that no store through a parameter pointer can
// change them (with them read through `opt.config`, the compiler must assume it might, and the
// loop stays scalar: three divisions and a square root per parameter, ~12 cycles).
struct AdamWScalars {
  float beta1, one_minus_beta1, beta2, one_minus_beta2, bc1, bc2, lr, eps, wd, grad_scale;
};

// One parameter; the arithmetic and its order are the definition of the step.
inline void adamw_update(float* __restrict p, const float* __restrict g, float* __restrict m, float* __restrict v,
                         size_t i, const AdamWScalars& k) {
  const float gi = g[i] * k.grad_scale;  // exact when grad_scale is 1
  m[i] = k.beta1 * m[i] + k.one_minus_beta1 * gi;
  v[i] = k.beta2 * v[i] + k.one_minus_beta2 * gi * gi;
  const float mhat = m[i] / k.bc1, vhat = v[i] / k.bc2;
  p[i] -= k.lr * (mhat / (std::sqrt(vhat) + k.eps) + k.wd * p[i]);
}

// A tensor, vectorised: restrict pointers and scalars by value (IEEE division and square root give
// the same bits in a vector lane as in a scalar instruction).
void adamw_tensor(float* __restrict p, const float* __restrict g, float* __restrict m, float* __restrict v, size_t n,
                  const AdamWScalars k) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) adamw_update(p, g, m, v, i, k);
}

void adamw_tensor_masked(float* __restrict p, const float* __restrict g, float* __restrict m, float* __restrict v,
                         const uint8_t* __restrict keep, size_t n, const AdamWScalars k) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++)
    if (keep[i]) adamw_update(p, g, m, v, i, k);
}

}  // namespace

void adamw_step(AdamW& opt, std::span<float> params, std::span<const float> grads, float lr,
                std::span<const uint8_t> update_mask, float grad_scale) {
  FRUGAL_CHECK(params.size() == opt.m.size() && grads.size() == opt.m.size(), "internal: AdamW buffer size mismatch");
  FRUGAL_CHECK(update_mask.empty() || update_mask.size() == opt.m.size(), "internal: AdamW update mask size mismatch");
  opt.t++;
  const AdamWConfig& c = opt.config;
  AdamWScalars k{c.beta1, 1.0f - c.beta1, c.beta2, 1.0f - c.beta2,
                 1.0f - std::pow(c.beta1, static_cast<float>(opt.t)), 1.0f - std::pow(c.beta2, static_cast<float>(opt.t)),
                 lr, c.eps, 0.0f, grad_scale};
  for (size_t j = 0; j < opt.tensors.size(); j++) {
    const AdamW::Span& t = opt.tensors[j];
    k.wd = opt.decay[j] ? c.weight_decay : 0.0f;
    float* p = params.data() + t.offset;
    const float* g = grads.data() + t.offset;
    float* m = opt.m.data() + t.offset;
    float* v = opt.v.data() + t.offset;
    if (update_mask.empty()) adamw_tensor(p, g, m, v, t.numel, k);  // two loops, so the dense one stays branch-free
    else adamw_tensor_masked(p, g, m, v, update_mask.data() + t.offset, t.numel, k);
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
  // Fixed-size blocks, each summed in element order, then the blocks in order: the same value for
  // any thread count. One block's sum is a chain of dependent double additions (~4 cycles each),
  // so kWays blocks run side by side, each still in its own order: independent chains, same bits.
  constexpr size_t kBlock = 1 << 14, kWays = 8;
  const size_t nb = (grads.size() + kBlock - 1) / kBlock, full = grads.size() / kBlock;
  const float* x = grads.data();
  std::vector<double> partial(nb, 0.0);
  const size_t groups = (nb + kWays - 1) / kWays;
#pragma omp parallel for schedule(static)
  for (size_t q = 0; q < groups; q++) {
    const size_t b0 = q * kWays;
    if (b0 + kWays <= full) {
      double s[kWays] = {};
      for (size_t i = 0; i < kBlock; i++)
#pragma GCC unroll 8
        for (size_t w = 0; w < kWays; w++) {
          const double e = x[(b0 + w) * kBlock + i];
          s[w] += e * e;
        }
      for (size_t w = 0; w < kWays; w++) partial[b0 + w] = s[w];
    } else {
      for (size_t b = b0; b < std::min(nb, b0 + kWays); b++) {
        double s = 0.0;
        const size_t end = std::min(grads.size(), (b + 1) * kBlock);
        for (size_t i = b * kBlock; i < end; i++) s += double(x[i]) * x[i];
        partial[b] = s;
      }
    }
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
