#include "compress/error_feedback.hpp"

#include <algorithm>
#include <vector>

#include "compress/topk.hpp"

namespace frugal::compress {

namespace {
// A band: chunks [first, first + count) whose elements fill one contiguous run of memory - a tile
// row of a matrix (c1 full rows of the tensor), or 64 consecutive segments of a vector.
struct Bands {
  int64_t n = 0;         // number of bands
  int64_t per_band = 0;  // chunks per band (the last vector band may have fewer)
};
Bands bands_of(const ChunkLayout& l) {
  const int64_t per = l.vector ? 64 : l.tiles_x();
  return {(l.n_chunks() + per - 1) / per, per};
}
}  // namespace

void ef_compress(float* e, const float* g, const ChunkLayout& layout, const EfOptions& opt, SparseTensor& out) {
  sparse_reset(out, layout, opt.top_k);
  const int64_t nc = layout.n_chunks(), top_k = opt.top_k;
  const float beta = opt.beta;
  const Bands bands = bands_of(layout);
  auto band_memory = [&](int64_t b, int64_t& begin, int64_t& end) {
    const int64_t c0 = b * bands.per_band, c1 = std::min(nc, c0 + bands.per_band) - 1;
    begin = layout.row_start(c0, 0);
    end = layout.row_start(c1, layout.c1 - 1) + layout.chunk_cols(c1);
  };

  // Pass 1, per band: the EF update streamed over the band's memory (written back to e), then the
  // top-k of each chunk, read from the band while it is still in cache. Walking chunk by chunk
  // instead would touch c1 rows a tensor-row apart per chunk, which no prefetcher follows.
#pragma omp parallel for schedule(static) if (layout.numel() >= kParallelMin)
  for (int64_t b = 0; b < bands.n; ++b) {
    int64_t begin, end;
    band_memory(b, begin, end);
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) e[i] = beta * e[i] + g[i];
    for (int64_t c = b * bands.per_band; c < std::min(nc, (b + 1) * bands.per_band); ++c) {
      const int64_t w = layout.chunk_cols(c), k = chunk_k(layout.chunk_len(c), top_k);
      const int64_t off = sparse_offset(layout, top_k, c);
      const float* tile = e + layout.row_start(c, 0);  // c1 rows of w, a tensor row apart
      topk_abs_tile(tile, layout.c1, w, layout.cols, k, out.idx.data() + off);
      for (int64_t t = 0; t < k; ++t) {
        const int64_t j = out.idx[off + t];
        out.values[off + t] = tile[(j / w) * layout.cols + j % w];
      }
    }
  }

  // Pass 2: one quantiser over all kept values of the tensor (values become L[code] + mu).
  if (opt.quantize) quantize_values(out);

  // Pass 3: e <- e - sent. Without quantisation the kept entries become exactly 0. Per band, in
  // memory order (tile row by tile row across the band's chunks: each chunk's indices ascend, so a
  // cursor per chunk walks them), so the scattered updates still stream through the band.
#pragma omp parallel if (layout.numel() >= kParallelMin)
  {
    std::vector<int64_t> cursor(size_t(bands.per_band));
#pragma omp for schedule(static)
    for (int64_t b = 0; b < bands.n; ++b) {
      const int64_t c0 = b * bands.per_band, cn = std::min(nc, c0 + bands.per_band) - c0;
      for (int64_t i = 0; i < cn; ++i) cursor[size_t(i)] = 0;
      for (int64_t r = 0; r < layout.c1; ++r) {
        for (int64_t i = 0; i < cn; ++i) {
          const int64_t c = c0 + i, w = layout.chunk_cols(c), off = sparse_offset(layout, top_k, c);
          const int64_t k = chunk_k(layout.chunk_len(c), top_k), row_end = (r + 1) * w;
          float* er = e + layout.row_start(c, r) - r * w;  // er[j] = element j of the chunk, row r
          int64_t& t = cursor[size_t(i)];
          for (; t < k && out.idx[off + t] < row_end; ++t) er[out.idx[off + t]] -= out.values[off + t];
        }
      }
    }
  }
}

}  // namespace frugal::compress
