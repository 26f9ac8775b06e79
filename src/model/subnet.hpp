#pragma once
// Structured subnetworks of GPT-2 (GPT2Subnet, model/gpt2.hpp) for EST, methods.md section 5: which
// blocks run, and inside each running block which attention heads and MLP hidden units. gpt2_forward /
// gpt2_backward given a subnetwork compute only it, on gathered contiguous weight slices:
//   attention = (1/p_H) sum_{h in I_H} head_h W_O[:, h] + b_O      p_H = |I_H| / n_head
//   MLP       = (1/p_M) gelu(x W_fc[I_M, :]^T + b_fc[I_M]) W_proj[:, I_M]^T + b_proj
//                                                                   p_M = |I_M| / (4 n_embd)
// and a skipped block is the identity (its residual passes through). p is the realised fraction
// |I| / N, not the configured rate, so every module is an unbiased estimate of the dense one
// (each head / unit is kept with probability exactly |I| / N under uniform sampling without
// replacement) even where round() moves the count.
#include <cstdint>
#include <vector>

#include "core/params.hpp"
#include "core/rng.hpp"
#include "model/gpt2.hpp"

namespace frugal {

// Configured keep rates; counts are round(rate * N), at least 1.
struct SubnetRates {
  double layers = 1.0, heads = 1.0, mlp = 1.0;
};

// How many of n to keep at rate p: round(p n), clamped to [1, n].
int subnet_count(double rate, int n);
// Every block, head and unit.
GPT2Subnet subnet_full(const GPT2Config& c);
// Uniform without replacement: round(p_L L) blocks, then per kept block round(p_H NH) heads and
// round(p_M 4C) units, drawn afresh per block unless share_across_layers (one head set and one unit
// set for all kept blocks). A pure function of the rng's position: every rank that starts from the
// same (seed, step) stream draws the same subnetwork without communicating.
GPT2Subnet subnet_sample(const GPT2Config& c, const SubnetRates& rates, bool share_across_layers, Rng& rng);
bool subnet_is_full(const GPT2Subnet& s, const GPT2Config& c);
// Fractions for the trace: kept blocks / L, and kept heads / units over all L blocks' slots.
double subnet_layer_fraction(const GPT2Subnet& s);
double subnet_head_fraction(const GPT2Subnet& s, const GPT2Config& c);
double subnet_unit_fraction(const GPT2Subnet& s, const GPT2Config& c);
// mask[i] = 1 where parameter i is part of the subnetwork (its gradient can be non-zero): the
// embeddings and final LayerNorm always; in a kept block its LayerNorms, output biases, the q/k/v
// rows and W_O columns of kept heads, the W_fc rows, b_fc entries and W_proj columns of kept units.
void subnet_param_mask(const GPT2Subnet& s, const GPT2Config& c, const ParamLayout& layout, std::vector<uint8_t>& mask);

}  // namespace frugal
