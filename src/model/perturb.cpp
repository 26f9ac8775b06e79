#include "model/perturb.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "kernels/cpu/matmul.hpp"

namespace frugal {

namespace {
// Philox stream reserved for ES noise: the noise key is derived from the run seed through it, so
// the noise counters below can use all four counter words without meeting any other stream.
constexpr uint32_t es_noise_stream = static_cast<uint32_t>(Stream::es_noise);
}  // namespace

NoiseCounter noise_counter(const NoiseKey& key) {
  FRUGAL_CHECK(key.layer < (1u << 24) && key.tensor < 256, "noise key out of range");
  const auto k = philox_block(key.seed, es_noise_stream, 0, 0);
  return NoiseCounter{k.v[0], k.v[1], key.epoch, (key.tensor << 24) ^ key.layer};
}

void keyed_normals(const NoiseKey& key, uint32_t pair, float* out, int64_t n) {
  const NoiseCounter c = noise_counter(key);
  const int64_t blocks = (n + 3) / 4;
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t j = 0; j < blocks; j++) {
    float z[4];
    noise_block(c, pair, static_cast<uint32_t>(j), z);
    const int64_t base = 4 * j;
    for (int t = 0; t < 4 && base + t < n; t++) out[base + t] = z[t];
  }
}

void lowrank_generate(LowRankFactors& f, const NoiseKey& key, int first_pair, int pairs, int rows, int cols, int rank) {
  f.first_pair = first_pair, f.pairs = pairs, f.rank = rank, f.rows = rows, f.cols = cols;
  f.Bt.resize(size_t(pairs) * rank * cols);
  f.At.resize(size_t(pairs) * rank * rows);
  // Pairs in parallel (one member's factors are too few numbers to split): the noise is keyed by
  // (pair, position), so the values do not depend on the thread count.
#pragma omp parallel
  {
  std::vector<float> block(size_t(cols + rows) * rank);
#pragma omp for schedule(static)
  for (int p = 0; p < pairs; p++) {
    keyed_normals(key, static_cast<uint32_t>(first_pair + p), block.data(), static_cast<int64_t>(block.size()));
    float* bt = f.Bt.data() + size_t(p) * rank * cols;
    float* at = f.At.data() + size_t(p) * rank * rows;
    for (int row = 0; row < cols + rows; row++)
      for (int k = 0; k < rank; k++) {
        const float z = block[size_t(row) * rank + k];
        if (row < cols) bt[size_t(k) * cols + row] = z;
        else at[size_t(k) * rows + (row - cols)] = z;
      }
  }
  }
}

void vector_noise_generate(VectorNoise& v, const NoiseKey& key, int first_pair, int pairs, int len) {
  v.first_pair = first_pair, v.pairs = pairs, v.len = len;
  v.eps.resize(size_t(pairs) * len);
#pragma omp parallel for schedule(static)
  for (int p = 0; p < pairs; p++) keyed_normals(key, static_cast<uint32_t>(first_pair + p), v.eps.data() + size_t(p) * len, len);
}

void lowrank_linear_forward(const float* x, int batch, const float* w, const float* bias, const int32_t* member,
                            const LowRankFactors& f, const VectorNoise* bias_noise, float sigma, float* y) {
  const int n = f.cols, m = f.rows, r = f.rank;
  cpu::matmul_forward(y, x, w, bias, batch, n, m);  // the shared GEMM: plain batch inference
  const float scale = sigma / std::sqrt(static_cast<float>(r));
#pragma omp parallel for schedule(static)
  for (int b = 0; b < batch; b++) {
    const int p = member[b] / 2;
    const float s = static_cast<float>(member_sign(member[b]));
    const float* xb = x + size_t(b) * n;
    float* yb = y + size_t(b) * m;
    const float* bt = f.b(p);
    const float* at = f.a(p);
    // Ranks are processed in groups of up to 8: one pass over x for the group's dot products
    // u_k = x . B[:, k], one pass over y for y += sum_k c u_k A[:, k].
    for (int k0 = 0; k0 < r; k0 += 8) {
      const int kn = std::min(8, r - k0);
      float u[8] = {};
      for (int k = 0; k < kn; k++) {
        const float* bk = bt + size_t(k0 + k) * n;
        float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
        for (int i = 0; i < n; i++) acc += xb[i] * bk[i];
        u[k] = s * scale * acc;
      }
      if (kn == 1) {
        const float* ak = at + size_t(k0) * m;
#pragma omp simd
        for (int j = 0; j < m; j++) yb[j] += u[0] * ak[j];
        continue;
      }
      // y_j += sum_k u_k A[j, k], summed over k in order for each j as before, but 64 j's at a time
      // so the inner loop runs along j (vectorised) instead of striding over k.
      for (int j0 = 0; j0 < m; j0 += 64) {
        const int jn = std::min(64, m - j0);
        float acc[64] = {};
        for (int k = 0; k < kn; k++) {
          const float uk = u[k];
          const float* ak = at + size_t(k0 + k) * m + j0;
#pragma omp simd
          for (int j = 0; j < jn; j++) acc[j] += uk * ak[j];
        }
#pragma omp simd
        for (int j = 0; j < jn; j++) yb[j0 + j] += acc[j];
      }
    }
    if (bias_noise) {
      const float* e = bias_noise->at(p);
      const float c = s * sigma;
#pragma omp simd
      for (int j = 0; j < m; j++) yb[j] += c * e[j];
    }
  }
}

