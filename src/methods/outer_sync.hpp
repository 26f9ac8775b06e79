#pragma once
// The piece the sparse-communication methods (SparseLoCo, DeMo) share: the all-gather of every
// rank's compressed tensors, their decoding and their aggregation, plus its trace columns.
#include <vector>

#include "comm/communicator.hpp"
#include "compress/chunking.hpp"
#include "compress/sparse_message.hpp"

namespace frugal {

// Encodes this rank's sparse tensors (one per block), all-gathers the messages (allgatherv: the
// supports differ between ranks) and aggregates every block into dense (numel of the layout,
// blocks at their offsets) in rank order, so every rank computes bit-identical results.
compress::WireStats sparse_allgather_aggregate(Communicator& comm, const std::vector<compress::SparseTensor>& mine,
                                               const std::vector<compress::CompressBlock>& blocks,
                                               compress::Aggregation mode, const compress::EncodeOptions& wire,
                                               float* dense, compress::DecodeWorkspace& workspace, std::string_view tag);

// Per-step trace columns of a sparse outer step (NaN on inner-only steps).
std::vector<std::pair<std::string, double>> wire_metrics(const compress::WireStats* stats);

compress::IndexCoding index_coding_from(const std::string& name);
compress::ValueCoding value_coding_from(const std::string& name);

}  // namespace frugal
