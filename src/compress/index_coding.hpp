#pragma once
// Wire coding of the in-chunk indices of one sparse tensor (all chunks, chunk after chunk).
//
// Two codes:
// - packed12: every index in 12 bits (chunks hold at most 4096 elements), an LSB-first bit stream:
//   two indices per 3 bytes. The nominal SparseLoCo figure.
// - Golomb-Rice of the gaps between sorted indices, restarting at every chunk: for indices
//   i_0 < i_1 < ... of a chunk the gaps are g_0 = i_0 and g_t = i_t - i_{t-1} - 1 (>= 0). A gap is
//   sent as q = g >> p in unary (q one-bits, then a zero-bit) followed by the p low bits of g. At
//   density d the gaps are roughly geometric with mean ~1/d, for which Rice with p ~ log2(1/d) - 0.5
//   is near the entropy bound: ~6.5-7 bits per index at 3% density instead of 12.
//   The parameter p (0..11) is chosen per tensor as the exact minimiser of the coded size.
// Both streams are LSB-first and padded with zero bits to a whole byte.
//
// Decoders read only inside the given byte span and throw frugal::Error on a truncated stream,
// an index past the end of its chunk, or an over-long unary run.
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "compress/chunking.hpp"

namespace frugal::compress {

// Appends bits LSB-first to `out`.
struct BitWriter {
  std::vector<uint8_t>& out;
  uint64_t acc = 0;  // pending bits, lowest first
  int n = 0;         // number of pending bits (< 32 between calls)

  explicit BitWriter(std::vector<uint8_t>& o) : out(o) {}
  void put(uint64_t value, int bits) {  // bits <= 32; value < 2^bits
    acc |= value << n;
    n += bits;
    if (n >= 32) {  // 32 bits at a time: one store instead of four byte appends
      const size_t at = out.size();
      out.resize(at + 4);
      const uint32_t word = uint32_t(acc);
      std::memcpy(out.data() + at, &word, 4);  // little-endian host (checked in sparse_message.cpp)
      acc >>= 32;
      n -= 32;
    }
  }
  void put_unary(uint32_t q) {  // q one-bits then a zero-bit
    for (; q >= 31; q -= 31) put(0x7fffffffu, 31);
    put((uint64_t(1) << q) - 1, int(q) + 1);
  }
  void flush() {  // the pending bytes, the last one padded with zero bits
    for (; n > 0; n -= 8) {
      out.push_back(uint8_t(acc));
      acc >>= 8;
    }
    acc = 0;
    n = 0;
  }
};

// Reads bits LSB-first from a byte span; never reads outside it.
struct BitReader {
  const uint8_t* data = nullptr;
  uint64_t nbytes = 0;
  uint64_t pos = 0;  // in bits

  BitReader(const uint8_t* d, uint64_t n) : data(d), nbytes(n) {}
  uint64_t bits_total() const { return nbytes * 8; }
  uint32_t get(int bits);                 // bits <= 32
  uint32_t get_unary(uint32_t max_q);     // throws when the run exceeds max_q ones
  // The next 64 bits from pos without consuming them; at least 57 are meaningful (the top
  // pos % 8 are zero), and bits past the end of the data read as 0 - check pos before trusting them.
  uint64_t window() const;
};

// 12-bit packing: ceil(12 n / 8) bytes appended / read.
int64_t packed12_bytes(int64_t n);
void pack12(std::span<const uint16_t> idx, std::vector<uint8_t>& out);
// idx.size() indices from `in` (exactly packed12_bytes(idx.size()) bytes); checks each index < its
// chunk's length and strict ascent inside a chunk, using (layout, top_k) for the chunk boundaries.
void unpack12(std::span<const uint8_t> in, const ChunkLayout& layout, int64_t top_k, std::span<uint16_t> idx);

// Golomb-Rice. idx: a tensor's indices (ascending within each chunk, see compress/sparse.hpp).
int64_t rice_bits(std::span<const uint16_t> idx, const ChunkLayout& layout, int64_t top_k, int p);
// The p in [0, 11] with the fewest bits (lowest p on ties); *bits gets that size when non-null.
int rice_best_param(std::span<const uint16_t> idx, const ChunkLayout& layout, int64_t top_k, int64_t* bits = nullptr);
void rice_encode(std::span<const uint16_t> idx, const ChunkLayout& layout, int64_t top_k, int p, std::vector<uint8_t>& out);
// Decodes idx.size() indices; `in` must be exactly the encoded bytes (throws on trailing bytes).
void rice_decode(std::span<const uint8_t> in, const ChunkLayout& layout, int64_t top_k, int p, std::span<uint16_t> idx);

}  // namespace frugal::compress
