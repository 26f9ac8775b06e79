#include "compress/dct.hpp"

#include <algorithm>
#include <cmath>

#include "compress/topk.hpp"

namespace frugal::compress {

std::vector<float> dct_matrix(int64_t n) {
  FRUGAL_CHECK(n >= 1 && n <= kMaxChunk * kMaxChunk, "dct_matrix: size ", n, " not in [1, 4096]");
  std::vector<float> d(size_t(n * n));
  const double pi = 3.14159265358979323846;
  for (int64_t k = 0; k < n; ++k) {
    const double a = k == 0 ? std::sqrt(1.0 / double(n)) : std::sqrt(2.0 / double(n));
    for (int64_t i = 0; i < n; ++i)
      d[size_t(k * n + i)] = float(a * std::cos(pi * double(2 * i + 1) * double(k) / double(2 * n)));
  }
  return d;
}

namespace {
DctBasis make_basis(int64_t n) {
  DctBasis b;
  b.n = n;
  b.d = dct_matrix(n);
  b.dt.resize(b.d.size());
  for (int64_t k = 0; k < n; ++k)
    for (int64_t i = 0; i < n; ++i) b.dt[size_t(i * n + k)] = b.d[size_t(k * n + i)];
  return b;
}
// The column basis of chunk c (the last vector segment may be shorter).
const DctBasis& cols_basis(const DctPlan& plan, const ChunkLayout& l, int64_t c) {
  return l.chunk_cols(c) == plan.cols.n ? plan.cols : plan.tail;
}
}  // namespace

// The plan must be the one make_dct_plan(layout) builds: a mismatched basis would index out of it.
void check_plan(const DctPlan& plan, const ChunkLayout& layout) {
  check_layout(layout);
  const int64_t last = layout.chunk_cols(layout.n_chunks() - 1);
  const bool ok = plan.rows.n == layout.c1 && plan.cols.n == layout.c2 &&
                  (last == layout.c2 || plan.tail.n == last) &&
                  plan.rows.d.size() == size_t(plan.rows.n * plan.rows.n) &&
                  plan.cols.d.size() == size_t(plan.cols.n * plan.cols.n) &&
                  plan.tail.d.size() == size_t(plan.tail.n * plan.tail.n);
  FRUGAL_CHECK(ok, "DCT plan (", plan.rows.n, " x ", plan.cols.n, ", tail ", plan.tail.n,
               ") does not match the layout's ", layout.c1, " x ", layout.c2, " chunks (last ", last, " wide)");
}

DctPlan make_dct_plan(const ChunkLayout& layout) {
  check_layout(layout);
  DctPlan p;
  p.rows = make_basis(layout.c1);
  p.cols = make_basis(layout.c2);
  const int64_t last = layout.chunk_cols(layout.n_chunks() - 1);
  if (last != layout.c2) p.tail = make_basis(last);
  return p;
}

void dct_tile(const float* x, int64_t h, int64_t w, const DctBasis& bh, const DctBasis& bw, float* y) {
  float tmp[kMaxChunk * kMaxChunk];  // [h, w] = x Dw^T
  const float* dwt = bw.dt.data();
  const float* dh = bh.d.data();
  for (int64_t i = 0; i < h; ++i) {
    float* t = tmp + i * w;
    std::fill(t, t + w, 0.0f);
    for (int64_t j = 0; j < w; ++j) {
      const float a = x[i * w + j];
      const float* row = dwt + j * w;
#pragma omp simd
      for (int64_t v = 0; v < w; ++v) t[v] += a * row[v];
    }
  }
  for (int64_t u = 0; u < h; ++u) {  // y = Dh tmp
    float* yu = y + u * w;
    std::fill(yu, yu + w, 0.0f);
    for (int64_t i = 0; i < h; ++i) {
      const float a = dh[u * h + i];
      const float* t = tmp + i * w;
#pragma omp simd
      for (int64_t v = 0; v < w; ++v) yu[v] += a * t[v];
    }
  }
}

void idct_tile(const float* y, int64_t h, int64_t w, const DctBasis& bh, const DctBasis& bw, float* x) {
  float tmp[kMaxChunk * kMaxChunk];  // [h, w] = y Dw
  bool row_used[kMaxChunk * kMaxChunk];  // [h] tmp row u is nonzero
  const float* dw = bw.d.data();
  const float* dht = bh.dt.data();
  // Zero coefficients are skipped: DeMo inverts tiles that keep only k of h w coefficients.
  for (int64_t u = 0; u < h; ++u) {
    float* t = tmp + u * w;
    std::fill(t, t + w, 0.0f);
    row_used[u] = false;
    for (int64_t v = 0; v < w; ++v) {
      const float a = y[u * w + v];
      if (a == 0.0f) continue;
      row_used[u] = true;
      const float* row = dw + v * w;
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) t[j] += a * row[j];
    }
  }
  for (int64_t i = 0; i < h; ++i) {  // x = Dh^T tmp
    float* xi = x + i * w;
    std::fill(xi, xi + w, 0.0f);
    for (int64_t u = 0; u < h; ++u) {
      if (!row_used[u]) continue;
      const float a = dht[i * h + u];
      const float* t = tmp + u * w;
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) xi[j] += a * t[j];
    }
  }
}

