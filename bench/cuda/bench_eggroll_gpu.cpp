// EGGROLL's headline on the GPU, the paper's Figure 2a: samples/s of a population's perturbed
// forward against plain batch inference of the same layers on the same batch, measured in one run.
//
//   inference      y = x W^T over N rows                              (cuBLAS GEMM per layer)
//   eggroll        N members, one row each: the correction pass (r dot products, r axpys per row,
//                  factors stored, generated once per epoch outside the timed loop) + the same GEMM
//   eggroll-regen  the same with every member's factors regenerated inside the kernel (Philox)
//   openai-es      per member a matrix-vector product with W + s sigma E_p (E stored); nothing is
//                  shared between members, so it runs on M <= N members and reports members/s
//
// Linear rows also show the inference GEMM time and EGGROLL's pass 1 alone (time, GB/s of its minimum
// traffic): together they say where a shortfall comes from.
//
// Layers: one d x d linear layer, and an MLP of three with tanh between; no biases (inference is
// then a pure GEMM, the strongest baseline). d in {1024, 4096, 8192}, N in {256, 1024}, r in {1, 4},
// bf16 (fp32 accumulation) and fp32 (no TF32). Inputs and factors rotate over 4 sets so no timed
// call finds its operands in L2 from the previous one. Each time: 3 warm-up calls, then the median
// of 7 repetitions of a loop of >= 5 ms, timed with CUDA events.
//
//   ./bench/bench_eggroll_gpu            # the whole table (~15 s on an H200)
//   ./bench/bench_eggroll_gpu --quick    # d = 8192, N = 1024 only
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "bench/cuda/gpu_timing.hpp"
#include "core/error.hpp"
#include "kernels/cuda/kernels.hpp"

using namespace frugal;
using frugal::bench::time_call;
namespace fc = frugal::cuda;

