// A language-model worker on the GPU (methods/lm_device.hpp: what ddp runs with run.device = cuda)
// against the CPU worker's arithmetic: forward + backward with the gradients brought to the host
// (where the all-reduce happens), then clip + AdamW on the device, for several steps; and the
// checkpoint round trip (device -> host -> device) that resume relies on. Tolerances as in
// test_cuda_gpt2.cpp (cuBLAS vs OpenBLAS reduction order). Without a GPU the tests skip.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/crossentropy.hpp"
#include "kernels/cuda/kernels.hpp"
#include "methods/lm_device.hpp"
#include "model/gpt2.hpp"
#include "model/lora.hpp"
#include "model/subnet.hpp"
#include "optim/adamw.hpp"

namespace {

using namespace frugal;

// ||got - want|| / ||want||; want must not be all zero (a zero reference proves nothing).
double relative_l2(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (size_t k = 0; k < want.size(); k++) {
    num += (double(got[k]) - want[k]) * (double(got[k]) - want[k]);
    den += double(want[k]) * want[k];
  }
  EXPECT_GT(den, 0.0) << "an all-zero reference";
  return std::sqrt(num / den);
}

class CudaLmDevice : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda::device_available()) GTEST_SKIP() << "no CUDA device visible (cudaGetDeviceCount found none): skipping";
    GPT2Config c;
    c.max_seq_len = 32, c.vocab_size = 90, c.padded_vocab_size = 128, c.num_layers = 2, c.num_heads = 4, c.channels = 64;
    cpu = gpt2_create(c);
    gpt2_init_weights(cpu, 3);
    AdamWConfig ac;
    ac.lr = 2e-3f;
    opt = adamw_create(ac, cpu.layout);
    std::mt19937 rng(11);
    std::uniform_int_distribution<int> token(0, c.vocab_size - 1);
    tokens.resize(size_t(B) * T + 1);
    for (int& t : tokens) t = token(rng);
  }
  // Rank-4 adapters with B moved off its initial 0 (as after some training), so that they matter.
  LoraAdapters trained_lora(uint32_t seed) const {
    LoraConfig lc;
    lc.rank = 4;
    LoraAdapters lora(cpu.config, lc, 13);
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, 0.05f);
    for (float& p : lora.params) p += dist(rng);
    return lora;
  }

  // The adapters' gradients of sum_n weight[n] logp_n (the targets: tokens shifted by one) for the
  // CPU model's last forward, which had the adapters.
  std::vector<float> cpu_adapter_grads(LoraAdapters& lora, const std::vector<float>& weight, float inv_temp) {
    const GPT2Config& c = cpu.config;
    std::fill(lora.grads.begin(), lora.grads.end(), 0.0f);
    cpu::token_logprob_backward(gpt2_dlogits(cpu), cpu.acts.logits.data(), tokens.data() + 1, weight.data(), B * T,
                                c.vocab_size, c.padded_vocab_size, inv_temp);
    gpt2_zero_grad(cpu);
    gpt2_backward_from_dlogits(cpu, &lora);
    return lora.grads;
  }

  // The device worker's sampled generations of the prompts (6 new tokens, end token 3, sampling seed
  // 5) are the CPU model's (with the adapters if given) token for token, and so is the token count.
  void expect_same_generations(LmDevice& dev, LoraAdapters* lora, const std::vector<std::vector<int>>& prompts) {
    std::vector<uint32_t> ids(prompts.size());
    for (size_t i = 0; i < ids.size(); i++) ids[i] = uint32_t(i);
    SamplingSettings s;
    s.max_new_tokens = 6, s.end_token = 3;
    std::vector<Completion> got, want;
    int64_t tokens_generated = 0;
    double flops = 0;
    lm_device_generate(dev, GenerateRequest{prompts, ids, {}, 5, 0}, s, got, &tokens_generated, &flops);
    Generator g;
    generate(cpu, lora, nullptr, GenerateRequest{prompts, ids, {}, 5, 0}, s, g, want);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); i++) EXPECT_EQ(got[i].tokens, want[i].tokens) << "sequence " << i;
    EXPECT_EQ(tokens_generated, g.tokens_generated);
  }

  static constexpr int B = 4, T = 32;
  GPT2 cpu;
  AdamW opt;
  std::vector<int> tokens;
};

