#include "compress/topk.hpp"

#include <algorithm>
#include <bit>
#include <functional>

namespace frugal::compress {

namespace {
// |x| as an orderable integer: the fp32 bits without the sign. For non-negative floats the bit
// patterns order exactly like the values; NaNs land above +inf.
inline uint32_t mag_key(float x) { return std::bit_cast<uint32_t>(x) & 0x7fffffffu; }
}  // namespace

void topk_abs(const float* x, int64_t n, int64_t k, uint16_t* idx) {
  FRUGAL_CHECK(n >= 1 && n <= kMaxChunk * kMaxChunk, "topk_abs: chunk length ", n, " not in [1, 4096]");
  FRUGAL_CHECK(k >= 1 && k <= n, "topk_abs: k = ", k, " not in [1, ", n, "]");
  if (k == n) {
    for (int64_t j = 0; j < n; ++j) idx[j] = static_cast<uint16_t>(j);
    return;
  }
  // Threshold = the k-th largest key, found by a radix step: a histogram of the top 11 key bits
  // (exponent + 3 mantissa bits) locates the bin holding it, and a selection among that bin's keys
  // (typically ~100 of 4096) pins it down exactly. Then one pass in index order takes every key
  // above it plus the first (k - #above) keys equal to it: walking in index order both breaks ties
  // towards the lower index and leaves the output sorted.
  constexpr int kShift = 20;  // 31-bit keys -> 2048 bins
  uint32_t keys[kMaxChunk * kMaxChunk], cand[kMaxChunk * kMaxChunk], hist[1 << (31 - kShift)] = {};
  uint32_t kmax = 0;
  for (int64_t j = 0; j < n; ++j) {
    const uint32_t key = mag_key(x[j]);
    keys[j] = key;
    hist[key >> kShift] += 1;
    kmax = std::max(kmax, key);
  }
  int64_t bin = kmax >> kShift, above = 0;  // keys in bins above `bin`
  while (above + hist[bin] < k) above += hist[bin--];
  int64_t m = 0;
  for (int64_t j = 0; j < n; ++j)
    if ((keys[j] >> kShift) == uint32_t(bin)) cand[m++] = keys[j];
  const int64_t need = k - above;  // in [1, m]
  std::nth_element(cand, cand + (need - 1), cand + m, std::greater<uint32_t>());
  const uint32_t thr = cand[need - 1];
  for (int64_t i = 0; i < m; ++i) above += cand[i] > thr;  // now: all keys > thr
  int64_t equal_left = k - above, taken = 0;
  for (int64_t j = 0; j < n && taken < k; ++j) {
    const uint32_t key = keys[j];
    if (key > thr) {
      idx[taken++] = static_cast<uint16_t>(j);
    } else if (key == thr && equal_left > 0) {
      idx[taken++] = static_cast<uint16_t>(j);
      --equal_left;
    }
  }
}

void select_topk(const float* x, const ChunkLayout& layout, int64_t top_k, SparseTensor& out) {
  sparse_reset(out, layout, top_k);
  const int64_t nc = layout.n_chunks();
#pragma omp parallel for schedule(static) if (layout.numel() >= kParallelMin)
  for (int64_t c = 0; c < nc; ++c) {
    float buf[kMaxChunk * kMaxChunk];
    const int64_t len = layout.chunk_len(c), k = chunk_k(len, top_k), off = sparse_offset(layout, top_k, c);
    gather_chunk(x, layout, c, buf);
    topk_abs(buf, len, k, out.idx.data() + off);
    for (int64_t t = 0; t < k; ++t) out.values[off + t] = buf[out.idx[off + t]];
  }
}

}  // namespace frugal::compress
