#include "compress/sparse.hpp"

#include <algorithm>

namespace frugal::compress {

void sparse_reset(SparseTensor& s, const ChunkLayout& layout, int64_t top_k) {
  check_layout(layout);
  FRUGAL_CHECK(top_k >= 1 && top_k <= kTopKReference, "top_k must be in [1, 4096], got ", top_k);
  const int64_t nnz = sparse_nnz(layout, top_k);
  s.layout = layout;
  s.top_k = top_k;
  s.idx.resize(nnz);
  s.values.resize(nnz);
  s.quantized = false;
  s.codes.clear();
  s.q = Quant2{};
}

void quantize_values(SparseTensor& s) {
  s.codes.resize(s.values.size());
  // deq may alias the input: quantize2 writes it only after its last read of the values.
  s.q = quantize2(s.values.data(), int64_t(s.values.size()), s.codes.data(), s.values.data());
  s.quantized = true;
}

void sparse_validate(const SparseTensor& s) {
  check_layout(s.layout);
  FRUGAL_CHECK(s.top_k >= 1 && s.top_k <= kTopKReference, "sparse tensor: top_k ", s.top_k, " not in [1, 4096]");
  const size_t nnz = size_t(sparse_nnz(s.layout, s.top_k));
  FRUGAL_CHECK(s.idx.size() == nnz && s.values.size() == nnz, "sparse tensor: expected ", nnz,
               " entries, have ", s.idx.size(), " indices and ", s.values.size(), " values");
  if (s.quantized) {
    FRUGAL_CHECK(s.codes.size() == nnz, "sparse tensor: expected ", nnz, " codes, have ", s.codes.size());
    for (uint8_t code : s.codes) FRUGAL_CHECK(code < 4, "sparse tensor: 2-bit code ", int(code), " > 3");
  }
  const int64_t nc = s.layout.n_chunks();
  for (int64_t c = 0; c < nc; ++c) {
    const int64_t len = s.layout.chunk_len(c), k = chunk_k(len, s.top_k), off = sparse_offset(s.layout, s.top_k, c);
    for (int64_t t = 0; t < k; ++t) {
      const int64_t j = s.idx[off + t];
      FRUGAL_CHECK(j < len, "sparse tensor: index ", j, " out of range in chunk ", c, " of length ", len);
      FRUGAL_CHECK(t == 0 || j > s.idx[off + t - 1], "sparse tensor: indices not strictly ascending in chunk ", c);
    }
  }
}

void densify(const SparseTensor& s, float* out) {
  const ChunkLayout& l = s.layout;
  check_layout(l);
  FRUGAL_CHECK(s.idx.size() == s.values.size() && int64_t(s.idx.size()) == sparse_nnz(l, s.top_k),
               "densify: malformed sparse tensor (", s.idx.size(), " indices, ", s.values.size(), " values)");
  const int64_t nc = l.n_chunks();
  bool bad = false;
#pragma omp parallel for schedule(static) reduction(|| : bad) if (l.numel() >= kParallelMin)
  for (int64_t c = 0; c < nc; ++c) {
    float buf[kMaxChunk * kMaxChunk];
    const int64_t len = l.chunk_len(c), k = chunk_k(len, s.top_k), off = sparse_offset(l, s.top_k, c);
    std::fill(buf, buf + len, 0.0f);
    for (int64_t t = 0; t < k; ++t) {
      const int64_t j = s.idx[off + t];
      if (j < len) buf[j] = s.values[off + t];
      else bad = true;
    }
    scatter_chunk(buf, l, c, out);
  }
  FRUGAL_CHECK(!bad, "densify: in-chunk index out of range");
}

void aggregate(std::span<const SparseTensor* const> replicas, Aggregation mode, float* out) {
  const int64_t R = int64_t(replicas.size());
  FRUGAL_CHECK(R >= 1 && R <= 65535, "aggregate: need 1..65535 replicas, got ", R);
  const SparseTensor& first = *replicas[0];
  const ChunkLayout& l = first.layout;
  check_layout(l);
  const int64_t top_k = first.top_k, nnz = sparse_nnz(l, top_k);
  for (int64_t r = 0; r < R; ++r) {
    const SparseTensor& s = *replicas[r];
    FRUGAL_CHECK(s.layout == l && s.top_k == top_k, "aggregate: replica ", r,
                 " has a different layout or top_k than replica 0");
    FRUGAL_CHECK(int64_t(s.idx.size()) == nnz && int64_t(s.values.size()) == nnz, "aggregate: replica ", r,
                 " has ", s.idx.size(), " indices / ", s.values.size(), " values, expected ", nnz);
  }
  const int64_t nc = l.n_chunks();
  bool bad = false;
  // One chunk at a time into a local buffer: ranks in order 0..R-1, then one dense write-out. Every
  // output element is written exactly once, and the summation order never depends on threads.
#pragma omp parallel for schedule(static) reduction(|| : bad) if (l.numel() >= kParallelMin)
  for (int64_t c = 0; c < nc; ++c) {
    float sum[kMaxChunk * kMaxChunk];
    uint16_t cnt[kMaxChunk * kMaxChunk];
    const int64_t len = l.chunk_len(c), k = chunk_k(len, top_k), off = sparse_offset(l, top_k, c);
    std::fill(sum, sum + len, 0.0f);
    std::fill(cnt, cnt + len, uint16_t(0));
    for (int64_t r = 0; r < R; ++r) {
      const uint16_t* idx = replicas[r]->idx.data() + off;
      const float* val = replicas[r]->values.data() + off;
      for (int64_t t = 0; t < k; ++t) {
        const int64_t j = idx[t];
        if (j >= len) {
          bad = true;
          continue;
        }
        sum[j] += val[t];
        cnt[j] += 1;
      }
    }
    // Finish only the touched coordinates (R k of them, not the whole chunk); zeroing cnt marks a
    // coordinate done when several replicas selected it.
    const float denom_all = float(R);
    for (int64_t r = 0; r < R; ++r) {
      const uint16_t* idx = replicas[r]->idx.data() + off;
      for (int64_t t = 0; t < k; ++t) {
        const int64_t j = idx[t];
        if (j >= len || cnt[j] == 0) continue;
        sum[j] /= mode == Aggregation::mean_selected ? float(cnt[j]) : denom_all;
        cnt[j] = 0;
      }
    }
    scatter_chunk(sum, l, c, out);
  }
  FRUGAL_CHECK(!bad, "aggregate: in-chunk index out of range");
}

}  // namespace frugal::compress
