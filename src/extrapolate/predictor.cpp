#include "extrapolate/predictor.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "core/timer.hpp"
#include "kernels/cpu/matmul.hpp"
#include "optim/adamw.hpp"

namespace frugal {

float predictor_lr(const PredictorConfig& config, int epoch) {
  FRUGAL_CHECK(config.epochs > 0, "NExt predictor: the lr schedule needs epochs > 0 (got ", config.epochs, ")");
  const double shape = 0.5 * (1.0 + std::cos(M_PI * static_cast<double>(epoch) / config.epochs));
  return static_cast<float>(config.lr_min + (static_cast<double>(config.lr) - config.lr_min) * shape);
}

NextPredictor::NextPredictor(int d, const PredictorConfig& config, uint64_t seed) : d_(d), config_(config) {
  FRUGAL_CHECK(d > 0, "NExt predictor: vector length must be positive (got ", d, ")");
  FRUGAL_CHECK(config.hidden > 0, "NExt predictor: hidden must be positive (got ", config.hidden, ")");
  FRUGAL_CHECK(config.epochs >= 0, "NExt predictor: epochs must be >= 0 (got ", config.epochs, ")");
  enc_g_ = add_stack("enc_g", d, d);
  enc_l_ = add_stack("enc_l", d, d);
  dec_ = add_stack("dec", 2 * d, d);
  params_.assign(layout_.total, 0.0f);
  grads_.assign(layout_.total, 0.0f);
  // nn.Linear's default init: weight and bias ~ U(-1/sqrt(in), 1/sqrt(in)), in = the weight's
  // column count. One stream per d, tensors drawn in layout order.
  Rng rng(seed, Stream::next_predictor, static_cast<uint32_t>(d));
  for (const Stack* s : {&enc_g_, &enc_l_, &dec_})
    for (int k = 0; k < 4; k++) {
      const int in = s->sizes[k], out = s->sizes[k + 1];
      const float bound = 1.0f / std::sqrt(static_cast<float>(in));
      float* w = params_.data() + s->w_off[k];
      float* b = params_.data() + s->b_off[k];
      for (size_t i = 0; i < size_t(out) * in; i++) w[i] = bound * (2.0f * rng.uniform() - 1.0f);
      for (int i = 0; i < out; i++) b[i] = bound * (2.0f * rng.uniform() - 1.0f);
    }
}

NextPredictor::Stack NextPredictor::add_stack(const char* name, int in, int out) {
  Stack s;
  const int h = config_.hidden;
  const int sizes[5] = {in, h, in, h, out};  // Linear(in,H) Linear(H,in) ReLU Linear(in,H) Linear(H,out)
  std::copy_n(sizes, 5, s.sizes);
  for (int k = 0; k < 4; k++) {
    const std::string prefix = std::string(name) + ".";
    s.w_off[k] = layout_.add(prefix + "w" + std::to_string(k), {sizes[k + 1], sizes[k]}).offset;
    s.b_off[k] = layout_.add(prefix + "b" + std::to_string(k), {sizes[k + 1]}).offset;
  }
  return s;
}

void NextPredictor::resize(int n) {
  // resize() to the size a vector already has allocates nothing: a fit's epochs reuse every buffer.
  for (Stack* s : {&enc_g_, &enc_l_, &dec_})
    for (int k = 0; k < 4; k++) s->acts[k].resize(size_t(n) * s->sizes[k + 1]);
  const size_t widest = size_t(std::max(config_.hidden, 2 * d_));
  concat_.resize(size_t(n) * 2 * d_);
  dconcat_.resize(size_t(n) * 2 * d_);
  dout_.resize(size_t(n) * d_);
  dy_.resize(size_t(n) * widest);
  dprev_.resize(size_t(n) * widest);
}

void NextPredictor::forward_stack(Stack& s, const float* x, int n) {
  const float* in = x;
  for (int k = 0; k < 4; k++) {
    float* y = s.acts[k].data();
    cpu::matmul_forward(y, in, params_.data() + s.w_off[k], params_.data() + s.b_off[k], n, s.sizes[k],
                        s.sizes[k + 1]);
    if (k == 1)
      for (size_t i = 0; i < size_t(n) * s.sizes[2]; i++) y[i] = std::max(y[i], 0.0f);
    in = y;
  }
}

void NextPredictor::backward_stack(const Stack& s, const float* x, const float* dout, int n, float* dx) {
  // dy holds dLoss/d(layer k's output) going down; dprev receives dLoss/d(its input).
  float* dy = dy_.data();
  float* dprev = dprev_.data();
  std::copy_n(dout, size_t(n) * s.sizes[4], dy);
  for (int k = 3; k >= 0; k--) {
    const int in = s.sizes[k], out = s.sizes[k + 1];
    if (k == 1) {  // through the ReLU: acts[1] is post-activation, and torch's relu passes 0 at 0
      const float* a = s.acts[1].data();
      for (size_t i = 0; i < size_t(n) * out; i++) dy[i] = a[i] > 0.0f ? dy[i] : 0.0f;
    }
    const float* input = k == 0 ? x : s.acts[k - 1].data();
    float* din = k == 0 ? dx : dprev;  // matmul_backward accumulates into din: zero it first
    if (din) std::fill_n(din, size_t(n) * in, 0.0f);
    cpu::matmul_backward(din, grads_.data() + s.w_off[k], grads_.data() + s.b_off[k], dy, input,
                         params_.data() + s.w_off[k], n, in, out);
    std::swap(dy, dprev);
  }
}

const float* NextPredictor::forward(const float* global, const float* local, int n) {
  FRUGAL_CHECK(n > 0, "NExt predictor: need at least one row (got ", n, ")");
  resize(n);
  forward_stack(enc_g_, global, n);
  forward_stack(enc_l_, local, n);
  const float* eg = enc_g_.acts[3].data();
  const float* el = enc_l_.acts[3].data();
  for (int i = 0; i < n; i++) {  // row i of the decoder input: [E_G(g_i), E_L(l_i)]
    std::copy_n(eg + size_t(i) * d_, d_, concat_.data() + size_t(i) * 2 * d_);
    std::copy_n(el + size_t(i) * d_, d_, concat_.data() + size_t(i) * 2 * d_ + d_);
  }
  forward_stack(dec_, concat_.data(), n);
  return dec_.acts[3].data();
}

void NextPredictor::predict(const float* global, const float* local, int n, float* out) {
  const float* y = forward(global, local, n);
  std::copy_n(y, size_t(n) * d_, out);
}

double NextPredictor::loss(const float* global, const float* local, const float* target, int n, bool grads) {
  const float* y = forward(global, local, n);
  const size_t count = size_t(n) * d_;
  double sum = 0.0;  // double, in a fixed order: the same value on every run
  for (size_t i = 0; i < count; i++) sum += std::fabs(double(y[i]) - double(target[i]));
  if (!grads) return sum / double(count);
  // d mean|y - t| / dy = sign(y - t) / count, 0 where y == t (torch's sign()).
  const float scale = 1.0f / static_cast<float>(count);
  for (size_t i = 0; i < count; i++)
    dout_[i] = y[i] > target[i] ? scale : (y[i] < target[i] ? -scale : 0.0f);
  std::fill(grads_.begin(), grads_.end(), 0.0f);
  backward_stack(dec_, concat_.data(), dout_.data(), n, dconcat_.data());
  // Split the decoder's input gradient back into the two encoders' output gradients (reusing
  // concat_, which the decoder's backward no longer needs, as the (n, d) + (n, d) halves).
  float* deg = concat_.data();
  float* del = concat_.data() + count;
  for (int i = 0; i < n; i++) {
    std::copy_n(dconcat_.data() + size_t(i) * 2 * d_, d_, deg + size_t(i) * d_);
    std::copy_n(dconcat_.data() + size_t(i) * 2 * d_ + d_, d_, del + size_t(i) * d_);
  }
  backward_stack(enc_g_, global, deg, n, nullptr);
  backward_stack(enc_l_, local, del, n, nullptr);
  return sum / double(count);
}

double NextPredictor::forward_flops(int n) const {
  double flops = 0;
  for (const Stack* s : {&enc_g_, &enc_l_, &dec_})
    for (int k = 0; k < 4; k++) flops += double(cpu::matmul_forward_flops(n, s->sizes[k], s->sizes[k + 1]));
  return flops;
}

PredictorFit NextPredictor::fit(const float* global, const float* local, const float* target, int n) {
  Timer timer;
  PredictorFit result;
  AdamWConfig adam;
  adam.lr = config_.lr;
  adam.beta1 = 0.9f;
  adam.beta2 = 0.999f;
  adam.eps = 1e-8f;
  adam.weight_decay = config_.weight_decay;
  adam.decay_vectors = true;  // torch.optim.AdamW decays every parameter it is given, biases included
  AdamW opt = adamw_create(adam, layout_);
  for (int e = 0; e < config_.epochs; e++) {
    const double l = loss(global, local, target, n, true);
    if (e == 0) result.loss_first = l;
    adamw_step(opt, params_, grads_, predictor_lr(config_, e));
  }
  result.loss_last = loss(global, local, target, n, false);
  if (config_.epochs == 0) result.loss_first = result.loss_last;
  // Each epoch is a forward and a backward (3x forward); the final evaluation one more forward.
  result.flops = forward_flops(n) * (3.0 * config_.epochs + 1.0);
  result.seconds = timer.seconds();
  return result;
}

}  // namespace frugal