namespace {

constexpr int kSets = 4;  // rotating operand sets

// Random normal device data of the bench's element type (generated on the device: fast at any size).
template <typename T>
fc::DeviceArray<T> normals(size_t n, uint32_t stream) {
  fc::DeviceBuffer f(n);
  fc::keyed_normals(f.data(), NoiseKey{1234, 3, stream, 0}, 0, static_cast<int64_t>(n));
  if constexpr (std::is_same_v<T, float>) {
    return f;
  } else {
    fc::DeviceArray<fc::bf16> h(n);
    fc::convert(h.data(), f.data(), n);
    fc::synchronize();
    return h;
  }
}

template <typename T>
struct Factors {  // one layer's stored factors for every pair, as the device layout wants them
  fc::DeviceArray<T> Bt, At;
};
template <typename T>
Factors<T> make_factors(const NoiseKey& key, int pairs, int d, int r) {
  fc::DeviceBuffer bt(size_t(pairs) * r * d), at(size_t(pairs) * r * d);
  fc::lowrank_generate(bt.data(), at.data(), key, 0, pairs, d, d, r);
  if constexpr (std::is_same_v<T, float>) {
    return {std::move(bt), std::move(at)};
  } else {
    Factors<T> f{fc::DeviceArray<T>(bt.size()), fc::DeviceArray<T>(at.size())};
    fc::convert(f.Bt.data(), bt.data(), bt.size());
    fc::convert(f.At.data(), at.data(), at.size());
    fc::synchronize();
    return f;
  }
}

struct Row {
  std::string dtype;
  int layers, d, N, r;
  double inf_rate, inf_tflops, egg, regen, es;  // samples/s; TFLOP/s; % of inference
};

template <typename T>
void bench_dtype(const char* dtype, const std::vector<int>& dims, const std::vector<int>& pops, std::vector<Row>& rows) {
  const float sigma = 0.01f;
  for (const int d : dims) {
    for (const int layers : {1, 3}) {
      std::vector<fc::DeviceArray<T>> W;
      for (int l = 0; l < layers; l++) W.push_back(normals<T>(size_t(d) * d, 10 + l));
      // OpenAI-ES: per-member cost is independent of N; M members with stored noise (<= 2^29 elements).
      const int M = std::max(2, std::min(pops.back(), (1 << 29) / (d * d)) / 2 * 2);
      double es_rate = 0.0;
      {
        std::vector<fc::DeviceArray<T>> E;
        for (int l = 0; l < layers; l++) E.push_back(normals<T>(size_t(M / 2) * d * d, 20 + l));
        auto x = normals<T>(size_t(M) * d, 30);
        fc::DeviceArray<T> h0(size_t(M) * d), h1(size_t(M) * d);
        std::vector<int> ids(M);
        for (int i = 0; i < M; i++) ids[i] = i;
        fc::IntDeviceBuffer member(ids);
        const double t = time_call([&](int) {
          const T* in = x.data();
          for (int l = 0; l < layers; l++) {
            T* out = l % 2 == 0 ? h0.data() : h1.data();
            fc::fullrank_linear_forward(out, in, M, W[l].data(), nullptr, member.data(), E[l].data(), 0, d, d,
                                        nullptr, sigma);
            if (l + 1 < layers) fc::tanh_forward(out, size_t(M) * d);
            in = out;
          }
        });
        es_rate = M / t;
      }
      for (const int N : pops) {
        std::vector<fc::DeviceArray<T>> xs;
        for (int s = 0; s < kSets; s++) xs.push_back(normals<T>(size_t(N) * d, 40 + s));
        fc::DeviceArray<T> h0(size_t(N) * d), h1(size_t(N) * d);
        std::vector<int> ids(N);
        for (int i = 0; i < N; i++) ids[i] = i;
        fc::IntDeviceBuffer member(ids);
        auto forward = [&](int call, const std::function<void(T*, const T*, int, int)>& layer) {
          const T* in = xs[call % kSets].data();
          for (int l = 0; l < layers; l++) {
            T* out = l % 2 == 0 ? h0.data() : h1.data();
            layer(out, in, l, call % kSets);
            if (l + 1 < layers) fc::tanh_forward(out, size_t(N) * d);
            in = out;
          }
        };
        const double t_inf = time_call([&](int call) {
          forward(call, [&](T* out, const T* in, int l, int) { fc::matmul_forward(out, in, W[l].data(), nullptr, N, d, d); });
        });
        const double inf_rate = N / t_inf;
        const double tflops = 2.0 * N * double(d) * d * layers / t_inf * 1e-12;
        for (const int r : {1, 4}) {
          std::vector<std::vector<Factors<T>>> f(kSets);  // [set][layer]
          for (int s = 0; s < kSets; s++)
            for (int l = 0; l < layers; l++)
              f[s].push_back(make_factors<T>(NoiseKey{7, 0, uint32_t(l), uint32_t(s)}, N / 2, d, r));
          // EGGROLL's pass 1 on its own (linear layer): its time and the rate at which it moves the
          // fewest bytes it must (x, each pair's factors once, y written), against the copy ceiling.
          double t_pass1 = 0.0;
          if (layers == 1)
            t_pass1 = time_call([&](int call) {
              const int s = call % kSets;
              const fc::LowRankView<T> v{f[s][0].Bt.data(), f[s][0].At.data(), 0, N / 2, r, d, d};
              fc::lowrank_linear_correction(h0.data(), xs[s].data(), N, nullptr, member.data(), v, nullptr, sigma);
            });
          const double pass1_bytes = double(sizeof(T)) * (2.0 * N * d + 2.0 * (N / 2) * r * d);
          const double t_egg = time_call([&](int call) {
            forward(call, [&](T* out, const T* in, int l, int s) {
              const fc::LowRankView<T> v{f[s][l].Bt.data(), f[s][l].At.data(), 0, N / 2, r, d, d};
              fc::lowrank_linear_forward(out, in, N, W[l].data(), nullptr, member.data(), v, nullptr, sigma);
            });
          });
          f.clear();
          const double t_regen = time_call([&](int call) {
            forward(call, [&](T* out, const T* in, int l, int s) {
              fc::lowrank_linear_forward_keyed(out, in, N, W[l].data(), nullptr, member.data(),
                                               NoiseKey{7, 0, uint32_t(l), uint32_t(s)}, r, d, d, nullptr, sigma);
            });
          });
          rows.push_back(Row{dtype, layers, d, N, r, inf_rate, tflops, 100.0 * t_inf / t_egg, 100.0 * t_inf / t_regen,
                             100.0 * es_rate / inf_rate});
          const Row& w = rows.back();
          std::printf("%-5s %-6s %5d %5d %2d %14.0f %9.1f %9.1f%% %9.1f%% %9.2f%%", w.dtype.c_str(),
                      layers == 1 ? "linear" : "mlp3", d, N, r, w.inf_rate, w.inf_tflops, w.egg, w.regen, w.es);
          if (layers == 1)
            std::printf(" %9.1f %8.0f %9.1f\n", 1e6 * t_inf, pass1_bytes / t_pass1 * 1e-9, 1e6 * t_pass1);
          else
            std::printf("\n");
          std::fflush(stdout);
        }
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  if (const int status = bench::gpu_bench_start(argc, argv, "bench_eggroll_gpu", &quick); status >= 0) return status;
  try {
    const cudaDeviceProp prop = bench::device_properties();
    int driver = 0, runtime = 0;
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    std::printf("EGGROLL perturbed forward vs batch inference on %s (%d SMs, driver %d, runtime %d)\n", prop.name,
                prop.multiProcessorCount, driver, runtime);
    std::printf("%-5s %-6s %5s %5s %2s %14s %9s %10s %10s %10s %9s %8s %9s\n", "dtype", "layers", "d", "N", "r",
                "inference/s", "TFLOP/s", "eggroll", "egg-regen", "openai-es", "gemm_us", "p1_GB/s", "pass1_us");
    {  // the memory ceiling pass 1 is judged against: a 1 GiB device-to-device copy (bytes read + written)
      const size_t n = size_t(1) << 28;
      fc::DeviceBuffer a(n), b(n);
      fc::keyed_normals(a.data(), NoiseKey{1, 3, 0, 0}, 0, static_cast<int64_t>(n));
      const double t = time_call([&](int) {
        bench::cuda_ok(cudaMemcpy(b.data(), a.data(), n * sizeof(float), cudaMemcpyDeviceToDevice), "cudaMemcpy");
      });
      std::printf("copy ceiling: %.0f GB/s (1 GiB device-to-device, read + write)\n", 2.0 * n * sizeof(float) / t * 1e-9);
    }
    const std::vector<int> dims = quick ? std::vector<int>{8192} : std::vector<int>{1024, 4096, 8192};
    const std::vector<int> pops = quick ? std::vector<int>{1024} : std::vector<int>{256, 1024};
    std::vector<Row> rows;
    bench_dtype<fc::bf16>("bf16", dims, pops, rows);
    bench_dtype<float>("fp32", dims, pops, rows);
    std::printf("(eggroll, egg-regen, openai-es: samples/s as %% of inference/s in the same row; linear rows: the\n"
                " inference GEMM's time, and EGGROLL's pass 1 alone: its time and its minimum traffic over that time)\n");
    std::printf("paper, Figure 2a (d = 8192, batch 1024, r = 1): EGGROLL 91%%, regenerated 69%%, OpenAI-ES 0.41%%, "
                "PPO 34%%\n");
    for (const Row& w : rows)
      if (w.dtype == "bf16" && w.layers == 1 && w.d == 8192 && w.N == 1024 && w.r == 1)
        std::printf("frugal,   same shape, bf16 linear: EGGROLL %.1f%%, regenerated %.1f%%, OpenAI-ES %.2f%%\n", w.egg,
                    w.regen, w.es);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_eggroll_gpu: %s\n", e.what());
    return 1;
  }
  return 0;
}