TEST_F(CudaLmDevice, StepsFollowTheCpuWorker) {
  GPT2 staging = cpu;  // the GPU worker's host model: gradients pass through it
  LmDevicePtr dev = lm_device_create(staging, opt);
  AdamW cpu_opt = opt;
  const double clip = 0.5;  // small enough that clipping really scales the gradients
  for (int step = 0; step < 6; step++) {
    gpt2_zero_grad(cpu);
    const float want = gpt2_forward(cpu, tokens.data(), tokens.data() + 1, B, T);
    gpt2_backward(cpu);
    const double want_norm = clip_grad_norm(cpu.grads, clip);
    adamw_step(cpu_opt, cpu.params, cpu.grads, 2e-3f);

    // As ddp runs it through the host: gradients down (the all-reduce's place) and back up.
    const float got = lm_device_forward_backward(*dev, tokens.data(), tokens.data() + 1, B, T);
    lm_device_grads_to_host(*dev, staging);
    lm_device_grads_from_host(*dev, staging);
    const double got_norm = lm_device_update(*dev, clip, 2e-3f);
    EXPECT_NEAR(got, want, 1e-4 * std::fabs(want)) << "step " << step;
    EXPECT_NEAR(got_norm, want_norm, 1e-4 * want_norm) << "step " << step;
    if (step == 0) {
      EXPECT_GT(want_norm, clip) << "the test must exercise clipping";
    }
  }
}

TEST_F(CudaLmDevice, CheckpointRoundTripKeepsTheWorker) {
  GPT2 staging = cpu;
  LmDevicePtr dev = lm_device_create(staging, opt);
  AdamW host_opt = opt;
  for (int step = 0; step < 2; step++) {
    lm_device_forward_backward(*dev, tokens.data(), tokens.data() + 1, B, T);
    lm_device_update(*dev, 1.0, 2e-3f);
  }
  lm_device_to_host(*dev, staging, host_opt);  // what a checkpoint saves
  EXPECT_EQ(host_opt.t, 2);
  EXPECT_NE(staging.params, cpu.params) << "two steps must have moved the parameters";
  const float before = lm_device_loss(*dev, tokens.data(), tokens.data() + 1, B, T);
  // A fresh worker loaded from the saved state (resume) computes the same loss, bit for bit.
  LmDevicePtr resumed = lm_device_create(cpu, opt);
  lm_device_from_host(*resumed, staging, host_opt);
  EXPECT_EQ(lm_device_loss(*resumed, tokens.data(), tokens.data() + 1, B, T), before);
  // And the next step of both is the same.
  lm_device_forward_backward(*dev, tokens.data(), tokens.data() + 1, B, T);
  lm_device_forward_backward(*resumed, tokens.data(), tokens.data() + 1, B, T);
  EXPECT_EQ(lm_device_update(*dev, 1.0, 2e-3f), lm_device_update(*resumed, 1.0, 2e-3f));
}

// What ddp does with run.device_comm = "nccl" on one rank: the gradients scaled in place on the
// device (the all-reduce's mean) give the same step as scaling them on the host.
TEST_F(CudaLmDevice, ScalingDeviceGradientsEqualsScalingOnTheHost) {
  GPT2 staging = cpu;
  LmDevicePtr on_device = lm_device_create(staging, opt), via_host = lm_device_create(staging, opt);
  lm_device_forward_backward(*on_device, tokens.data(), tokens.data() + 1, B, T);
  lm_device_scale_grads(*on_device, 0.5f);
  lm_device_forward_backward(*via_host, tokens.data(), tokens.data() + 1, B, T);
  lm_device_grads_to_host(*via_host, staging);
  for (float& g : staging.grads) g *= 0.5f;
  lm_device_grads_from_host(*via_host, staging);
  EXPECT_EQ(lm_device_update(*on_device, 1.0, 2e-3f), lm_device_update(*via_host, 1.0, 2e-3f));
  EXPECT_EQ(lm_device_grads(*on_device).size(), staging.grads.size());
}

