#include "compress/chunking.hpp"

#include <algorithm>

namespace frugal::compress {

int64_t largest_divisor_at_most(int64_t n, int64_t cap) {
  FRUGAL_CHECK(n >= 1 && cap >= 1, "largest_divisor_at_most: need n >= 1 and cap >= 1, got n=", n,
               " cap=", cap);
  for (int64_t d = std::min(n, cap); d > 1; --d)
    if (n % d == 0) return d;
  return 1;
}

ChunkLayout matrix_layout(int64_t rows, int64_t cols, int64_t max_chunk) {
  FRUGAL_CHECK(rows >= 1 && cols >= 1, "matrix_layout: empty matrix ", rows, " x ", cols);
  FRUGAL_CHECK(max_chunk >= 1 && max_chunk <= kMaxChunk, "matrix_layout: max_chunk must be in [1, ",
               kMaxChunk, "], got ", max_chunk);
  ChunkLayout l;
  l.rows = rows;
  l.cols = cols;
  l.c1 = largest_divisor_at_most(rows, max_chunk);
  l.c2 = largest_divisor_at_most(cols, max_chunk);
  l.vector = false;
  return l;
}

ChunkLayout vector_layout(int64_t n, int64_t segment) {
  FRUGAL_CHECK(n >= 1, "vector_layout: empty vector");
  FRUGAL_CHECK(segment >= 1 && segment <= kMaxChunk * kMaxChunk,
               "vector_layout: segment must be in [1, 4096], got ", segment);
  ChunkLayout l;
  l.rows = 1;
  l.cols = n;
  l.c1 = 1;
  l.c2 = segment;
  l.vector = true;
  return l;
}

void check_layout(const ChunkLayout& l) {
  FRUGAL_CHECK(l.rows >= 1 && l.cols >= 1 && l.c1 >= 1 && l.c2 >= 1, "chunk layout: non-positive size (",
               l.rows, " x ", l.cols, ", chunk ", l.c1, " x ", l.c2, ")");
  FRUGAL_CHECK(l.c1 * l.c2 <= kMaxChunk * kMaxChunk, "chunk layout: chunk ", l.c1, " x ", l.c2,
               " has more than 4096 elements");
  if (l.vector)
    FRUGAL_CHECK(l.rows == 1 && l.c1 == 1, "chunk layout: a vector must have rows = c1 = 1");
  else
    FRUGAL_CHECK(l.rows % l.c1 == 0 && l.cols % l.c2 == 0, "chunk layout: tile ", l.c1, " x ", l.c2,
                 " does not divide ", l.rows, " x ", l.cols);
}

int64_t chunk_k(int64_t chunk_len, int64_t top_k) {
  FRUGAL_CHECK(top_k >= 1, "top_k must be >= 1, got ", top_k);
  // round(len * top_k / 4096) with halves away from zero, in integers: floor((2 len top_k + 4096) / 8192).
  const int64_t k = (2 * chunk_len * top_k + kTopKReference) / (2 * kTopKReference);
  return std::min(chunk_len, std::max<int64_t>(1, k));
}

int64_t sparse_nnz(const ChunkLayout& layout, int64_t top_k) {
  const int64_t nc = layout.n_chunks();
  return (nc - 1) * chunk_k(layout.full_len(), top_k) + chunk_k(layout.chunk_len(nc - 1), top_k);
}

std::vector<CompressBlock> blocks_for(const ParamLayout& params, int64_t max_chunk) {
  std::vector<CompressBlock> blocks;
  for (const TensorSpec& t : params.tensors) {
    if (t.numel == 0) continue;
    std::vector<int64_t> dims = t.shape;
    if (t.layer_stacked && dims.size() >= 2) dims.erase(dims.begin());
    const size_t nd = dims.size();
    ChunkLayout l;
    if (nd >= 2 && dims[nd - 2] > 1 && dims[nd - 1] > 1) {
      l = matrix_layout(dims[nd - 2], dims[nd - 1], max_chunk);
    } else {
      int64_t n = 1;
      for (int64_t d : dims) n *= d;
      l = vector_layout(n, max_chunk);
    }
    const size_t per = size_t(l.numel());
    for (size_t i = 0; i < t.numel / per; ++i) blocks.push_back({t.offset + i * per, l});
  }
  return blocks;
}

}  // namespace frugal::compress
