// Wire format of the compressors: index codes (12-bit packing, Golomb-Rice of gaps), whole-message
// round trips, malformed-message rejection, decode + aggregate, and the compression ratio on a
// GPT-2-small-like layer set.
#include <gtest/gtest.h>

#include <cstdio>
#include <cmath>
#include <cstring>
#include <vector>

#include "compress/chunking.hpp"
#include "compress/error_feedback.hpp"
#include "compress/index_coding.hpp"
#include "compress/sparse_message.hpp"
#include "compress/topk.hpp"
#include "core/rng.hpp"

using namespace frugal::compress;

namespace {

std::vector<float> normals(size_t n, uint32_t sub, float scale = 1.0f) {
  frugal::Rng rng(99, frugal::Stream::method, sub);
  std::vector<float> v(n);
  for (auto& x : v) x = scale * rng.normal();
  return v;
}

// A sparse tensor from EF on random data (quantised or not).
SparseTensor make_sparse(const ChunkLayout& l, int64_t top_k, bool quant, uint32_t sub) {
  std::vector<float> e = normals(size_t(l.numel()), sub), g = normals(size_t(l.numel()), sub + 1000);
  SparseTensor s;
  ef_compress(e.data(), g.data(), l, {.beta = 0.95f, .top_k = top_k, .quantize = quant}, s);
  return s;
}

void expect_same(const SparseTensor& a, const SparseTensor& b) {
  EXPECT_EQ(a.layout, b.layout);
  EXPECT_EQ(a.top_k, b.top_k);
  EXPECT_EQ(a.idx, b.idx);
  EXPECT_EQ(a.quantized, b.quantized);
  ASSERT_EQ(a.values.size(), b.values.size());
  EXPECT_EQ(std::memcmp(a.values.data(), b.values.data(), a.values.size() * 4), 0);
  if (a.quantized) {
    EXPECT_EQ(a.codes, b.codes);
    EXPECT_EQ(a.q.mu, b.q.mu);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(a.q.levels[i], b.q.levels[i]);
  }
}

std::vector<SparseTensor> small_message_tensors() {
  return {make_sparse(matrix_layout(64, 128), 128, true, 1), make_sparse(vector_layout(100), 128, true, 2),
          make_sparse(matrix_layout(3, 768), 256, false, 3)};
}

}  // namespace

// ---- bit streams and index codes ------------------------------------------------------------------------

TEST(IndexCoding, Pack12HandComputed) {
  std::vector<uint8_t> out;
  const uint16_t a[2] = {1, 2};
  pack12(a, out);  // LSB-first: 0x001, 0x002 -> 01 20 00
  EXPECT_EQ(out, (std::vector<uint8_t>{0x01, 0x20, 0x00}));
  out.clear();
  const uint16_t b[3] = {0xABC, 0x123, 0xFFF};
  pack12(b, out);  // BC 3A 12 | FF 0F
  EXPECT_EQ(out, (std::vector<uint8_t>{0xBC, 0x3A, 0x12, 0xFF, 0x0F}));
  EXPECT_EQ(packed12_bytes(3), 5);
  EXPECT_EQ(packed12_bytes(128), 192);
}

TEST(IndexCoding, RiceHandComputed) {
  // One 64-element segment keeping k = 3 (top_k 192): indices {0, 1, 5} -> gaps {0, 0, 3}.
  // p = 1: gap 0 -> "0" + "0"; gap 0 -> "0" + "0"; gap 3 -> q = 1: "10" + low bit "1".
  // Bits in stream order 0 0 0 0 1 0 1 -> byte 0b0101'0000 = 0x50, 7 bits.
  const ChunkLayout l = vector_layout(64);
  const std::vector<uint16_t> idx = {0, 1, 5};
  EXPECT_EQ(rice_bits(idx, l, 192, 1), 7);
  EXPECT_EQ(rice_bits(idx, l, 192, 0), 1 + 1 + 4);  // unary only: "0" "0" "1110"
  std::vector<uint8_t> out;
  rice_encode(idx, l, 192, 1, out);
  EXPECT_EQ(out, (std::vector<uint8_t>{0x50}));
  std::vector<uint16_t> back(3);
  rice_decode(out, l, 192, 1, back);
  EXPECT_EQ(back, idx);
  int64_t bits = 0;
  EXPECT_EQ(rice_best_param(idx, l, 192, &bits), 0);  // p = 0 needs 6 bits
  EXPECT_EQ(bits, 6);
}