namespace {
// c_p = (f_2p - f_2p+1): the antithetic difference every update below uses.
float pair_diff(const float* fitness, int p) { return fitness[2 * p] - fitness[2 * p + 1]; }
}  // namespace

void lowrank_update(const LowRankFactors& f, const float* fitness, int members, float sigma, float* g,
                    std::vector<float>& scratch) {
  FRUGAL_CHECK(f.first_pair == 0 && 2 * f.pairs == members, "lowrank_update needs every pair's factors");
  const int m = f.rows, n = f.cols, r = f.rank, K = f.pairs * r;
  const float scale = sigma / std::sqrt(static_cast<float>(r)) / static_cast<float>(members);
  scratch.resize(size_t(K) * m);  // scaled A^T: row (p r + k) = c_p A_p[:, k]
  for (int p = 0; p < f.pairs; p++) {
    const float c = scale * pair_diff(fitness, p);
    const float* at = f.a(p);
    float* dst = scratch.data() + size_t(p) * r * m;
    for (size_t i = 0; i < size_t(r) * m; i++) dst[i] = c * at[i];
  }
  // G (m x n) = (scaled A^T)^T (m x K) . B^T (K x n)
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, n, K, 1.0f, scratch.data(), m, f.Bt.data(), n, 0.0f, g, n);
}

void vector_noise_update(const VectorNoise& v, const float* fitness, int members, float sigma, float* g) {
  FRUGAL_CHECK(v.first_pair == 0 && 2 * v.pairs == members, "vector_noise_update needs every pair's noise");
  std::fill_n(g, v.len, 0.0f);
  const float scale = sigma / static_cast<float>(members);
  for (int p = 0; p < v.pairs; p++) {
    const float c = scale * pair_diff(fitness, p);
    const float* e = v.at(p);
    for (int j = 0; j < v.len; j++) g[j] += c * e[j];
  }
}

void fullrank_generate(FullRankNoise& e, const NoiseKey& key, int first_pair, int pairs, int rows, int cols) {
  e.first_pair = first_pair, e.pairs = pairs, e.rows = rows, e.cols = cols;
  e.E.resize(size_t(pairs) * rows * cols);
  for (int p = 0; p < pairs; p++)
    keyed_normals(key, static_cast<uint32_t>(first_pair + p), e.E.data() + size_t(p) * rows * cols, int64_t(rows) * cols);
}

void fullrank_linear_forward(const float* x, int batch, const float* w, const float* bias, const int32_t* member,
                             const FullRankNoise& e, const VectorNoise* bias_noise, float sigma, float* y) {
  const int m = e.rows, n = e.cols;
#pragma omp parallel
  {
    std::vector<float> wi(size_t(m) * n);  // this thread's materialised W + s sigma E_p
#pragma omp for schedule(static)
    for (int b = 0; b < batch; b++) {
      const int p = member[b] / 2;
      const float c = static_cast<float>(member_sign(member[b])) * sigma;
      const float* ep = e.at(p);
#pragma omp simd
      for (size_t i = 0; i < wi.size(); i++) wi[i] = w[i] + c * ep[i];
      float* yb = y + size_t(b) * m;
      for (int j = 0; j < m; j++) yb[j] = bias ? bias[j] : 0.0f;
      cblas_sgemv(CblasRowMajor, CblasNoTrans, m, n, 1.0f, wi.data(), n, x + size_t(b) * n, 1, 1.0f, yb, 1);
      if (bias_noise) {
        const float* eb = bias_noise->at(p);
        for (int j = 0; j < m; j++) yb[j] += c * eb[j];
      }
    }
  }
}

void fullrank_update(const FullRankNoise& e, const float* fitness, int members, float sigma, float* g) {
  FRUGAL_CHECK(e.first_pair == 0 && 2 * e.pairs == members, "fullrank_update needs every pair's noise");
  const size_t mn = size_t(e.rows) * e.cols;
  std::fill_n(g, mn, 0.0f);
  const float scale = sigma / static_cast<float>(members);
  for (int p = 0; p < e.pairs; p++) {
    const float c = scale * pair_diff(fitness, p);
    const float* ep = e.at(p);
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < mn; i++) g[i] += c * ep[i];
  }
}

}  // namespace frugal
