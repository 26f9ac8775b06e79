// The multi-rank pieces the methods are built from, on hand-made inputs: the sparse all-gather +
// aggregation of SparseLoCo and DeMo (every rank sends known entries; the result is the mean over
// the ranks that sent a coordinate, and the bytes are the messages' sizes), and PPO's advantage
// normalisation over the global minibatch (statistics of all ranks' samples, not of one rank's).
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>

#include "comm/communicator.hpp"
#include "comm/network_model.hpp"
#include "methods/outer_sync.hpp"
#include "methods/ppo.hpp"

using namespace frugal;
using namespace frugal::compress;

TEST(SparseAllgather, AggregatesTheMeanOverTheRanksThatSentEachCoordinate) {
  Communicator world(make_mpi_backend(), {});
  const int R = world.size(), me = world.rank();
  // Two tensors: a vector of 8 (k = 2 at top_k 1024) and a 4 x 8 matrix (one chunk, k = 4 at top_k 512).
  const std::vector<CompressBlock> blocks = {{0, vector_layout(8)}, {8, matrix_layout(4, 8)}};
  std::vector<SparseTensor> mine(2);
  sparse_reset(mine[0], blocks[0].layout, 1024);
  sparse_reset(mine[1], blocks[1].layout, 512);
  // Rank r sends coordinates {r % 8, 7} of the vector with values (r + 1) and 10 (r + 1), and
  // coordinates {r, 8 + r, 16, 31} of the matrix with values r, 2 r, 3 r, 4 r (in-chunk order).
  mine[0].idx = {uint16_t(me % 7), 7};
  mine[0].values = {float(me + 1), 10.0f * float(me + 1)};
  mine[1].idx = {uint16_t(me), uint16_t(8 + me), 16, 31};
  mine[1].values = {float(me), 2.0f * float(me), 3.0f * float(me), 4.0f * float(me)};
  std::vector<float> dense(40, -1.0f);
  DecodeWorkspace ws;
  const WireStats stats =
      sparse_allgather_aggregate(world, mine, blocks, Aggregation::mean_selected, EncodeOptions{IndexCoding::packed12}, dense.data(), ws, "t");

  // By hand. Vector: coordinate j < 7 is sent by ranks r with r % 7 == j, value r + 1; 7 by all.
  for (int j = 0; j < 7; j++) {
    double sum = 0;
    int n = 0;
    for (int r = 0; r < R; r++)
      if (r % 7 == j) sum += r + 1, n++;
    EXPECT_FLOAT_EQ(dense[size_t(j)], n ? float(sum / n) : 0.0f) << "vector " << j;
  }
  double all = 0;
  for (int r = 0; r < R; r++) all += 10.0 * (r + 1);
  EXPECT_FLOAT_EQ(dense[7], float(all / R));
  // Matrix (row-major in the dense buffer at offset 8): (0, r) and (1, r) from rank r alone,
  // (2, 0) and (3, 7) from every rank: means 3 (R-1)/2 and 4 (R-1)/2.
  for (int i = 0; i < 32; i++) {
    const int row = i / 8, col = i % 8;
    float want = 0.0f;
    if (row == 0 && col < R) want = float(col);
    if (row == 1 && col < R) want = 2.0f * float(col);
    if (i == 16) want = 3.0f * float(R - 1) / 2.0f;
    if (i == 31) want = 4.0f * float(R - 1) / 2.0f;
    EXPECT_FLOAT_EQ(dense[size_t(8 + i)], want) << "matrix " << row << "," << col;
  }
  // mean_all divides by R instead: the vector's coordinate 0 is (1) / R from rank 0 alone.
  std::vector<float> dense_all(40);
  sparse_allgather_aggregate(world, mine, blocks, Aggregation::mean_all, EncodeOptions{IndexCoding::packed12}, dense_all.data(), ws, "t");
  double sum0 = 0;
  for (int r = 0; r < R; r += 7) sum0 += r + 1;
  EXPECT_FLOAT_EQ(dense_all[0], float(sum0 / R));

  // Bytes: this rank's message is what encode_message makes of its tensors; every rank's message
  // has the same size here (same layouts, k and coding), so the all-gatherv's payload is R of them
  // and a rank forwards all but its ring successor's: (R - 1) messages, plus the 8-byte counts.
  EXPECT_EQ(stats.bytes, int64_t(encode_message(mine, {IndexCoding::packed12}).size()));
  EXPECT_EQ(world.run_totals().wire_bytes, 2 * ((R - 1) * stats.bytes + 8 * (R - 1)));
}

TEST(PpoAdvantages, NormalisedWithTheGlobalMinibatchStatistics) {
  Communicator world(make_mpi_backend(), {});
  const int R = world.size(), me = world.rank();
  // Rank r holds 4 advantages r, r + 1, r + 2, r + 3 (so the ranks' own means differ).
  std::vector<float> a = {float(me), float(me + 1), float(me + 2), float(me + 3)};
  normalize_advantages(a, world);
  // The global sample: {r + j}; its mean (R - 1) / 2 + 1.5 and unbiased std, by hand.
  double mean = 0, var = 0;
  for (int r = 0; r < R; r++)
    for (int j = 0; j < 4; j++) mean += r + j;
  mean /= 4.0 * R;
  for (int r = 0; r < R; r++)
    for (int j = 0; j < 4; j++) var += (r + j - mean) * (r + j - mean);
  const double sd = std::sqrt(var / (4.0 * R - 1));
  for (int j = 0; j < 4; j++) EXPECT_NEAR(a[size_t(j)], (me + j - mean) / (sd + 1e-8), 1e-6) << "rank " << me << " j " << j;
  // A per-rank normalisation would centre every rank on 0; the global one does not (R > 1).
  if (R > 1 && me == 0) {
    EXPECT_LT(a[0] + a[1] + a[2] + a[3], -0.5);
  }
}
