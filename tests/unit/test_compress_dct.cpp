// DCT-II on chunk tiles and the DeMo compression step.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
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
  // The residual lives in the DCT domain: after a step it equals decay delta + lr DCT(g) (the same
  // fp32 expression over the same transform dct_tiles computes, so bit for bit) everywhere except
  // the kept coefficients, which are sent and left exactly 0; no dropped coefficient is larger.
  for (const ChunkLayout& l : {matrix_layout(128, 192), matrix_layout(3, 768), vector_layout(100)}) {
    const DctPlan plan = make_dct_plan(l);
    std::vector<float> delta = normals(size_t(l.numel()), 10), g = normals(size_t(l.numel()), 11);
    const DemoOptions opt{.decay = 0.999f, .lr = 0.5f, .top_k = 32};
    std::vector<float> gc(delta.size()), a(delta.size());
    dct_tiles(g.data(), l, plan, gc.data());
    for (size_t i = 0; i < a.size(); ++i) a[i] = opt.decay * delta[i] + opt.lr * gc[i];
    SparseTensor s;
    demo_compress(delta.data(), g.data(), l, plan, opt, s);
    ASSERT_NO_THROW(sparse_validate(s));
    EXPECT_FALSE(s.quantized);
    EXPECT_EQ(int64_t(s.idx.size()), sparse_nnz(l, 32));
    std::vector<char> is_kept(a.size(), 0);
    for (int64_t c = 0; c < l.n_chunks(); ++c) {
      const int64_t k = chunk_k(l.chunk_len(c), 32), off = sparse_offset(l, 32, c);
      float smallest_kept = INFINITY;
      for (int64_t t = 0; t < k; ++t) {
        const size_t at = size_t(l.element(c, s.idx[size_t(off + t)]));
        is_kept[at] = 1;
        ASSERT_EQ(s.values[size_t(off + t)], a[at]);
        ASSERT_EQ(delta[at], 0.0f);
        smallest_kept = std::min(smallest_kept, std::fabs(a[at]));
      }
      for (int64_t j = 0; j < l.chunk_len(c); ++j) {
        const size_t at = size_t(l.element(c, j));
        if (!is_kept[at]) {
          ASSERT_EQ(delta[at], a[at]) << at;
          ASSERT_LE(std::fabs(a[at]), smallest_kept);
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

namespace {

// Dense reference with the fp32 matrices of dct_matrix, accumulated in double:
// y = Dh x Dw^T (inverse = false) or x = Dh^T y Dw (inverse = true), an h x w tile.
std::vector<double> dense_tile(const std::vector<float>& x, int64_t h, int64_t w, bool inverse) {
  const std::vector<float> dh = dct_matrix(h), dw = dct_matrix(w);
  // D[a][b] for the forward product, D^T for the inverse
  auto mh = [&](int64_t a, int64_t b) { return double(inverse ? dh[size_t(b * h + a)] : dh[size_t(a * h + b)]); };
  auto mw = [&](int64_t a, int64_t b) { return double(inverse ? dw[size_t(b * w + a)] : dw[size_t(a * w + b)]); };
  std::vector<double> t(size_t(h * w), 0.0), y(size_t(h * w), 0.0);  // t = x Mw^T
  for (int64_t i = 0; i < h; ++i)
    for (int64_t v = 0; v < w; ++v) {
      double s = 0;
      for (int64_t j = 0; j < w; ++j) s += double(x[size_t(i * w + j)]) * mw(v, j);
      t[size_t(i * w + v)] = s;
    }
  for (int64_t u = 0; u < h; ++u)
    for (int64_t v = 0; v < w; ++v) {
      double s = 0;
      for (int64_t i = 0; i < h; ++i) s += mh(u, i) * t[size_t(i * w + v)];
      y[size_t(u * w + v)] = s;
    }
  return y;
}

// ||a - b|| / ||b||
double rel_err(const std::vector<float>& a, const std::vector<double>& b) {
  double d = 0, n = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    d += (a[i] - b[i]) * (a[i] - b[i]);
    n += b[i] * b[i];
  }
  return std::sqrt(d / n);
}

}  // namespace

TEST(Dct, FastTransformMatchesDenseProduct) {
  // Every size 1..64 along each dimension (odd sizes use the dense base case, even ones split),
  // the shapes DeMo sees (48 x 64 tiles, a 36-wide vector tail), forward and inverse.
  std::vector<std::pair<int64_t, int64_t>> shapes = {{48, 64}, {64, 36}, {1, 36}, {1, 64}, {3, 64}, {1, 1}};
  for (int64_t n = 1; n <= 64; ++n) {
    shapes.push_back({n, 64});
    shapes.push_back({64, n});
    shapes.push_back({n, 37});
  }
  double worst_fwd = 0, worst_inv = 0;
  for (auto [h, w] : shapes) {
    const DctPlan plan = make_dct_plan(matrix_layout(h, w));
    ASSERT_EQ(plan.rows.n, h);
    ASSERT_EQ(plan.cols.n, w);
    const std::vector<float> x = normals(size_t(h * w), uint32_t(1000 + h * 100 + w));
    std::vector<float> y(x.size()), back(x.size());
    dct_tile(x.data(), h, w, plan.rows, plan.cols, y.data());
    const double ef = rel_err(y, dense_tile(x, h, w, false));
    idct_tile(x.data(), h, w, plan.rows, plan.cols, back.data());
    const double ei = rel_err(back, dense_tile(x, h, w, true));
    EXPECT_LT(ef, 1e-6) << h << " x " << w;
    EXPECT_LT(ei, 1e-6) << h << " x " << w;
    worst_fwd = std::max(worst_fwd, ef);
    worst_inv = std::max(worst_inv, ei);
  }
  std::printf("fast vs dense DCT, worst relative error: forward %.3g, inverse %.3g\n", worst_fwd, worst_inv);
}

TEST(Demo, MatchesDenseReference) {
  // demo_compress against DeMo as the paper states it, computed densely in double: buf = decay
  // delta + lr g in the parameter domain, C = Dh buf Dw^T, keep the top-k |C| (lower index at
  // ties), residual buf - Dh^T kept Dw. demo_compress holds the residual as DCT(delta), so its
  // result is compared in that domain: same kept indices, values and residual to fp32 rounding.
  // Random data: a near-tie that flips the k-th entry is allowed only within rounding.
  const DemoOptions opt{.decay = 0.9f, .lr = 0.5f, .top_k = 32};
  double worst_val = 0, worst_delta = 0;
  int flips = 0;
  for (const ChunkLayout& l : {matrix_layout(128, 192), matrix_layout(96, 100), matrix_layout(3, 768),
                               vector_layout(100), matrix_layout(63, 45)}) {
    const DctPlan plan = make_dct_plan(l);
    const std::vector<float> delta0 = normals(size_t(l.numel()), 30), g = normals(size_t(l.numel()), 31);
    std::vector<float> delta_dct(delta0.size());
    dct_tiles(delta0.data(), l, plan, delta_dct.data());
    SparseTensor s;
    demo_compress(delta_dct.data(), g.data(), l, plan, opt, s);
    for (int64_t c = 0; c < l.n_chunks(); ++c) {
      const int64_t h = l.c1, w = l.chunk_cols(c), len = l.chunk_len(c);
      const int64_t k = chunk_k(len, opt.top_k), off = sparse_offset(l, opt.top_k, c);
      std::vector<float> buf(static_cast<size_t>(len));
      for (int64_t j = 0; j < len; ++j) {
        const size_t at = size_t(l.element(c, j));
        buf[size_t(j)] = opt.decay * delta0[at] + opt.lr * g[at];
      }
      const std::vector<double> coef = dense_tile(buf, h, w, false);
      double norm = 0;
      for (double v : coef) norm += v * v;
      norm = std::sqrt(norm);
      // reference top-k: larger |coef| first, lower index at ties
      std::vector<int64_t> order(static_cast<size_t>(len));
      for (int64_t j = 0; j < len; ++j) order[size_t(j)] = j;
      std::stable_sort(order.begin(), order.end(),
                       [&](int64_t a, int64_t b) { return std::fabs(coef[size_t(a)]) > std::fabs(coef[size_t(b)]); });
      const double kth = std::fabs(coef[size_t(order[size_t(k - 1)])]);
      std::vector<char> ref_kept(size_t(len), 0), got_kept(size_t(len), 0);
      for (int64_t t = 0; t < k; ++t) ref_kept[size_t(order[size_t(t)])] = 1;
      for (int64_t t = 0; t < k; ++t) {
        const int64_t j = s.idx[size_t(off + t)];
        got_kept[size_t(j)] = 1;
        const double e = std::fabs(s.values[size_t(off + t)] - coef[size_t(j)]) / norm;
        EXPECT_LT(e, 1e-6) << "chunk " << c << " coefficient " << j;
        worst_val = std::max(worst_val, e);
      }
      for (int64_t j = 0; j < len; ++j)
        if (got_kept[size_t(j)] != ref_kept[size_t(j)]) {  // only a near-tie with the k-th may differ
          ++flips;
          EXPECT_NEAR(std::fabs(coef[size_t(j)]), kth, 1e-6 * norm) << "chunk " << c << " index " << j;
        }
      // residual: DCT(buf - Dh^T kept Dw) = C with the kept coefficients zeroed
      double d = 0;
      for (int64_t j = 0; j < len; ++j) {
        const double want = got_kept[size_t(j)] ? 0.0 : coef[size_t(j)];
        const double got = delta_dct[size_t(l.element(c, j))];
        d += (got - want) * (got - want);
      }
      const double e = std::sqrt(d) / norm;
      EXPECT_LT(e, 1e-6) << "chunk " << c;
      worst_delta = std::max(worst_delta, e);
    }
  }
  std::printf("demo_compress vs dense reference, worst relative error: values %.3g, residual %.3g; %d index flips\n",
              worst_val, worst_delta, flips);
}
