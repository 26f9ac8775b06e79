#include "compress/sparse_message.hpp"

#include <bit>
#include <cstring>
#include <exception>
#include <limits>

#include <zstd.h>

#include "compress/index_coding.hpp"

namespace frugal::compress {

static_assert(std::endian::native == std::endian::little, "the wire format is little-endian; add byte swaps");

namespace {

constexpr uint32_t kMagic = 0x43475246u;  // bytes "FRGC"
constexpr uint16_t kVersion = 2;
constexpr int64_t kMessageHeader = 12, kTensorHeader = 26, kQuantHeader = 20;
constexpr uint8_t kFlagVector = 1, kFlagQuantized = 2;

template <typename T>
void put(std::vector<uint8_t>& out, T v) {
  const size_t at = out.size();
  out.resize(at + sizeof(T));
  std::memcpy(out.data() + at, &v, sizeof(T));
}

// Bounds-checked sequential reader over the message.
struct Cursor {
  std::span<const uint8_t> bytes;
  size_t pos = 0;

  size_t left() const { return bytes.size() - pos; }
  template <typename T>
  T get(const char* what) {
    FRUGAL_CHECK(sizeof(T) <= left(), "compressed message truncated: no room for ", what, " at byte ", pos,
                 " of ", bytes.size());
    T v;
    std::memcpy(&v, bytes.data() + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  std::span<const uint8_t> take(uint64_t n, const char* what) {
    FRUGAL_CHECK(n <= left(), "compressed message truncated: ", what, " needs ", n, " bytes, ", left(), " left");
    auto s = bytes.subspan(pos, size_t(n));
    pos += size_t(n);
    return s;
  }
};

// Size of the plain value block: 2-bit codes, 4 per byte, or fp32 values.
int64_t value_block_bytes(int64_t nnz, bool quantized) { return quantized ? (nnz + 3) / 4 : 4 * nnz; }
constexpr int kZstdLevel = 1;  // the codes need the entropy stage, not match finding

// One tensor's bytes (header, levels, index block, value block); *index_bytes and *value_bytes get
// the block sizes.
void encode_tensor(const SparseTensor& s, IndexCoding coding, ValueCoding value_coding, std::vector<uint8_t>& out,
                   int64_t* index_bytes, int64_t* value_bytes) {
  sparse_validate(s);
  const ChunkLayout& l = s.layout;
  FRUGAL_CHECK(l.rows <= std::numeric_limits<uint32_t>::max() && l.cols <= std::numeric_limits<uint32_t>::max(),
               "encode_message: tensor ", l.rows, " x ", l.cols, " too large for the wire format");
  FRUGAL_CHECK(l.c1 <= 65535 && l.c2 <= 65535, "encode_message: chunk too large");
  const int64_t nnz = int64_t(s.idx.size());
  // Receivers rebuild the values from codes, mu and levels: they must be what the sender holds
  // (and subtracted from its error buffer), bit for bit.
  if (s.quantized)
    for (int64_t i = 0; i < nnz; ++i)
      FRUGAL_CHECK(std::bit_cast<uint32_t>(s.values[i]) == std::bit_cast<uint32_t>(dequantize2(s.q, s.codes[i])),
                   "encode_message: value ", i, " of a quantised tensor is not L[code] + mu");

  // Index block: Rice when asked, or when it is smaller than 12-bit packing.
  int p = 0;
  if (coding != IndexCoding::packed12) {
    int64_t rice = 0;
    p = rice_best_param(s.idx, l, s.top_k, &rice);
    if (coding == IndexCoding::best && (rice + 7) / 8 >= packed12_bytes(nnz)) coding = IndexCoding::packed12;
    else coding = IndexCoding::rice;
  }
  std::vector<uint8_t> index_block;
  if (coding == IndexCoding::rice) {
    rice_encode(s.idx, l, s.top_k, p, index_block);
  } else {
    pack12(s.idx, index_block);
    p = 0;
  }
  *index_bytes = int64_t(index_block.size());

  // Value block: the plain codes (or fp32 values), then zstd of the codes when asked or smaller.
  std::vector<uint8_t> value_block(size_t(value_block_bytes(nnz, s.quantized)), 0);
  if (s.quantized) {
    for (int64_t i = 0; i < nnz; ++i) value_block[size_t(i / 4)] |= uint8_t(s.codes[i] << (2 * (i % 4)));
  } else {
    std::memcpy(value_block.data(), s.values.data(), value_block.size());
  }
  uint8_t vcoding = 0;
  if (s.quantized && value_coding != ValueCoding::plain) {
    std::vector<uint8_t> z(ZSTD_compressBound(value_block.size()));
    const size_t zn = ZSTD_compress(z.data(), z.size(), value_block.data(), value_block.size(), kZstdLevel);
    FRUGAL_CHECK(!ZSTD_isError(zn), "encode_message: zstd failed: ", ZSTD_getErrorName(zn));
    if (value_coding == ValueCoding::zstd || zn < value_block.size()) {
      z.resize(zn);
      value_block.swap(z);
      vcoding = 1;
    }
  }
  *value_bytes = int64_t(value_block.size());

  out.reserve(size_t(kTensorHeader + kQuantHeader) + index_block.size() + value_block.size());
  put<uint32_t>(out, uint32_t(l.rows));
  put<uint32_t>(out, uint32_t(l.cols));
  put<uint16_t>(out, uint16_t(l.c1));
  put<uint16_t>(out, uint16_t(l.c2));
  put<uint16_t>(out, uint16_t(s.top_k));
  put<uint8_t>(out, uint8_t((l.vector ? kFlagVector : 0) | (s.quantized ? kFlagQuantized : 0)));
  put<uint8_t>(out, uint8_t(coding));
  put<uint8_t>(out, uint8_t(p));
  put<uint32_t>(out, uint32_t(index_block.size()));
  put<uint8_t>(out, vcoding);
  put<uint32_t>(out, uint32_t(value_block.size()));
  if (s.quantized) {
    put<float>(out, s.q.mu);
    for (float L : s.q.levels) put<float>(out, L);
  }
  out.insert(out.end(), index_block.begin(), index_block.end());
  out.insert(out.end(), value_block.begin(), value_block.end());
}

// A parsed tensor header and where its blocks lie.
struct TensorEntry {
  ChunkLayout layout;
  int64_t top_k = 0, nnz = 0;
  bool quantized = false;
  IndexCoding coding = IndexCoding::packed12;
  bool values_zstd = false;
  int rice_p = 0;
  Quant2 q;
  std::span<const uint8_t> index_block, value_block;
};

TensorEntry parse_tensor(Cursor& cur, size_t t) {
  TensorEntry e;
  const uint32_t rows = cur.get<uint32_t>("rows"), cols = cur.get<uint32_t>("cols");
  const uint16_t c1 = cur.get<uint16_t>("c1"), c2 = cur.get<uint16_t>("c2"), top_k = cur.get<uint16_t>("top_k");
  const uint8_t flags = cur.get<uint8_t>("flags"), coding = cur.get<uint8_t>("index coding"),
                p = cur.get<uint8_t>("Rice parameter");
  const uint32_t index_bytes = cur.get<uint32_t>("index block size");
  const uint8_t value_coding = cur.get<uint8_t>("value coding");
  const uint32_t value_bytes = cur.get<uint32_t>("value block size");
  FRUGAL_CHECK((flags & ~(kFlagVector | kFlagQuantized)) == 0, "compressed message corrupt: tensor ", t,
               " has unknown flags ", int(flags));
  FRUGAL_CHECK(coding <= 1, "compressed message corrupt: tensor ", t, " has unknown index coding ", int(coding));
  FRUGAL_CHECK(p <= 11, "compressed message corrupt: tensor ", t, " has Rice parameter ", int(p));
  FRUGAL_CHECK(top_k >= 1 && top_k <= kTopKReference, "compressed message corrupt: tensor ", t, " has top_k ", top_k);
  FRUGAL_CHECK(rows >= 1 && cols >= 1 && uint64_t(rows) * cols < (uint64_t(1) << 48),
               "compressed message corrupt: tensor ", t, " has shape ", rows, " x ", cols);
  e.layout.rows = rows;
  e.layout.cols = cols;
  e.layout.c1 = c1;
  e.layout.c2 = c2;
  e.layout.vector = flags & kFlagVector;
  try {
    check_layout(e.layout);
  } catch (const Error& err) {
    fail("compressed message corrupt: tensor ", t, ": ", err.what());
  }
  e.top_k = top_k;
  e.nnz = sparse_nnz(e.layout, e.top_k);
  e.quantized = flags & kFlagQuantized;
  e.coding = IndexCoding(coding);
  e.rice_p = p;
  if (e.coding == IndexCoding::packed12)
    FRUGAL_CHECK(int64_t(index_bytes) == packed12_bytes(e.nnz), "compressed message corrupt: tensor ", t,
                 " has a 12-bit index block of ", index_bytes, " bytes, expected ", packed12_bytes(e.nnz));
  if (e.quantized) {
    e.q.mu = cur.get<float>("mu");
    for (float& L : e.q.levels) L = cur.get<float>("level");
  }
  e.index_block = cur.take(index_bytes, "index block");
  FRUGAL_CHECK(value_coding <= 1 && (value_coding == 0 || e.quantized), "compressed message corrupt: tensor ", t,
               " has value coding ", int(value_coding), (e.quantized ? "" : " for fp32 values"));
  e.values_zstd = value_coding == 1;
  // Every index costs at least one bit in either coding: this bounds nnz (and what decoding
  // allocates) by the message size even when the value block is compressed.
  FRUGAL_CHECK(e.nnz <= 8 * int64_t(index_bytes), "compressed message corrupt: tensor ", t, " claims ", e.nnz,
               " nonzeros in an index block of ", index_bytes, " bytes");
  const int64_t plain = value_block_bytes(e.nnz, e.quantized);
  FRUGAL_CHECK(e.values_zstd || int64_t(value_bytes) == plain, "compressed message corrupt: tensor ", t,
               " has a value block of ", value_bytes, " bytes, expected ", plain);
  e.value_block = cur.take(value_bytes, "value block");
  return e;
}

void decode_tensor(const TensorEntry& e, SparseTensor& s) {
  sparse_reset(s, e.layout, e.top_k);
  if (e.coding == IndexCoding::rice) rice_decode(e.index_block, e.layout, e.top_k, e.rice_p, s.idx);
  else unpack12(e.index_block, e.layout, e.top_k, s.idx);
  if (e.quantized) {
    s.quantized = true;
    s.q = e.q;
    s.codes.resize(size_t(e.nnz));
    std::span<const uint8_t> packed = e.value_block;
    std::vector<uint8_t> unpacked;
    if (e.values_zstd) {
      const size_t want = size_t(value_block_bytes(e.nnz, true));
      const unsigned long long content = ZSTD_getFrameContentSize(packed.data(), packed.size());
      FRUGAL_CHECK(content == want, "compressed message corrupt: a zstd value block of ", packed.size(),
                   " bytes does not hold the ", want, " bytes of ", e.nnz, " codes");
      unpacked.resize(want);
      const size_t got = ZSTD_decompress(unpacked.data(), want, packed.data(), packed.size());
      FRUGAL_CHECK(!ZSTD_isError(got) && got == want, "compressed message corrupt: zstd value block: ",
                   ZSTD_isError(got) ? ZSTD_getErrorName(got) : "wrong size");
      packed = unpacked;
    }
    for (int64_t i = 0; i < e.nnz; ++i) {
      const uint8_t code = (packed[size_t(i / 4)] >> (2 * (i % 4))) & 3;
      s.codes[i] = code;
      s.values[i] = dequantize2(s.q, code);
    }
  } else {
    std::memcpy(s.values.data(), e.value_block.data(), size_t(4 * e.nnz));
  }
}

// Runs f(i) for i in [0, n), in parallel when `parallel`; the first (lowest i) exception is rethrown
// afterwards, since an exception must not escape an OpenMP region.
template <typename F>
void parallel_for_rethrow(int64_t n, bool parallel, F&& f) {
  std::vector<std::exception_ptr> errs(static_cast<size_t>(n));
#pragma omp parallel for schedule(dynamic, 1) if (parallel && n > 1)
  for (int64_t i = 0; i < n; ++i) {
    try {
      f(i);
    } catch (...) {
      errs[size_t(i)] = std::current_exception();
    }
  }
  for (auto& e : errs)
    if (e) std::rethrow_exception(e);
}

}  // namespace

std::vector<uint8_t> encode_message(std::span<const SparseTensor> tensors, const EncodeOptions& opt, WireStats* stats) {
  const int64_t n = int64_t(tensors.size());
  std::vector<std::vector<uint8_t>> parts(static_cast<size_t>(n));
  std::vector<int64_t> index_bytes(static_cast<size_t>(n)), value_bytes(static_cast<size_t>(n));
  int64_t total_nnz = 0;
  for (const SparseTensor& s : tensors) total_nnz += int64_t(s.idx.size());
  parallel_for_rethrow(n, total_nnz >= kParallelMin / 8, [&](int64_t t) {
    encode_tensor(tensors[size_t(t)], opt.index, opt.values, parts[size_t(t)], &index_bytes[size_t(t)],
                  &value_bytes[size_t(t)]);
  });

  std::vector<uint8_t> out;
  size_t total = size_t(kMessageHeader);
  for (const auto& p : parts) total += p.size();
  out.reserve(total);
  put<uint32_t>(out, kMagic);
  put<uint16_t>(out, kVersion);
  put<uint16_t>(out, 0);
  put<uint32_t>(out, uint32_t(n));
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());

