// GPT-2 on the GPU (device/gpt2_device.hpp) against the CPU model, the ground truth: the same
// weights and batch give the same loss, logits and every parameter gradient, and a few AdamW steps
// on each side (device/adamw_device.hpp vs optim/adamw.hpp) follow the same loss curve.
// Both sides run the same pass code (model/gpt2_pass.hpp) on their own kernels, whose differences
// are GEMM and reduction orders (cuBLAS vs OpenBLAS) and tanhf: so tolerances, not equality.
//   loss, logits: 1e-5 relative (fp32), 2e-3 (TF32: inputs rounded to 10-bit mantissas)
//   each gradient tensor: ||g_gpu - g_cpu|| <= 1e-4 ||g_cpu|| (long reordered reductions)
//   bf16 activations (model.dtype = bf16): every stored activation rounded to 8 significant bits
//   (2^-8 relative) through 3 blocks: loss 1e-2 relative, all gradients 3e-2 relative L2, each
//   tensor 1e-1 (loose: qkvb's key part is zero in exact arithmetic, so bf16 leaves pure rounding
//   noise there; a tensor the backward forgot or garbled is off by ~1), the loss curve 2e-2
// The model is small but has every feature of GPT-2 124M: padded vocabulary, several heads and
// blocks, T at the context length. Without a GPU the tests skip.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "device/adamw_device.hpp"
#include "device/gpt2_device.hpp"
#include "kernels/cuda/kernels.hpp"
#include "model/gpt2.hpp"
#include "optim/adamw.hpp"

namespace {

using namespace frugal;

GPT2Config small_config() {
  GPT2Config c;
  c.max_seq_len = 32;
  c.vocab_size = 100;
  c.padded_vocab_size = 128;
  c.num_layers = 3;
  c.num_heads = 4;
  c.channels = 64;
  return c;
}

std::vector<int> random_tokens(size_t n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(0, vocab - 1);
  std::vector<int> v(n);
  for (int& x : v) x = dist(rng);
  return v;
}

double norm(const float* x, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += double(x[i]) * x[i];
  return std::sqrt(s);
}

class CudaGPT2 : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda::device_available()) GTEST_SKIP() << "no CUDA device visible (cudaGetDeviceCount found none): skipping";
    cuda::set_tf32(false);
    cpu = gpt2_create(small_config());
    gpt2_init_weights(cpu, 7);
    inputs = random_tokens(size_t(B) * T, cpu.config.vocab_size, 1);
    targets = random_tokens(size_t(B) * T, cpu.config.vocab_size, 2);
  }
  void TearDown() override {
    if (cuda::device_available()) cuda::set_tf32(false);
  }

  // Eight AdamW steps on the same batch, the CPU model and gpu side by side, each step's loss
  // within rtol of the CPU's; returns the GPU's first and last loss.
  std::pair<float, float> train_both(GPT2Device& gpu, double rtol) {
    AdamWConfig ac;
    ac.lr = 3e-3f;
    AdamW opt_cpu = adamw_create(ac, cpu.layout);
    AdamWDevice opt_gpu = adamw_to_device(opt_cpu);
    float first = 0, last = 0;
    for (int step = 0; step < 8; step++) {
      gpt2_zero_grad(cpu);
      const float want = gpt2_forward(cpu, inputs.data(), targets.data(), B, T);
      gpt2_backward(cpu);
      adamw_step(opt_cpu, cpu.params, cpu.grads, ac.lr);
      gpt2_zero_grad(gpu);
      const float got = gpt2_forward(gpu, inputs.data(), targets.data(), B, T);
      gpt2_backward(gpu);
      adamw_step(opt_gpu, gpu.params.data(), gpu.grads.data(), ac.lr);
      EXPECT_NEAR(got, want, rtol * std::fabs(want)) << "step " << step;
      if (step == 0) first = got;
      last = got;
    }
    return {first, last};
  }

  static constexpr int B = 4, T = 32;
  GPT2 cpu;
  std::vector<int> inputs, targets;
};

TEST_F(CudaGPT2, LossAndLogitsMatchCpu) {
  GPT2Device gpu = gpt2_to_device(cpu);
  const float want = gpt2_forward(cpu, inputs.data(), targets.data(), B, T);
  const float got = gpt2_forward(gpu, inputs.data(), targets.data(), B, T);
  EXPECT_NEAR(got, want, 1e-5 * std::fabs(want));
  EXPECT_GT(want, 4.0f);  // ~ln(100) from a fresh init: the test is not comparing zeros

  const std::vector<float> logits = gpu.acts.logits.to_host();
  ASSERT_EQ(logits.size(), cpu.acts.logits.size());
  double max_err = 0, max_abs = 0;
  for (size_t i = 0; i < logits.size(); i++) {
    max_err = std::max(max_err, double(std::fabs(logits[i] - cpu.acts.logits[i])));
    max_abs = std::max(max_abs, double(std::fabs(cpu.acts.logits[i])));
  }
  EXPECT_GT(max_abs, 0.01);
  EXPECT_LE(max_err, 1e-5 * max_abs) << "largest logit difference " << max_err;

  // Logits only (no targets): the same logits, loss 0.
  EXPECT_EQ(gpt2_forward(gpu, inputs.data(), nullptr, B, T), 0.0f);
  const std::vector<float> again = gpu.acts.logits.to_host();
  EXPECT_EQ(again, logits);
}

