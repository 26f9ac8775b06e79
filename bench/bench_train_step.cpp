// A full GPT-2 training step (forward, backward, AdamW) of a GPT-2-small-shaped model - width 768,
// 12 layers, 12 heads, T 64, B 4, vocab 50304 - against the machine's sgemm rate at the same
// thread count, measured in the same run. Counters: GFLOP/s of the step (exact FLOP count of the
// issued work, forward + backward = 3 x forward) and its ratio to sgemm.
//   OMP_NUM_THREADS=1 ./bench/bench_train_step ; OMP_NUM_THREADS=2 ./bench/bench_train_step
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <omp.h>

#include <cstdio>
#include <map>
#include <vector>

#include "model/gpt2.hpp"
#include "optim/adamw.hpp"
#include "gpt2_small.hpp"

using namespace frugal;

namespace {


void BM_Sgemm(benchmark::State& state) {
  // A large square GEMM: the practical peak of this BLAS on this machine at this thread count.
  const int n = static_cast<int>(state.range(0));
  std::vector<float> a(size_t(n) * n, 0.5f), b(size_t(n) * n, 0.25f), c(size_t(n) * n);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
  }
  const double flops = 2.0 * n * n * n;
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = omp_get_max_threads();
}

void BM_TrainStepGPT2Small(benchmark::State& state) {
  const GPT2Config c = bench::gpt2_small();
  const int B = 4, T = 64;
  GPT2 m = gpt2_create(c);
  gpt2_init_weights(m, 1);
  AdamW opt = adamw_create(AdamWConfig{}, m.layout);
  std::vector<int> in, tg;
  bench::random_tokens(c, B, T, in, tg);
  for (auto _ : state) {
    gpt2_zero_grad(m);
    gpt2_forward(m, in.data(), tg.data(), B, T);
    gpt2_backward(m);
    clip_grad_norm(m.grads, 1.0);
    adamw_step(opt, m.params, m.grads, 1e-4f);
    benchmark::ClobberMemory();
  }
  const double flops = 3.0 * gpt2_forward_flops(c, B, T);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = omp_get_max_threads();
  state.counters["params_M"] = double(m.params.size()) / 1e6;
}

}  // namespace

BENCHMARK(BM_Sgemm)->Arg(2048)->Unit(benchmark::kMillisecond)->MinTime(2.0)->UseRealTime();
BENCHMARK(BM_TrainStepGPT2Small)->Unit(benchmark::kMillisecond)->MinTime(5.0)->UseRealTime();

// Custom main: after the benchmarks, print the ratio of the step's rate to sgemm's.
int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  struct Collect : benchmark::ConsoleReporter {
    std::map<std::string, double> gflops;
    void ReportRuns(const std::vector<Run>& runs) override {
      for (const auto& r : runs) gflops[r.benchmark_name()] = r.counters.at("GFLOP/s").value;
      ConsoleReporter::ReportRuns(runs);
    }
  } reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  double sgemm = 0, step = 0;
  for (const auto& [name, v] : reporter.gflops) {
    if (name.rfind("BM_Sgemm", 0) == 0) sgemm = v;
    if (name.rfind("BM_TrainStep", 0) == 0) step = v;
  }
  if (sgemm > 0 && step > 0)
    std::printf("\ntrain step: %.1f GFLOP/s = %.1f%% of sgemm (%.1f GFLOP/s) at %d thread(s)\n", step, 100 * step / sgemm,
                sgemm, omp_get_max_threads());
  benchmark::Shutdown();
  return 0;
}