// What sft does with run.device = "cuda": the token head (log-probabilities of the targets at a
// temperature, then the backward of their weighted sum, some weights 0 as for prompt tokens) against
// the CPU's batch_logprobs path: the same log-probabilities and gradients to the step test's
// tolerances.
TEST_F(CudaLmDevice, TokenHeadFollowsTheCpu) {
  GPT2 staging = cpu;
  LmDevicePtr dev = lm_device_create(staging, opt);
  const GPT2Config& c = cpu.config;
  const int BT = B * T;
  const float inv_temp = 1.0f / 0.8f;
  const int* inputs = tokens.data();
  const int* targets = tokens.data() + 1;
  std::vector<float> weight(static_cast<size_t>(BT));
  for (int i = 0; i < BT; i++) weight[size_t(i)] = i % 4 == 0 ? 0.0f : -1.0f / float(BT);

  gpt2_forward(cpu, inputs, nullptr, B, T);
  std::vector<float> want(static_cast<size_t>(BT)), got(static_cast<size_t>(BT));
  cpu::token_logprob_forward(want.data(), nullptr, cpu.acts.logits.data(), targets, BT, c.vocab_size,
                             c.padded_vocab_size, inv_temp);
  cpu::token_logprob_backward(gpt2_dlogits(cpu), cpu.acts.logits.data(), targets, weight.data(), BT, c.vocab_size,
                              c.padded_vocab_size, inv_temp);
  gpt2_zero_grad(cpu);
  gpt2_backward_from_dlogits(cpu);

  lm_device_token_logprobs(*dev, inputs, targets, B, T, inv_temp, got.data());
  lm_device_logprob_backward(*dev, weight.data(), inv_temp);
  lm_device_grads_to_host(*dev, staging);
  for (int i = 0; i < BT; i++) EXPECT_NEAR(got[size_t(i)], want[size_t(i)], 1e-4 * (1.0 + std::fabs(want[size_t(i)])));
  const double rel = relative_l2(staging.grads, cpu.grads);
  EXPECT_LT(rel, 1e-4) << "gradients, relative L2";
}

// What est does with run.device = "cuda": a sampled subnetwork (one block skipped, half the heads
// and units of the other) through the device hook against the CPU's SubnetSlices - the loss, the
// gradients (exactly 0 outside the subnetwork's mask) - then the masked AdamW step: parameters
// outside the mask bit-identical to before.
TEST_F(CudaLmDevice, SubnetworkStepFollowsTheCpu) {
  const GPT2Config& c = cpu.config;
  Rng rng(9, Stream::est_subnet, 4);
  GPT2Subnet sub = subnet_sample(c, SubnetRates{0.5, 0.5, 0.5}, /*share_across_layers=*/false, rng);
  ASSERT_EQ(std::count(sub.layer_on.begin(), sub.layer_on.end(), uint8_t{1}), 1) << "one of the two blocks runs";
  std::vector<uint8_t> mask;
  subnet_param_mask(sub, c, cpu.layout, mask);

  GPT2 staging = cpu;
  LmDevicePtr dev = lm_device_create(staging, opt);
  SubnetSlices slices;
  slices.set(sub, c);
  gpt2_zero_grad(cpu);
  const float want = gpt2_forward(cpu, tokens.data(), tokens.data() + 1, B, T, &slices);
  gpt2_backward(cpu, &slices);
  const float got = lm_device_forward_backward(*dev, tokens.data(), tokens.data() + 1, B, T, &sub);
  EXPECT_NEAR(got, want, 1e-4 * std::fabs(want));
  lm_device_grads_to_host(*dev, staging);
  size_t outside_nonzero = 0;
  for (size_t k = 0; k < cpu.grads.size(); k++)
    if (!mask[k] && staging.grads[k] != 0.0f) outside_nonzero++;
  EXPECT_LT(relative_l2(staging.grads, cpu.grads), 1e-4) << "gradients, relative L2";
  EXPECT_EQ(outside_nonzero, 0u) << "gradients outside the subnetwork must be exactly 0";

  const std::vector<float> before = staging.params;
  lm_device_update(*dev, 1.0, 2e-3f, mask);
  lm_device_params_to_host(*dev, staging);
  size_t moved_outside = 0, moved_inside = 0;
  for (size_t k = 0; k < before.size(); k++) {
    if (staging.params[k] != before[k]) (mask[k] ? moved_inside : moved_outside)++;
  }
  EXPECT_EQ(moved_outside, 0u) << "no_update: parameters outside the mask stay as they were";
  EXPECT_GT(moved_inside, 0u);
}

