// The GEMMs of a GPT-2 124M training step on one GPU, in FP32, TF32 and bf16: each shape's rate, and
// the whole step's GEMM time with the tokens/s and MFU it allows. GEMMs are ~90% of the step's
// FLOPs, so this is the ceiling a device training step can approach (llm.c reaches 40-50% MFU in
// bf16 on an H100), measured before the step itself runs on the device.
//
// B = 16 sequences of T = 1024 (BT = 16384 rows). Per block and linear layer (C -> 3C, C -> C,
// C -> 4C, 4C -> C) three GEMMs: the forward (BT, in) x (out, in)^T, the input gradient (BT, out) x
// (out, in) and the weight gradient (out, BT) x (BT, in); plus the tied head (C -> 50304) and its two.
// Every GEMM is timed in the forward's NT layout with its own (M, N, K): the backward's NN / TN
// layouts run at about the same rate in cuBLAS. Attention's T x T products are not GEMMs here.
//
//   ./bench/bench_gemm_gpu
#include <cstdio>
#include <string>
#include <vector>

#include "bench/cuda/gpu_timing.hpp"
#include "bench/gpt2_small.hpp"
#include "core/error.hpp"
#include "kernels/cuda/kernels.hpp"

using namespace frugal;
namespace fc = frugal::cuda;

namespace {

struct Shape {
  const char* what;
  int M, N, K, count;  // out (M, N) = a (M, K) b (N, K)^T, `count` times per step
};

std::vector<Shape> step_shapes(const GPT2Config& c, int BT) {
  const int C = c.channels, L = c.num_layers, Vp = c.padded_vocab_size;
  std::vector<Shape> s;
  auto linear = [&](const char* name, int in, int out, int count) {
    s.push_back({name, BT, out, in, count});   // forward
    s.push_back({name, BT, in, out, count});   // dinp
    s.push_back({name, out, in, BT, count});   // dweight
  };
  linear("qkv", C, 3 * C, L);
  linear("attproj", C, C, L);
  linear("fc", C, 4 * C, L);
  linear("fcproj", 4 * C, C, L);
  linear("head", C, Vp, 1);
  return s;
}

// Seconds per GEMM of shape s in the given precision (operands random, never zero).
template <typename T>
double time_gemm(const Shape& s) {
  fc::DeviceBuffer fa(size_t(s.M) * s.K), fb(size_t(s.N) * s.K);
  fc::keyed_normals(fa.data(), NoiseKey{5, 0, 0, 0}, 0, static_cast<int64_t>(fa.size()));
  fc::keyed_normals(fb.data(), NoiseKey{5, 0, 1, 0}, 0, static_cast<int64_t>(fb.size()));
  if constexpr (std::is_same_v<T, float>) {
    fc::DeviceBuffer out(size_t(s.M) * s.N);
    return bench::time_call([&](int) { fc::matmul_forward(out.data(), fa.data(), fb.data(), nullptr, s.M, s.K, s.N); });
  } else {
    fc::DeviceArray<fc::bf16> a(fa.size()), b(fb.size()), out(size_t(s.M) * s.N);
    fc::convert(a.data(), fa.data(), fa.size());
    fc::convert(b.data(), fb.data(), fb.size());
    return bench::time_call([&](int) { fc::matmul_forward(out.data(), a.data(), b.data(), nullptr, s.M, s.K, s.N); });
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (const int status = bench::gpu_bench_start(argc, argv, "bench_gemm_gpu"); status >= 0) return status;
  try {
    const cudaDeviceProp prop = bench::device_properties();
    const bench::GpuPeak* peak = bench::peak_of(prop.name);
    const GPT2Config c = bench::gpt2_small();
    const int B = 16, T = 1024, BT = B * T;
    const double step_flops = 3.0 * gpt2_forward_flops(c, B, T);  // forward + backward (2x)
    std::printf("GPT-2 124M step GEMMs on %s, B %d x T %d: %.2f TFLOP per step (all of it, attention included)\n",
                prop.name, B, T, step_flops * 1e-12);
    std::printf("%-8s %6s %6s %6s %5s | %9s %9s %9s  (TFLOP/s)\n", "layer", "M", "N", "K", "count", "fp32", "tf32",
                "bf16");
    double total[3] = {0, 0, 0};
    for (const Shape& s : step_shapes(c, BT)) {
      const double flops = 2.0 * s.M * double(s.N) * s.K;
      double t[3];
      fc::set_tf32(false);
      t[0] = time_gemm<float>(s);
      fc::set_tf32(true);
      t[1] = time_gemm<float>(s);
      fc::set_tf32(false);
      t[2] = time_gemm<fc::bf16>(s);
      for (int p = 0; p < 3; p++) total[p] += s.count * t[p];
      std::printf("%-8s %6d %6d %6d %5d | %9.1f %9.1f %9.1f\n", s.what, s.M, s.N, s.K, s.count, flops / t[0] * 1e-12,
                  flops / t[1] * 1e-12, flops / t[2] * 1e-12);
    }
    const char* names[3] = {"fp32", "tf32", "bf16"};
    const double peaks[3] = {peak ? peak->fp32 : 0, peak ? peak->tf32 : 0, peak ? peak->bf16 : 0};
    std::printf("step GEMMs alone: time, tokens/s, and MFU of the whole step's FLOPs over that time (a ceiling)\n");
    for (int p = 0; p < 3; p++) {
      std::printf("  %-4s %8.1f ms %12.0f tok/s", names[p], total[p] * 1e3, BT / total[p]);
      if (peak) std::printf("   MFU ceiling %5.1f%% of %.0f TFLOP/s (%s datasheet)", 100.0 * step_flops / total[p] * 1e-12 / peaks[p], peaks[p], peak->name);
      std::printf("\n");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gemm_gpu: %s\n", e.what());
    return 1;
  }
  return 0;
}
