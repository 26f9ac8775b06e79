// LM EGGROLL's throughput claim on the GPU (issue "EGGROLL on the GPU"): generated tokens/s of a
// population's perturbed, KV-cached generation of GPT-2 124M against plain batched generation of the
// same model, batch and lengths, in the same run (bench/bench_generate.cpp's CPU table, on the device):
//
//   plain     generate() on the device model: prefill + one token per sequence per step
//   eggroll   the same with EGGROLL's noise on qkv, attproj, fc and fcproj of every block (one shared
//             GEMM per matrix + each member's rank-r correction); the factors generated once, outside
//             the timed loop (the LM EGGROLL generates them once per step and reuses them per token)
//   egg+gen   the same, every factor regenerated on the device inside the timed loop
//
// N sequences (one member each) of a 16-token prompt and 16 new tokens, the end token disabled, at
// temperature 1; logits come to the host for sampling every step (generate()'s shared loop), which at
// GPT-2's 50k vocabulary costs N x 201 kB of copy and N x 50k exp per token on the host, the same for
// every variant. So the table also gives the decoding step alone (one cached step of N rows at
// position 16, logits left on the device): the perturbed forward against the plain one.
//
//   ./bench/bench_generate_gpu [--quick]     (quick: N = 64 only)
#include <array>
#include <cstdio>
#include <vector>

#include "bench/cuda/gpu_timing.hpp"
#include "bench/gpt2_small.hpp"
#include "device/decode_device.hpp"

using namespace frugal;

namespace {

constexpr int kPrompt = 16, kNew = 16;

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  if (const int status = bench::gpu_bench_start(argc, argv, "bench_generate_gpu", &quick); status >= 0) return status;
  try {
    const cudaDeviceProp prop = bench::device_properties();
    const GPT2Config c = bench::gpt2_small();
    GPT2 host = gpt2_create(c);
    gpt2_init_weights(host, 1);
    GPT2Device model = gpt2_to_device(host);
    SamplingSettings sampling;
    sampling.max_new_tokens = kNew;
    sampling.end_token = -1;  // never produced: every sequence generates kNew tokens
    std::printf("bench_generate_gpu: GPT-2 124M on %s, %d-token prompts + %d new tokens, temperature 1\n", prop.name,
                kPrompt, kNew);
    std::printf("%6s %3s | %12s | %12s %8s | %12s %8s || %10s %10s %8s\n", "N", "r", "plain tok/s", "eggroll",
                "%plain", "egg+gen", "%plain", "step plain", "step egg", "%plain");
    for (const int N : quick ? std::vector<int>{64} : std::vector<int>{64, 256, 1024}) {
      std::vector<std::vector<int>> prompts(static_cast<size_t>(N));
      std::vector<uint32_t> ids(static_cast<size_t>(N));
      std::vector<int32_t> members(static_cast<size_t>(N));
      Rng rng(3, Stream::init);
      for (int i = 0; i < N; i++) {
        for (int t = 0; t < kPrompt; t++) prompts[size_t(i)].push_back(static_cast<int>(rng.below(uint32_t(c.vocab_size))));
        ids[size_t(i)] = uint32_t(i), members[size_t(i)] = i;
      }
      GeneratorDevice gen;
      std::vector<Completion> out;
      int64_t step = 0;
      const auto run = [&](const PopulationNoiseDevice* noise) {
        const GenerateRequest req{prompts, ids, noise ? std::span<const int32_t>(members) : std::span<const int32_t>(),
                                  1, step++};
        generate(model, nullptr, noise, req, sampling, gen, out);
      };
      const double tokens = double(N) * kNew;
      const double plain = tokens / bench::time_long_call([&] { run(nullptr); }, 3);
      // One cached decoding step alone: N rows at position kPrompt over a cache the generations filled.
      DecodeRows step_rows;
      for (int i = 0; i < N; i++) step_rows.add(prompts[size_t(i)][0], i, kPrompt, members[size_t(i)]), step_rows.want.push_back(i);
      const auto decode_step = [&](const PopulationNoiseDevice* noise) {
        decode_forward(model, nullptr, noise, gen.cache, step_rows, gen.scratch, /*download=*/false);
      };
      const double step_plain = bench::time_call([&](int) { decode_step(nullptr); });
      for (const int rank : {1, 4}) {
        PopulationFactorsDevice population;
        const auto regenerate = [&] {
          population_factors_generate(population, c, {true, true, true, true}, 7, uint32_t(step), N / 2, rank, 0.001f);
        };
        regenerate();
        const double egg = tokens / bench::time_long_call([&] { run(&population.noise); }, 3);
        const double egg_gen = tokens / bench::time_long_call([&] { regenerate(), run(&population.noise); }, 3);
        const double step_egg = bench::time_call([&](int) { decode_step(&population.noise); });
        std::printf("%6d %3d | %12.0f | %12.0f %7.1f%% | %12.0f %7.1f%% || %8.3f ms %7.3f ms %7.1f%%\n", N, rank, plain,
                    egg, 100.0 * egg / plain, egg_gen, 100.0 * egg_gen / plain, 1e3 * step_plain, 1e3 * step_egg,
                    100.0 * step_plain / step_egg);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_generate_gpu: %s\n", e.what());
    return 1;
  }
  return 0;
}