TEST(IndexCoding, RiceRoundTripEveryParameter) {
  for (const ChunkLayout& l : {matrix_layout(128, 192), matrix_layout(3, 768), vector_layout(1000)}) {
    for (int64_t top_k : {1, 32, 128, 1024, 4096}) {
      SparseTensor s;
      const std::vector<float> x = normals(size_t(l.numel()), uint32_t(top_k));
      select_topk(x.data(), l, top_k, s);
      for (int p = 0; p <= 11; ++p) {
        std::vector<uint8_t> out;
        rice_encode(s.idx, l, top_k, p, out);
        EXPECT_EQ(int64_t(out.size()), (rice_bits(s.idx, l, top_k, p) + 7) / 8);
        std::vector<uint16_t> back(s.idx.size());
        rice_decode(out, l, top_k, p, back);
        ASSERT_EQ(back, s.idx) << "p=" << p << " top_k=" << top_k;
      }
      std::vector<uint8_t> packed;
      pack12(s.idx, packed);
      std::vector<uint16_t> back(s.idx.size());
      unpack12(packed, l, top_k, back);
      ASSERT_EQ(back, s.idx);
    }
  }
}

TEST(IndexCoding, BestParameterMatchesExhaustiveSearch) {
  const ChunkLayout l = matrix_layout(256, 256);
  for (int64_t top_k : {16, 128, 512, 2048}) {
    SparseTensor s;
    const std::vector<float> x = normals(size_t(l.numel()), 7);
    select_topk(x.data(), l, top_k, s);
    int64_t best = -1, got_bits = 0;
    int best_p = -1;
    for (int p = 0; p <= 11; ++p) {
      const int64_t b = rice_bits(s.idx, l, top_k, p);
      if (best < 0 || b < best) best = b, best_p = p;
    }
    EXPECT_EQ(rice_best_param(s.idx, l, top_k, &got_bits), best_p);
    EXPECT_EQ(got_bits, best);
  }
}

TEST(IndexCoding, DecodersRejectBadStreams) {
  const ChunkLayout l = vector_layout(64);
  std::vector<uint16_t> idx(3);
  // 12-bit: index 64 is outside a 64-element chunk; a descending pair; wrong byte count
  std::vector<uint8_t> bad;
  const uint16_t out_of_range[3] = {1, 2, 64};
  pack12(out_of_range, bad);
  EXPECT_THROW(unpack12(bad, l, 192, idx), frugal::Error);
  bad.clear();
  const uint16_t descending[3] = {5, 4, 6};
  pack12(descending, bad);
  EXPECT_THROW(unpack12(bad, l, 192, idx), frugal::Error);
  bad.pop_back();
  EXPECT_THROW(unpack12(bad, l, 192, idx), frugal::Error);
  // Rice: all ones = an endless unary run; an empty stream; trailing bytes; a gap past the chunk end
  const std::vector<uint8_t> ones(32, 0xFF), empty;
  EXPECT_THROW(rice_decode(ones, l, 192, 0, idx), frugal::Error);
  EXPECT_THROW(rice_decode(ones, l, 192, 5, idx), frugal::Error);
  EXPECT_THROW(rice_decode(empty, l, 192, 1, idx), frugal::Error);
  const std::vector<uint8_t> trailing = {0x50, 0x00};
  EXPECT_THROW(rice_decode(trailing, l, 192, 1, idx), frugal::Error);
  // p = 5: gap 63 then gap 0 -> index 63 then 64 (outside). q = 1 "10", low "11111"; q = 0 "0", "00000"
  std::vector<uint8_t> past;
  BitWriter w(past);
  w.put_unary(1);
  w.put(31, 5);
  w.put_unary(0);
  w.put(0, 5);
  w.put_unary(0);
  w.put(0, 5);
  w.flush();
  EXPECT_THROW(rice_decode(past, l, 192, 5, idx), frugal::Error);
  EXPECT_THROW(rice_decode(trailing, l, 192, 12, idx), frugal::Error);  // parameter out of range
}

TEST(IndexCoding, EncodersRejectUnsortedIndices) {
  const ChunkLayout l = vector_layout(64);
  const std::vector<uint16_t> idx = {5, 1, 9};
  std::vector<uint8_t> out;
  EXPECT_THROW(rice_encode(idx, l, 192, 2, out), frugal::Error);
}

