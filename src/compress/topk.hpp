#pragma once
// Per-chunk top-k by magnitude (spec: methods.md section 7, step 5).
//
// Ties are broken deterministically: at equal |x| the lower in-chunk index wins, so every rank and
// every thread count select the same entries. Magnitudes are compared on the fp32 bit pattern with
// the sign cleared, which orders like |x| (and -0 == +0); a NaN compares above +inf, so a NaN in the
// error buffer is selected and shows up downstream rather than being hidden.
#include <cstdint>

#include "compress/chunking.hpp"
#include "compress/sparse.hpp"

namespace frugal::compress {

// idx[k] <- the in-chunk indices (ascending) of the k largest |x[0..n)|; 1 <= k <= n <= 4096.
void topk_abs(const float* x, int64_t n, int64_t k, uint16_t* idx);
// The same on a rows x w tile read in place: row r is x[r * stride, r * stride + w); in-tile index
// j is row j / w, column j % w (a chunk of chunking.hpp without gathering it first).
void topk_abs_tile(const float* x, int64_t rows, int64_t w, int64_t stride, int64_t k, uint16_t* idx);

// out <- per-chunk top-k of the tensor x[numel] (layout), k = chunk_k(chunk_len, top_k); the values
// are the raw x values (out.quantized = false). Parallel over chunks (OpenMP), deterministic.
void select_topk(const float* x, const ChunkLayout& layout, int64_t top_k, SparseTensor& out);

}  // namespace frugal::compress
