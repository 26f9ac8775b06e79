#include "compress/dct.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

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

// ---- The fast transform --------------------------------------------------------------------
// The orthonormal DCT-II of size n (even) splits into halves of size m = n / 2:
//   u_i = x_i + x_{n-1-i},  v_i = x_i - x_{n-1-i}     (i < m)
//   (D_n x)_{2j} = D_m(u)_j / sqrt 2,  (D_n x)_{2j+1} = S_m(v)_j / sqrt 2
// with S_m the orthonormal (symmetric) DCT-IV, S[j][i] = sqrt(2/m) cos(pi (2i + 1)(2j + 1) / (4m)).
// The even half recurses; the odd half is a dense m x m product. The inverse is the transpose:
// u = D_m^T(y_even), v = S_m(y_odd), x_i = (u_i + v_i) / sqrt 2, x_{n-1-i} = (u_i - v_i) / sqrt 2.
// The 1/sqrt 2 of every level is folded into the matrices (DctBasis::s4, base), so a butterfly is a
// plain add / subtract. n = 64: 32^2 + 16^2 + 8^2 + 8^2 = 1408 multiply-adds per transform, not 4096.
//
// Along dimension 0 of a tile (the tile's rows are the elements) every operation is a loop over a
// whole row, so it vectorises over the tile's columns. Along dimension 1 (each row is one transform)
// the dense products vectorise over the outputs of a row and the butterflies over its elements; the
// even / odd outputs are interleaved into place after each level. Both directions are therefore the
// same GEMM kernel with the broadcast operand on the left, and no transpose of the tile is needed.

// One machine vector of floats (GCC / Clang vector extensions): the GEMM kernel keeps R x C of them as
// accumulators, which plain arrays under `omp simd` do not reliably stay in registers as.
#if defined(__AVX512F__)
constexpr int64_t kLanes = 16;
#elif defined(__AVX__)
constexpr int64_t kLanes = 8;
#else
constexpr int64_t kLanes = 4;
#endif
typedef float vf __attribute__((vector_size(kLanes * sizeof(float))));

// Rows of the factors and of the work tiles are padded to a multiple of 16 floats (a multiple of every
// kLanes), so the kernel reads and writes whole vectors; the padding of the factors is zero.
constexpr int64_t kPad = 16;
constexpr int64_t pad(int64_t n) { return (n + kPad - 1) / kPad * kPad; }
constexpr int64_t kTile = kMaxChunk * kMaxChunk;  // a padded tile: h <= 64 rows of pad(w) <= 64
// Sizes up to this (and odd sizes) are dense: a split halves the work of a product that is already
// narrower than a vector along dimension 1.
constexpr int64_t kDenseMax = 8;
// Scratch of the recursion: dimension 1 holds four h x pad(m) blocks per level and the pad(m) of
// the levels of any n <= 64 add up to at most 64 (64: 32 + 16 + 16); dimension 0 needs 2 n pad(w).
constexpr int64_t kScratch = 4 * kMaxChunk * kMaxChunk;

inline vf load(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, const vf& v) { std::memcpy(p, &v, sizeof v); }

// c[i][j] = sum_n a[i][n] b[n][j] for R rows i and C vectors of columns j; row strides in floats.
template <int R, int C>
inline void gemm_block(const float* a, int64_t as, int64_t k, const float* b, int64_t bs, float* c, int64_t cs) {
  vf acc[R][C];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int q = 0; q < C; ++q) acc[r][q] = vf{};
  for (int64_t n = 0; n < k; ++n) {
    vf bv[C];
#pragma GCC unroll 16
    for (int q = 0; q < C; ++q) bv[q] = load(b + n * bs + q * kLanes);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const float s = a[r * as + n];
#pragma GCC unroll 16
      for (int q = 0; q < C; ++q) acc[r][q] += s * bv[q];
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int q = 0; q < C; ++q) store(c + r * cs + q * kLanes, acc[r][q]);
}

// All `rows` rows in blocks of R, the rest in halving blocks.
template <int R, int C>
void gemm_rows(const float* a, int64_t as, int64_t rows, int64_t k, const float* b, int64_t bs, float* c,
               int64_t cs) {
  int64_t i = 0;
  for (; i + R <= rows; i += R) gemm_block<R, C>(a + i * as, as, k, b, bs, c + i * cs, cs);
  if constexpr (R > 1) {
    if (i < rows) gemm_rows<R / 2, C>(a + i * as, as, rows - i, k, b, bs, c + i * cs, cs);
  }
}

