#include "compress/topk.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <functional>
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace frugal::compress {

namespace {
#if defined(__AVX2__) && !defined(__AVX512F__)
// AVX2 has no compress instruction: left-packing the lanes selected by an 8-bit mask is one
// permute, whose lane order for each mask comes from this table (8 bytes per mask).
constexpr std::array<uint8_t, 256 * 8> kLeftPack = [] {
  std::array<uint8_t, 256 * 8> t{};
  for (int mask = 0; mask < 256; ++mask)
    for (int lane = 0, j = 0; lane < 8; ++lane)
      if (mask >> lane & 1) t[size_t(mask * 8 + j++)] = uint8_t(lane);
  return t;
}();
#endif

// |x| as an orderable integer: the fp32 bits without the sign. For non-negative floats the bit
// patterns order exactly like the values; NaNs land above +inf.
inline uint32_t mag_key(float x) { return std::bit_cast<uint32_t>(x) & 0x7fffffffu; }

// The selection on ready keys[n] (see topk_abs); 1 <= k < n.
void topk_keys(const uint32_t* keys, int64_t n, int64_t k, uint16_t* idx) {
  // 1. A lower bound for the threshold (the k-th largest key) without sorting: split the keys into
  //    k groups (key j in group j mod k) and take the smallest group maximum t0. Each group holds a
  //    key >= t0, so at least k keys are >= t0. Vectorised: one max over rows of k keys, one min.
  alignas(64) uint32_t gmax[kMaxChunk * kMaxChunk];
  std::copy(keys, keys + k, gmax);
  for (int64_t r = k; r < n; r += k) {
    const uint32_t* row = keys + r;
    const int64_t len = std::min(k, n - r);
#pragma omp simd
    for (int64_t g = 0; g < len; ++g) gmax[g] = std::max(gmax[g], row[g]);
  }
  uint32_t t0 = ~0u, kmax = 0;
#pragma omp simd reduction(min : t0) reduction(max : kmax)
  for (int64_t g = 0; g < k; ++g) {
    t0 = std::min(t0, gmax[g]);
    kmax = std::max(kmax, gmax[g]);
  }
  // 2. The indices of the keys >= t0 (on data like a normal sample, about a quarter of the chunk
  //    at k = n / 32), in index order: compares 16 at a time into a bit mask, set bits walked.
  uint32_t near[kMaxChunk * kMaxChunk + 16];  // + 16: the vector path stores whole vectors
  uint32_t nkey[kMaxChunk * kMaxChunk + 16];  // their keys, so later passes read them in order
  int64_t m = 0, i0 = 0;
#if defined(__AVX512F__)
  // The same, compressing the selected positions within a register (vpcompressd to memory is
  // microcoded on some cores) and storing all 16 lanes; the next store overwrites the unused ones.
  {
    const __m512i vt0 = _mm512_set1_epi32(int(t0)), step = _mm512_set1_epi32(16);
    __m512i pos = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (; i0 + 16 <= n; i0 += 16) {
      const __m512i kv = _mm512_loadu_si512(keys + i0);
      const __mmask16 mk = _mm512_cmpge_epu32_mask(kv, vt0);
      _mm512_storeu_si512(near + m, _mm512_maskz_compress_epi32(mk, pos));
      _mm512_storeu_si512(nkey + m, _mm512_maskz_compress_epi32(mk, kv));
      m += std::popcount(uint32_t(mk));
      pos = _mm512_add_epi32(pos, step);
    }
  }
#elif defined(__AVX2__)
  // The same with 8 lanes: an unsigned >= as max(key, t0) == key, the mask's lane order from the
  // table, and all 8 lanes stored; the next store overwrites the unused ones.
  {
    const __m256i vt0 = _mm256_set1_epi32(int(t0)), step = _mm256_set1_epi32(8);
    __m256i pos = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (; i0 + 8 <= n; i0 += 8) {
      const __m256i kv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(keys + i0));
      const __m256i ge = _mm256_cmpeq_epi32(_mm256_max_epu32(kv, vt0), kv);
      const unsigned mk = unsigned(_mm256_movemask_ps(_mm256_castsi256_ps(ge)));
      const __m256i order =
          _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(kLeftPack.data() + mk * 8)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(near + m), _mm256_permutevar8x32_epi32(pos, order));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(nkey + m), _mm256_permutevar8x32_epi32(kv, order));
      m += std::popcount(mk);
      pos = _mm256_add_epi32(pos, step);
    }
  }