TEST(BitStream, LongUnaryRunsAndWideFields) {
  std::vector<uint8_t> buf;
  BitWriter w(buf);
  w.put(5, 3);
  w.put_unary(200);  // spans several 57-bit windows
  w.put(0xABCDE, 20);
  w.put_unary(0);
  w.put(0xFFFFFFFFu, 32);
  w.flush();
  BitReader r(buf.data(), buf.size());
  EXPECT_EQ(r.get(3), 5u);
  EXPECT_EQ(r.get_unary(1000), 200u);
  EXPECT_EQ(r.get(20), 0xABCDEu);
  EXPECT_EQ(r.get_unary(10), 0u);
  EXPECT_EQ(r.get(32), 0xFFFFFFFFu);
  EXPECT_THROW(r.get(8), frugal::Error);  // only padding bits are left
  BitReader r2(buf.data(), buf.size());
  r2.get(3);
  EXPECT_THROW(r2.get_unary(100), frugal::Error);  // run longer than allowed
}

// ---- messages ----------------------------------------------------------------------------------------

TEST(Message, RoundTripAllCodings) {
  const std::vector<SparseTensor> ts = small_message_tensors();
  for (IndexCoding coding : {IndexCoding::packed12, IndexCoding::rice, IndexCoding::best}) {
    WireStats st;
    const std::vector<uint8_t> msg = encode_message(ts, {.index = coding}, &st);
    EXPECT_EQ(st.bytes, int64_t(msg.size()));
    EXPECT_EQ(st.tensors, 3);
    EXPECT_EQ(st.nnz, int64_t(ts[0].idx.size() + ts[1].idx.size() + ts[2].idx.size()));
    EXPECT_EQ(st.index_bytes + st.value_bytes + st.overhead_bytes, st.bytes);
    std::vector<SparseTensor> back;
    decode_message(msg, back);
    ASSERT_EQ(back.size(), ts.size());
    for (size_t t = 0; t < ts.size(); ++t) expect_same(ts[t], back[t]);
  }
}

TEST(Message, ByteAccountingHandComputed) {
  // One 64-element vector at top_k 128 -> k = 2, quantised, 12-bit indices:
  // 12 (message) + 26 (tensor) + 20 (mu, levels) + 3 (two 12-bit indices) + 1 (two 2-bit codes) = 62.
  SparseTensor s = make_sparse(vector_layout(64), 128, true, 5);
  WireStats st;
  const std::vector<uint8_t> msg = encode_message(std::span<const SparseTensor>(&s, 1), {.index = IndexCoding::packed12}, &st);
  EXPECT_EQ(msg.size(), 62u);  // best value coding: zstd's frame alone is larger than one byte
  EXPECT_EQ(st.index_bytes, 3);
  EXPECT_EQ(st.value_bytes, 1);
  EXPECT_EQ(st.overhead_bytes, 58);
  EXPECT_EQ(st.index_bits_per_nnz(), 12.0);
  EXPECT_EQ(st.value_bits_per_nnz(), 4.0);  // two codes in one byte
  EXPECT_EQ(st.nominal_bits_per_nnz(), 14.0);
  EXPECT_DOUBLE_EQ(st.nominal_ratio_vs_dense(), 64.0 * 32.0 / 28.0);
  EXPECT_DOUBLE_EQ(st.ratio_vs_dense(), 256.0 / 62.0);
  // fp32 values: nominal 12 + 32 bits
  SparseTensor f = make_sparse(vector_layout(64), 128, false, 5);
  encode_message(std::span<const SparseTensor>(&f, 1), {.index = IndexCoding::packed12}, &st);
  EXPECT_EQ(st.bytes, 12 + 26 + 3 + 8);
  EXPECT_EQ(st.nominal_bits_per_nnz(), 44.0);
}

TEST(Message, BestCodingPicksTheSmaller) {
  const std::vector<SparseTensor> ts = {make_sparse(matrix_layout(128, 128), 128, true, 8),
                                        make_sparse(matrix_layout(128, 128), 1, true, 9)};  // k = 1: 12-bit wins
  WireStats p12, rice, best;
  encode_message(ts, {.index = IndexCoding::packed12}, &p12);
  encode_message(ts, {.index = IndexCoding::rice}, &rice);
  encode_message(ts, {.index = IndexCoding::best}, &best);
  EXPECT_LT(best.bytes, p12.bytes);
  EXPECT_LT(best.bytes, rice.bytes);
  EXPECT_LE(best.index_bytes, std::min(p12.index_bytes, rice.index_bytes));
}

