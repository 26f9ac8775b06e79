// EST's training step against the dense one on a GPT-2-small-shaped model (width 768, 12 blocks,
// 12 heads, vocab 50304, B 4 x T 64), measured in the same run: the dense step, a stage-2 step
// (every block, 6 of 12 heads, 1536 of 3072 MLP units) and a stage-1 step (also 6 of 12 blocks).
// Each EST step draws a fresh subnetwork and pays for everything EST adds: gathering the weight
// slices, scattering their gradients, building the update mask and the masked AdamW. Printed: the
// FLOPs and the measured time of each step as a fraction of dense, i.e. how much of the FLOPs
// saving becomes wall-clock saving.
//   OMP_NUM_THREADS=2 ./bench/bench_est
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdio>
#include <map>
#include <vector>

#include "core/rng.hpp"
#include "model/gpt2.hpp"
#include "model/subnet.hpp"
#include "optim/adamw.hpp"
#include "gpt2_small.hpp"

using namespace frugal;

namespace {

constexpr int kB = 4, kT = 64;

// stage 0 = dense, 1 and 2 = EST's default stage rates.
void BM_TrainStep(benchmark::State& state) {
  const int stage = static_cast<int>(state.range(0));
  const GPT2Config c = bench::gpt2_small();
  GPT2 m = gpt2_create(c);
  gpt2_init_weights(m, 1);
  AdamW opt = adamw_create(AdamWConfig{}, m.layout);
  std::vector<int> in, tg;
  bench::random_tokens(c, kB, kT, in, tg);
  const SubnetRates rates = stage == 1 ? SubnetRates{0.5, 0.5, 0.5} : SubnetRates{1.0, 0.5, 0.5};
  Rng rng(2, 6u, 0u);
  std::vector<uint8_t> mask;
  double flops = 0;
  SubnetSlices slices;
  const auto step = [&] {
    if (stage > 0) slices.set(subnet_sample(c, rates, false, rng), c);
    const GPT2Subnet* s = stage > 0 ? &slices.subnet() : nullptr;
    SubnetSlices* hook = stage > 0 ? &slices : nullptr;
    gpt2_zero_grad(m);
    gpt2_forward(m, in.data(), tg.data(), kB, kT, hook);
    gpt2_backward(m, hook);
    clip_grad_norm(m.grads, 1.0);
    if (s) subnet_param_mask(*s, c, m.layout, mask);
    adamw_step(opt, m.params, m.grads, 1e-4f, s ? std::span<const uint8_t>(mask) : std::span<const uint8_t>());
    flops = 3.0 * (s ? subnet_forward_flops(c, kB, kT, *s) : gpt2_forward_flops(c, kB, kT));  // same every draw
    benchmark::ClobberMemory();
  };
  // Untimed warm-up: the first steps touch ~2 GB of fresh pages (activations, gradients, Adam
  // moments, every block's slice buffers), a one-off cost of the process, not of the method.
  for (int i = 0; i < 4; i++) step();
  for (auto _ : state) step();
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOP"] = flops * 1e-9;
  state.counters["threads"] = omp_get_max_threads();
}

}  // namespace

BENCHMARK(BM_TrainStep)->ArgName("stage")->Arg(0)->Arg(2)->Arg(1)->Unit(benchmark::kMillisecond)->MinTime(8.0)->UseRealTime();

// Custom main: after the benchmarks, each EST stage's FLOPs and time as a fraction of dense.
int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  struct Collect : benchmark::ConsoleReporter {
    std::map<std::string, std::pair<double, double>> runs;  // name -> (seconds per step, GFLOP)
    void ReportRuns(const std::vector<Run>& rs) override {
      for (const auto& r : rs) runs[r.benchmark_name()] = {r.GetAdjustedRealTime() * 1e-3, r.counters.at("GFLOP").value};
      ConsoleReporter::ReportRuns(rs);
    }
  } reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  const auto dense = reporter.runs.find("BM_TrainStep/stage:0/min_time:8.000/real_time");
  if (dense == reporter.runs.end()) return 0;
  std::printf("\nGPT-2 small, B %d x T %d, %d thread(s): fraction of the dense training step\n", kB, kT, omp_get_max_threads());
  for (const auto& [name, run] : reporter.runs) {
    if (name == dense->first) continue;
    const char* what = name.find("stage:1") != std::string::npos ? "stage 1 (6/12 blocks, 6/12 heads, 1536/3072 units)"
                                                                  : "stage 2 (12/12 blocks, 6/12 heads, 1536/3072 units)";
    std::printf("  %-52s FLOPs %.3f   time %.3f\n", what, run.second / dense->second.second, run.first / dense->second.first);
  }
  return 0;
}