#endif
  for (; i0 + 16 <= n; i0 += 16) {
    uint32_t mask = 0;
    for (int q = 0; q < 16; ++q) mask |= uint32_t(keys[i0 + q] >= t0) << q;
    for (; mask != 0; mask &= mask - 1, ++m) {
      near[m] = uint32_t(i0 + std::countr_zero(mask));
      nkey[m] = keys[near[m]];
    }
  }
  for (; i0 < n; ++i0)
    if (keys[i0] >= t0) {
      near[m] = uint32_t(i0);
      nkey[m++] = keys[i0];
    }
  // 3. A radix step over those: a histogram of the keys' distance below the largest key in
  //    1/32-octave bins (exponent + 5 mantissa bits; 8 octaves or more below share the last bin)
  //    locates the bin holding the threshold; a selection among that bin's keys (typically a few
  //    dozen) pins it down exactly.
  constexpr int kShift = 18;
  constexpr uint32_t kBins = 256;
  const uint32_t top = kmax >> kShift;
  auto bin_of = [top](uint32_t key) { return std::min(top - (key >> kShift), kBins - 1); };
  uint32_t hist[kBins] = {};
  for (int64_t t = 0; t < m; ++t) hist[bin_of(nkey[t])] += 1;
  uint32_t bin = 0;
  int64_t above = 0;  // keys in bins nearer the top than `bin`
  for (;; ++bin) {
    if (above + hist[bin] >= k) break;
    above += hist[bin];
  }
  uint32_t cand[kMaxChunk * kMaxChunk];  // the keys of the threshold's bin
  int64_t mc = 0, mn = 0;
  for (int64_t t = 0; t < m; ++t) {  // near keeps only the keys in that bin or nearer the top
    const uint32_t key = nkey[t], b = bin_of(key);
    cand[mc] = key;
    mc += b == bin;
    near[mn] = near[t];
    nkey[mn] = key;
    mn += b <= bin;
  }
  const int64_t need = k - above;  // in [1, mc]
  std::nth_element(cand, cand + (need - 1), cand + mc, std::greater<uint32_t>());
  const uint32_t thr = cand[need - 1];
  for (int64_t t = 0; t < mc; ++t) above += cand[t] > thr;  // now: all keys > thr
  // 4. In index order, every key above the threshold plus the first (k - #above) keys equal to
  //    it: walking in index order both breaks ties towards the lower index and leaves the output
  //    sorted.
  int64_t equal_left = k - above, taken = 0;
  for (int64_t t = 0; t < mn && taken < k; ++t) {
    const uint32_t key = nkey[t];
    if (key > thr) {
      idx[taken++] = static_cast<uint16_t>(near[t]);
    } else if (key == thr && equal_left > 0) {
      idx[taken++] = static_cast<uint16_t>(near[t]);
      --equal_left;
    }
  }
}

}  // namespace

void topk_abs(const float* x, int64_t n, int64_t k, uint16_t* idx) { topk_abs_tile(x, 1, n, n, k, idx); }

void topk_abs_tile(const float* x, int64_t rows, int64_t w, int64_t stride, int64_t k, uint16_t* idx) {
  const int64_t n = rows * w;
  FRUGAL_CHECK(rows >= 1 && w >= 1 && n <= kMaxChunk * kMaxChunk && stride >= w, "topk_abs: tile ", rows, " x ", w,
               " (row stride ", stride, ") not in [1, 4096] elements");
  FRUGAL_CHECK(k >= 1 && k <= n, "topk_abs: k = ", k, " not in [1, ", n, "]");
  if (k == n) {
    for (int64_t j = 0; j < n; ++j) idx[j] = static_cast<uint16_t>(j);
    return;
  }
  alignas(64) uint32_t keys[kMaxChunk * kMaxChunk];
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * stride;
    uint32_t* kr = keys + r * w;
#pragma omp simd
    for (int64_t j = 0; j < w; ++j) kr[j] = mag_key(xr[j]);
  }
  topk_keys(keys, n, k, idx);
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
