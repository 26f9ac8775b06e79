#include "compress/index_coding.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

#include "core/error.hpp"

namespace frugal::compress {

// ---- bit reader --------------------------------------------------------------------------------

uint64_t BitReader::window() const {
  const uint64_t b = pos >> 3;
  uint64_t w = 0;
  if (b + 8 <= nbytes) {
    std::memcpy(&w, data + b, 8);  // little-endian host (checked in sparse_message.cpp)
  } else {
    for (uint64_t i = 0; b + i < nbytes; ++i) w |= uint64_t(data[b + i]) << (8 * i);
  }
  return w >> (pos & 7);
}

uint32_t BitReader::get(int bits) {
  FRUGAL_CHECK(pos + uint64_t(bits) <= bits_total(), "compressed message truncated: need ", bits,
               " bits at bit ", pos, " of ", bits_total());
  if (bits == 0) return 0;
  const uint32_t v = uint32_t(window() & ((uint64_t(1) << bits) - 1));
  pos += uint64_t(bits);
  return v;
}

uint32_t BitReader::get_unary(uint32_t max_q) {
  uint32_t q = 0;
  for (;;) {
    const uint64_t w = window();  // at least 57 meaningful bits
    const int ones = std::countr_one(w);
    if (ones < 57) {
      q += uint32_t(ones);
      FRUGAL_CHECK(q <= max_q, "compressed message corrupt: unary run ", q, " longer than ", max_q);
      FRUGAL_CHECK(pos + uint64_t(ones) + 1 <= bits_total(), "compressed message truncated inside a unary code");
      pos += uint64_t(ones) + 1;
      return q;
    }
    q += 57;
    pos += 57;
    FRUGAL_CHECK(q <= max_q, "compressed message corrupt: unary run longer than ", max_q);
    FRUGAL_CHECK(pos <= bits_total(), "compressed message truncated inside a unary code");
  }
}

// ---- 12-bit packing ----------------------------------------------------------------------------

int64_t packed12_bytes(int64_t n) { return (12 * n + 7) / 8; }

void pack12(std::span<const uint16_t> idx, std::vector<uint8_t>& out) {
  // The LSB-first stream of 12-bit fields, two indices (24 bits) at a time: a | b << 12 as 3 bytes.
  const size_t n = idx.size(), at = out.size();
  out.resize(at + size_t(packed12_bytes(int64_t(n))));
  uint8_t* o = out.data() + at;
  uint16_t all = 0;
  for (size_t t = 0; t < n; ++t) all |= idx[t];
  FRUGAL_CHECK(all < 4096, "pack12: an index does not fit in 12 bits");
  size_t t = 0;
  for (; t + 2 <= n; t += 2, o += 3) {
    const uint32_t a = idx[t], b = idx[t + 1];
    o[0] = uint8_t(a);
    o[1] = uint8_t((a >> 8) | (b << 4));
    o[2] = uint8_t(b >> 4);
  }
  if (t < n) {
    o[0] = uint8_t(idx[t]);
    o[1] = uint8_t(idx[t] >> 8);
  }
}

void unpack12(std::span<const uint8_t> in, const ChunkLayout& layout, int64_t top_k, std::span<uint16_t> idx) {
  FRUGAL_CHECK(int64_t(in.size()) == packed12_bytes(int64_t(idx.size())), "12-bit index block has ", in.size(),
               " bytes, expected ", packed12_bytes(int64_t(idx.size())));
  FRUGAL_CHECK(int64_t(idx.size()) == sparse_nnz(layout, top_k), "unpack12: wrong index count");
  BitReader r(in.data(), in.size());
  const int64_t nc = layout.n_chunks();
  for (int64_t c = 0; c < nc; ++c) {
    const int64_t len = layout.chunk_len(c), k = chunk_k(len, top_k), off = sparse_offset(layout, top_k, c);
    int64_t prev = -1;
    for (int64_t t = 0; t < k; ++t) {
      const int64_t i = r.get(12);
      FRUGAL_CHECK(i < len, "compressed message corrupt: index ", i, " outside chunk ", c, " of length ", len);
      FRUGAL_CHECK(i > prev, "compressed message corrupt: indices not ascending in chunk ", c);
      idx[off + t] = uint16_t(i);
      prev = i;
    }
  }
}

// ---- Golomb-Rice of gaps -----------------------------------------------------------------------

namespace {
// Calls f(gap) for every index in chunk order; throws if a chunk's indices are not ascending.
template <typename F>
void for_each_gap(std::span<const uint16_t> idx, const ChunkLayout& layout, int64_t top_k, F&& f) {
  FRUGAL_CHECK(int64_t(idx.size()) == sparse_nnz(layout, top_k), "index coding: ", idx.size(),
               " indices, expected ", sparse_nnz(layout, top_k));
  const int64_t nc = layout.n_chunks();
  for (int64_t c = 0; c < nc; ++c) {
    const int64_t len = layout.chunk_len(c), k = chunk_k(len, top_k), off = sparse_offset(layout, top_k, c);
    int64_t prev = -1;
    for (int64_t t = 0; t < k; ++t) {
      const int64_t i = idx[off + t];
      FRUGAL_CHECK(i > prev && i < len, "index coding: indices of chunk ", c,
                   " must be ascending and below ", len);
      f(uint32_t(i - prev - 1));
      prev = i;
    }
  }
}
constexpr int kMaxRiceParam = 11;  // gaps are < 4096
}  // namespace

int64_t rice_bits(std::span<const uint16_t> idx, const ChunkLayout& layout, int64_t top_k, int p) {
  int64_t bits = 0;
  for_each_gap(idx, layout, top_k, [&](uint32_t g) { bits += int64_t(g >> p) + 1 + p; });
  return bits;
}

int rice_best_param(std::span<const uint16_t> idx, const ChunkLayout& layout, int64_t top_k, int64_t* bits) {
  // One pass for a gap histogram, then every p costed from it exactly.
  std::vector<int64_t> hist(4096, 0);
  for_each_gap(idx, layout, top_k, [&](uint32_t g) { hist[g] += 1; });
  int best_p = 0;
  int64_t best = -1;
  for (int p = 0; p <= kMaxRiceParam; ++p) {
    int64_t b = 0;
    for (uint32_t g = 0; g < 4096; ++g) b += hist[g] * (int64_t(g >> p) + 1 + p);
    if (best < 0 || b < best) {
      best = b;
      best_p = p;
    }
  }
  if (bits) *bits = best;
  return best_p;
}

void rice_encode(std::span<const uint16_t> idx, const ChunkLayout& layout, int64_t top_k, int p,
                 std::vector<uint8_t>& out) {
  FRUGAL_CHECK(p >= 0 && p <= kMaxRiceParam, "rice_encode: parameter ", p, " not in [0, 11]");
  out.reserve(out.size() + idx.size() * size_t(p + 2) / 8 + 64);  // ~p + 2 bits per index
  BitWriter w(out);
  const uint32_t mask = (uint32_t(1) << p) - 1;
  for_each_gap(idx, layout, top_k, [&](uint32_t g) {
    const uint32_t q = g >> p;
    if (q + 1 + uint32_t(p) <= 32) {  // the whole code in one put: q ones, a zero, p low bits
      w.put(((uint64_t(1) << q) - 1) | (uint64_t(g & mask) << (q + 1)), int(q) + 1 + p);
    } else {
      w.put_unary(q);
      w.put(g & mask, p);
    }
  });
  w.flush();
}

void rice_decode(std::span<const uint8_t> in, const ChunkLayout& layout, int64_t top_k, int p, std::span<uint16_t> idx) {
  FRUGAL_CHECK(p >= 0 && p <= kMaxRiceParam, "compressed message corrupt: Rice parameter ", p, " not in [0, 11]");
  FRUGAL_CHECK(int64_t(idx.size()) == sparse_nnz(layout, top_k), "rice_decode: wrong index count");
  BitReader r(in.data(), in.size());
  const int64_t nc = layout.n_chunks();
  const uint64_t mask = (uint64_t(1) << p) - 1;
  for (int64_t c = 0; c < nc; ++c) {
    const int64_t len = layout.chunk_len(c), k = chunk_k(len, top_k), off = sparse_offset(layout, top_k, c);
    const uint32_t max_q = uint32_t(len - 1) >> p;  // any longer run would leave the chunk
    int64_t pos = -1;
    for (int64_t t = 0; t < k; ++t) {
      // Fast path: the whole code (q ones, a zero, p bits) lies in one 57-bit window.
      const uint64_t w = r.window();
      const int ones = std::countr_one(w);
      uint32_t g;
      if (ones + 1 + p <= 57) {
        FRUGAL_CHECK(uint32_t(ones) <= max_q, "compressed message corrupt: unary run ", ones, " longer than ", max_q);
        r.pos += uint64_t(ones + 1 + p);
        FRUGAL_CHECK(r.pos <= r.bits_total(), "compressed message truncated inside a Rice code");
        g = (uint32_t(ones) << p) | uint32_t((w >> (ones + 1)) & mask);
      } else {
        const uint32_t q = r.get_unary(max_q);
        g = (q << p) | r.get(p);
      }
      pos += int64_t(g) + 1;
      FRUGAL_CHECK(pos < len, "compressed message corrupt: index ", pos, " outside chunk ", c, " of length ", len);
      idx[off + t] = uint16_t(pos);
    }
  }
  FRUGAL_CHECK((r.pos + 7) / 8 == in.size(), "compressed message corrupt: Rice block has ", in.size(),
               " bytes, decoding used ", (r.pos + 7) / 8);
}

}  // namespace frugal::compress
