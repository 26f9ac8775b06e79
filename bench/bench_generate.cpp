// LM EGGROLL's throughput claim on the transformer: generated tokens/s of a population's perturbed
// generation (every block matrix rank-r perturbed, member per sequence, KV-cached) against plain
// batched generation of the same model, batch and lengths, in the same run.
//
//   plain     generate(): prefill + one token per sequence per step, no perturbation
//   eggroll   the same with EGGROLL's PopulationNoise on qkv, attproj, fc, fcproj of every block:
//             one shared GEMM per matrix for all members' rows + each member's rank-r correction;
//             factors generated once per epoch (outside the timed loop: the LM EGGROLL generates
//             them once per step and reuses them for every token)
//   eggroll+gen  the same, regenerating every factor inside the timed loop (a whole step's noise)
//
// Shapes: the RLVR study's model (2 blocks, width 128, vocab 128: configs/rlvr) and GPT-2 small
// (12 blocks, width 768, vocab 50304), 64 sequences (one per member) of an 8-token prompt and 8 new
// tokens (the end token disabled so every sequence runs the full length), sampled at temperature 1.
//
//   OMP_NUM_THREADS=2 ./bench/bench_generate
#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "bench/gpt2_small.hpp"
#include "model/decode.hpp"

using namespace frugal;

namespace {

enum Variant { kPlain = 0, kEggroll = 1, kEggrollGen = 2 };
constexpr int kSequences = 64, kPrompt = 8, kNew = 8;

GPT2Config shape(int which) {
  if (which == 1) return bench::gpt2_small();
  GPT2Config c;
  c.num_layers = 2, c.num_heads = 4, c.channels = 128, c.max_seq_len = 32, c.vocab_size = 128, c.padded_vocab_size = 128;
  return c;
}

// Arguments: {shape (0 = study, 1 = GPT-2 small), rank, variant}
void BM_Generate(benchmark::State& state) {
  const GPT2Config c = shape(static_cast<int>(state.range(0)));
  const int rank = static_cast<int>(state.range(1));
  const auto variant = static_cast<Variant>(state.range(2));
  GPT2 model = gpt2_create(c);
  gpt2_init_weights(model, 1);
  std::vector<std::vector<int>> prompts(kSequences);
  std::vector<uint32_t> ids(kSequences);
  std::vector<int32_t> members(kSequences);
  Rng rng(3, Stream::init);
  for (int i = 0; i < kSequences; i++) {
    for (int t = 0; t < kPrompt; t++) prompts[size_t(i)].push_back(static_cast<int>(rng.below(uint32_t(c.vocab_size))));
    ids[size_t(i)] = static_cast<uint32_t>(i), members[size_t(i)] = i;
  }
  PopulationFactors population;
  const auto regenerate = [&] {
    population_factors_generate(population, c, {true, true, true, true}, 7, 0, kSequences / 2, rank, 0.001f);
  };
  if (variant != kPlain) regenerate();
  SamplingSettings sampling;
  sampling.max_new_tokens = kNew;
  sampling.end_token = -1;  // never produced: every sequence generates kNew tokens
  Generator gen;
  std::vector<Completion> completions;
  int64_t step = 0;
  for (auto _ : state) {
    if (variant == kEggrollGen) regenerate();
    const GenerateRequest req{prompts, ids, variant == kPlain ? std::span<const int32_t>() : std::span<const int32_t>(members),
                              1, step++};
    generate(model, nullptr, variant == kPlain ? nullptr : &population.noise, req, sampling, gen, completions);
    benchmark::DoNotOptimize(completions.data());
  }
  state.counters["tokens/s"] =
      benchmark::Counter(double(kSequences) * kNew, benchmark::Counter::kIsIterationInvariantRate);
}

void Args(benchmark::internal::Benchmark* b) {
  for (int s : {0, 1}) {
    b->Args({s, 1, kPlain});
    for (int r : {1, 4}) b->Args({s, r, kEggroll});
    b->Args({s, 1, kEggrollGen});
  }
  b->ArgNames({"shape", "r", "variant"});
}

}  // namespace

BENCHMARK(BM_Generate)->Apply(Args)->Unit(benchmark::kMillisecond)->MinWarmUpTime(0.5)->MinTime(2.0)->UseRealTime();

// Custom main: after the runs, generated tokens/s of each variant as a % of plain generation.
int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  struct Collect : benchmark::ConsoleReporter {
    std::map<std::vector<int64_t>, double> rate;  // {shape, r, variant} -> tokens/s
    void ReportRuns(const std::vector<Run>& runs) override {
      for (const auto& run : runs) {
        std::vector<int64_t> key;
        const std::string name = run.benchmark_name();
        for (const char* field : {"shape:", "r:", "variant:"}) {
          const size_t at = name.find(std::string("/") + field);
          key.push_back(at == std::string::npos ? -1 : std::stoll(name.substr(at + 1 + std::string(field).size())));
        }
        const auto it = run.counters.find("tokens/s");
        if (it != run.counters.end()) rate[key] = it->second.value;
      }
      ConsoleReporter::ReportRuns(runs);
    }
  } reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  const auto get = [&](int s, int r, int v) {
    const auto it = reporter.rate.find({s, r, v});
    return it == reporter.rate.end() ? -1.0 : it->second;
  };
  std::printf("\ngenerated tokens/s, %d sequences x (%d prompt + %d new tokens); EGGROLL as %% of plain (same run)\n",
              kSequences, kPrompt, kNew);
  std::printf("%-22s | %10s | %10s %10s | %14s\n", "model", "plain", "egg r=1", "egg r=4", "egg+gen r=1");
  for (int s : {0, 1}) {
    const double plain = get(s, 1, kPlain);
    if (plain <= 0) continue;
    const auto pct = [&](int r, int v) {
      const double x = get(s, r, v);
      return x < 0 ? std::string("-") : std::to_string(100.0 * x / plain).substr(0, 5) + "%";
    };
    std::printf("%-22s | %10.0f | %10s %10s | %14s\n", s ? "GPT-2 small (124M)" : "study (2 x 128, V 128)", plain,
                pct(1, kEggroll).c_str(), pct(4, kEggroll).c_str(), pct(1, kEggrollGen).c_str());
  }
  std::printf("(the paper: 91%% of inference for the perturbed forward on a GPU; floor here: 80%% at the study's shape)\n");
  benchmark::Shutdown();
}
