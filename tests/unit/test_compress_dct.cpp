// DCT-II on chunk tiles and the DeMo compression step.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "compress/dct.hpp"
#include "compress/sparse_message.hpp"
#include "core/rng.hpp"

using namespace frugal::compress;

namespace {

std::vector<float> normals(size_t n, uint32_t sub) {
  frugal::Rng rng(77, frugal::Stream::method, sub);
  std::vector<float> v(n);
  for (auto& x : v) x = rng.normal();
  return v;
}

// Textbook 2-D orthonormal DCT-II in double, straight from the formula.
std::vector<double> naive_dct2(const std::vector<float>& x, int64_t h, int64_t w) {
  const double pi = 3.14159265358979323846;
  std::vector<double> y(size_t(h * w), 0.0);
  for (int64_t u = 0; u < h; ++u)
    for (int64_t v = 0; v < w; ++v) {
      double s = 0;
      for (int64_t i = 0; i < h; ++i)
        for (int64_t j = 0; j < w; ++j)
          s += x[size_t(i * w + j)] * std::cos(pi * double(2 * i + 1) * double(u) / double(2 * h)) *
               std::cos(pi * double(2 * j + 1) * double(v) / double(2 * w));
      const double au = u == 0 ? std::sqrt(1.0 / double(h)) : std::sqrt(2.0 / double(h));
      const double av = v == 0 ? std::sqrt(1.0 / double(w)) : std::sqrt(2.0 / double(w));
      y[size_t(u * w + v)] = au * av * s;
    }
  return y;
}

}  // namespace

TEST(Dct, MatrixHandComputedAndOrthonormal) {
  const std::vector<float> d2 = dct_matrix(2);
  const float r = float(std::sqrt(0.5));
  EXPECT_NEAR(d2[0], r, 1e-7f);
  EXPECT_NEAR(d2[1], r, 1e-7f);
  EXPECT_NEAR(d2[2], r, 1e-7f);
  EXPECT_NEAR(d2[3], -r, 1e-7f);
  EXPECT_EQ(dct_matrix(1), std::vector<float>{1.0f});
  for (int64_t n : {3, 29, 48, 64}) {
    const std::vector<float> d = dct_matrix(n);
    for (int64_t a = 0; a < n; ++a)
      for (int64_t b = 0; b < n; ++b) {
        double s = 0;
        for (int64_t i = 0; i < n; ++i) s += double(d[size_t(a * n + i)]) * d[size_t(b * n + i)];
        ASSERT_NEAR(s, a == b ? 1.0 : 0.0, 1e-6) << n;
      }
  }
}

TEST(Dct, ConstantTileHasOnlyTheDcTerm) {
  // x = 1 on an h x w tile: Y[0][0] = sqrt(h w), all other coefficients 0.
  const int64_t h = 48, w = 64;
  const DctBasis bh = make_dct_plan(matrix_layout(h, w)).rows, bw = make_dct_plan(matrix_layout(h, w)).cols;
  std::vector<float> x(size_t(h * w), 1.0f), y(x.size());
  dct_tile(x.data(), h, w, bh, bw, y.data());
  EXPECT_NEAR(y[0], std::sqrt(double(h * w)), 1e-4);
  for (size_t i = 1; i < y.size(); ++i) ASSERT_NEAR(y[i], 0.0f, 1e-5f) << i;
}

TEST(Dct, TileMatchesTextbookFormula) {
  for (auto [h, w] : {std::pair<int64_t, int64_t>{8, 8}, {3, 64}, {48, 16}, {1, 36}}) {
    const ChunkLayout l = h == 1 ? vector_layout(w) : matrix_layout(h, w);
    const DctPlan plan = make_dct_plan(l);
    const DctBasis& bw = w == plan.cols.n ? plan.cols : plan.tail;
    const std::vector<float> x = normals(size_t(h * w), uint32_t(h * 100 + w));
    std::vector<float> y(x.size());
    dct_tile(x.data(), h, w, plan.rows, bw, y.data());
    const std::vector<double> want = naive_dct2(x, h, w);
    for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], want[i], 2e-5) << h << "x" << w << " @" << i;
  }
}

TEST(Dct, RoundTripAndParsevalOnTensors) {
  for (const ChunkLayout& l : {matrix_layout(128, 192), matrix_layout(3, 768), matrix_layout(1104, 64),
                               vector_layout(100), vector_layout(2304)}) {
    const DctPlan plan = make_dct_plan(l);
    const std::vector<float> x = normals(size_t(l.numel()), 3);
    std::vector<float> y(x.size()), back(x.size());
    dct_tiles(x.data(), l, plan, y.data());
    idct_tiles(y.data(), l, plan, back.data());
    double ex = 0, ey = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      ASSERT_NEAR(back[i], x[i], 1e-5f) << l.rows << "x" << l.cols;
      ex += double(x[i]) * x[i];
      ey += double(y[i]) * y[i];
    }
    EXPECT_NEAR(ey / ex, 1.0, 1e-5);  // orthonormal: energy is kept per tile
  }
}

TEST(Dct, TilesAreIndependent) {
  // A spike in one tile leaves every other tile's coefficients at exactly 0.
  const ChunkLayout l = matrix_layout(128, 128);
  const DctPlan plan = make_dct_plan(l);
  std::vector<float> x(size_t(l.numel()), 0.0f), y(x.size());
  x[size_t(l.element(3, 100))] = 1.0f;
  dct_tiles(x.data(), l, plan, y.data());
  for (int64_t c = 0; c < l.n_chunks(); ++c)
    for (int64_t j = 0; j < l.chunk_len(c); ++j)
      if (c != 3) {
        ASSERT_EQ(y[size_t(l.element(c, j))], 0.0f);
      }
}

