#include "compress/quantize.hpp"

#include "compress/chunking.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace frugal::compress {

namespace {
constexpr int64_t kBlock = 4096;  // fixed summation blocks: thread-count independent results

// Per-block sums of term(v[i]) over fixed blocks, each summed in index order (so the result is
// the same for any thread count). A sum of doubles in a fixed order is a chain of dependent adds:
// eight full blocks are summed side by side in one loop, so eight chains overlap their latency.
template <typename Term>
std::vector<double> block_sums(const float* v, int64_t n, Term term) {
  const int64_t nb = (n + kBlock - 1) / kBlock, full = n / kBlock;
  std::vector<double> part(static_cast<size_t>(nb));
  constexpr int64_t kSide = 8;
  const int64_t groups = (nb + kSide - 1) / kSide;
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t gi = 0; gi < groups; ++gi) {
    const int64_t b0 = gi * kSide;
    if (b0 + kSide <= full) {
      double s[kSide] = {};
      for (int64_t i = 0; i < kBlock; ++i)
        for (int64_t q = 0; q < kSide; ++q) s[q] += term(v[(b0 + q) * kBlock + i]);
      for (int64_t q = 0; q < kSide; ++q) part[size_t(b0 + q)] = s[q];
      continue;
    }
    for (int64_t b = b0; b < std::min(nb, b0 + kSide); ++b) {
      double s = 0;
      for (int64_t i = b * kBlock, e = std::min(n, i + kBlock); i < e; ++i) s += term(v[i]);
      part[size_t(b)] = s;
    }
  }
  return part;
}

// round(t) half to even, then clamp to [0, 3]; a NaN lands in bin 0 instead of being UB.
inline uint8_t code_of(double t) {
  const double r = std::nearbyint(t);
  return r >= 3 ? 3 : r >= 2 ? 2 : r >= 1 ? 1 : 0;
}
}  // namespace

Quant2 quantize2(const float* v, int64_t n, uint8_t* codes, float* deq) {
  Quant2 q;
  if (n <= 0) return q;
  const int64_t nb = (n + kBlock - 1) / kBlock;

  // mean, then the std of c = v - mu (n - 1 divisor, as the reference): per-block sums in index order
  const std::vector<double> part = block_sums(v, n, [](float x) { return double(x); });
  double sum = 0;
  for (int64_t b = 0; b < nb; ++b) sum += part[b];
  q.mu = static_cast<float>(sum / double(n));
  // Centre on the fp32 mean that is sent, so L[code] + mu reconstructs what was measured.
  const double mu = q.mu;
  const std::vector<double> sq = block_sums(v, n, [mu](float x) {
    const double c = double(x) - mu;
    return c * c;
  });
  double ss = 0;
  for (int64_t b = 0; b < nb; ++b) ss += sq[b];
  double scale = n > 1 ? 6.0 * std::sqrt(ss / double(n - 1)) / 4.0 : 0.0;
  if (!(scale > 0) || !std::isfinite(scale)) scale = 1.0;  // degenerate: all equal, n < 2, or inf/nan
  q.scale = static_cast<float>(scale);

  // codes (element-wise, vectorised), then per-bin sums of c in index order per block
  std::vector<double> bin_sum(nb * 4, 0.0);
  std::vector<int64_t> bin_cnt(nb * 4, 0);
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t i0 = b * kBlock, e = std::min(n, i0 + kBlock);
#pragma omp simd
    for (int64_t i = i0; i < e; ++i) codes[i] = code_of((double(v[i]) - mu) / scale + 2.0);
    for (int64_t i = i0; i < e; ++i) {
      bin_sum[b * 4 + codes[i]] += double(v[i]) - mu;
      bin_cnt[b * 4 + codes[i]] += 1;
    }
  }
  for (int k = 0; k < 4; ++k) {
    double s = 0;
    int64_t cnt = 0;
    for (int64_t b = 0; b < nb; ++b) {
      s += bin_sum[b * 4 + k];
      cnt += bin_cnt[b * 4 + k];
    }
    q.levels[k] = cnt > 0 ? static_cast<float>(s / double(cnt)) : 0.0f;  // empty bin: 0 (never used)
  }

  if (deq) {
    // dequantize2 per code, computed once: a 4-entry table instead of an add per value
    const float table[4] = {dequantize2(q, 0), dequantize2(q, 1), dequantize2(q, 2), dequantize2(q, 3)};
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) deq[i] = table[codes[i] & 3];
  }
  return q;
}

}  // namespace frugal::compress
