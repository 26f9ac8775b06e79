#include "methods/outer_sync.hpp"

#include <cmath>

#include "core/error.hpp"

namespace frugal {

using namespace compress;

WireStats sparse_allgather_aggregate(Communicator& comm, const std::vector<SparseTensor>& mine,
                                     const std::vector<CompressBlock>& blocks, Aggregation mode, const EncodeOptions& wire,
                                     float* dense, DecodeWorkspace& workspace, std::string_view tag) {
  WireStats stats;
  const std::vector<uint8_t> message = encode_message(mine, wire, &stats);
  std::vector<uint8_t> gathered;
  std::vector<size_t> counts;
  comm.allgatherv(std::span<const uint8_t>(message), gathered, counts, tag);
  const auto messages = split_gathered(gathered, counts);
  std::vector<float*> outs;
  std::vector<ChunkLayout> expected;
  for (const auto& b : blocks) {
    outs.push_back(dense + b.offset);
    expected.push_back(b.layout);
  }
  decode_and_aggregate(messages, mode, outs, expected, &workspace);
  return stats;
}

std::vector<std::pair<std::string, double>> wire_metrics(const WireStats* s) {
  const double nan = std::nan("");
  return {{"wire_message_bytes", s ? double(s->bytes) : 0.0},
          {"wire_bits_per_nnz", s ? s->bits_per_nnz() : nan},
          {"wire_index_bits_per_nnz", s ? s->index_bits_per_nnz() : nan},
          {"wire_value_bits_per_nnz", s ? s->value_bits_per_nnz() : nan},
          {"wire_nominal_bits_per_nnz", s ? s->nominal_bits_per_nnz() : nan},
          {"wire_ratio_vs_dense", s ? s->ratio_vs_dense() : nan},
          {"wire_nominal_ratio_vs_dense", s ? s->nominal_ratio_vs_dense() : nan}};
}

IndexCoding index_coding_from(const std::string& name) {
  if (name == "packed12") return IndexCoding::packed12;
  if (name == "rice") return IndexCoding::rice;
  return IndexCoding::best;
}

ValueCoding value_coding_from(const std::string& name) {
  if (name == "plain") return ValueCoding::plain;
  if (name == "zstd") return ValueCoding::zstd;
  return ValueCoding::best;
}

}  // namespace frugal