TEST(Message, ZstdHalvesTheCodesOfSelectedValues) {
  // Top-k selection by magnitude empties the middle quantiser bins, so the 2-bit codes carry about
  // one bit each; zstd's entropy stage gets within a small margin of that.
  const std::vector<SparseTensor> ts = {make_sparse(matrix_layout(512, 512), 128, true, 11)};
  int64_t count[4] = {};
  for (uint8_t c : ts[0].codes) count[c] += 1;
  double entropy = 0;
  for (int64_t c : count)
    if (c) entropy -= double(c) / double(ts[0].codes.size()) * std::log2(double(c) / double(ts[0].codes.size()));
  EXPECT_LT(entropy, 1.2);
  WireStats plain, zstd, best;
  const std::vector<uint8_t> mp = encode_message(ts, {.values = ValueCoding::plain}, &plain);
  const std::vector<uint8_t> mz = encode_message(ts, {.values = ValueCoding::zstd}, &zstd);
  const std::vector<uint8_t> mb = encode_message(ts, {.values = ValueCoding::best}, &best);
  EXPECT_EQ(plain.value_bits_per_nnz(), 2.0);  // nnz = 64 tiles x 128, a multiple of 4
  EXPECT_LT(zstd.value_bits_per_nnz(), entropy + 0.1);
  EXPECT_EQ(mb, mz);  // best = the smaller
  EXPECT_EQ(plain.index_bytes, zstd.index_bytes);
  EXPECT_EQ(plain.bytes - zstd.bytes, plain.value_bytes - zstd.value_bytes);
  for (const auto* m : {&mp, &mz}) {
    std::vector<SparseTensor> back;
    decode_message(*m, back);
    ASSERT_EQ(back.size(), 1u);
    expect_same(ts[0], back[0]);
  }
  // fp32 values are never zstd-coded, and a message claiming so is rejected.
  const SparseTensor f = make_sparse(matrix_layout(64, 64), 128, false, 12);
  WireStats fs;
  std::vector<uint8_t> mf = encode_message(std::span<const SparseTensor>(&f, 1), {.values = ValueCoding::zstd}, &fs);
  EXPECT_EQ(fs.value_bytes, 4 * int64_t(f.values.size()));
  std::vector<SparseTensor> out;
  mf[12 + 21] = 1;  // the value coding byte
  EXPECT_THROW(decode_message(mf, out), frugal::Error);
}

TEST(Message, EncoderRejectsInconsistentTensors) {
  SparseTensor s = make_sparse(matrix_layout(64, 64), 128, true, 3);
  s.values[5] += 1.0f;  // no longer L[code] + mu: receivers would see something else
  EXPECT_THROW(encode_message(std::span<const SparseTensor>(&s, 1)), frugal::Error);
  SparseTensor t = make_sparse(matrix_layout(64, 64), 128, false, 3);
  std::swap(t.idx[0], t.idx[1]);  // not ascending
  EXPECT_THROW(encode_message(std::span<const SparseTensor>(&t, 1)), frugal::Error);
}

TEST(Message, EncodingIsDeterministic) {
  const std::vector<SparseTensor> ts = small_message_tensors();
  EXPECT_EQ(encode_message(ts), encode_message(ts));
  EXPECT_EQ(encode_message(ts), encode_message(small_message_tensors()));
}

TEST(Message, EmptyMessage) {
  const std::vector<uint8_t> msg = encode_message({});
  EXPECT_EQ(msg.size(), 12u);
  std::vector<SparseTensor> back(3);
  decode_message(msg, back);
  EXPECT_TRUE(back.empty());
}

