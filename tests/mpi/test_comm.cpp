// The instrumented communicator on several ranks: results equal single-rank arithmetic, and every
// call is recorded with the bytes the formulas in comm/network_model.hpp give.
#include <gtest/gtest.h>

#include <numeric>

#include "comm/communicator.hpp"

using namespace frugal;

namespace {
Communicator world() { return Communicator(make_mpi_backend(), {network_preset("datacenter"), network_preset("wan")}); }
}  // namespace

TEST(Communicator, AllreduceSumsAndRecords) {
  Communicator c = world();
  const int n = c.size(), r = c.rank();
  std::vector<float> v(1000);
  for (size_t i = 0; i < v.size(); i++) v[i] = float(r * 1000 + int(i));
  c.set_step(7);
  c.allreduce(std::span<float>(v), ReduceOp::sum, "test.grad");
  for (size_t i = 0; i < v.size(); i++) {
    float expected = 0;  // single-rank arithmetic, same order as a sum of small integers (exact in fp32)
    for (int k = 0; k < n; k++) expected += float(k * 1000 + int(i));
    ASSERT_EQ(v[i], expected);
  }
  const auto recs = c.take_records();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].step, 7);
  EXPECT_STREQ(recs[0].tag, "test.grad");
  EXPECT_EQ(recs[0].payload_bytes, 4000);
  EXPECT_EQ(recs[0].wire_bytes, 2 * (n - 1) * 4000 / n);
  const CommTotals t = c.take_step_totals();
  EXPECT_EQ(t.calls, 1);
  EXPECT_NEAR(t.net_time_s[1], modelled_time(Op::allreduce, 4000, n, network_preset("wan")), 1e-12);
}

TEST(Communicator, AllgatherAndVariableAllgather) {
  Communicator c = world();
  const int n = c.size(), r = c.rank();
  std::vector<int32_t> mine = {r, 10 * r}, all(2 * size_t(n));
  c.allgather(std::span<const int32_t>(mine), std::span<int32_t>(all), "test.gather");
  for (int k = 0; k < n; k++) EXPECT_EQ(all[2 * size_t(k) + 1], 10 * k);
  // rank k contributes k+1 bytes
  std::vector<uint8_t> block(size_t(r) + 1, uint8_t(r)), out;
  std::vector<size_t> counts;
  c.take_records();
  c.allgatherv(std::span<const uint8_t>(block), out, counts, "test.v");
  ASSERT_EQ(out.size(), size_t(n * (n + 1) / 2));
  size_t pos = 0;
  for (int k = 0; k < n; k++)
    for (int j = 0; j <= k; j++) EXPECT_EQ(out[pos++], k);
  const auto recs = c.take_records();
  ASSERT_EQ(recs.size(), 2u);  // the counts exchange, then the data
  EXPECT_STREQ(recs[0].tag, "test.v.counts");
  const int64_t total = n * (n + 1) / 2;
  EXPECT_EQ(recs[1].payload_bytes, total);
  EXPECT_EQ(recs[1].wire_bytes, n > 1 ? total - ((r + 1) % n + 1) : 0);  // all but the successor's block
}

TEST(Communicator, BroadcastReduceScatterAndControlTraffic) {
  Communicator c = world();
  const int n = c.size(), r = c.rank();
  std::vector<double> b = {r == 0 ? 3.5 : 0.0};
  c.broadcast(std::span<double>(b), 0, "test.bcast");
  EXPECT_EQ(b[0], 3.5);
  std::vector<float> send(size_t(n) * 2, float(r + 1)), recv(2);
  c.reduce_scatter(std::span<const float>(send), std::span<float>(recv), ReduceOp::sum, "test.rs");
  EXPECT_EQ(recv[0], float(n * (n + 1) / 2));
  c.take_step_totals();
  double flag[1] = {1.0};
  c.control_allreduce(std::span<double>(flag, 1), ReduceOp::sum, "runner.metrics");
  EXPECT_EQ(flag[0], double(n));
  EXPECT_EQ(c.take_step_totals().calls, 0);  // bookkeeping stays out of the method's totals
  EXPECT_EQ(c.take_records().back().control, 1);
}
