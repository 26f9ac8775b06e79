// Compression building blocks: chunk geometry, the k rule, top-k, the 2-bit quantiser, error
// feedback and aggregation. Hand-computed cases first, then properties on random data.
// (Wire format: test_compress_wire.cpp; DCT / DeMo: test_compress_dct.cpp.)
#include <gtest/gtest.h>

#include <cfloat>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "compress/chunking.hpp"
#include "compress/error_feedback.hpp"
#include "compress/quantize.hpp"
#include "compress/sparse.hpp"
#include "compress/topk.hpp"
#include "core/rng.hpp"

using namespace frugal::compress;

namespace {

std::vector<float> normals(size_t n, uint32_t sub, float scale = 1.0f) {
  frugal::Rng rng(1234, frugal::Stream::method, sub);
  std::vector<float> v(n);
  for (auto& x : v) x = scale * rng.normal();
  return v;
}

// Runs f with the OpenMP thread count set to n (no-op without OpenMP).
template <typename F>
void with_threads(int n, F&& f) {
#ifdef _OPENMP
  const int old = omp_get_max_threads();
  omp_set_num_threads(n);
  f();
  omp_set_num_threads(old);
#else
  (void)n;
  f();
#endif
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

// ---- chunk geometry -------------------------------------------------------------------------------

TEST(Chunking, LargestDivisor) {
  EXPECT_EQ(largest_divisor_at_most(50304, 64), 64);  // 2^7 * 3 * 131: 64 divides it
  EXPECT_EQ(largest_divisor_at_most(50257, 64), 29);  // GPT-2's unpadded vocabulary, 29 * 1733
  EXPECT_EQ(largest_divisor_at_most(1104, 64), 48);   // 2^4 * 3 * 23
  EXPECT_EQ(largest_divisor_at_most(768, 64), 64);
  EXPECT_EQ(largest_divisor_at_most(2304, 64), 64);
  EXPECT_EQ(largest_divisor_at_most(3, 64), 3);
  EXPECT_EQ(largest_divisor_at_most(131, 64), 1);  // prime above the cap
  EXPECT_EQ(largest_divisor_at_most(1, 64), 1);
  EXPECT_EQ(largest_divisor_at_most(100, 64), 50);
  EXPECT_THROW(largest_divisor_at_most(0, 64), frugal::Error);
}

TEST(Chunking, GptShapes) {
  // padded token embedding 50304 x 768: 50304 = 786 * 64, so full 64 x 64 tiles
  const ChunkLayout wte = matrix_layout(50304, 768);
  EXPECT_EQ(wte.c1, 64);
  EXPECT_EQ(wte.c2, 64);
  EXPECT_EQ(wte.n_chunks(), 786 * 12);
  EXPECT_EQ(wte.chunk_len(0), 4096);
  EXPECT_EQ(sparse_nnz(wte, 128), 786 * 12 * 128);
  // unpadded 50257 x 768: 29 x 64 tiles of 1856 elements, k = round(58) = 58
  const ChunkLayout raw = matrix_layout(50257, 768);
  EXPECT_EQ(raw.c1, 29);
  EXPECT_EQ(raw.n_chunks(), 1733 * 12);
  EXPECT_EQ(raw.chunk_len(0), 1856);
  EXPECT_EQ(chunk_k(1856, 128), 58);
  // 1104 x 768: 48 x 64 tiles of 3072 elements, k = 96
  const ChunkLayout t48 = matrix_layout(1104, 768);
  EXPECT_EQ(t48.c1, 48);
  EXPECT_EQ(t48.chunk_len(0), 3072);
  EXPECT_EQ(chunk_k(3072, 128), 96);

  // 3 x 768: 3 x 64 tiles of 192 elements, k = 6
  const ChunkLayout thin = matrix_layout(3, 768);
  EXPECT_EQ(thin.c1, 3);
  EXPECT_EQ(thin.c2, 64);
  EXPECT_EQ(thin.n_chunks(), 12);
  EXPECT_EQ(thin.chunk_len(11), 192);
  EXPECT_EQ(chunk_k(192, 128), 6);

  // qkv 2304 x 768 and mlp 768 x 3072: full 64 x 64 tiles
  const ChunkLayout qkv = matrix_layout(2304, 768), fc = matrix_layout(768, 3072);
  EXPECT_EQ(qkv.c1, 64);
  EXPECT_EQ(qkv.c2, 64);
  EXPECT_EQ(qkv.n_chunks(), 36 * 12);
  EXPECT_EQ(fc.n_chunks(), 12 * 48);
  EXPECT_EQ(sparse_nnz(qkv, 128), 36 * 12 * 128);

  // vectors 768 and 2304: segments of 64, k = 2
  const ChunkLayout b768 = vector_layout(768), b2304 = vector_layout(2304);
  EXPECT_TRUE(b768.vector);
  EXPECT_EQ(b768.n_chunks(), 12);
  EXPECT_EQ(b2304.n_chunks(), 36);
  EXPECT_EQ(b2304.chunk_len(35), 64);
  EXPECT_EQ(chunk_k(64, 128), 2);
  EXPECT_EQ(sparse_nnz(b2304, 128), 72);
}

TEST(Chunking, VectorTailIsShorter) {
  const ChunkLayout v = vector_layout(100);
  EXPECT_EQ(v.n_chunks(), 2);
  EXPECT_EQ(v.chunk_len(0), 64);
  EXPECT_EQ(v.chunk_len(1), 36);
  EXPECT_EQ(v.element(1, 0), 64);
  EXPECT_EQ(v.element(1, 35), 99);
  // k: 64 -> 2, 36 -> round(1.125) = 1; the tail's entries start after the full chunks' ones.
  EXPECT_EQ(sparse_nnz(v, 128), 3);
  EXPECT_EQ(sparse_offset(v, 128, 1), 2);
  const ChunkLayout small = vector_layout(5);
  EXPECT_EQ(small.n_chunks(), 1);
  EXPECT_EQ(small.chunk_len(0), 5);
  EXPECT_EQ(sparse_nnz(small, 128), 1);
}

TEST(Chunking, PrimeDimensionGivesThinTiles) {
  const ChunkLayout l = matrix_layout(131, 768);
  EXPECT_EQ(l.c1, 1);
  EXPECT_EQ(l.c2, 64);
  EXPECT_EQ(l.n_chunks(), 131 * 12);
}

TEST(Chunking, ElementMapHandComputed) {
  // 6 x 4 matrix, 2 x 2 tiles (max_chunk 2): tile grid 3 x 2, chunks row-major over the grid.
  const ChunkLayout l = matrix_layout(6, 4, 2);
  EXPECT_EQ(l.n_chunks(), 6);
  // chunk 3 = tile row 1, tile col 1: rows 2..3, cols 2..3 -> flat 10, 11, 14, 15
  EXPECT_EQ(l.element(3, 0), 10);
  EXPECT_EQ(l.element(3, 1), 11);
  EXPECT_EQ(l.element(3, 2), 14);
  EXPECT_EQ(l.element(3, 3), 15);
  EXPECT_EQ(l.element(4, 0), 16);  // tile row 2, col 0
}

TEST(Chunking, ElementMapIsABijection) {
  for (const ChunkLayout& l : {matrix_layout(6, 4, 2), matrix_layout(96, 192), matrix_layout(3, 768),
                               matrix_layout(131, 130), vector_layout(100), vector_layout(768)}) {
    std::vector<int> hits(size_t(l.numel()), 0);
    for (int64_t c = 0; c < l.n_chunks(); ++c)
      for (int64_t j = 0; j < l.chunk_len(c); ++j) hits[size_t(l.element(c, j))] += 1;
    for (int h : hits) ASSERT_EQ(h, 1) << l.rows << " x " << l.cols;
  }
}

TEST(Chunking, GatherScatterRoundTrip) {
  const ChunkLayout l = matrix_layout(96, 192);
  std::vector<float> x = normals(size_t(l.numel()), 1), y(x.size(), 0.0f);
  float buf[4096];
  for (int64_t c = 0; c < l.n_chunks(); ++c) {
    gather_chunk(x.data(), l, c, buf);
    for (int64_t j = 0; j < l.chunk_len(c); ++j) ASSERT_EQ(buf[j], x[size_t(l.element(c, j))]);
    scatter_chunk(buf, l, c, y.data());
  }
  EXPECT_TRUE(same_bits(x, y));
}

TEST(Chunking, CheckLayoutRejectsBadGeometry) {
  ChunkLayout l = matrix_layout(64, 64);
  l.c1 = 48;  // does not divide 64
  EXPECT_THROW(check_layout(l), frugal::Error);
  ChunkLayout big = matrix_layout(128, 128);
  big.c1 = big.c2 = 128;  // 16384 elements per chunk
  EXPECT_THROW(check_layout(big), frugal::Error);
  EXPECT_THROW(matrix_layout(0, 5), frugal::Error);
  EXPECT_NO_THROW(check_layout(vector_layout(100)));
}

TEST(Chunking, BlocksForSplitsStackedLayers) {
  frugal::ParamLayout p;
  p.add("wte", {50304, 768});
  p.add("ln1b", {2, 768}, true);        // two layers' biases: a stack of vectors, not a 2 x 768 matrix
  p.add("qkvw", {2, 2304, 768}, true);  // two layers' weights
  p.add("lnfb", {768});
  p.add("grid", {2, 768});              // not stacked: a genuine 2 x 768 matrix
  const auto blocks = blocks_for(p);
  ASSERT_EQ(blocks.size(), 1u + 2u + 2u + 1u + 1u);
  EXPECT_EQ(blocks[0].layout, matrix_layout(50304, 768));
  EXPECT_EQ(blocks[1].layout, vector_layout(768));
  EXPECT_EQ(blocks[2].offset, size_t(50304) * 768 + 768);
  EXPECT_EQ(blocks[3].layout, matrix_layout(2304, 768));
  EXPECT_EQ(blocks[3].offset, size_t(50304) * 768 + 2 * 768);
  EXPECT_EQ(blocks[4].offset, size_t(50304) * 768 + 2 * 768 + 2304 * 768);
  EXPECT_EQ(blocks[5].layout, vector_layout(768));
  EXPECT_EQ(blocks[6].layout, matrix_layout(2, 768));
}

// ---- the k rounding rule -------------------------------------------------------------------------

TEST(ChunkK, RoundingRule) {
  EXPECT_EQ(chunk_k(4096, 128), 128);
  EXPECT_EQ(chunk_k(4096, 32), 32);
  EXPECT_EQ(chunk_k(3072, 128), 96);
  EXPECT_EQ(chunk_k(192, 128), 6);
  EXPECT_EQ(chunk_k(64, 128), 2);
  EXPECT_EQ(chunk_k(36, 128), 1);    // 1.125 -> 1
  EXPECT_EQ(chunk_k(64, 32), 1);     // 0.5 -> 1 (half away from zero)
  EXPECT_EQ(chunk_k(96, 64), 2);     // 1.5 -> 2
  EXPECT_EQ(chunk_k(160, 64), 3);    // 2.5 -> 3
  EXPECT_EQ(chunk_k(100, 64), 2);    // 1.5625 -> 2
  EXPECT_EQ(chunk_k(64, 1), 1);      // 0.016 -> 0 -> max(1, .) = 1
  EXPECT_EQ(chunk_k(10, 4096), 10);  // capped at the chunk length
  EXPECT_EQ(chunk_k(4096, 4096), 4096);
  EXPECT_THROW(chunk_k(64, 0), frugal::Error);
}

// ---- top-k ---------------------------------------------------------------------------------------

TEST(TopK, HandComputedWithTies) {
  const float x[6] = {0.5f, -3.0f, 2.0f, 3.0f, -0.1f, -2.0f};
  uint16_t idx[6];
  topk_abs(x, 6, 3, idx);  // |3| at 1 and 3, then |2| tie between 2 and 5: lower index wins
  EXPECT_EQ(idx[0], 1);
  EXPECT_EQ(idx[1], 2);
  EXPECT_EQ(idx[2], 3);
  topk_abs(x, 6, 4, idx);
  EXPECT_EQ(std::vector<uint16_t>(idx, idx + 4), (std::vector<uint16_t>{1, 2, 3, 5}));
  topk_abs(x, 6, 1, idx);  // |3| tie between 1 and 3
  EXPECT_EQ(idx[0], 1);
  topk_abs(x, 6, 6, idx);
  EXPECT_EQ(std::vector<uint16_t>(idx, idx + 6), (std::vector<uint16_t>{0, 1, 2, 3, 4, 5}));
}

TEST(TopK, AllEqualAndSignedZeros) {
  const float z[5] = {0.0f, -0.0f, 0.0f, -0.0f, 0.0f};
  uint16_t idx[5];
  topk_abs(z, 5, 2, idx);
  EXPECT_EQ(idx[0], 0);
  EXPECT_EQ(idx[1], 1);
  const float e[4] = {-1.0f, 1.0f, -1.0f, 1.0f};
  topk_abs(e, 4, 3, idx);
  EXPECT_EQ(std::vector<uint16_t>(idx, idx + 3), (std::vector<uint16_t>{0, 1, 2}));
}

TEST(TopK, NanAndInfAreSelectedFirst) {
  const float x[5] = {1.0f, std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity(), 5.0f, 2.0f};
  uint16_t idx[3];
  topk_abs(x, 5, 3, idx);
  EXPECT_EQ(std::vector<uint16_t>(idx, idx + 3), (std::vector<uint16_t>{1, 2, 3}));
}

TEST(TopK, MatchesSortReference) {
  // Data shapes that stress the selection: many ties (values from a small set), one narrow range
  // (every key in the same histogram bin), mostly zeros with a few spikes, and plain normals.
  frugal::Rng rng(7, frugal::Stream::method, 2);
  for (int kind = 0; kind < 4; ++kind) {
    for (int trial = 0; trial < 40; ++trial) {
      const int64_t n = 1 + rng.below(4096), k = 1 + rng.below(uint32_t(n));
      std::vector<float> x(static_cast<size_t>(n));
      for (auto& v : x) {
        if (kind == 0) v = float(int(rng.below(9)) - 4) * 0.25f;
        else if (kind == 1) v = (rng.below(2) ? 1.0f : -1.0f) * (1.0f + 0.1f * rng.uniform());
        else if (kind == 2) v = rng.below(50) == 0 ? rng.normal() * 1e3f : 0.0f;
        else v = rng.normal();
      }
      std::vector<int64_t> order(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) order[size_t(i)] = i;
      std::stable_sort(order.begin(), order.end(),
                       [&](int64_t a, int64_t b) { return std::fabs(x[size_t(a)]) > std::fabs(x[size_t(b)]); });
      std::vector<uint16_t> want(order.begin(), order.begin() + k);
      std::sort(want.begin(), want.end());
      std::vector<uint16_t> got(static_cast<size_t>(k));
      topk_abs(x.data(), n, k, got.data());
      ASSERT_EQ(got, want) << "kind=" << kind << " n=" << n << " k=" << k;
    }
  }
}

TEST(TopK, RejectsBadArguments) {
  float x[4] = {1, 2, 3, 4};
  uint16_t idx[4];
  EXPECT_THROW(topk_abs(x, 4, 0, idx), frugal::Error);
  EXPECT_THROW(topk_abs(x, 4, 5, idx), frugal::Error);
  EXPECT_THROW(topk_abs(x, 0, 1, idx), frugal::Error);
}

TEST(TopK, SelectTopkPerChunk) {
  // 4 x 4 matrix, 2 x 2 tiles, top_k 2048 -> k = round(4 * 2048 / 4096) = 2 per tile.
  const ChunkLayout l = matrix_layout(4, 4, 2);
  const std::vector<float> x = {
      1, -9, 2, 0,   //
      3, 4, -5, 6,   //
      0, 0, 7, 7,    //
      0, 1, -7, 8};  //
  SparseTensor s;
  select_topk(x.data(), l, 2048, s);
  // tile 0 = {1,-9,3,4}: idx 1 (-9), 3 (4); tile 1 = {2,0,-5,6}: 2, 3; tile 2 = {0,0,0,1}: 3 (1), then
  // the first zero 0; tile 3 = {7,7,-7,8}: 3 (8), then the |7| tie -> index 0.
  EXPECT_EQ(s.idx, (std::vector<uint16_t>{1, 3, 2, 3, 0, 3, 0, 3}));
  EXPECT_EQ(s.values, (std::vector<float>{-9, 4, -5, 6, 0, 1, 7, 8}));
  EXPECT_FALSE(s.quantized);
  EXPECT_NO_THROW(sparse_validate(s));
}

// ---- the 2-bit quantiser ---------------------------------------------------------------------------

TEST(Quantize, HandComputedAllFourBins) {
  // mu = 0, std (n - 1) = 9.1506, s = 13.7259; c/s + 2: -24 -> 0.25, -10 -> 1.27, -4..4 -> 1.71..2.29,
  // 12 -> 2.87, 20 -> 3.46.
  const std::vector<float> v = {-24, -10, -4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 4, 12, 20};
  std::vector<uint8_t> codes(v.size());
  std::vector<float> deq(v.size());
  const Quant2 q = quantize2(v.data(), int64_t(v.size()), codes.data(), deq.data());
  EXPECT_EQ(q.mu, 0.0f);
  EXPECT_NEAR(q.scale, 13.725888f, 1e-4f);
  EXPECT_EQ(codes, (std::vector<uint8_t>{0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3}));
  EXPECT_EQ(q.levels[0], -24.0f);
  EXPECT_EQ(q.levels[1], -10.0f);
  EXPECT_EQ(q.levels[2], float(2.0 / 12.0));  // mean of {-4, 0 x 9, 2, 4}
  EXPECT_EQ(q.levels[3], 16.0f);
  EXPECT_EQ(deq[0], -24.0f);
  EXPECT_EQ(deq[15], 16.0f);
  EXPECT_EQ(deq[5], float(2.0 / 12.0));
}

TEST(Quantize, HandComputedEmptyBinAndMean) {
  // v = {-3, -1, 1, 3}: mu 0, std sqrt(20/3), s = 3.873; c/s + 2 = 1.23, 1.74, 2.26, 2.77 -> 1, 2, 2, 3.
  const float v[4] = {-3, -1, 1, 3};
  uint8_t codes[4];
  float deq[4];
  Quant2 q = quantize2(v, 4, codes, deq);
  EXPECT_EQ(std::vector<uint8_t>(codes, codes + 4), (std::vector<uint8_t>{1, 2, 2, 3}));
  EXPECT_EQ(q.levels[0], 0.0f);  // empty bin: defined as 0 relative to mu
  EXPECT_EQ(q.levels[1], -3.0f);
  EXPECT_EQ(q.levels[2], 0.0f);
  EXPECT_EQ(q.levels[3], 3.0f);
  EXPECT_EQ(std::vector<float>(deq, deq + 4), (std::vector<float>{-3, 0, 0, 3}));

  // Shifted by 10: same codes, mu = 10, levels unchanged (relative).
  const float w[4] = {7, 9, 11, 13};
  q = quantize2(w, 4, codes, deq);
  EXPECT_EQ(q.mu, 10.0f);
  EXPECT_EQ(std::vector<uint8_t>(codes, codes + 4), (std::vector<uint8_t>{1, 2, 2, 3}));
  EXPECT_EQ(std::vector<float>(deq, deq + 4), (std::vector<float>{7, 10, 10, 13}));
}

TEST(Quantize, DegenerateInputs) {
  uint8_t codes[3];
  float deq[3];
  const float same[3] = {5, 5, 5};  // std 0 -> s = 1, all in bin 2, L[2] = 0: exact
  Quant2 q = quantize2(same, 3, codes, deq);
  EXPECT_EQ(q.scale, 1.0f);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(codes[i], 2);
    EXPECT_EQ(deq[i], 5.0f);
  }
  const float one[1] = {-7.5f};  // n = 1: exact
  q = quantize2(one, 1, codes, deq);
  EXPECT_EQ(codes[0], 2);
  EXPECT_EQ(deq[0], -7.5f);
  q = quantize2(nullptr, 0, nullptr, nullptr);  // nothing selected
  EXPECT_EQ(q.mu, 0.0f);
}

TEST(Quantize, LevelsAreBinMeansOnRandomData) {
  const std::vector<float> v = normals(10000, 3, 0.01f);
  std::vector<uint8_t> codes(v.size());
  std::vector<float> deq(v.size());
  const Quant2 q = quantize2(v.data(), int64_t(v.size()), codes.data(), deq.data());
  // Naive recomputation in double.
  double sum = 0;
  for (float x : v) sum += x;
  const double mu = float(sum / double(v.size()));
  double ss = 0;
  for (float x : v) ss += (x - mu) * (x - mu);
  const double s = 6 * std::sqrt(ss / double(v.size() - 1)) / 4;
  double bs[4] = {0, 0, 0, 0};
  int64_t bc[4] = {0, 0, 0, 0};
  for (size_t i = 0; i < v.size(); ++i) {
    const double c = v[i] - mu;
    const int code = int(std::clamp(std::nearbyint(c / s + 2), 0.0, 3.0));
    ASSERT_EQ(codes[i], code) << i;
    bs[code] += c;
    bc[code] += 1;
    ASSERT_EQ(deq[i], q.levels[code] + q.mu);
  }
  for (int b = 0; b < 4; ++b) {
    ASSERT_GT(bc[b], 0);
    EXPECT_NEAR(q.levels[b], bs[b] / double(bc[b]), 1e-9);
  }
  EXPECT_LT(q.levels[0], q.levels[1]);
  EXPECT_LT(q.levels[1], q.levels[2]);
  EXPECT_LT(q.levels[2], q.levels[3]);
}

TEST(Quantize, ThreadCountDoesNotChangeResult) {
  const std::vector<float> v = normals(50000, 4);
  std::vector<uint8_t> c1(v.size()), c2(v.size());
  std::vector<float> d1(v.size()), d2(v.size());
  Quant2 q1, q2;
  with_threads(1, [&] { q1 = quantize2(v.data(), int64_t(v.size()), c1.data(), d1.data()); });
  with_threads(2, [&] { q2 = quantize2(v.data(), int64_t(v.size()), c2.data(), d2.data()); });
  EXPECT_EQ(std::memcmp(&q1, &q2, sizeof(Quant2)), 0);
  EXPECT_EQ(c1, c2);
  EXPECT_TRUE(same_bits(d1, d2));
}

// ---- error feedback --------------------------------------------------------------------------------

TEST(ErrorFeedback, HandComputed) {
  // n = 4 vector, top_k 2048 -> k = 2. beta 0.5:
  // a = 0.5 e + g = {2, 3, -2, -1.5}; top-2 |a|: 3 (index 1), then the |2| tie -> index 0.
  // Quantise {2, 3}: mu 2.5, c = -/+0.5, s = 1.06, c/s + 2 = 1.53, 2.47 -> both code 2, L[2] = 0,
  // so both are sent as 2.5 and e = a - sent = {-0.5, 0.5, -2, -1.5}.
  std::vector<float> e = {2, 0, -4, 1};
  const std::vector<float> g = {1, 3, 0, -2};
  SparseTensor s;
  ef_compress(e.data(), g.data(), vector_layout(4), {.beta = 0.5f, .top_k = 2048, .quantize = true}, s);
  EXPECT_EQ(s.idx, (std::vector<uint16_t>{0, 1}));
  EXPECT_EQ(s.codes, (std::vector<uint8_t>{2, 2}));
  EXPECT_EQ(s.q.mu, 2.5f);
  EXPECT_EQ(s.values, (std::vector<float>{2.5f, 2.5f}));
  EXPECT_EQ(e, (std::vector<float>{-0.5f, 0.5f, -2.0f, -1.5f}));

  // Without quantisation the kept entries are sent exactly and leave 0 behind.
  e = {2, 0, -4, 1};
  ef_compress(e.data(), g.data(), vector_layout(4), {.beta = 0.5f, .top_k = 2048, .quantize = false}, s);
  EXPECT_EQ(s.values, (std::vector<float>{2.0f, 3.0f}));
  EXPECT_EQ(e, (std::vector<float>{0.0f, 0.0f, -2.0f, -1.5f}));
}

TEST(ErrorFeedback, InvariantOnRandomTensors) {
  // e_new + densify(sent) == beta e + g: exactly at unselected coordinates, and at selected
  // ones e_new is the fp32 difference (a - sent), so adding sent back is within one rounding of a.
  const float beta = 0.95f;
  uint32_t sub = 10;
  for (const ChunkLayout& l : {matrix_layout(96, 192), matrix_layout(3, 768), matrix_layout(150, 64),
                               vector_layout(2304), vector_layout(100)}) {
    for (bool quant : {true, false}) {
      std::vector<float> e = normals(size_t(l.numel()), sub++), g = normals(size_t(l.numel()), sub++, 0.1f);
      std::vector<float> a(e.size());
      for (size_t i = 0; i < e.size(); ++i) a[i] = beta * e[i] + g[i];
      SparseTensor s;
      ef_compress(e.data(), g.data(), l, {.beta = beta, .top_k = 128, .quantize = quant}, s);
      ASSERT_NO_THROW(sparse_validate(s));
      ASSERT_EQ(s.quantized, quant);
      std::vector<float> sent(e.size());
      densify(s, sent.data());
      std::vector<bool> selected(e.size(), false);
      for (int64_t c = 0; c < l.n_chunks(); ++c) {
        const int64_t k = chunk_k(l.chunk_len(c), 128), off = sparse_offset(l, 128, c);
        for (int64_t t = 0; t < k; ++t) selected[size_t(l.element(c, s.idx[size_t(off + t)]))] = true;
      }
      int64_t n_sel = 0;
      for (size_t i = 0; i < e.size(); ++i) {
        if (!selected[i]) {
          ASSERT_EQ(e[i], a[i]) << i;
          ASSERT_EQ(sent[i], 0.0f);
          continue;
        }
        ++n_sel;
        ASSERT_EQ(e[i], a[i] - sent[i]) << i;
        ASSERT_NEAR(e[i] + sent[i], a[i], 1e-6f * std::max(1.0f, std::fabs(a[i])));
        if (!quant) {
          ASSERT_EQ(e[i], 0.0f);
        }
      }
      EXPECT_EQ(n_sel, sparse_nnz(l, 128));
      if (quant) {  // the values sent are exactly the dequantised codes
        for (size_t t = 0; t < s.values.size(); ++t) ASSERT_EQ(s.values[t], dequantize2(s.q, s.codes[t]));
      }
    }
  }
}

TEST(ErrorFeedback, SelectsLargestOfUpdatedBuffer) {
  // The selection is made on beta e + g (not on g): a large old error wins over a new gradient.
  std::vector<float> e = {10, 0, 0, 0}, g = {0, 1, 0, 0};
  SparseTensor s;
  ef_compress(e.data(), g.data(), vector_layout(4), {.beta = 0.95f, .top_k = 1024, .quantize = false}, s);
  ASSERT_EQ(s.idx.size(), 1u);
  EXPECT_EQ(s.idx[0], 0);
  EXPECT_EQ(s.values[0], 9.5f);
  EXPECT_EQ(e, (std::vector<float>{0, 1, 0, 0}));
}

TEST(ErrorFeedback, ThreadCountDoesNotChangeResult) {
  const ChunkLayout l = matrix_layout(384, 768);
  const std::vector<float> e0 = normals(size_t(l.numel()), 20), g = normals(size_t(l.numel()), 21);
  std::vector<float> e1 = e0, e2 = e0;
  SparseTensor s1, s2;
  with_threads(1, [&] { ef_compress(e1.data(), g.data(), l, {}, s1); });
  with_threads(2, [&] { ef_compress(e2.data(), g.data(), l, {}, s2); });
  EXPECT_TRUE(same_bits(e1, e2));
  EXPECT_EQ(s1.idx, s2.idx);
  EXPECT_EQ(s1.codes, s2.codes);
  EXPECT_TRUE(same_bits(s1.values, s2.values));
}

TEST(ErrorFeedback, RepeatedStepsKeepInvariantAndBoundedError) {
  // Over many steps with a fixed g, EF must eventually transmit everything: the buffer stays bounded.
  const ChunkLayout l = matrix_layout(64, 128);
  std::vector<float> e(size_t(l.numel()), 0.0f);
  const std::vector<float> g = normals(e.size(), 30);
  SparseTensor s;
  const int steps = 200;
  std::vector<double> total_sent(e.size(), 0.0);
  std::vector<float> sent(e.size());
  float scale = 0;  // the largest |e| or |sent| seen: what each step's two roundings are relative to
  for (int step = 0; step < steps; ++step) {
    ef_compress(e.data(), g.data(), l, {.beta = 1.0f, .top_k = 256, .quantize = true}, s);
    densify(s, sent.data());
    for (size_t i = 0; i < e.size(); ++i) {
      total_sent[i] += sent[i];
      scale = std::max({scale, std::fabs(e[i]), std::fabs(sent[i])});
    }
  }
  // With beta = 1, per element: sum of what was sent + what is left = steps * g, up to the fp32
  // roundings of e <- e + g and e <- e - sent, at most half an ulp of `scale` each, every step.
  const double bound = steps * 2 * 0.5 * double(FLT_EPSILON) * 2 * scale;
  double worst = 0;
  for (size_t i = 0; i < e.size(); ++i) worst = std::max(worst, std::fabs(total_sent[i] + e[i] - double(steps) * g[i]));
  EXPECT_LE(worst, bound) << "per-element invariant broken beyond rounding";
  float emax = 0;
  for (float x : e) emax = std::max(emax, std::fabs(x));
  EXPECT_LT(emax, 200.0f * 0.5f);  // far below 200 |g|max: the error does not grow without bound
}

// ---- aggregation -------------------------------------------------------------------------------------

TEST(Aggregate, HandComputed) {
  // vector of 4, k = 2: rank 0 sends {0: 1, 1: 2}, rank 1 sends {1: 4, 3: 8}.
  SparseTensor a, b;
  sparse_reset(a, vector_layout(4), 2048);
  sparse_reset(b, vector_layout(4), 2048);
  a.idx = {0, 1};
  a.values = {1, 2};
  b.idx = {1, 3};
  b.values = {4, 8};
  const SparseTensor* reps[2] = {&a, &b};
  std::vector<float> out(4, -1.0f);
  aggregate(reps, Aggregation::mean_selected, out.data());
  EXPECT_EQ(out, (std::vector<float>{1, 3, 0, 8}));
  aggregate(reps, Aggregation::mean_all, out.data());
  EXPECT_EQ(out, (std::vector<float>{0.5f, 3, 0, 4}));
}

TEST(Aggregate, MatchesNaiveLoopBitForBit) {
  // R = 4 replicas with different supports; the reference is a plain loop over ranks in order.
  const int R = 4;
  for (const ChunkLayout& l : {matrix_layout(192, 320), matrix_layout(3, 768), vector_layout(1000)}) {
    std::vector<SparseTensor> sp(R);
    std::vector<const SparseTensor*> reps;
    for (int r = 0; r < R; ++r) {
      std::vector<float> e = normals(size_t(l.numel()), 40 + r), g = normals(size_t(l.numel()), 50 + r);
      ef_compress(e.data(), g.data(), l, {.beta = 0.9f, .top_k = 512, .quantize = r % 2 == 0}, sp[r]);
      reps.push_back(&sp[r]);
    }
    for (Aggregation mode : {Aggregation::mean_selected, Aggregation::mean_all}) {
      std::vector<float> sum(size_t(l.numel()), 0.0f), want(sum.size());
      std::vector<int> cnt(sum.size(), 0);
      for (int r = 0; r < R; ++r)
        for (int64_t c = 0; c < l.n_chunks(); ++c) {
          const int64_t k = chunk_k(l.chunk_len(c), 512), off = sparse_offset(l, 512, c);
          for (int64_t t = 0; t < k; ++t) {
            const size_t i = size_t(l.element(c, sp[r].idx[size_t(off + t)]));
            sum[i] += sp[r].values[size_t(off + t)];
            cnt[i] += 1;
          }
        }
      for (size_t i = 0; i < sum.size(); ++i)
        want[i] = mode == Aggregation::mean_all ? sum[i] / float(R) : (cnt[i] ? sum[i] / float(cnt[i]) : 0.0f);
      std::vector<float> got1(sum.size()), got2(sum.size());
      with_threads(1, [&] { aggregate(reps, mode, got1.data()); });
      with_threads(2, [&] { aggregate(reps, mode, got2.data()); });
      EXPECT_TRUE(same_bits(got1, want));
      EXPECT_TRUE(same_bits(got2, want));
    }
  }
}

TEST(Aggregate, SingleReplicaIsDensify) {
  const ChunkLayout l = matrix_layout(64, 192);
  std::vector<float> e = normals(size_t(l.numel()), 60), g = normals(size_t(l.numel()), 61);
  SparseTensor s;
  ef_compress(e.data(), g.data(), l, {}, s);
  std::vector<float> d(size_t(l.numel())), agg(d.size());
  densify(s, d.data());
  const SparseTensor* one[1] = {&s};
  aggregate(one, Aggregation::mean_selected, agg.data());
  EXPECT_TRUE(same_bits(d, agg));
}

TEST(Aggregate, RejectsMismatchedReplicas) {
  SparseTensor a, b, c;
  sparse_reset(a, vector_layout(64), 128);
  sparse_reset(b, vector_layout(128), 128);
  sparse_reset(c, vector_layout(64), 256);
  for (size_t t = 0; t < a.idx.size(); ++t) a.idx[t] = uint16_t(t);
  std::vector<float> out(128);
  const SparseTensor* ab[2] = {&a, &b};
  const SparseTensor* ac[2] = {&a, &c};
  EXPECT_THROW(aggregate(ab, Aggregation::mean_selected, out.data()), frugal::Error);
  EXPECT_THROW(aggregate(ac, Aggregation::mean_selected, out.data()), frugal::Error);
  SparseTensor bad = a;
  bad.idx[0] = 64;  // outside the 64-element chunk
  const SparseTensor* one[1] = {&bad};
  EXPECT_THROW(aggregate(one, Aggregation::mean_selected, out.data()), frugal::Error);
  EXPECT_THROW(sparse_validate(bad), frugal::Error);
  EXPECT_THROW(aggregate(std::span<const SparseTensor* const>{}, Aggregation::mean_selected, out.data()), frugal::Error);
}

TEST(Sparse, ValidateCatchesDuplicatesAndBadCodes) {
  SparseTensor s;
  sparse_reset(s, vector_layout(64), 256);  // k = 4
  s.idx = {1, 5, 5, 9};
  EXPECT_THROW(sparse_validate(s), frugal::Error);
  s.idx = {1, 5, 7, 9};
  EXPECT_NO_THROW(sparse_validate(s));
  quantize_values(s);
  s.codes[2] = 4;
  EXPECT_THROW(sparse_validate(s), frugal::Error);
}
