#pragma once
// The sparse form of one tensor as it travels between replicas, and the aggregation of R of them.
//
// Entries are stored chunk after chunk (chunk numbering: compress/chunking.hpp); chunk c owns the
// entries [sparse_offset(c), sparse_offset(c) + chunk_k(len(c), top_k)), with in-chunk indices
// strictly ascending. `values` always holds what the receiver will see: for a quantised tensor the
// dequantised values L[code] + mu, which is also what error feedback subtracts, so sender and
// receivers agree bit for bit.
#include <cstdint>
#include <span>
#include <vector>

#include "compress/chunking.hpp"
#include "compress/quantize.hpp"

namespace frugal::compress {

struct SparseTensor {
  ChunkLayout layout;
  int64_t top_k = 0;             // per 4096 elements; chunk c keeps chunk_k(chunk_len(c), top_k)
  std::vector<uint16_t> idx;     // [nnz] in-chunk indices, ascending within each chunk
  std::vector<float> values;     // [nnz] values as received (dequantised when quantised)
  bool quantized = false;        // codes and q are meaningful
  std::vector<uint8_t> codes;    // [nnz] 2-bit codes 0..3, one per byte here (packed on the wire)
  Quant2 q;                      // per-tensor mean and the 4 levels
};

// Resize idx/values for (layout, top_k) and clear the quantisation fields.
void sparse_reset(SparseTensor& s, const ChunkLayout& layout, int64_t top_k);

// Quantise s.values in place with the 2-bit quantiser (compress/quantize.hpp): fills codes and q,
// and replaces values by their dequantised form.
void quantize_values(SparseTensor& s);

// Throws frugal::Error if s is not well formed: array sizes match (layout, top_k), indices are in
// range and strictly ascending inside every chunk, codes are 0..3.
void sparse_validate(const SparseTensor& s);

// out[numel] <- the dense tensor: values at their positions, 0 elsewhere.
void densify(const SparseTensor& s, float* out);

enum class Aggregation : uint8_t {
  mean_selected,  // each coordinate: mean over the replicas that selected it (reference behaviour)
  mean_all,       // (1/R) * sum over replicas, unselected counting as 0
};

// out[numel] <- aggregate of the replicas' sparse tensors (given in rank order 0..R-1; all with the
// same layout and top_k). Coordinates nobody selected are 0. Sums run in rank order, chunk by chunk,
// in float, so the result is bit-identical on every replica and for any OpenMP thread count.
void aggregate(std::span<const SparseTensor* const> replicas, Aggregation mode, float* out);

}  // namespace frugal::compress