void dct_tiles(const float* x, const ChunkLayout& layout, const DctPlan& plan, float* y) {
  check_plan(plan, layout);
  const int64_t nc = layout.n_chunks();
#pragma omp parallel for schedule(static) if (layout.numel() >= kParallelMin)
  for (int64_t c = 0; c < nc; ++c) {
    float in[kMaxChunk * kMaxChunk], out[kMaxChunk * kMaxChunk];
    const int64_t w = layout.chunk_cols(c);
    gather_chunk(x, layout, c, in);
    dct_tile(in, layout.c1, w, plan.rows, cols_basis(plan, layout, c), out);
    scatter_chunk(out, layout, c, y);
  }
}

void idct_tiles(const float* y, const ChunkLayout& layout, const DctPlan& plan, float* x) {
  check_plan(plan, layout);
  const int64_t nc = layout.n_chunks();
#pragma omp parallel for schedule(static) if (layout.numel() >= kParallelMin)
  for (int64_t c = 0; c < nc; ++c) {
    float in[kMaxChunk * kMaxChunk], out[kMaxChunk * kMaxChunk];
    const int64_t w = layout.chunk_cols(c);
    gather_chunk(y, layout, c, in);
    idct_tile(in, layout.c1, w, plan.rows, cols_basis(plan, layout, c), out);
    scatter_chunk(out, layout, c, x);
  }
}

void demo_compress(float* delta, const float* g, const ChunkLayout& layout, const DctPlan& plan,
                   const DemoOptions& opt, SparseTensor& out) {
  sparse_reset(out, layout, opt.top_k);
  check_plan(plan, layout);
  const int64_t nc = layout.n_chunks(), top_k = opt.top_k;
  const float decay = opt.decay, lr = opt.lr;
#pragma omp parallel for schedule(static) if (layout.numel() >= kParallelMin)
  for (int64_t c = 0; c < nc; ++c) {
    float buf[kMaxChunk * kMaxChunk], coef[kMaxChunk * kMaxChunk];
    const int64_t w = layout.chunk_cols(c), len = layout.chunk_len(c);
    const DctBasis& bw = cols_basis(plan, layout, c);
    // delta <- decay delta + lr g, gathered into buf
    for (int64_t r = 0; r < layout.c1; ++r) {
      const int64_t base = layout.row_start(c, r);
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) buf[r * w + j] = decay * delta[base + j] + lr * g[base + j];
    }
    dct_tile(buf, layout.c1, w, plan.rows, bw, coef);
    const int64_t k = chunk_k(len, top_k), off = sparse_offset(layout, top_k, c);
    uint16_t* idx = out.idx.data() + off;
    topk_abs(coef, len, k, idx);
    // the kept-only tile, its inverse (into coef), and delta <- delta - IDCT(kept)
    float kept[kMaxChunk * kMaxChunk];
    std::fill(kept, kept + len, 0.0f);
    for (int64_t t = 0; t < k; ++t) {
      out.values[off + t] = coef[idx[t]];
      kept[idx[t]] = coef[idx[t]];
    }
    idct_tile(kept, layout.c1, w, plan.rows, bw, coef);
    for (int64_t r = 0; r < layout.c1; ++r) {
      const int64_t base = layout.row_start(c, r);
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) delta[base + j] = buf[r * w + j] - coef[r * w + j];
    }
  }
}

}  // namespace frugal::compress