// c [rows x cols] = a [rows x k] b [k x cols]; cols is rounded up to whole vectors, so b and c rows
// must have room up to pad(cols) and b's extra columns must be finite (they are zero or padding).
void gemm(const float* a, int64_t as, int64_t rows, int64_t k, const float* b, int64_t bs, int64_t cols,
          float* c, int64_t cs) {
  const int64_t nv = (cols + kLanes - 1) / kLanes;
  int64_t q = 0;
  for (; q + 2 <= nv; q += 2) gemm_rows<4, 2>(a, as, rows, k, b + q * kLanes, bs, c + q * kLanes, cs);
  if (q < nv) gemm_rows<8, 1>(a, as, rows, k, b + q * kLanes, bs, c + q * kLanes, cs);
}

// Dimension 0, forward: the n = b.n >> level rows of x (xs floats apart) are the elements; output row
// k goes to y + k ys. Every row is ws floats wide (the padding columns just ride along).
void fdct0(const float* x, int64_t xs, int64_t ws, const DctBasis& b, int64_t level, const float* s4, float* y,
           int64_t ys, float* scratch) {
  const int64_t n = b.n >> level;
  if (level == b.levels) {
    gemm(b.base.data(), pad(n), n, n, x, xs, ws, y, ys);
    return;
  }
  const int64_t m = n / 2;
  float* u = scratch;       // [m x ws]
  float* v = u + m * ws;    // [m x ws]
  for (int64_t i = 0; i < m; ++i) {
    const float* lo = x + i * xs;
    const float* hi = x + (n - 1 - i) * xs;
    float* ui = u + i * ws;
    float* vi = v + i * ws;
#pragma omp simd
    for (int64_t j = 0; j < ws; ++j) {
      ui[j] = lo[j] + hi[j];
      vi[j] = lo[j] - hi[j];
    }
  }
  gemm(s4, pad(m), m, m, v, ws, ws, y + ys, 2 * ys);  // odd outputs
  fdct0(u, ws, ws, b, level + 1, s4 + m * pad(m), y, 2 * ys, scratch + n * ws);
}

// Dimension 0, inverse: x [n x ws] = D^T y, input row k at y + k ys. x must not overlap y.
void idct0(const float* y, int64_t ys, int64_t ws, const DctBasis& b, int64_t level, const float* s4, float* x,
           float* scratch) {
  const int64_t n = b.n >> level;
  if (level == b.levels) {
    gemm(b.base_t.data(), pad(n), n, n, y, ys, ws, x, ws);
    return;
  }
  const int64_t m = n / 2;
  float* u = scratch;     // [m x ws] inverse of the even inputs
  float* v = u + m * ws;  // [m x ws] DCT-IV of the odd inputs
  gemm(s4, pad(m), m, m, y + ys, 2 * ys, ws, v, ws);
  idct0(y, 2 * ys, ws, b, level + 1, s4 + m * pad(m), u, scratch + n * ws);
  for (int64_t i = 0; i < m; ++i) {
    const float* ui = u + i * ws;
    const float* vi = v + i * ws;
    float* lo = x + i * ws;
    float* hi = x + (n - 1 - i) * ws;
#pragma omp simd
    for (int64_t j = 0; j < ws; ++j) {
      lo[j] = ui[j] + vi[j];
      hi[j] = ui[j] - vi[j];
    }
  }
}

// Dimension 1, forward: each of the h rows of x (stride xs) is one transform of n = b.n >> level
// values; y [h x n] (stride ys, room for pad(n) per row). y must not overlap x.
void fdct1(const float* x, int64_t xs, int64_t h, const DctBasis& b, int64_t level, const float* s4, float* y,
           int64_t ys, float* scratch) {
  const int64_t n = b.n >> level;
  if (level == b.levels) {
    gemm(x, xs, h, n, b.base_t.data(), pad(n), n, y, ys);
    return;
  }
  const int64_t m = n / 2, mp = pad(m);
  float* u = scratch;     // [h x mp] sums
  float* v = u + h * mp;  // [h x mp] differences
  float* e = v + h * mp;  // [h x mp] even outputs
  float* o = e + h * mp;  // [h x mp] odd outputs
  for (int64_t i = 0; i < h; ++i) {
    const float* xi = x + i * xs;
    float* ui = u + i * mp;
    float* vi = v + i * mp;
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) {
      ui[j] = xi[j] + xi[n - 1 - j];
      vi[j] = xi[j] - xi[n - 1 - j];
    }
  }
  gemm(v, mp, h, m, s4, mp, m, o, mp);
  fdct1(u, mp, h, b, level + 1, s4 + m * mp, e, mp, o + h * mp);
  for (int64_t i = 0; i < h; ++i) {
    const float* ei = e + i * mp;
    const float* oi = o + i * mp;
    float* yi = y + i * ys;
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) {
      yi[2 * j] = ei[j];
      yi[2 * j + 1] = oi[j];
    }
  }
}