TEST(Message, EveryTruncationIsRejected) {
  for (const EncodeOptions opt : {EncodeOptions{IndexCoding::packed12, ValueCoding::plain},
                                  EncodeOptions{IndexCoding::rice, ValueCoding::plain},
                                  EncodeOptions{IndexCoding::rice, ValueCoding::zstd}}) {
    const std::vector<uint8_t> msg = encode_message(small_message_tensors(), opt);
    std::vector<SparseTensor> out;
    for (size_t n = 0; n < msg.size(); ++n)
      EXPECT_THROW(decode_message(std::span<const uint8_t>(msg.data(), n), out), frugal::Error) << n;
    std::vector<uint8_t> longer = msg;
    longer.push_back(0);
    EXPECT_THROW(decode_message(longer, out), frugal::Error);
  }
}

TEST(Message, CorruptHeadersAreRejected) {
  const std::vector<uint8_t> msg =
      encode_message(small_message_tensors(), {.index = IndexCoding::packed12, .values = ValueCoding::plain});
  std::vector<SparseTensor> out;
  auto corrupt = [&](size_t at, uint8_t value) {
    std::vector<uint8_t> m = msg;
    m[at] = value;
    return m;
  };
  EXPECT_THROW(decode_message(corrupt(0, 'X'), out), frugal::Error);   // magic
  EXPECT_THROW(decode_message(corrupt(4, 1), out), frugal::Error);     // version 1: before the value coding
  EXPECT_THROW(decode_message(corrupt(6, 1), out), frugal::Error);     // reserved
  EXPECT_THROW(decode_message(corrupt(8, 200), out), frugal::Error);   // tensor count
  // first tensor header starts at 12: rows(4) cols(4) c1(2) c2(2) top_k(2) flags coding p index_bytes(4)
  // value_coding value_bytes(4)
  EXPECT_THROW(decode_message(corrupt(12, 65), out), frugal::Error);   // rows 65: c1 64 does not divide
  EXPECT_THROW(decode_message(corrupt(20, 0), out), frugal::Error);    // c1 = 0
  EXPECT_THROW(decode_message(corrupt(24, 0), out), frugal::Error);    // top_k low byte 128 -> 0
  EXPECT_THROW(decode_message(corrupt(26, 0x80), out), frugal::Error); // unknown flag
  EXPECT_THROW(decode_message(corrupt(27, 7), out), frugal::Error);    // unknown index coding
  EXPECT_THROW(decode_message(corrupt(28, 12), out), frugal::Error);   // Rice parameter
  EXPECT_THROW(decode_message(corrupt(29, 0), out), frugal::Error);    // 12-bit block size
  EXPECT_THROW(decode_message(corrupt(26, 1), out), frugal::Error);    // becomes a vector: block sizes change
  EXPECT_THROW(decode_message(corrupt(33, 2), out), frugal::Error);    // unknown value coding
  EXPECT_THROW(decode_message(corrupt(33, 1), out), frugal::Error);    // "zstd", but the block is plain codes
  EXPECT_THROW(decode_message(corrupt(34, 0), out), frugal::Error);    // plain value block size
  // An index past its chunk: the first 12-bit index of tensor 1 (64-element segments) -> 0xFFF.
  const int64_t nnz0 = sparse_nnz(matrix_layout(64, 128), 128);
  const size_t tensor1_at = size_t(12 + 26 + 20 + packed12_bytes(nnz0) + (nnz0 + 3) / 4);
  std::vector<uint8_t> m = msg;
  ASSERT_EQ(m[tensor1_at], 1);        // rows = 1: the vector of 100
  ASSERT_EQ(m[tensor1_at + 4], 100);  // cols
  const size_t idx_at = tensor1_at + 26 + 20;
  m[idx_at] = 0xFF;
  m[idx_at + 1] |= 0x0F;
  EXPECT_THROW(decode_message(m, out), frugal::Error);
}

TEST(Message, RandomCorruptionNeverCrashes) {
  // Flip random bytes: the decoder must either succeed (a harmless flip, e.g. in a code or a level)
  // or throw frugal::Error - never read out of bounds (run under ASan to check the "never").
  for (const EncodeOptions opt : {EncodeOptions{IndexCoding::packed12, ValueCoding::plain},
                                  EncodeOptions{IndexCoding::rice, ValueCoding::plain},
                                  EncodeOptions{IndexCoding::rice, ValueCoding::zstd}}) {
    const std::vector<uint8_t> msg = encode_message(small_message_tensors(), opt);
    frugal::Rng rng(5, frugal::Stream::method, uint32_t(opt.index) + 2 * uint32_t(opt.values));
    std::vector<SparseTensor> out;
    int threw = 0;
    for (int trial = 0; trial < 2000; ++trial) {
      std::vector<uint8_t> m = msg;
      const int flips = 1 + int(rng.below(4));
      for (int f = 0; f < flips; ++f) m[rng.below(uint32_t(m.size()))] ^= uint8_t(1 + rng.below(255));
      try {
        decode_message(m, out);
        for (const SparseTensor& s : out) sparse_validate(s);  // what decodes is well formed
      } catch (const frugal::Error&) {
        ++threw;
      }
    }
    EXPECT_GT(threw, 0);
  }
}

