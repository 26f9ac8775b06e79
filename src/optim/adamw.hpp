#pragma once
// AdamW (decoupled weight decay), learning-rate schedules and global-norm clipping over a flat
// parameter buffer. Weight decay applies to matrices only (embeddings included) unless told
// otherwise, as in GPT-2/nanoGPT practice.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/params.hpp"
#include "core/state.hpp"

namespace frugal {

class Schema;
class Config;

struct AdamWConfig {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, weight_decay = 0.1f;
  bool decay_vectors = false;  // also decay biases and LayerNorm parameters
};

struct AdamW {
  AdamWConfig config;
  std::vector<float> m, v;  // first and second moments, same layout as the parameters
  std::vector<uint8_t> decay;  // per tensor: 1 if weight decay applies
  struct Span {
    size_t offset, numel;
  };
  std::vector<Span> tensors;  // where each tensor lies in the flat buffers (a copy: AdamW moves freely)
  int64_t t = 0;  // steps taken (bias correction)
};

AdamW adamw_create(const AdamWConfig& config, const ParamLayout& layout);
// The optimiser's checkpointed state: <prefix>adam_m, adam_v, adam_t (empty moments for a
// stateless SGD stand-in are saved as empty sections).
void adamw_state(StateFields& f, AdamW& opt, const std::string& prefix);
// One update with learning rate lr (the schedule's value for this step). With an update mask, only
// parameters whose mask byte is 1 change; the others keep their value and moments (no decay, no
// momentum step), while the step count t - hence the bias correction - advances for all, the
// convention of torch.optim.SparseAdam for rows absent from a sparse gradient.
// grad_scale multiplies every gradient as it is read (clip_scale's factor): the same bits as scaling
// the buffer first, without a pass that reads and writes every gradient once more.
void adamw_step(AdamW& opt, std::span<float> params, std::span<const float> grads, float lr,
                std::span<const uint8_t> update_mask = {}, float grad_scale = 1.0f);

struct Schedule {
  std::string kind = "cosine";  // cosine | linear | constant
  float lr = 1e-3f;
  int64_t warmup = 0, total = 1;
  float min_lr_ratio = 0.1f;
};
// Learning rate at 0-based step `step`: linear warmup, then decay to min_lr_ratio * lr at `total`.
float schedule_lr(const Schedule& s, int64_t step);

// L2 norm of the whole buffer (double accumulation, fixed order: same value for any thread count).
double global_norm(std::span<const float> grads);
// The factor that brings gradients of L2 norm `norm` to at most max_norm: 1 when max_norm <= 0 or
// the norm is within it, else max_norm / (norm + 1e-6).
float clip_scale(double norm, double max_norm);
// Scales grads so their norm is at most max_norm (no-op when max_norm <= 0). Returns the norm before.
// Before AdamW, prefer global_norm + adamw_step(..., clip_scale(norm, max_norm)): one pass fewer.
double clip_grad_norm(std::span<float> grads, double max_norm);

void add_optim_keys(Schema& schema);
AdamWConfig adamw_config_from(const Config& config);
Schedule schedule_from(const Config& config, int64_t total_steps);

}  // namespace frugal