// What grpo does for its KL term with run.device = "cuda": the reference parameters swapped in on the
// device give the reference model's log-probabilities bit for bit, and swapping back restores the
// policy's; generation through the worker equals generation through the device model itself.
TEST_F(CudaLmDevice, ReferenceSwapAndGeneration) {
  GPT2 reference = cpu;
  for (float& p : reference.params) p *= 0.9f;
  LmDevicePtr dev = lm_device_create(cpu, opt), ref = lm_device_create(reference, opt);
  lm_device_set_reference(*dev, reference.params);
  const int BT = B * T;
  std::vector<float> policy(static_cast<size_t>(BT)), swapped(policy.size()), want(policy.size()), back(policy.size());
  lm_device_token_logprobs(*dev, tokens.data(), tokens.data() + 1, B, T, 1.0f, policy.data());
  lm_device_token_logprobs(*ref, tokens.data(), tokens.data() + 1, B, T, 1.0f, want.data());
  lm_device_swap_reference(*dev);
  lm_device_token_logprobs(*dev, tokens.data(), tokens.data() + 1, B, T, 1.0f, swapped.data());
  lm_device_swap_reference(*dev);
  lm_device_token_logprobs(*dev, tokens.data(), tokens.data() + 1, B, T, 1.0f, back.data());
  EXPECT_EQ(swapped, want);
  EXPECT_EQ(back, policy);
  EXPECT_NE(policy, want);

  expect_same_generations(*dev, nullptr, {{1, 2, 3}, {4, 5}, {6}});
}

// What grpo does with LoRA on run.device = "cuda": the adapters on the device (B non-zero, as after
// some training) give the CPU's log-probabilities with the adapters and without them (the reference),
// the adapters' gradients of a weighted log-prob sum, and the same generations.
TEST_F(CudaLmDevice, LoraFollowsTheCpu) {
  LoraAdapters lora = trained_lora(29);
  LmDevicePtr dev = lm_device_create(cpu, AdamW{});
  lm_device_attach_lora(*dev, lora);
  const GPT2Config& c = cpu.config;
  const int BT = B * T;
  const float inv_temp = 1.25f;
  const int* inputs = tokens.data();
  const int* targets = tokens.data() + 1;
  std::vector<float> weight(static_cast<size_t>(BT));
  for (int i = 0; i < BT; i++) weight[size_t(i)] = i % 3 == 0 ? 0.0f : 0.5f / float(BT);

  for (const bool adapters : {false, true}) {
    std::vector<float> want(static_cast<size_t>(BT)), got(want.size());
    gpt2_forward(cpu, inputs, nullptr, B, T, adapters ? &lora : nullptr);
    cpu::token_logprob_forward(want.data(), nullptr, cpu.acts.logits.data(), targets, BT, c.vocab_size,
                               c.padded_vocab_size, inv_temp);
    lm_device_token_logprobs(*dev, inputs, targets, B, T, inv_temp, got.data(), nullptr, adapters);
    for (int i = 0; i < BT; i++)
      EXPECT_NEAR(got[size_t(i)], want[size_t(i)], 1e-4 * (1.0 + std::fabs(want[size_t(i)]))) << "adapters " << adapters;
  }
  // The backward of the last (adapted) forward: only the adapters' gradients are compared.
  const std::vector<float> want_grads = cpu_adapter_grads(lora, weight, inv_temp);
  lm_device_logprob_backward(*dev, weight.data(), inv_temp);
  lm_device_lora_grads_to_host(*dev, lora);
  const double rel = relative_l2(lora.grads, want_grads);
  EXPECT_LT(rel, 1e-4) << "adapter gradients, relative L2";

  expect_same_generations(*dev, &lora, {{1, 2, 3}, {4, 5}, {6}, {7, 8, 9, 10}});
}