// Dimension 1, inverse: row i of x (stride xs) = D^T row i of y (stride ys). Writes columns < n of x
// (up to the next whole vector when there is no split). x must not overlap y.
void idct1(const float* y, int64_t ys, int64_t h, const DctBasis& b, int64_t level, const float* s4, float* x,
           int64_t xs, float* scratch) {
  const int64_t n = b.n >> level;
  if (level == b.levels) {
    gemm(y, ys, h, n, b.base.data(), pad(n), n, x, xs);
    return;
  }
  const int64_t m = n / 2, mp = pad(m);
  float* e = scratch;     // [h x mp] even inputs
  float* o = e + h * mp;  // [h x mp] odd inputs
  float* u = o + h * mp;  // [h x mp] inverse of the even inputs
  float* v = u + h * mp;  // [h x mp] DCT-IV of the odd inputs
  for (int64_t i = 0; i < h; ++i) {
    const float* yi = y + i * ys;
    float* ei = e + i * mp;
    float* oi = o + i * mp;
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) {
      ei[j] = yi[2 * j];
      oi[j] = yi[2 * j + 1];
    }
  }
  gemm(o, mp, h, m, s4, mp, m, v, mp);
  idct1(e, mp, h, b, level + 1, s4 + m * mp, u, mp, v + h * mp);
  for (int64_t i = 0; i < h; ++i) {
    const float* ui = u + i * mp;
    const float* vi = v + i * mp;
    float* xi = x + i * xs;
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) {
      xi[j] = ui[j] + vi[j];
      xi[n - 1 - j] = ui[j] - vi[j];
    }
  }
}

// A whole h x w tile, its rows xs floats apart, into padded buffers (row stride ws = pad(w)). Forward:
// y = Dh x Dw^T, x zero in the padding columns (xs >= ws); y meaningful in columns < w. t is work space
// [h x ws].
void fdct_padded(const float* x, int64_t xs, int64_t h, int64_t ws, const DctBasis& bh, const DctBasis& bw, float* y,
                 float* t, float* scratch) {
  const float* rows = x;
  int64_t rs = xs;
  if (h > 1) {  // D_1 = [1]
    fdct0(x, xs, ws, bh, 0, bh.s4.data(), t, ws, scratch);
    rows = t, rs = ws;
  }
  fdct1(rows, rs, h, bw, 0, bw.s4.data(), y, ws, scratch);
}

// Inverse of a padded tile: x = Dh^T y Dw, meaningful in columns < w.
void idct_padded(const float* y, int64_t h, int64_t w, int64_t ws, const DctBasis& bh, const DctBasis& bw,
                 float* x, float* t, float* scratch) {
  if (h == 1) {
    idct1(y, ws, 1, bw, 0, bw.s4.data(), x, ws, scratch);
    return;
  }
  // dimension 0 works on whole padded rows: keep t's padding finite
  for (int64_t r = 0; r < h; ++r) std::fill(t + r * ws + w, t + (r + 1) * ws, 0.0f);
  idct1(y, ws, h, bw, 0, bw.s4.data(), t, ws, scratch);
  idct0(t, ws, ws, bh, 0, bh.s4.data(), x, scratch);
}