TEST(Message, ExpectedLayoutsAreEnforced) {
  const std::vector<SparseTensor> ts = small_message_tensors();
  const std::vector<uint8_t> msg = encode_message(ts);
  std::vector<SparseTensor> out;
  const std::vector<ChunkLayout> good = {ts[0].layout, ts[1].layout, ts[2].layout};
  EXPECT_NO_THROW(decode_message(msg, out, good));
  std::vector<ChunkLayout> wrong = good;
  wrong[1] = vector_layout(101);
  EXPECT_THROW(decode_message(msg, out, wrong), frugal::Error);
  wrong.pop_back();
  EXPECT_THROW(decode_message(msg, out, wrong), frugal::Error);
}

TEST(Message, SplitGathered) {
  const std::vector<uint8_t> recv = {1, 2, 3, 4, 5, 6};
  const std::vector<size_t> counts = {2, 0, 4};
  const auto parts = split_gathered(recv, counts);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0].size(), 2u);
  EXPECT_EQ(parts[1].size(), 0u);
  EXPECT_EQ(parts[2][0], 3);
  const std::vector<size_t> too_many = {2, 5};
  EXPECT_THROW(split_gathered(recv, too_many), frugal::Error);
  const std::vector<size_t> too_few = {2, 3};
  EXPECT_THROW(split_gathered(recv, too_few), frugal::Error);
}

TEST(Message, DecodeAndAggregateMatchesDirectAggregation) {
  // R = 3 replicas, each with its own data; decode + aggregate of their messages (gathered the way
  // allgatherv delivers them) equals aggregating the sender-side tensors: the wire loses nothing.
  const int R = 3;
  const std::vector<ChunkLayout> layouts = {matrix_layout(128, 192), vector_layout(100), matrix_layout(3, 768)};
  std::vector<std::vector<SparseTensor>> sent(R);
  std::vector<uint8_t> recv;
  std::vector<size_t> counts;
  for (int r = 0; r < R; ++r) {
    for (size_t t = 0; t < layouts.size(); ++t) sent[r].push_back(make_sparse(layouts[t], 128, t != 2, uint32_t(100 * r + t)));
    const std::vector<uint8_t> msg = encode_message(sent[r], {.index = r == 1 ? IndexCoding::packed12 : IndexCoding::rice});
    recv.insert(recv.end(), msg.begin(), msg.end());
    counts.push_back(msg.size());
  }
  const auto messages = split_gathered(recv, counts);
  for (Aggregation mode : {Aggregation::mean_selected, Aggregation::mean_all}) {
    std::vector<std::vector<float>> got(layouts.size()), want(layouts.size());
    std::vector<float*> outs;
    for (size_t t = 0; t < layouts.size(); ++t) {
      got[t].resize(size_t(layouts[t].numel()));
      want[t].resize(size_t(layouts[t].numel()));
      outs.push_back(got[t].data());
      std::vector<const SparseTensor*> reps;
      for (int r = 0; r < R; ++r) reps.push_back(&sent[r][t]);
      aggregate(reps, mode, want[t].data());
    }
    decode_and_aggregate(messages, mode, outs, layouts);
    for (size_t t = 0; t < layouts.size(); ++t)
      EXPECT_EQ(std::memcmp(got[t].data(), want[t].data(), got[t].size() * 4), 0) << t;
    DecodeWorkspace ws;  // with a reused workspace: same result, twice
    for (int rep = 0; rep < 2; ++rep) {
      for (auto& v : got) std::fill(v.begin(), v.end(), -1.0f);
      decode_and_aggregate(messages, mode, outs, layouts, &ws);
      for (size_t t = 0; t < layouts.size(); ++t)
        EXPECT_EQ(std::memcmp(got[t].data(), want[t].data(), got[t].size() * 4), 0) << t;
    }
  }
  // A replica with a different top_k is refused.
  std::vector<SparseTensor> odd = sent[0];
  odd[0] = make_sparse(layouts[0], 64, true, 7);
  const std::vector<uint8_t> m0 = encode_message(sent[0]), m1 = encode_message(odd);
  const std::span<const uint8_t> two[2] = {m0, m1};
  std::vector<float> a(size_t(layouts[0].numel())), b(100), c(size_t(layouts[2].numel()));
  float* outs[3] = {a.data(), b.data(), c.data()};
  EXPECT_THROW(decode_and_aggregate(two, Aggregation::mean_selected, outs), frugal::Error);
}

