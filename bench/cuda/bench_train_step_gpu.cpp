// A GPT-2 124M training step on one GPU: the device model (device/gpt2_device.hpp) running the same
// passes as the CPU model, plus the device AdamW. Prints the step's time split (forward, backward,
// optimiser), tokens/s and MFU against the GPU's datasheet peak (gpu_timing.hpp), in FP32, TF32 and
// bf16 (model.dtype: bf16 activations and GEMMs), beside the GEMM-only ceiling that bench_gemm_gpu
// measures for the same shapes.
// FLOPs are frugal's own count of what the kernels issue (gpt2_forward_flops, causal attention
// included), x3 for forward + backward. Random weights (GPT-2 init) and random tokens: the speed of
// a step does not depend on them.
//
//   ./bench/bench_train_step_gpu [--quick]     (--quick: B 4 instead of 16)
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench/cuda/gpu_timing.hpp"
#include "bench/gpt2_small.hpp"
#include "core/error.hpp"
#include "device/adamw_device.hpp"
#include "device/gpt2_device.hpp"
#include "kernels/cuda/kernels.hpp"

using namespace frugal;
namespace fc = frugal::cuda;

namespace {

struct Split {
  double forward, backward, optimizer, step;
};

Split time_step(GPT2Device& model, AdamWDevice& opt, const std::vector<int>& tokens, int B, int T) {
  const int* in = tokens.data();
  const int* tg = tokens.data() + 1;  // next-token targets
  Split s{};
  s.forward = bench::time_long_call([&] { gpt2_forward(model, in, tg, B, T); });
  s.backward = bench::time_long_call([&] { gpt2_backward(model); });
  s.optimizer = bench::time_call([&](int) { adamw_step(opt, model.params.data(), model.grads.data(), 1e-6f); });
  s.step = bench::time_long_call([&] {
    gpt2_zero_grad(model);
    gpt2_forward(model, in, tg, B, T);
    gpt2_backward(model);
    adamw_step(opt, model.params.data(), model.grads.data(), 1e-6f);
  });
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  if (const int status = bench::gpu_bench_start(argc, argv, "bench_train_step_gpu", &quick); status >= 0) return status;
  try {
    const cudaDeviceProp prop = bench::device_properties();
    const bench::GpuPeak* peak = bench::peak_of(prop.name);
    const GPT2Config c = bench::gpt2_small();
    const int B = quick ? 4 : 16, T = 1024, BT = B * T;
    const double step_flops = 3.0 * gpt2_forward_flops(c, B, T);

    GPT2 host = gpt2_create(c);
    gpt2_init_weights(host, 1);
    std::mt19937 rng(3);
    std::uniform_int_distribution<int> token(0, c.vocab_size - 1);
    std::vector<int> tokens(size_t(BT) + 1);
    for (int& t : tokens) t = token(rng);
    AdamWDevice opt = adamw_to_device(adamw_create(AdamWConfig{}, host.layout));
    float loss = 0;
    {
      GPT2Device model = gpt2_to_device(host);
      loss = gpt2_forward(model, tokens.data(), tokens.data() + 1, B, T);
    }

    std::printf("GPT-2 124M training step on %s: B %d x T %d = %d tokens, %.2f TFLOP per step, fp32 master "
                "weights and AdamW state on the device; first loss %.4f (ln V = %.4f)\n",
                prop.name, B, T, BT, step_flops * 1e-12, loss, std::log(double(c.vocab_size)));
    std::printf("%-5s %10s %10s %10s %10s | %12s %10s %8s\n", "math", "forward", "backward", "adamw", "step",
                "tokens/s", "TFLOP/s", "MFU");
    // model.dtype's three precisions; bf16 is llm.c's scheme (bf16 activations and GEMMs, fp32
    // master weights and AdamW state), its MFU against the bf16 tensor-core peak (the floor:
    // 35%). Each mode gets a fresh device model from the same weights (bf16 keeps bf16 activations).
    const struct {
      const char* name;
      fc::MatmulPrecision precision;
    } modes[] = {{"fp32", fc::MatmulPrecision::fp32}, {"tf32", fc::MatmulPrecision::tf32}, {"bf16", fc::MatmulPrecision::bf16}};
    for (const auto& mode : modes) {
      fc::set_matmul_precision(mode.precision);
      GPT2Device model = gpt2_to_device(host, mode.precision == fc::MatmulPrecision::bf16);
      const Split s = time_step(model, opt, tokens, B, T);
      const double rate = step_flops / s.step * 1e-12;
      const double peak_rate = !peak ? 0.0
                               : mode.precision == fc::MatmulPrecision::bf16 ? peak->bf16
                               : mode.precision == fc::MatmulPrecision::tf32 ? peak->tf32
                                                                             : peak->fp32;
      std::printf("%-5s %8.1f ms %8.1f ms %8.2f ms %8.1f ms | %12.0f %10.1f", mode.name, s.forward * 1e3,
                  s.backward * 1e3, s.optimizer * 1e3, s.step * 1e3, BT / s.step, rate);
      if (peak) std::printf(" %7.1f%% of %.0f TFLOP/s (%s datasheet)", 100.0 * rate / peak_rate, peak_rate, peak->name);
      std::printf("\n");
    }
    fc::set_matmul_precision(fc::MatmulPrecision::fp32);

    // Where the time goes: attention's share, timed alone on one block's shapes, fp32 (TF32 GEMMs)
    // and bf16.
    const size_t C = c.channels, NH = c.num_heads;
    fc::DeviceBuffer qkv(size_t(BT) * 3 * C), out(size_t(BT) * C), att(size_t(B) * NH * T * T), dqkv(qkv.size());
    fc::keyed_normals(qkv.data(), NoiseKey{9, 0, 0, 0}, 0, static_cast<int64_t>(qkv.size()));
    fc::keyed_normals(out.data(), NoiseKey{9, 0, 1, 0}, 0, static_cast<int64_t>(out.size()));
    fc::DeviceArray<fc::bf16> qkv16(qkv.size()), out16(out.size()), att16(att.size()), dqkv16(qkv.size());
    fc::convert(qkv16.data(), qkv.data(), qkv.size());
    fc::convert(out16.data(), out.data(), out.size());
    const auto time_attention = [&](const char* name, auto& o, auto& a, auto& q, auto& dq) {
      const double fwd =
          bench::time_long_call([&] { fc::attention_forward(o.data(), a.data(), q.data(), B, T, int(C), int(NH)); });
      const double bwd = bench::time_long_call(
          [&] { fc::attention_backward(dq.data(), o.data(), q.data(), a.data(), B, T, int(C), int(NH)); });
      std::printf("attention alone (%s): forward %.2f ms + backward %.2f ms per block, x %d blocks = %.1f ms "
                  "per step\n",
                  name, fwd * 1e3, bwd * 1e3, c.num_layers, (fwd + bwd) * c.num_layers * 1e3);
    };
    fc::set_matmul_precision(fc::MatmulPrecision::tf32);
    time_attention("tf32", out, att, qkv, dqkv);
    fc::set_matmul_precision(fc::MatmulPrecision::fp32);
    time_attention("bf16", out16, att16, qkv16, dqkv16);
    std::printf("reference: bench_gemm_gpu's GEMM-only ceiling for B 16 x T 1024; llm.c reaches about 40-50%% MFU in "
                "bf16 on an H100 (issue 14's figure)\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_train_step_gpu: %s\n", e.what());
    return 1;
  }
  return 0;
}
