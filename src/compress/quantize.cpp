#include "compress/quantize.hpp"

#include "compress/chunking.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace frugal::compress {

namespace {
constexpr int64_t kBlock = 4096;  // fixed summation blocks: thread-count independent results

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

  // mean
  std::vector<double> part(nb);
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t b = 0; b < nb; ++b) {
    double s = 0;
    for (int64_t i = b * kBlock, e = std::min(n, i + kBlock); i < e; ++i) s += v[i];
    part[b] = s;
  }
  double sum = 0;
  for (int64_t b = 0; b < nb; ++b) sum += part[b];
  q.mu = static_cast<float>(sum / double(n));
  // Centre on the fp32 mean that is sent, so L[code] + mu reconstructs what was measured.
  const double mu = q.mu;

  // std of c = v - mu (n - 1 divisor, as the reference)
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t b = 0; b < nb; ++b) {
    double s = 0;
    for (int64_t i = b * kBlock, e = std::min(n, i + kBlock); i < e; ++i) {
      const double c = double(v[i]) - mu;
      s += c * c;
    }
    part[b] = s;
  }
  double ss = 0;
  for (int64_t b = 0; b < nb; ++b) ss += part[b];
  double scale = n > 1 ? 6.0 * std::sqrt(ss / double(n - 1)) / 4.0 : 0.0;
  if (!(scale > 0) || !std::isfinite(scale)) scale = 1.0;  // degenerate: all equal, n < 2, or inf/nan
  q.scale = static_cast<float>(scale);

  // codes and per-bin sums of c
  std::vector<double> bin_sum(nb * 4, 0.0);
  std::vector<int64_t> bin_cnt(nb * 4, 0);
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t b = 0; b < nb; ++b) {
    for (int64_t i = b * kBlock, e = std::min(n, i + kBlock); i < e; ++i) {
      const double c = double(v[i]) - mu;
      const uint8_t code = code_of(c / scale + 2.0);
      codes[i] = code;
      bin_sum[b * 4 + code] += c;
      bin_cnt[b * 4 + code] += 1;
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
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) deq[i] = dequantize2(q, codes[i]);
  }
  return q;
}

}  // namespace frugal::compress