// Dense D plus the fast factors (see DctBasis), computed in double.
DctBasis make_basis(int64_t n) {
  FRUGAL_CHECK(n >= 1 && n <= kMaxChunk, "DCT: tile side ", n, " not in [1, ", kMaxChunk, "]");
  DctBasis b;
  b.n = n;
  b.d = dct_matrix(n);
  b.dt.resize(b.d.size());
  for (int64_t k = 0; k < n; ++k)
    for (int64_t i = 0; i < n; ++i) b.dt[size_t(i * n + k)] = b.d[size_t(k * n + i)];
  const double pi = 3.14159265358979323846;
  int64_t size = n;
  double scale = 1.0;  // 2^(-l/2) after l splits
  int64_t scratch1 = 0;
  while (size % 2 == 0 && size > kDenseMax) {
    const int64_t m = size / 2, mp = pad(m);
    scale *= std::sqrt(0.5);
    const size_t at = b.s4.size();
    b.s4.resize(at + size_t(m * mp), 0.0f);
    for (int64_t j = 0; j < m; ++j)
      for (int64_t i = 0; i < m; ++i)
        b.s4[at + size_t(j * mp + i)] = float(scale * std::sqrt(2.0 / double(m)) *
                                              std::cos(pi * double(2 * i + 1) * double(2 * j + 1) / double(4 * m)));
    scratch1 += 4 * kMaxChunk * mp;
    size = m;
    ++b.levels;
  }
  FRUGAL_CHECK(scratch1 <= kScratch, "DCT of size ", n, " needs more scratch than a tile");
  b.n0 = size;
  const int64_t p0 = pad(size);
  b.base.assign(size_t(size * p0), 0.0f);
  b.base_t.assign(size_t(size * p0), 0.0f);
  for (int64_t k = 0; k < size; ++k) {
    const double a = k == 0 ? std::sqrt(1.0 / double(size)) : std::sqrt(2.0 / double(size));
    for (int64_t i = 0; i < size; ++i) {
      const float v = float(scale * a * std::cos(pi * double(2 * i + 1) * double(k) / double(2 * size)));
      b.base[size_t(k * p0 + i)] = v;
      b.base_t[size_t(i * p0 + k)] = v;
    }
  }
  return b;
}
bool basis_fits(const DctBasis& b, int64_t n) {
  if (b.n != n) return false;
  if (n == 0) return b.d.empty();
  size_t s4 = 0;
  for (int64_t l = 0; l < b.levels; ++l) s4 += size_t((n >> (l + 1)) * pad(n >> (l + 1)));
  return n <= kMaxChunk && b.d.size() == size_t(n * n) && b.levels >= 0 && b.n0 == (n >> b.levels) &&
         b.s4.size() == s4 && b.base.size() == size_t(b.n0 * pad(b.n0)) && b.base_t.size() == b.base.size();
}
// The column basis of chunk c (the last vector segment may be shorter).
const DctBasis& cols_basis(const DctPlan& plan, const ChunkLayout& l, int64_t c) {
  return l.chunk_cols(c) == plan.cols.n ? plan.cols : plan.tail;
}
// buf [c1 x pad(w)] <- chunk c of x, zero padding; and back.
// (Element loops, not std::copy: a libc memmove call per 256-byte row cost more than the copy.)
void gather_padded(const float* x, const ChunkLayout& l, int64_t c, float* buf) {
  const int64_t w = l.chunk_cols(c), ws = pad(w);
  for (int64_t r = 0; r < l.c1; ++r) {
    const float* src = x + l.row_start(c, r);
    float* dst = buf + r * ws;
#pragma omp simd
    for (int64_t j = 0; j < ws; ++j) dst[j] = j < w ? src[j] : 0.0f;
  }
}
void scatter_padded(const float* buf, const ChunkLayout& l, int64_t c, float* x) {
  const int64_t w = l.chunk_cols(c), ws = pad(w);
  for (int64_t r = 0; r < l.c1; ++r) {
    const float* src = buf + r * ws;
    float* dst = x + l.row_start(c, r);
#pragma omp simd
    for (int64_t j = 0; j < w; ++j) dst[j] = src[j];
  }
}
}  // namespace

// The plan must be the one make_dct_plan(layout) builds: a mismatched basis would index out of it.
void check_plan(const DctPlan& plan, const ChunkLayout& layout) {
  check_layout(layout);
  const int64_t last = layout.chunk_cols(layout.n_chunks() - 1);
  const bool ok = basis_fits(plan.rows, layout.c1) && basis_fits(plan.cols, layout.c2) &&
                  basis_fits(plan.tail, last == layout.c2 ? plan.tail.n : last) &&
                  (last == layout.c2 || plan.tail.n == last);
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
  FRUGAL_CHECK(bh.n == h && bw.n == w && h >= 1 && w >= 1 && h <= kMaxChunk && w <= kMaxChunk, "dct_tile: ", h, " x ", w,
               " tile with ", bh.n, " x ", bw.n, " bases");
  float in[kTile], out[kTile], t[kTile], scratch[kScratch];
  const int64_t ws = pad(w);
  for (int64_t r = 0; r < h; ++r) {
    std::copy(x + r * w, x + (r + 1) * w, in + r * ws);
    std::fill(in + r * ws + w, in + (r + 1) * ws, 0.0f);
  }
  fdct_padded(in, ws, h, ws, bh, bw, out, t, scratch);
  for (int64_t r = 0; r < h; ++r) std::copy(out + r * ws, out + r * ws + w, y + r * w);
}

