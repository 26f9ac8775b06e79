#pragma once
// Parameter perturbations for evolution strategies, as model capabilities:
//
//   EGGROLL (low rank):  y = x W^T + (x B) A^T      B (n x r), A (m x r), W (m x n)
//   OpenAI-ES (full):    y = x (W + sigma s E)^T    E (m x n)
//
// Noise is keyed, never stored between epochs nor sent: the normal number q of the noise of
// (tensor, layer) for antithetic pair p in epoch' e is a pure function of (seed, tensor, layer, e, p, q)
// through Philox, so every rank regenerates every member's noise bit-identically.
//
// Member i belongs to pair p = i / 2 with sign s = +1 (even i) or -1 (odd i).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/rng.hpp"

namespace frugal {

// Names one noise stream: everything but the pair and the element index.
struct NoiseKey {
  uint64_t seed = 0;
  uint32_t tensor = 0;  // which tensor of a layer (0 = weight, 1 = bias, ...)
  uint32_t layer = 0;
  uint32_t epoch = 0;   // epoch' = epoch / noise_reuse
};

// Normals q = 0 .. n-1 of (key, pair) into out. Normals 4j .. 4j+3 come from Philox block j (two
// Box-Muller pairs), so any prefix is reproducible on its own.
void keyed_normals(const NoiseKey& key, uint32_t pair, float* out, int64_t n);

// One noise stream's Philox key and counter words, derived once from a NoiseKey.
struct NoiseCounter {
  uint32_t k0 = 0, k1 = 0, epoch = 0, tensor_layer = 0;
};
NoiseCounter noise_counter(const NoiseKey& key);  // checks the key's ranges

// Normals 4j .. 4j+3 of (stream, pair). The one definition of ES noise: keyed_normals and the CUDA
// kernels (kernels/cuda/perturb.cu) both call it, so the device regenerates the CPU's numbers bit
// for bit (Box-Muller in double, rounded once to float).
FRUGAL_HOST_DEVICE inline void noise_block(const NoiseCounter& c, uint32_t pair, uint32_t j, float z[4]) {
  r123::Philox4x32 gen;
  const r123::Philox4x32::ctr_type ctr = {{j, pair, c.epoch, c.tensor_layer}};
  const r123::Philox4x32::key_type key = {{c.k0, c.k1}};
  const auto r = gen(ctr, key);
  for (int h = 0; h < 2; h++) {  // Box-Muller on words (0,1) and (2,3): two normals each
    const double rad = sqrt(-2.0 * log(u32_to_unit_double(r.v[2 * h])));
    const double ang = 6.283185307179586 * u32_to_unit_double(r.v[2 * h + 1]);
#if defined(__CUDA_ARCH__)
    double sn, cs;
    sincos(ang, &sn, &cs);  // one argument reduction for both, the same values as sin() and cos()
#else
    const double sn = sin(ang), cs = cos(ang);
#endif
    z[2 * h] = static_cast<float>(rad * cs);
    z[2 * h + 1] = static_cast<float>(rad * sn);
  }
}

inline int member_sign(int member) { return member % 2 == 0 ? 1 : -1; }

// ---- EGGROLL ---------------------------------------------------------------------------------
// Rank-r factors of one (m x n) weight for pairs [first_pair, first_pair + pairs). For pair p the
// standard normal (n + m) x r block (row-major, normal index = row * r + k) is split as B = rows
// 0..n-1, A = rows n..n+m-1. Stored transposed so that a member's forward reads contiguous rows and
// the update is one GEMM:  Bt[p] = B_p^T (r x n),  At[p] = A_p^T (r x m), unscaled.
struct LowRankFactors {
  int first_pair = 0, pairs = 0, rank = 0, rows = 0, cols = 0;  // rows = m (out), cols = n (in)
  std::vector<float> Bt, At;                                     // [pairs][rank][cols], [pairs][rank][rows]
  const float* b(int pair) const { return Bt.data() + size_t(pair - first_pair) * rank * cols; }
  const float* a(int pair) const { return At.data() + size_t(pair - first_pair) * rank * rows; }
};
void lowrank_generate(LowRankFactors& f, const NoiseKey& key, int first_pair, int pairs, int rows, int cols, int rank);

// Full-rank noise of a vector (bias, gain) of length len for the same pairs: [pairs][len].
struct VectorNoise {
  int first_pair = 0, pairs = 0, len = 0;
  std::vector<float> eps;
  const float* at(int pair) const { return eps.data() + size_t(pair - first_pair) * len; }
};
void vector_noise_generate(VectorNoise& v, const NoiseKey& key, int first_pair, int pairs, int len);

// Perturbed linear layer batched over a population: row b of x (batch x n) belongs to member
// member[b]. y (batch x m) = x W^T + bias  (ONE shared GEMM)  then per row
//   y_b += s (sigma / sqrt r) A_p (B_p^T x_b)   (r dot products of length n, r axpys of length m)
//   y_b += s sigma eps_p                          (bias noise, when bias_noise is non-null)
// W + E is never formed.
void lowrank_linear_forward(const float* x, int batch, const float* w, const float* bias, const int32_t* member,
                            const LowRankFactors& f, const VectorNoise* bias_noise, float sigma, float* y);

// ES update direction of one weight: G = (1/N) sum_i f_i s_i (sigma / sqrt r) A_p B_p^T over all N
// members. Antithetic members share A_p, B_p, so G = (1/N) sum_p c_p A_p B_p^T with
// c_p = (f_2p - f_2p+1) sigma / sqrt r: ONE GEMM (m x P r) . (P r x n). Needs every pair's factors.
// `scratch` holds the scaled A^T.
void lowrank_update(const LowRankFactors& f, const float* fitness, int members, float sigma, float* g,
                    std::vector<float>& scratch);
// Same for a vector: g = (1/N) sum_p (f_2p - f_2p+1) sigma eps_p.
void vector_noise_update(const VectorNoise& v, const float* fitness, int members, float sigma, float* g);

// ---- OpenAI-ES -------------------------------------------------------------------------------
// Full m x n Gaussian per pair: normal index = row * n + col of E_p.
struct FullRankNoise {
  int first_pair = 0, pairs = 0, rows = 0, cols = 0;
  std::vector<float> E;  // [pairs][rows][cols]
  const float* at(int pair) const { return E.data() + size_t(pair - first_pair) * rows * cols; }
};
void fullrank_generate(FullRankNoise& e, const NoiseKey& key, int first_pair, int pairs, int rows, int cols);

// Per member: materialise W_i = W + s sigma E_p (m x n) and y_b = W_i x_b + bias (+ s sigma eps_p):
// the naive ES forward, one matrix-vector product per member.
void fullrank_linear_forward(const float* x, int batch, const float* w, const float* bias, const int32_t* member,
                             const FullRankNoise& e, const VectorNoise* bias_noise, float sigma, float* y);
// G = (1/N) sum_p (f_2p - f_2p+1) sigma E_p.
void fullrank_update(const FullRankNoise& e, const float* fitness, int members, float sigma, float* g);

}  // namespace frugal