TEST_F(CudaGPT2, EveryParameterGradientMatchesCpu) {
  GPT2Device gpu = gpt2_to_device(cpu);
  gpt2_zero_grad(cpu);
  gpt2_forward(cpu, inputs.data(), targets.data(), B, T);
  gpt2_backward(cpu);
  gpt2_forward(gpu, inputs.data(), targets.data(), B, T);
  gpt2_backward(gpu);
  const std::vector<float> grads = gpu.grads.to_host();
  for (const TensorSpec& t : cpu.layout.tensors) {
    const float* want = cpu.grads.data() + t.offset;
    std::vector<float> diff(t.numel);
    for (size_t i = 0; i < t.numel; i++) diff[i] = grads[t.offset + i] - want[i];
    const double ref = norm(want, t.numel);
    EXPECT_GT(ref, 0.0) << t.name << ": a zero gradient proves nothing";
    EXPECT_LE(norm(diff.data(), t.numel), 1e-4 * ref) << t.name;
  }
  // Gradients accumulate (+=) like the CPU's: a second backward doubles them.
  gpt2_backward(gpu);
  const std::vector<float> twice = gpu.grads.to_host();
  for (size_t i = 0; i < twice.size(); i += 97) EXPECT_NEAR(twice[i], 2 * grads[i], 1e-6f + 1e-6f * std::fabs(grads[i]));
}

TEST_F(CudaGPT2, AdamwTrainingFollowsTheCpuLossCurve) {
  GPT2Device gpu = gpt2_to_device(cpu);
  const auto [first, last] = train_both(gpu, 1e-4);
  EXPECT_LT(last, first - 0.1f) << "the batch is memorised: the loss must fall";
  // The parameters end where the CPU's do (AdamW's normalised step amplifies tiny gradient
  // differences where m and v are near zero, hence a relative bound on the whole buffer).
  GPT2 back = gpt2_create(cpu.config);
  gpt2_to_host(gpu, back);
  std::vector<float> diff(back.params.size());
  for (size_t i = 0; i < diff.size(); i++) diff[i] = back.params[i] - cpu.params[i];
  EXPECT_LE(norm(diff.data(), diff.size()), 1e-4 * norm(cpu.params.data(), cpu.params.size()));
}

TEST_F(CudaGPT2, Tf32LossWithinItsRounding) {
  GPT2Device gpu = gpt2_to_device(cpu);
  const float want = gpt2_forward(cpu, inputs.data(), targets.data(), B, T);
  cuda::set_tf32(true);
  const float got = gpt2_forward(gpu, inputs.data(), targets.data(), B, T);
  EXPECT_NEAR(got, want, 2e-3 * std::fabs(want));
}

TEST_F(CudaGPT2, Bf16ActivationsStayWithinBf16Rounding) {
  GPT2Device gpu = gpt2_to_device(cpu, /*bf16_activations=*/true);
  gpt2_zero_grad(cpu);
  const float want = gpt2_forward(cpu, inputs.data(), targets.data(), B, T);
  gpt2_backward(cpu);
  const float got = gpt2_forward(gpu, inputs.data(), targets.data(), B, T);
  gpt2_backward(gpu);
  EXPECT_NEAR(got, want, 1e-2 * std::fabs(want));
  EXPECT_EQ(gpu.acts.logits.size(), 0u) << "the fp32 activations must stay unused";
  EXPECT_EQ(gpu.acts_bf16.logits.size(), size_t(B) * T * cpu.config.padded_vocab_size);
  const std::vector<float> grads = gpu.grads.to_host();
  std::vector<float> diff(grads.size());
  for (size_t i = 0; i < grads.size(); i++) diff[i] = grads[i] - cpu.grads[i];
  for (const TensorSpec& t : cpu.layout.tensors) {
    const double ref = norm(cpu.grads.data() + t.offset, t.numel);
    EXPECT_GT(ref, 0.0) << t.name;
    EXPECT_LE(norm(diff.data() + t.offset, t.numel), 1e-1 * ref) << t.name;
  }
  const double all = norm(diff.data(), diff.size()), all_ref = norm(cpu.grads.data(), cpu.grads.size());
  EXPECT_LE(all, 3e-2 * all_ref) << "all gradients, relative L2";
  EXPECT_GT(all, 1e-6 * all_ref) << "bf16 asked for, but the gradients came out at fp32 accuracy";
}

TEST_F(CudaGPT2, Bf16TrainingFollowsTheCpuLossCurve) {
  GPT2Device gpu = gpt2_to_device(cpu, /*bf16_activations=*/true);
  const auto [first, last] = train_both(gpu, 2e-2);
  EXPECT_LT(last, first - 0.1f) << "the batch is memorised in bf16 too: the loss must fall";
}

TEST_F(CudaGPT2, BadTokensAreClearErrors) {
  GPT2Device gpu = gpt2_to_device(cpu);
  std::vector<int> bad = inputs;
  bad[5] = cpu.config.vocab_size;  // one past the vocabulary
  try {
    gpt2_forward(gpu, bad.data(), targets.data(), B, T);
    FAIL() << "an out-of-vocabulary token must throw";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("outside the vocabulary"), std::string::npos) << e.what();
  }
  EXPECT_THROW(gpt2_backward(gpu), std::exception);  // no forward with targets yet
}

}  // namespace