void idct_tile(const float* y, int64_t h, int64_t w, const DctBasis& bh, const DctBasis& bw, float* x) {
  FRUGAL_CHECK(bh.n == h && bw.n == w && h >= 1 && w >= 1 && h <= kMaxChunk && w <= kMaxChunk, "idct_tile: ", h, " x ", w,
               " tile with ", bh.n, " x ", bw.n, " bases");
  float in[kTile], out[kTile], t[kTile], scratch[kScratch];
  const int64_t ws = pad(w);
  for (int64_t r = 0; r < h; ++r) {
    std::copy(y + r * w, y + (r + 1) * w, in + r * ws);
    std::fill(in + r * ws + w, in + (r + 1) * ws, 0.0f);
  }
  idct_padded(in, h, w, ws, bh, bw, out, t, scratch);
  for (int64_t r = 0; r < h; ++r) std::copy(out + r * ws, out + r * ws + w, x + r * w);
}

void dct_tiles(const float* x, const ChunkLayout& layout, const DctPlan& plan, float* y) {
  check_plan(plan, layout);
  const int64_t nc = layout.n_chunks();
#pragma omp parallel for schedule(static) if (layout.numel() >= kParallelMin)
  for (int64_t c = 0; c < nc; ++c) {
    float in[kTile], out[kTile], t[kTile], scratch[kScratch];
    gather_padded(x, layout, c, in);
    const int64_t ws = pad(layout.chunk_cols(c));
    fdct_padded(in, ws, layout.c1, ws, plan.rows, cols_basis(plan, layout, c), out, t, scratch);
    scatter_padded(out, layout, c, y);
  }
}

void idct_tiles(const float* y, const ChunkLayout& layout, const DctPlan& plan, float* x) {
  check_plan(plan, layout);
  const int64_t nc = layout.n_chunks();
#pragma omp parallel for schedule(static) if (layout.numel() >= kParallelMin)
  for (int64_t c = 0; c < nc; ++c) {
    float in[kTile], out[kTile], t[kTile], scratch[kScratch];
    const int64_t w = layout.chunk_cols(c);
    gather_padded(y, layout, c, in);
    idct_padded(in, layout.c1, w, pad(w), plan.rows, cols_basis(plan, layout, c), out, t, scratch);
    scatter_padded(out, layout, c, x);
  }
}

void demo_compress(float* delta_dct, const float* g, const ChunkLayout& layout, const DctPlan& plan,
                   const DemoOptions& opt, SparseTensor& out) {
  sparse_reset(out, layout, opt.top_k);
  check_plan(plan, layout);
  const int64_t nc = layout.n_chunks(), top_k = opt.top_k, h = layout.c1;
  const float decay = opt.decay, lr = opt.lr;
#pragma omp parallel for schedule(static) if (layout.numel() >= kParallelMin)
  for (int64_t c = 0; c < nc; ++c) {
    float buf[kTile], coef[kTile], t[kTile], scratch[kScratch];  // [h x ws] padded tiles
    const int64_t w = layout.chunk_cols(c), ws = pad(w), len = layout.chunk_len(c);
    // The next tile's rows lie a tensor row apart, a pattern no hardware prefetcher follows: ask
    // for them now, so they arrive while this tile's transform runs.
    if (c + 1 < nc)
      for (int64_t r = 0; r < h; ++r) {
        const int64_t at = layout.row_start(c + 1, r);
        for (int64_t j = 0; j < layout.chunk_cols(c + 1); j += 16) {
          __builtin_prefetch(g + at + j, 0);
          __builtin_prefetch(delta_dct + at + j, 1);
        }
      }
    // G = DCT(g) of the tile, read in place when its rows are whole vectors (no padding to add)
    const float* src = g + layout.row_start(c, 0);
    int64_t src_stride = layout.cols;
    if (w != ws) {
      gather_padded(g, layout, c, buf);
      src = buf, src_stride = ws;
    }
    fdct_padded(src, src_stride, h, ws, plan.rows, cols_basis(plan, layout, c), coef, t, scratch);
    // delta_dct <- decay delta_dct + lr G, in place
    float* tile = delta_dct + layout.row_start(c, 0);  // h rows of w, a tensor row apart
    for (int64_t r = 0; r < h; ++r) {
      float* dr = tile + r * layout.cols;
      const float* cr = coef + r * ws;
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) dr[j] = decay * dr[j] + lr * cr[j];
    }
    // keep the top-k; what is sent leaves the residual exactly
    const int64_t k = chunk_k(len, top_k), off = sparse_offset(layout, top_k, c);
    uint16_t* idx = out.idx.data() + off;
    float* val = out.values.data() + off;
    topk_abs_tile(tile, h, w, layout.cols, k, idx);
    for (int64_t i = 0; i < k; ++i) {
      float& x = tile[(idx[i] / w) * layout.cols + idx[i] % w];
      val[i] = x;
      x = 0.0f;
    }
  }
}

}  // namespace frugal::compress
