#pragma once
// NExt's trajectory predictor (methods.md section 4, step 3): a small MLP that maps the rank-1 factor
// vectors of a weight's global delta g = rank1(W_i - W_0) and local delta l = rank1(W_i - W_{i-1}) at
// checkpoint i to the factor vector of its target delta rank1(W_{i+k} - W_i). One predictor per
// vector length d: every u, v (and stacked sigma) vector of that length is one training row.
//
// Shapes, for a batch of n rows (H = config.hidden):
//   E_G: g (n,d) -> Linear(d,H) -> Linear(H,d) -> ReLU -> Linear(d,H) -> Linear(H,d) -> (n,d)
//   E_L: l (n,d) -> the same stack with its own weights                                -> (n,d)
//   decoder: concat(E_G(g), E_L(l)) (n,2d) -> Linear(2d,H) -> Linear(H,2d) -> ReLU
//                                          -> Linear(2d,H) -> Linear(H,d) -> out (n,d)
// Each stack's only nonlinearity is the ReLU after its second Linear (the spec's architecture; the
// Linears either side of it compose to one affine map, kept as two to match it parameter for parameter). Parameters live in one flat buffer (ParamLayout): per stack s in {enc_g, enc_l,
// dec} and layer k in 0..3, "<s>.w<k>" (out, in) row-major (nn.Linear's layout) and "<s>.b<k>" (out).
// Init is torch's nn.Linear default, weight and bias ~ U(-1/sqrt(in), 1/sqrt(in)), drawn from
// Stream::next_predictor keyed by (seed, d).
//
// Training is the official recipe: L1 loss (mean over all n*d outputs, subgradient 0 at the kink),
// full batch, one AdamW step per epoch (betas 0.9/0.999, eps 1e-8, weight decay on every tensor,
// biases included, as torch.optim.AdamW), lr cosine-annealed from lr to lr_min over `epochs`.
#include <cstdint>
#include <vector>

#include "core/params.hpp"

namespace frugal {

struct PredictorConfig {
  int hidden = 256;
  int epochs = 1000;
  float lr = 2e-5f, lr_min = 2e-6f, weight_decay = 0.01f;
};

// Learning rate of 0-based epoch e: lr_min + (lr - lr_min) (1 + cos(pi e / epochs)) / 2, torch's
// CosineAnnealingLR with T_max = epochs (lr at e = 0, lr_min reached at e = epochs).
float predictor_lr(const PredictorConfig& config, int epoch);

struct PredictorFit {
  double loss_first = 0, loss_last = 0;  // L1 before the first update and after the last
  double flops = 0;    // 2 N C OC per forward Linear, twice that per backward; elementwise work ignored
  double seconds = 0;  // wall clock of the whole fit
};

class NextPredictor {
 public:
  NextPredictor(int d, const PredictorConfig& config, uint64_t seed);

  int dim() const { return d_; }
  const PredictorConfig& config() const { return config_; }
  const ParamLayout& layout() const { return layout_; }
  std::vector<float>& params() { return params_; }
  std::vector<float>& grads() { return grads_; }  // of the last loss(..., grads = true)

  // global, local: (n, d) row-major; out (n, d).
  void predict(const float* global, const float* local, int n, float* out);
  // Mean L1 of predict(global, local) against target (n, d). With grads = true also writes
  // dLoss/dparams into grads() (overwritten, not accumulated).
  double loss(const float* global, const float* local, const float* target, int n, bool grads);
  // The whole training on the n rows (fresh AdamW state each call); leaves the trained weights in params().
  PredictorFit fit(const float* global, const float* local, const float* target, int n);
  // FLOPs of one forward over n rows (one backward is twice this).
  double forward_flops(int n) const;

 private:
  // Four Linears with a ReLU after the second; acts[k] is layer k's output (n, sizes[k+1]),
  // post-ReLU for k = 1.
  struct Stack {
    int sizes[5] = {};
    size_t w_off[4] = {}, b_off[4] = {};
    std::vector<float> acts[4];
  };
  Stack add_stack(const char* name, int in, int out);
  void forward_stack(Stack& s, const float* x, int n);
  // Given dout (n, out) = dLoss/d(stack output), accumulates the stack's parameter gradients into
  // grads_ and writes dx (n, in) when non-null.
  void backward_stack(const Stack& s, const float* x, const float* dout, int n, float* dx);
  void resize(int n);
  const float* forward(const float* global, const float* local, int n);  // -> dec_.acts[3] (n, d)

  int d_ = 0;
  PredictorConfig config_;
  ParamLayout layout_;
  std::vector<float> params_, grads_;
  Stack enc_g_, enc_l_, dec_;
  // Reused across calls (no allocation per epoch once n is fixed).
  std::vector<float> concat_, dconcat_, dout_;  // (n, 2d), (n, 2d), (n, d)
  std::vector<float> dy_, dprev_;               // (n, widest layer): backward scratch
};

}  // namespace frugal