// ---- compression ratio on a GPT-2-small-like layer set --------------------------------------------

namespace {
// One GPT-2-small transformer block at full width (C = 768) plus the embeddings, with the token
// embedding cut to 64 of its 768 columns to keep the test light (its 50304 rows - 64 x 64 tiles -
// and the per-element density are what matter for the ratio).
std::vector<ChunkLayout> gpt2_small_like() {
  const int64_t C = 768;
  return {matrix_layout(50304, 64),  // wte slice
          matrix_layout(1024, C),    // wpe
          vector_layout(C), vector_layout(C),          // ln1 w, b
          matrix_layout(3 * C, C), vector_layout(3 * C),  // qkv
          matrix_layout(C, C), vector_layout(C),       // attn proj
          vector_layout(C), vector_layout(C),          // ln2 w, b
          matrix_layout(4 * C, C), vector_layout(4 * C),  // fc
          matrix_layout(C, 4 * C), vector_layout(C),   // fc proj
          vector_layout(C), vector_layout(C)};         // ln_f w, b
}
}  // namespace

TEST(CompressionRatio, Gpt2SmallLikeLayerSet) {
  const std::vector<ChunkLayout> layouts = gpt2_small_like();
  std::printf("  %-6s %-10s %10s %10s %9s %9s %9s\n", "top_k", "coding", "bytes", "bits/nnz", "nominal", "ratio",
              "nom.ratio");
  std::vector<std::vector<float>> data;  // an error-feedback buffer per tensor (random normal)
  for (size_t t = 0; t < layouts.size(); ++t) data.push_back(normals(size_t(layouts[t].numel()), uint32_t(500 + t)));
  for (int64_t top_k : {32, 64, 128, 256}) {
    std::vector<SparseTensor> ts(layouts.size());
    for (size_t t = 0; t < layouts.size(); ++t) {
      select_topk(data[t].data(), layouts[t], top_k, ts[t]);
      quantize_values(ts[t]);
    }
    WireStats p12, rice;
    const std::vector<uint8_t> m12 = encode_message(ts, {.index = IndexCoding::packed12}, &p12);
    const std::vector<uint8_t> mr = encode_message(ts, {.index = IndexCoding::best}, &rice);
    for (const auto& [name, st] : {std::pair{"12-bit", p12}, std::pair{"rice", rice}})
      std::printf("  %-6lld %-10s %10lld %10.2f %9.1f %8.1fx %8.1fx\n", (long long)top_k, name, (long long)st.bytes,
                  st.bits_per_nnz(), st.nominal_bits_per_nnz(), st.ratio_vs_dense(), st.nominal_ratio_vs_dense());
    // Both decode to the same tensors.
    std::vector<SparseTensor> a, b;
    decode_message(m12, a);
    decode_message(mr, b);
    for (size_t t = 0; t < ts.size(); ++t) {
      ASSERT_EQ(a[t].idx, ts[t].idx);
      ASSERT_EQ(b[t].idx, ts[t].idx);
    }
    if (top_k == 128) {
      EXPECT_GE(p12.ratio_vs_dense(), 73.0);   // the nominal SparseLoCo figure, 32 * 32 / 14 = 73.1
      EXPECT_GE(rice.ratio_vs_dense(), 100.0);  // the entropy-aware index code
    }
    EXPECT_GT(rice.ratio_vs_dense(), p12.ratio_vs_dense());
    ::testing::Test::RecordProperty("ratio_rice_topk_" + std::to_string(top_k), std::to_string(rice.ratio_vs_dense()));
    ::testing::Test::RecordProperty("ratio_12bit_topk_" + std::to_string(top_k), std::to_string(p12.ratio_vs_dense()));
  }
}
