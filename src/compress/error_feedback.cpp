#include "compress/error_feedback.hpp"

#include "compress/topk.hpp"

namespace frugal::compress {

void ef_compress(float* e, const float* g, const ChunkLayout& layout, const EfOptions& opt, SparseTensor& out) {
  sparse_reset(out, layout, opt.top_k);
  const int64_t nc = layout.n_chunks(), top_k = opt.top_k;
  const float beta = opt.beta;

  // Pass 1, per chunk: the EF update (written back to e) and the top-k of the updated chunk.
#pragma omp parallel for schedule(static) if (layout.numel() >= kParallelMin)
  for (int64_t c = 0; c < nc; ++c) {
    float buf[kMaxChunk * kMaxChunk];  // [c1 * w] the updated chunk, tile rows one after another
    const int64_t w = layout.chunk_cols(c), len = layout.chunk_len(c);
    for (int64_t r = 0; r < layout.c1; ++r) {
      const int64_t base = layout.row_start(c, r);
      float* er = e + base;
      const float* gr = g + base;
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) {
        er[j] = beta * er[j] + gr[j];
        buf[r * w + j] = er[j];
      }
    }
    const int64_t k = chunk_k(len, top_k), off = sparse_offset(layout, top_k, c);
    topk_abs(buf, len, k, out.idx.data() + off);
    for (int64_t t = 0; t < k; ++t) out.values[off + t] = buf[out.idx[off + t]];
  }

  // Pass 2: one quantiser over all kept values of the tensor (values become L[code] + mu).
  if (opt.quantize) quantize_values(out);

  // Pass 3: e <- e - sent. Without quantisation the kept entries become exactly 0.
#pragma omp parallel for schedule(static) if (layout.numel() >= kParallelMin)
  for (int64_t c = 0; c < nc; ++c) {
    const int64_t k = chunk_k(layout.chunk_len(c), top_k), off = sparse_offset(layout, top_k, c);
    for (int64_t t = 0; t < k; ++t) e[layout.element(c, out.idx[off + t])] -= out.values[off + t];
  }
}

}  // namespace frugal::compress