  if (stats) {
    WireStats st;
    st.tensors = n;
    st.bytes = int64_t(out.size());
    for (int64_t t = 0; t < n; ++t) {
      const SparseTensor& s = tensors[size_t(t)];
      const int64_t nnz = int64_t(s.idx.size()), vb = value_bytes[size_t(t)];
      st.dense_elements += s.layout.numel();
      st.nnz += nnz;
      st.index_bytes += index_bytes[size_t(t)];
      st.value_bytes += vb;
      st.nominal_bits += double(nnz) * (12.0 + (s.quantized ? 2.0 : 32.0));
    }
    st.overhead_bytes = st.bytes - st.index_bytes - st.value_bytes;
    *stats = st;
  }
  return out;
}

void decode_message(std::span<const uint8_t> bytes, std::vector<SparseTensor>& out, std::span<const ChunkLayout> expected) {
  Cursor cur{bytes};
  FRUGAL_CHECK(cur.get<uint32_t>("magic") == kMagic, "not a compressed message (bad magic)");
  const uint16_t version = cur.get<uint16_t>("version");
  FRUGAL_CHECK(version == kVersion, "compressed message version ", version, ", this build reads ", kVersion);
  FRUGAL_CHECK(cur.get<uint16_t>("reserved") == 0, "compressed message corrupt: reserved field set");
  const uint32_t n = cur.get<uint32_t>("tensor count");
  FRUGAL_CHECK(uint64_t(n) * kTensorHeader <= cur.left(), "compressed message corrupt: ", n,
               " tensors cannot fit in ", bytes.size(), " bytes");
  FRUGAL_CHECK(expected.empty() || expected.size() == n, "compressed message has ", n, " tensors, expected ",
               expected.size());

  // Headers first (sequential: each gives the next one's offset), then the payloads in parallel.
  std::vector<TensorEntry> entries(n);
  for (uint32_t t = 0; t < n; ++t) {
    entries[t] = parse_tensor(cur, t);
    FRUGAL_CHECK(expected.empty() || entries[t].layout == expected[t], "compressed message: tensor ", t,
                 " has layout ", entries[t].layout.rows, " x ", entries[t].layout.cols, " (chunk ",
                 entries[t].layout.c1, " x ", entries[t].layout.c2, "), expected ", expected[t].rows, " x ",
                 expected[t].cols, " (chunk ", expected[t].c1, " x ", expected[t].c2, ")");
  }
  FRUGAL_CHECK(cur.left() == 0, "compressed message corrupt: ", cur.left(), " trailing bytes");
  out.resize(n);
  parallel_for_rethrow(int64_t(n), bytes.size() >= size_t(kParallelMin), [&](int64_t t) { decode_tensor(entries[size_t(t)], out[size_t(t)]); });
}

std::vector<std::span<const uint8_t>> split_gathered(std::span<const uint8_t> recv, std::span<const size_t> counts) {
  std::vector<std::span<const uint8_t>> parts;
  size_t at = 0;
  for (size_t c : counts) {
    FRUGAL_CHECK(c <= recv.size() - at, "split_gathered: counts exceed the ", recv.size(), " received bytes");
    parts.push_back(recv.subspan(at, c));
    at += c;
  }
  FRUGAL_CHECK(at == recv.size(), "split_gathered: counts sum to ", at, ", received ", recv.size(), " bytes");
  return parts;
}

void decode_and_aggregate(std::span<const std::span<const uint8_t>> messages, Aggregation mode,
                          std::span<float* const> outs, std::span<const ChunkLayout> expected,
                          DecodeWorkspace* workspace) {
  const size_t R = messages.size();
  FRUGAL_CHECK(R >= 1, "decode_and_aggregate: no messages");
  DecodeWorkspace local;
  std::vector<std::vector<SparseTensor>>& decoded = (workspace ? *workspace : local).per_rank;
  decoded.resize(R);
  decode_message(messages[0], decoded[0], expected);
  std::vector<ChunkLayout> layouts;
  for (const auto& s : decoded[0]) layouts.push_back(s.layout);
  for (size_t r = 1; r < R; ++r) decode_message(messages[r], decoded[r], layouts);
  FRUGAL_CHECK(outs.size() == layouts.size(), "decode_and_aggregate: ", outs.size(), " output buffers for ",
               layouts.size(), " tensors");
  std::vector<const SparseTensor*> reps(R);
  for (size_t t = 0; t < layouts.size(); ++t) {
    for (size_t r = 0; r < R; ++r) reps[r] = &decoded[r][t];
    aggregate(reps, mode, outs[t]);  // checks that top_k agrees too
  }
}

}  // namespace frugal::compress
