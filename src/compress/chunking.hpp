#pragma once
// Chunk geometry for SparseLoCo and DeMo (spec: methods.md sections 7 and 8).
//
// A matrix (rows x cols, row-major, rows = out features) is tiled into c1 x c2 chunks where
// c1 = largest divisor of rows <= 64 and c2 = largest divisor of cols <= 64, so the tiles cover the
// matrix exactly (50304 x 768 -> 48 x 64 tiles; 3 x 768 -> 3 x 64). A vector is cut into segments
// of 64 elements; when 64 does not divide its length the LAST segment is shorter (a 100-element
// vector has segments of 64 and 36). Every chunk has at most 64 * 64 = 4096 elements, so an in-chunk
// index always fits in 12 bits.
//
// Chunks are numbered row-major over the tile grid; inside a chunk, element j is tile row j / c2,
// tile column j % c2. The same numbering is used for DCT coefficients (coefficient (u, v) of a tile
// sits where element (u, v) would), so top-k, wire format and aggregation work on either domain.
//
// Stacked per-layer weights, e.g. (L, 3C, C), are L separate matrices: blocks_for() splits a
// parameter layout into the blocks a compressor sees.
#include <cstdint>
#include <vector>

#include "core/params.hpp"

namespace frugal::compress {

constexpr int64_t kMaxChunk = 64;            // target chunk side (and vector segment length)
constexpr int64_t kTopKReference = 4096;     // top_k is "per 4096 elements" (one 64 x 64 tile)
// OpenMP loops over fewer elements than this stay on one thread: starting a parallel region costs
// more than the work (results never depend on the thread count either way).
constexpr int64_t kParallelMin = int64_t(1) << 15;

struct ChunkLayout {
  int64_t rows = 1;     // tensor shape; a vector has rows = 1, cols = n
  int64_t cols = 0;
  int64_t c1 = 1;       // chunk rows (1 for a vector)
  int64_t c2 = 0;       // chunk cols (segment length for a vector)
  bool vector = false;  // 1-D: segments of c2, the last one possibly shorter

  int64_t numel() const { return rows * cols; }
  int64_t tiles_x() const { return vector ? 0 : cols / c2; }  // tiles per tile-row (matrix only)
  int64_t n_chunks() const { return vector ? (cols + c2 - 1) / c2 : (rows / c1) * (cols / c2); }
  int64_t full_len() const { return c1 * c2; }
  int64_t chunk_len(int64_t c) const {
    return (vector && c == n_chunks() - 1) ? cols - c * c2 : c1 * c2;
  }
  // Flat offset (in the row-major tensor) of element (r, j) of chunk c: tile row r in [0, c1),
  // column j in [0, c2). Consecutive j are contiguous in memory: chunks are c1 runs of c2 floats.
  int64_t row_start(int64_t c, int64_t r) const {
    if (vector) return c * c2;
    const int64_t tx = tiles_x(), ty = c / tx, x = c % tx;
    return (ty * c1 + r) * cols + x * c2;
  }
  // Flat offset of in-chunk element j (row-major inside the tile).
  int64_t element(int64_t c, int64_t j) const { return row_start(c, j / c2) + j % c2; }
  // Chunk c is c1 runs of chunk_cols(c) contiguous floats (the last vector segment is 1 x len).
  int64_t chunk_cols(int64_t c) const { return vector ? chunk_len(c) : c2; }

  bool operator==(const ChunkLayout&) const = default;
};

// buf[chunk_len(c)] <- chunk c of x (tile rows one after another), and back.
inline void gather_chunk(const float* x, const ChunkLayout& l, int64_t c, float* buf) {
  const int64_t w = l.chunk_cols(c);
  for (int64_t r = 0; r < l.c1; ++r) {
    const float* src = x + l.row_start(c, r);
    for (int64_t j = 0; j < w; ++j) buf[r * w + j] = src[j];
  }
}
inline void scatter_chunk(const float* buf, const ChunkLayout& l, int64_t c, float* x) {
  const int64_t w = l.chunk_cols(c);
  for (int64_t r = 0; r < l.c1; ++r) {
    float* dst = x + l.row_start(c, r);
    for (int64_t j = 0; j < w; ++j) dst[j] = buf[r * w + j];
  }
}

// Largest divisor of n that is <= cap (n >= 1, cap >= 1). 50304 -> 48, 768 -> 64, 3 -> 3, 131 -> 1.
int64_t largest_divisor_at_most(int64_t n, int64_t cap);

// rows x cols matrix tiled by largest divisors <= max_chunk.
ChunkLayout matrix_layout(int64_t rows, int64_t cols, int64_t max_chunk = kMaxChunk);
// n-element vector in segments of `segment`, last one shorter when segment does not divide n.
ChunkLayout vector_layout(int64_t n, int64_t segment = kMaxChunk);

// Throws frugal::Error unless l is a layout the compressors accept (what matrix_layout and
// vector_layout build): positive sizes, tiles dividing a matrix, chunks of at most 4096 elements.
void check_layout(const ChunkLayout& l);

// The k rounding rule: k = max(1, round(len * top_k / 4096)), capped at len. Rounding is half away
// from zero (exact integer arithmetic), e.g. len 64, top_k 32 -> 0.5 -> 1.
int64_t chunk_k(int64_t chunk_len, int64_t top_k);

// Number of kept entries for the whole tensor and where chunk c's entries start in the sparse
// arrays: every chunk but the last vector segment keeps the same k, so chunk c starts at c * k_full.
int64_t sparse_nnz(const ChunkLayout& layout, int64_t top_k);
inline int64_t sparse_offset(const ChunkLayout& layout, int64_t top_k, int64_t c) {
  return c * chunk_k(layout.full_len(), top_k);
}

// One compressible block of the flat parameter buffer: `offset` in floats, `layout` its geometry.
struct CompressBlock {
  size_t offset = 0;
  ChunkLayout layout;
};
// Every tensor of a parameter layout as compression blocks, in layout order. A layer-stacked
// tensor (TensorSpec::layer_stacked: llm.c's (L, C) norms and biases, (L, 3C, C) weights) is split
// into shape[0] tensors of shape[1:] - the shape alone cannot tell an (L, C) stack of biases from a
// matrix. What remains is a matrix over its last two dims when both are > 1 (any further leading
// dims stack more matrices), otherwise a vector of all its elements.
std::vector<CompressBlock> blocks_for(const ParamLayout& params, int64_t max_chunk = kMaxChunk);

}  // namespace frugal::compress
