// EGGROLL's headline, measured: throughput of a population's perturbed forward relative to plain
// batch inference of the same layer(s) on the same batch.
//
//   inference     y = x W^T + b over a batch of N rows                       (one GEMM)
//   eggroll       N members, one row each: the same GEMM + per member r dot products and r axpys,
//                 factors generated once per epoch (outside the timed loop, as in a training epoch
//                 where they are reused for every environment step)
//   eggroll+gen   the same, regenerating every member's factors inside the timed loop
//   openai_es     per member: materialise W + s sigma E (stored noise) and one matrix-vector product
//
// Shapes: a linear layer d x d, and an MLP of three d x d layers with tanh between them;
// d in {256, 1024, 4096}, N in {64, 256, 1024}, r in {1, 4}. OpenAI-ES's per-member cost does not
// depend on N (nothing is shared), so it is timed on min(N, 2^24 / d^2) members (memory for the
// stored noise and minutes of runtime otherwise) and reported as members per second.
//
//   OMP_NUM_THREADS=2 ./bench/bench_eggroll                  # the whole table
//   ./bench/bench_eggroll --benchmark_filter='mlp:0/d:4096/N:1024'
// On a noisy machine add --benchmark_repetitions=5 --benchmark_enable_random_interleaving=true:
// the table then holds the medians.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "core/rng.hpp"
#include "model/mlp.hpp"
#include "model/perturb.hpp"

using namespace frugal;

namespace {

enum Variant { kInference = 0, kEggroll = 1, kEggrollGen = 2, kOpenAiEs = 3 };

struct Net {
  int d = 0, layers = 1;
  std::vector<float> w, b;  // layers x (d x d), layers x d
};

Net make_net(int d, int layers) {
  Net net{d, layers, std::vector<float>(size_t(layers) * d * d), std::vector<float>(size_t(layers) * d)};
  Rng rng(1, Stream::init);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  for (auto& x : net.w) x = scale * rng.normal();
  for (auto& x : net.b) x = 0.01f * rng.normal();
  return net;
}

std::vector<float> make_input(int rows, int d) {
  Rng rng(2, Stream::init);
  std::vector<float> x(size_t(rows) * d);
  for (auto& v : x) v = rng.normal();
  return x;
}

// Arguments: {mlp (0/1), d, N, r, variant}
void BM_Forward(benchmark::State& state) {
  const int layers = state.range(0) ? 3 : 1, d = static_cast<int>(state.range(1)), N = static_cast<int>(state.range(2));
  const int r = static_cast<int>(state.range(3));
  const auto variant = static_cast<Variant>(state.range(4));
  const float sigma = 0.01f;
  const Net net = make_net(d, layers);
  const int rows = variant == kOpenAiEs ? std::max(2, std::min(N, (1 << 24) / (d * d)) / 2 * 2) : N;
  const int pairs = (rows + 1) / 2;
  const std::vector<float> x = make_input(rows, d);
  std::vector<float> h0(size_t(rows) * d), h1(size_t(rows) * d);
  std::vector<int32_t> member(rows);
  for (int i = 0; i < rows; i++) member[i] = i;
  std::vector<LowRankFactors> factors(layers);
  std::vector<VectorNoise> bias_noise(layers);
  std::vector<FullRankNoise> full(layers);
  auto generate = [&] {
    for (int l = 0; l < layers; l++) {
      if (variant == kOpenAiEs) {
        fullrank_generate(full[l], NoiseKey{7, 0, uint32_t(l), 0}, 0, pairs, d, d);
      } else {
        lowrank_generate(factors[l], NoiseKey{7, 0, uint32_t(l), 0}, 0, pairs, d, d, r);
      }
      vector_noise_generate(bias_noise[l], NoiseKey{7, 1, uint32_t(l), 0}, 0, pairs, d);
    }
  };
  if (variant != kInference) generate();
  for (auto _ : state) {
    if (variant == kEggrollGen) generate();
    const float* in = x.data();
    for (int l = 0; l < layers; l++) {
      float* out = (l % 2 == 0 ? h0 : h1).data();
      const float* w = net.w.data() + size_t(l) * d * d;
      const float* b = net.b.data() + size_t(l) * d;
      switch (variant) {
        case kInference: linear_forward(in, w, b, rows, d, d, out); break;
        case kEggroll:
        case kEggrollGen:
          lowrank_linear_forward(in, rows, w, b, member.data(), factors[l], &bias_noise[l], sigma, out);
          break;
        case kOpenAiEs: fullrank_linear_forward(in, rows, w, b, member.data(), full[l], &bias_noise[l], sigma, out); break;
      }
      if (l + 1 < layers) activate(Activation::tanh, out, size_t(rows) * d);
      in = out;
    }
    benchmark::DoNotOptimize(in);
    benchmark::ClobberMemory();
  }
  state.counters["samples/s"] = benchmark::Counter(double(rows), benchmark::Counter::kIsIterationInvariantRate);
}

void Args(benchmark::internal::Benchmark* b) {
  for (int mlp : {0, 1})
    for (int d : {256, 1024, 4096})
      for (int n : {64, 256, 1024}) {
        b->Args({mlp, d, n, 1, kInference});
        for (int r : {1, 4}) b->Args({mlp, d, n, r, kEggroll});
        for (int r : {1, 4}) b->Args({mlp, d, n, r, kEggrollGen});
        b->Args({mlp, d, n, 1, kOpenAiEs});
      }
  b->ArgNames({"mlp", "d", "N", "r", "variant"});
}

}  // namespace

