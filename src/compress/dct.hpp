#pragma once
// DCT-II on chunk tiles for DeMo (spec: methods.md section 8), orthonormal, separable:
//   D[k][i] = a_k cos(pi (2i + 1) k / (2n)),  a_0 = sqrt(1/n), a_k = sqrt(2/n)   (n x n, D D^T = I)
//   forward  Y = Dh X Dw^T  for an h x w tile X;   inverse  X = Dh^T Y Dw.
// Tiles are the chunks of compress/chunking.hpp (64 x 64 typical; a vector segment is 1 x len).
// Coefficient (u, v) of a tile is stored where element (u, v) of the tile sits, so a DCT-domain
// tensor has the same layout as the tensor itself and the sparse machinery (top-k per chunk, wire
// format, aggregation) applies unchanged.
//
// DeMo per step, per tensor (methods.md section 8):
//   delta <- decay delta + lr g;  C = DCT(delta) per tile;  keep the top-k |C| per tile (fp32);
//   delta <- delta - IDCT(kept).
// demo_compress keeps the residual in the DCT domain instead, delta_dct = DCT(delta) per tile. The
// tile DCT is linear and orthonormal, so the same step reads
//   delta_dct <- decay delta_dct + lr DCT(g);  keep the top-k |delta_dct| per tile;  zero them,
// the same selection and values up to fp32 rounding, for one forward transform per step instead
// of a forward and an inverse (and the sent coefficients leave the residual exactly).
// The caller all-gathers the kept coefficients, aggregates them (compress/sparse.hpp), applies
// idct_tiles and then p <- p - lr * sign(.) (or whatever the method says).
#include <cstdint>
#include <vector>

#include "compress/chunking.hpp"
#include "compress/sparse.hpp"

namespace frugal::compress {

// The n x n orthonormal DCT-II matrix, row-major: d[k * n + i]. Computed in double, stored fp32.
std::vector<float> dct_matrix(int64_t n);

// Bases for every tile shape of a layout: h x w tiles, plus the shorter last vector segment.
// Besides the dense D, a basis holds the factors of the fast transform dct_tile uses (dct.cpp):
// `levels` even/odd splits n -> n/2 -> ... -> n0 (while the size is even and > 8), each with a dense
// DCT-IV of half the size, then a dense D of size n0. All in double, stored fp32, with the
// normalisation folded in; rows are padded with zeros to a multiple of 16 floats, pad(m), so the
// SIMD kernels may read and write whole vectors.
struct DctBasis {
  int64_t n = 0;
  std::vector<float> d;   // [n * n] D
  std::vector<float> dt;  // [n * n] D^T
  int64_t levels = 0;     // even/odd splits
  int64_t n0 = 0;         // size left after them: n >> levels
  std::vector<float> s4;  // level l: [m x pad(m)], m = n >> (l + 1), scaled DCT-IV, levels one after another
  std::vector<float> base;    // [n0 x pad(n0)] scaled D of size n0
  std::vector<float> base_t;  // [n0 x pad(n0)] its transpose
};
struct DctPlan {
  DctBasis rows;  // size c1
  DctBasis cols;  // size c2
  DctBasis tail;  // size of the last vector segment when it is shorter (n = 0 otherwise)
};
// Tile sides must be <= 64 (kMaxChunk), as matrix_layout and vector_layout make them by default.
DctPlan make_dct_plan(const ChunkLayout& layout);
// Throws frugal::Error unless plan fits layout (what make_dct_plan(layout) returns).
void check_plan(const DctPlan& plan, const ChunkLayout& layout);

// One h x w tile, contiguous row-major; y = Dh x Dw^T (dct_tile) / x = Dh^T y Dw (idct_tile).
// x and y must not overlap.
void dct_tile(const float* x, int64_t h, int64_t w, const DctBasis& bh, const DctBasis& bw, float* y);
void idct_tile(const float* y, int64_t h, int64_t w, const DctBasis& bh, const DctBasis& bw, float* x);

// Whole tensor, every chunk; in and out [numel] must not overlap. Parallel over chunks.
void dct_tiles(const float* x, const ChunkLayout& layout, const DctPlan& plan, float* y);
void idct_tiles(const float* y, const ChunkLayout& layout, const DctPlan& plan, float* x);

struct DemoOptions {
  float decay = 0.999f;  // momentum decay of the residual buffer delta
  float lr = 1.0f;       // scales g before accumulation
  int64_t top_k = 32;    // per 4096 elements: 32 coefficients of a 64 x 64 tile (proportional otherwise)
};

// One DeMo compression step for one tensor: delta_dct [numel] is the residual in the DCT domain
// (coefficient (u, v) of a tile where element (u, v) sits; zero at the start), g [numel] the
// gradient; out gets the kept DCT coefficients (fp32, not quantised).
void demo_compress(float* delta_dct, const float* g, const ChunkLayout& layout, const DctPlan& plan,
                   const DemoOptions& opt, SparseTensor& out);

}  // namespace frugal::compress
