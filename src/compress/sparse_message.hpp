#pragma once
// The bytes one replica puts on the wire per outer step: all its sparse tensors in one message,
// which the method all-gathers (allgatherv) and every replica decodes and aggregates identically.
//
// Layout (little-endian, no alignment):
//   message header (12 bytes): u32 magic "FRGC", u16 version (2), u16 reserved (0), u32 n_tensors
//   per tensor:
//     header (26 bytes): u32 rows, u32 cols, u16 c1, u16 c2, u16 top_k,
//                        u8 flags (bit 0: vector, bit 1: 2-bit quantised values),
//                        u8 index coding (0: packed 12-bit, 1: Golomb-Rice gaps), u8 Rice parameter,
//                        u32 index_bytes, u8 value coding (0: plain, 1: zstd), u32 value_bytes
//     quantised only (20 bytes): f32 mu, f32 levels[4]   (levels relative to mu)
//     index block: index_bytes bytes (compress/index_coding.hpp)
//     value block: value_bytes bytes. Plain: quantised, ceil(nnz / 4) bytes of 2-bit codes, 4 per
//                  byte, first code in the low bits; otherwise nnz fp32 values. zstd (quantised
//                  only): one zstd frame whose content is the plain code block.
// Why zstd for the codes: the 2-bit codes of top-k-selected values are far from uniform (selection
// by magnitude leaves mostly the two outer bins), so an entropy coder takes them to ~1 bit each;
// zstd's Huffman stage does that at memory speed. The index gaps are near-geometric and already
// near their entropy under Rice, so they are not recompressed.
// nnz follows from (rows, cols, c1, c2, vector, top_k), so it is never sent. The decoder checks every
// field and length before it reads or allocates, and rejects trailing bytes.
//
// Byte accounting: encode_message reports the actual bytes (and their split) together with the
// nominal SparseLoCo figure, 12 index bits + 2 value bits per nonzero (12 + 32 unquantised).
#include <cstdint>
#include <span>
#include <vector>

#include "compress/sparse.hpp"

namespace frugal::compress {

enum class IndexCoding : uint8_t {
  packed12 = 0,  // 12 bits per index
  rice = 1,      // Golomb-Rice of the sorted in-chunk gaps, parameter chosen per tensor
  best = 2,      // per tensor, whichever of the two is smaller (encoder option only)
};

enum class ValueCoding : uint8_t {
  plain = 0,  // 2 bits per code (fp32 values are always plain)
  zstd = 1,   // the code block as a zstd frame
  best = 2,   // per tensor, zstd when it is smaller (encoder option only)
};

struct EncodeOptions {
  IndexCoding index = IndexCoding::best;
  ValueCoding values = ValueCoding::best;
};

struct WireStats {
  int64_t tensors = 0;
  int64_t dense_elements = 0;      // sum of numel: the dense fp32 payload is 4x this in bytes
  int64_t nnz = 0;
  int64_t bytes = 0;               // the whole message
  int64_t index_bytes = 0;         // index blocks
  int64_t value_bytes = 0;         // code (plain or zstd) / fp32 value blocks
  int64_t overhead_bytes = 0;      // headers, mu and levels
  double nominal_bits = 0;         // sum over tensors of nnz * (12 + 2) or nnz * (12 + 32)

  double bits_per_nnz() const { return nnz ? 8.0 * double(bytes) / double(nnz) : 0.0; }
  double index_bits_per_nnz() const { return nnz ? 8.0 * double(index_bytes) / double(nnz) : 0.0; }
  double value_bits_per_nnz() const { return nnz ? 8.0 * double(value_bytes) / double(nnz) : 0.0; }
  double nominal_bits_per_nnz() const { return nnz ? nominal_bits / double(nnz) : 0.0; }
  double ratio_vs_dense() const { return bytes ? 4.0 * double(dense_elements) / double(bytes) : 0.0; }
  double nominal_ratio_vs_dense() const { return nominal_bits > 0 ? 32.0 * double(dense_elements) / nominal_bits : 0.0; }
};

// Encode tensors (each must pass sparse_validate; quantised ones send codes + mu + levels, the
// others fp32 values). Tensors are encoded in parallel and concatenated in order: the bytes do not
// depend on the thread count.
std::vector<uint8_t> encode_message(std::span<const SparseTensor> tensors, const EncodeOptions& opt = {},
                                    WireStats* stats = nullptr);

// Decode one message into out (resized; buffers reused). When `expected` is non-empty the message
// must hold exactly those layouts, in order. Throws frugal::Error on any malformed input.
void decode_message(std::span<const uint8_t> bytes, std::vector<SparseTensor>& out,
                    std::span<const ChunkLayout> expected = {});

// Per-rank views of an allgatherv result: counts[r] bytes from rank r, concatenated in rank order.
std::vector<std::span<const uint8_t>> split_gathered(std::span<const uint8_t> recv, std::span<const size_t> counts);

// Scratch for decode_and_aggregate: keep one across steps and the decoded tensors' buffers are
// reused instead of reallocated (R x nnz x 7 bytes per step otherwise).
struct DecodeWorkspace {
  std::vector<std::vector<SparseTensor>> per_rank;
};

// Decode the R messages (rank order) and aggregate tensor t into outs[t] (dense, numel floats).
// All messages must carry the same layouts and top_k (and match `expected` when given).
void decode_and_aggregate(std::span<const std::span<const uint8_t>> messages, Aggregation mode,
                          std::span<float* const> outs, std::span<const ChunkLayout> expected = {},
                          DecodeWorkspace* workspace = nullptr);

}  // namespace frugal::compress
