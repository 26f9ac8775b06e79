#pragma once
// The KV-cached decoder on the GPU: model/decode.hpp's decode_forward and generate() for the device
// model, the same pass (model/decode_pass.hpp) on kernels/cuda. The rows go up once per call (five
// small int arrays), the wanted rows' logits come down for sampling on the host, which keeps
// generate()'s sampling rule and random streams identical to the CPU's. With a PopulationNoise on the
// device (factors from cuda::lowrank_generate), every block matrix is EGGROLL's perturbed product:
// the shared GEMM plus each member's rank-r correction (cuda::lowrank_linear_forward).
#include <array>
#include <vector>

#include "device/gpt2_device.hpp"
#include "model/decode.hpp"

namespace frugal {

struct KVCacheDevice {
  int slots = 0, max_len = 0, channels = 0;
  cuda::DeviceBuffer k, v;  // (L, slots, max_len, C)
};
void kv_cache_reserve(KVCacheDevice& cache, const GPT2Config& c, int slots, int max_len);

// factors[l][slot] (nullptr = not perturbed), indexed like LoraSlot: device factors of all pairs.
struct PopulationNoiseDevice {
  float sigma = 0;
  std::vector<std::array<const cuda::LowRankView<float>*, 4>> factors;  // (L)
};

// model/decode.hpp's PopulationFactors on the device: the same keys, bit-identical factors
// (cuda::lowrank_generate), buffers reused across epochs.
struct PopulationFactorsDevice {
  struct Factors {
    cuda::DeviceBuffer Bt, At;
    cuda::LowRankView<float> view;
  };
  std::vector<std::array<Factors, 4>> factors;  // (L) x LoraSlot
  PopulationNoiseDevice noise;
};
void population_factors_generate(PopulationFactorsDevice& p, const GPT2Config& c, const std::array<bool, 4>& perturbed,
                                 uint64_t seed, uint32_t epoch, int pairs, int rank, float sigma);

struct DecodeScratchDevice {
  cuda::DeviceBuffer x, ln, qkv, atty, proj, fch, fch_gelu, lnf_rows, logits, mean, rstd;
  cuda::IntDeviceBuffer token, slot, pos, member, want;  // the rows, uploaded per call
  std::vector<float> host_logits;                         // (want, Vp), for sampling
};

// logits (want.size(), Vp) of the wanted rows in s.logits (device) and, unless download is false
// (timing the pass alone), s.host_logits.
void decode_forward(GPT2Device& model, BlockHook<GPT2Device>* blocks, const PopulationNoiseDevice* noise,
                    KVCacheDevice& cache, const DecodeRows& rows, DecodeScratchDevice& s, bool download = true);

struct GeneratorDevice {
  KVCacheDevice cache;
  DecodeRows rows;
  DecodeScratchDevice scratch;
  int64_t tokens_generated = 0;
  double flops = 0;
};

// generate() of model/decode.hpp on the device model.
void generate(GPT2Device& model, BlockHook<GPT2Device>* blocks, const PopulationNoiseDevice* noise,
              const GenerateRequest& request, const SamplingSettings& sampling, GeneratorDevice& g,
              std::vector<Completion>& out);

}  // namespace frugal
