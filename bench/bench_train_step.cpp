// A full GPT-2 training step (forward, backward, gradient-norm clip, AdamW) of a GPT-2-small-shaped
// model - width 768, 12 layers, 12 heads, T 64, B 4, vocab 50304 - against the machine's sgemm rate,
// at 1 thread and at the machine's cores (the benchmark argument), measured in the same run.
// Steady state: every benchmark warms up first (the first steps of a fresh model first-touch ~2 GB
// of parameters, gradients, optimiser state and activations; a single timed iteration would
// measure that), then runs for seconds. Counters: GFLOP/s of the step (exact FLOP count of the
// issued work, forward + backward = 3 x forward) and, printed after the runs, its ratio to sgemm
// at the same thread count and the step's per-kernel breakdown (kernels/cpu/profile.hpp) as
// fractions of the step, so the next bottleneck is visible without a profiler.
//   ./bench/bench_train_step                  (all of it: ~1-2 minutes)
//   ./bench/bench_train_step --benchmark_filter=TrainStep/1
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <vector>

#include "gpt2_small.hpp"
#include "kernels/cpu/profile.hpp"
#include "model/gpt2.hpp"
#include "optim/adamw.hpp"

using namespace frugal;

namespace {

void set_threads(int n) {
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

void BM_Sgemm(benchmark::State& state) {
  // A large square GEMM: the practical peak of this BLAS on this machine at this thread count.
  set_threads(int(state.range(0)));
  const int n = 2048;
  std::vector<float> a(size_t(n) * n, 0.5f), b(size_t(n) * n, 0.25f), c(size_t(n) * n);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
  }
  const double flops = 2.0 * n * n * n;
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = double(state.range(0));
}

// The model and optimiser, made once and shared by every thread count (a fresh 2 GB model per
// benchmark would be first-touched again each time).
struct Step {
  GPT2Config c = bench::gpt2_small();
  int B = 4, T = 64;
  GPT2 m;
  AdamW opt;
  std::vector<int> in, tg;
  Step() : m(gpt2_create(c)) {
    gpt2_init_weights(m, 1);
    opt = adamw_create(AdamWConfig{}, m.layout);
    bench::random_tokens(c, B, T, in, tg);
  }
  // One training step; the optimiser's and the clip's seconds added to *adamw and *norm if given.
  void run(double* adamw = nullptr, double* norm = nullptr) {
    gpt2_zero_grad(m);
    gpt2_forward(m, in.data(), tg.data(), B, T);
    gpt2_backward(m);
    auto t0 = std::chrono::steady_clock::now();
    const float scale = clip_scale(global_norm(m.grads), 1.0);
    auto t1 = std::chrono::steady_clock::now();
    adamw_step(opt, m.params, m.grads, 1e-4f, {}, scale);
    auto t2 = std::chrono::steady_clock::now();
    if (norm) *norm += std::chrono::duration<double>(t1 - t0).count();
    if (adamw) *adamw += std::chrono::duration<double>(t2 - t1).count();
  }
  double flops() const { return 3.0 * gpt2_forward_flops(c, B, T); }
};
Step& step() {
  static Step s;
  return s;
}

void BM_TrainStepGPT2Small(benchmark::State& state) {
  set_threads(int(state.range(0)));
  Step& s = step();
  for (auto _ : state) {
    s.run();
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(s.flops() * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = double(state.range(0));
  state.counters["params_M"] = double(s.m.params.size()) / 1e6;
}

// The per-kernel breakdown at `threads`: `steps` profiled steps after the benchmarks' warm-up.
void print_breakdown(int threads, int steps) {
  set_threads(threads);
  Step& s = step();
  s.run();  // settle at this thread count
  cpu::KernelProfile& p = cpu::kernel_profile();
  p.enabled = true;
  p.reset();
  double adamw = 0, norm = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; i++) s.run(&adamw, &norm);
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  p.enabled = false;
  std::printf("\nper-kernel breakdown, %d thread(s), mean of %d steps (%.1f ms per step):\n", threads, steps,
              1e3 * total / steps);
  std::vector<std::pair<double, std::string>> rows;
  double known = adamw + norm;
  for (int k = 0; k < int(cpu::Kernel::count); k++) {
    rows.push_back({p.seconds[k], cpu::kernel_name(cpu::Kernel(k))});
    known += p.seconds[k];
  }
  rows.push_back({adamw, "AdamW (clip folded in)"});
  rows.push_back({norm, "gradient norm"});
  rows.push_back({std::max(0.0, total - known), "other (glue, checks, allocation)"});
  std::sort(rows.rbegin(), rows.rend());
  for (const auto& [sec, name] : rows)
    std::printf("  %-34s %8.2f ms  %5.1f%%\n", name.c_str(), 1e3 * sec / steps, 100 * sec / total);
}

}  // namespace

// Thread counts: 1 and the machine's cores (when more than 1).
static const int kCores = std::max(1, int(sysconf(_SC_NPROCESSORS_ONLN)));

BENCHMARK(BM_Sgemm)->Arg(1)->Arg(kCores)->Unit(benchmark::kMillisecond)->MinWarmUpTime(1.0)->MinTime(2.0)->UseRealTime();
BENCHMARK(BM_TrainStepGPT2Small)
    ->Arg(1)
    ->Arg(kCores)
    ->Unit(benchmark::kMillisecond)
    ->MinWarmUpTime(8.0)
    ->MinTime(10.0)
    ->UseRealTime();

// Custom main: after the benchmarks, the step's rate as a fraction of sgemm's at each thread
// count, and the per-kernel breakdown.
int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  struct Collect : benchmark::ConsoleReporter {
    std::map<std::string, std::map<int, double>> gflops;  // benchmark family -> threads -> GFLOP/s
    void ReportRuns(const std::vector<Run>& runs) override {
      for (const auto& r : runs)
        gflops[r.run_name.function_name][int(r.counters.at("threads").value)] = r.counters.at("GFLOP/s").value;
      ConsoleReporter::ReportRuns(runs);
    }
  } reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  const auto& sgemm = reporter.gflops["BM_Sgemm"];
  const auto& train = reporter.gflops["BM_TrainStepGPT2Small"];
  for (const auto& [threads, rate] : train) {
    if (!sgemm.count(threads)) continue;
    std::printf("\ntrain step: %.1f GFLOP/s = %.1f%% of sgemm (%.1f GFLOP/s) at %d thread(s)\n", rate,
                100 * rate / sgemm.at(threads), sgemm.at(threads), threads);
  }
  for (const auto& [threads, rate] : train) print_breakdown(threads, 5);
  benchmark::Shutdown();
  return 0;
}