// Steady state: a warm-up (the first pass first-touches the outputs and, for d = 4096, pages in
// tens of MB of factors), then at least a second of timing.
BENCHMARK(BM_Forward)->Apply(Args)->Unit(benchmark::kMillisecond)->MinWarmUpTime(0.3)->MinTime(1.0)->UseRealTime();

// Custom main: after the runs, one table of samples/s with every variant as a % of inference.
int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  struct Collect : benchmark::ConsoleReporter {
    std::map<std::vector<int64_t>, double> rate;  // {mlp, d, N, r, variant} -> samples/s
    void ReportRuns(const std::vector<Run>& runs) override {
      for (const auto& run : runs) {
        // With --benchmark_repetitions, the median of the repetitions is the figure (the mean and
        // the spread are printed by the console reporter above the table).
        if (run.run_type == Run::RT_Aggregate && run.aggregate_name != "median") continue;
        // "BM_Forward/mlp:0/d:256/N:64/r:1/variant:0/min_time:.../real_time"
        std::vector<int64_t> key;
        const std::string name = run.benchmark_name();
        for (const char* field : {"mlp:", "d:", "N:", "r:", "variant:"}) {
          const size_t at = name.find(std::string("/") + field);
          key.push_back(at == std::string::npos ? -1 : std::stoll(name.substr(at + 1 + std::string(field).size())));
        }
        const auto it = run.counters.find("samples/s");
        if (it != run.counters.end()) rate[key] = it->second.value;
      }
      ConsoleReporter::ReportRuns(runs);
    }
  } reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  std::printf("\nsamples/s of plain batch inference, and each variant as %% of it (same shapes, same run)\n");
  std::printf("%-7s %5s %5s | %12s | %9s %9s | %11s %11s | %9s\n", "shape", "d", "N", "inference", "egg r=1", "egg r=4",
              "egg+gen r=1", "egg+gen r=4", "openai_es");
  auto get = [&](int mlp, int d, int n, int r, int v) {
    const auto it = reporter.rate.find({mlp, d, n, r, v});
    return it == reporter.rate.end() ? -1.0 : it->second;
  };
  for (int mlp : {0, 1})
    for (int d : {256, 1024, 4096})
      for (int n : {64, 256, 1024}) {
        const double inf = get(mlp, d, n, 1, kInference);
        if (inf <= 0) continue;
        auto pct = [&](int r, int v) {
          const double x = get(mlp, d, n, r, v);
          return x < 0 ? std::string("-") : std::to_string(100.0 * x / inf).substr(0, 6) + "%";
        };
        std::printf("%-7s %5d %5d | %12.0f | %9s %9s | %11s %11s | %9s\n", mlp ? "mlp x3" : "linear", d, n, inf,
                    pct(1, kEggroll).c_str(), pct(4, kEggroll).c_str(), pct(1, kEggrollGen).c_str(),
                    pct(4, kEggrollGen).c_str(), pct(1, kOpenAiEs).c_str());
      }
  const double inf = get(0, 1024, 1024, 1, kInference), egg = get(0, 1024, 1024, 1, kEggroll);
  const double oes = get(0, 1024, 1024, 1, kOpenAiEs);
  if (inf > 0 && egg > 0)
    std::printf("\nheadline (linear d=1024, N=1024, r=1): EGGROLL %.1f%% of inference (floor 85%%; paper 91%% on a GPU), "
                "OpenAI-ES %.2f%%\n", 100 * egg / inf, oes > 0 ? 100 * oes / inf : -1.0);
  benchmark::Shutdown();
}