// model.dtype = bf16 on the device worker (placement sets the thread's precision before the worker
// is made, which then keeps bf16 activations): the loss and the gradients of a step stay within
// bf16's rounding of the CPU's fp32 step (loss 1e-2, gradients 3e-2 relative L2), and differ from
// it (the mode is really on).
TEST_F(CudaLmDevice, Bf16StepStaysNearFp32) {
  GPT2 staging = cpu;
  gpt2_zero_grad(cpu);
  const float want = gpt2_forward(cpu, tokens.data(), tokens.data() + 1, B, T);
  gpt2_backward(cpu);
  float got = 0;
  {
    struct Fp32Again {  // even when the step throws: later tests on this thread expect fp32
      ~Fp32Again() { cuda::set_matmul_precision(cuda::MatmulPrecision::fp32); }
    } restore;
    cuda::set_matmul_precision(cuda::MatmulPrecision::bf16);
    LmDevicePtr dev = lm_device_create(staging, opt);
    got = lm_device_forward_backward(*dev, tokens.data(), tokens.data() + 1, B, T);
    lm_device_grads_to_host(*dev, staging);
  }
  EXPECT_NEAR(got, want, 1e-2 * std::fabs(want));
  const double rel = relative_l2(staging.grads, cpu.grads);
  EXPECT_LT(rel, 3e-2) << "gradients, relative L2";
  EXPECT_GT(rel, 1e-6) << "bf16 asked for, but the gradients came out at fp32 accuracy";
}

// grpo with LoRA under model.dtype = bf16: the adapters' bf16 path (cuda::gemm on the rounded
// adapters) and the token head on bf16 logits stay within bf16's rounding of the CPU's fp32
// log-probabilities (3e-2 (1 + |logp|)) and adapter gradients (5e-2 relative L2), and are not fp32.
TEST_F(CudaLmDevice, Bf16LoraTokenHeadStaysNearFp32) {
  LoraAdapters lora = trained_lora(31);
  const GPT2Config& c = cpu.config;
  const int BT = B * T;
  const float inv_temp = 1.25f;
  const int* inputs = tokens.data();
  const int* targets = tokens.data() + 1;
  std::vector<float> weight(static_cast<size_t>(BT), 0.5f / float(BT));

  std::vector<float> want(static_cast<size_t>(BT)), got(want.size());
  gpt2_forward(cpu, inputs, nullptr, B, T, &lora);
  cpu::token_logprob_forward(want.data(), nullptr, cpu.acts.logits.data(), targets, BT, c.vocab_size,
                             c.padded_vocab_size, inv_temp);
  const std::vector<float> want_grads = cpu_adapter_grads(lora, weight, inv_temp);
  {
    struct Fp32Again {
      ~Fp32Again() { cuda::set_matmul_precision(cuda::MatmulPrecision::fp32); }
    } restore;
    cuda::set_matmul_precision(cuda::MatmulPrecision::bf16);
    LmDevicePtr dev = lm_device_create(cpu, AdamW{});
    lm_device_attach_lora(*dev, lora);
    lm_device_token_logprobs(*dev, inputs, targets, B, T, inv_temp, got.data());
    lm_device_logprob_backward(*dev, weight.data(), inv_temp);
    lm_device_lora_grads_to_host(*dev, lora);
  }
  double max_err = 0;
  for (int i = 0; i < BT; i++) {
    const double err = std::fabs(got[size_t(i)] - want[size_t(i)]);
    EXPECT_LE(err, 3e-2 * (1.0 + std::fabs(want[size_t(i)]))) << "position " << i;
    max_err = std::max(max_err, err);
  }
  EXPECT_GT(max_err, 0.0) << "bf16 asked for, but the log-probabilities came out bit-identical to fp32";
  const double rel = relative_l2(lora.grads, want_grads);
  EXPECT_LT(rel, 5e-2) << "adapter gradients, relative L2";
}

}  // namespace