TEST(Demo, StepInvariantAndSelection) {
  // delta_new + IDCT(kept) == decay delta + lr g, and the kept coefficients are the top-k |DCT| per
  // tile of the updated buffer.
  for (const ChunkLayout& l : {matrix_layout(128, 192), matrix_layout(3, 768), vector_layout(100)}) {
    const DctPlan plan = make_dct_plan(l);
    std::vector<float> delta = normals(size_t(l.numel()), 10), g = normals(size_t(l.numel()), 11);
    const DemoOptions opt{.decay = 0.999f, .lr = 0.5f, .top_k = 32};
    std::vector<float> a(delta.size());
    for (size_t i = 0; i < a.size(); ++i) a[i] = opt.decay * delta[i] + opt.lr * g[i];
    SparseTensor s;
    demo_compress(delta.data(), g.data(), l, plan, opt, s);
    ASSERT_NO_THROW(sparse_validate(s));
    EXPECT_FALSE(s.quantized);
    EXPECT_EQ(int64_t(s.idx.size()), sparse_nnz(l, 32));

    std::vector<float> coef(a.size()), kept(a.size()), rec(a.size());
    dct_tiles(a.data(), l, plan, coef.data());
    densify(s, kept.data());
    idct_tiles(kept.data(), l, plan, rec.data());
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(delta[i] + rec[i], a[i], 2e-5f) << i;
    // The kept values are the coefficients at their positions, and no dropped coefficient is larger.
    for (int64_t c = 0; c < l.n_chunks(); ++c) {
      const int64_t k = chunk_k(l.chunk_len(c), 32), off = sparse_offset(l, 32, c);
      float smallest_kept = INFINITY;
      for (int64_t t = 0; t < k; ++t) {
        const size_t at = size_t(l.element(c, s.idx[size_t(off + t)]));
        ASSERT_NEAR(s.values[size_t(off + t)], coef[at], 1e-5f);
        smallest_kept = std::min(smallest_kept, std::fabs(coef[at]));
      }
      for (int64_t j = 0; j < l.chunk_len(c); ++j) {
        const size_t at = size_t(l.element(c, j));
        if (kept[at] == 0.0f) {
          ASSERT_LE(std::fabs(coef[at]), smallest_kept + 1e-5f);
        }
      }
    }
  }
}

TEST(Demo, FullPipelineThroughTheWire) {
  // Two replicas: DeMo step, fp32 message, decode + aggregate in the DCT domain, inverse DCT.
  const ChunkLayout l = matrix_layout(128, 128);
  const DctPlan plan = make_dct_plan(l);
  std::vector<std::vector<uint8_t>> msgs;
  std::vector<SparseTensor> sent(2);
  for (int r = 0; r < 2; ++r) {
    std::vector<float> delta(size_t(l.numel()), 0.0f), g = normals(size_t(l.numel()), uint32_t(20 + r));
    demo_compress(delta.data(), g.data(), l, plan, {}, sent[r]);
    msgs.push_back(encode_message(std::span<const SparseTensor>(&sent[r], 1)));
  }
  const std::span<const uint8_t> views[2] = {msgs[0], msgs[1]};
  std::vector<float> agg(size_t(l.numel())), want(agg.size());
  float* outs[1] = {agg.data()};
  decode_and_aggregate(views, Aggregation::mean_selected, outs);
  const SparseTensor* reps[2] = {&sent[0], &sent[1]};
  aggregate(reps, Aggregation::mean_selected, want.data());
  EXPECT_EQ(std::memcmp(agg.data(), want.data(), agg.size() * 4), 0);
  std::vector<float> update(agg.size());
  idct_tiles(agg.data(), l, plan, update.data());
  // The update is the inverse transform of the aggregate: the textbook DCT of its first 64 x 64
  // tile gives back that tile's aggregated coefficients (a coefficient (u, v) of a tile sits where
  // element (u, v) of the tile would).
  std::vector<float> tile(64 * 64);
  for (int i = 0; i < 64; ++i)
    for (int j = 0; j < 64; ++j) tile[size_t(i * 64 + j)] = update[size_t(i * 128 + j)];
  const std::vector<double> coef = naive_dct2(tile, 64, 64);
  double max_err = 0, max_coef = 0;
  int kept = 0;
  for (int u = 0; u < 64; ++u)
    for (int v = 0; v < 64; ++v) {
      const double a = agg[size_t(u * 128 + v)];
      max_err = std::max(max_err, std::fabs(coef[size_t(u * 64 + v)] - a));
      max_coef = std::max(max_coef, std::fabs(a));
      kept += a != 0;
    }
  EXPECT_LT(max_err, 1e-5 * max_coef);
  EXPECT_GT(kept, 32);  // two replicas' 32 coefficients each, partly different
}

TEST(Demo, RejectsAPlanForAnotherLayout) {
  const ChunkLayout l = matrix_layout(128, 128);
  const DctPlan other = make_dct_plan(matrix_layout(3, 768));
  std::vector<float> delta(size_t(l.numel())), g(size_t(l.numel()));
  SparseTensor s;
  EXPECT_THROW(demo_compress(delta.data(), g.data(), l, other, {}, s), frugal::Error);
  // vectors of 100 and 101 share the 64 basis but not the tail
  std::vector<float> x(101), y(101);
  EXPECT_THROW(dct_tiles(x.data(), vector_layout(101), make_dct_plan(vector_layout(100)), y.data()), frugal::Error);
  EXPECT_NO_THROW(dct_tiles(x.data(), vector_layout(101), make_dct_plan(vector_layout(101)), y.data()));
}
