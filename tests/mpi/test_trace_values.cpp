// The trace's numbers against independent arithmetic, on R ranks: what a run counted (tokens),
// computed (FLOPs: the closed form of GPT-2's GEMMs and attention, written out here), sent (the ring
// collectives' byte counts for the method's known messages) and would have taken on a network (the
// alpha-beta formulas with the presets' numbers typed in here), and that the per-rank totals, the
// per-step columns, the comm/calls records and the summary attributes add up to each other.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <csignal>
#include <filesystem>
#include <map>

#include "data/tokens.hpp"
#include "harness/method.hpp"
#include "harness/runner.hpp"
#include "scratch.hpp"
#include "trace/trace.hpp"

using namespace frugal;
namespace fs = std::filesystem;

namespace {

std::string scratch() { return testing::TempDir() + "frugal_values_np" + std::to_string(world_size()); }
std::string trace_of(const std::string& name) { return scratch() + "/" + name + "/trace.h5"; }

// The model: L = 2, C = 32, NH = 2, T = 16, global batch 8, vocabulary padded to 64 multiples.
constexpr int64_t L = 2, C = 32, T = 16, B = 8, kSteps = 6;
std::vector<std::string> tiny(const std::string& name, std::vector<std::string> extra = {}) {
  std::vector<std::string> o = {"--run.name=" + name, "--run.out_dir=" + scratch(), "--run.overwrite=true",
                                "--run.log_every=0", "--model.n_layer=2", "--model.n_head=2", "--model.n_embd=32",
                                "--model.block_size=16", "--data.seq_len=16", "--data.batch_size=8",
                                "--data.corpus_tokens=50000", "--eval.every=3", "--eval.batches=2",
                                "--run.steps=" + std::to_string(kSteps), "--network.custom_gbps=40",
                                "--network.custom_latency_us=2"};
  o.insert(o.end(), extra.begin(), extra.end());
  return o;
}

struct Net {
  std::string name;
  double beta, alpha;  // bytes/s, s
};
// The presets as documented (100 Gbit/s and 5 us; 1 Gbit/s and 10 ms) and the custom one above.
const std::vector<Net> kNets = {{"datacenter", 100e9 / 8, 5e-6}, {"wan", 1e9 / 8, 10e-3}, {"custom", 40e9 / 8, 2e-6}};

double ring_time(const std::string& op, double bytes, int n, const Net& net) {
  if (n == 1) return 0;
  if (op == "allreduce") return 2.0 * (n - 1) * net.alpha + 2.0 * (n - 1) / n * bytes / net.beta;
  if (op == "allgather" || op == "allgatherv") return (n - 1) * net.alpha + double(n - 1) / n * bytes / net.beta;
  ADD_FAILURE() << "no formula for " << op;
  return 0;
}

// Forward FLOPs of GPT-2 on b sequences: 2 m n k per GEMM (qkv, attention projection, MLP up and
// down, the tied head) and causal attention, 2 C T (T + 1) per sequence and block (QK^T and AV
// over the causal triangle including the diagonal).
double forward_flops(int64_t b, int64_t V) {
  const double BT = double(b * T);
  const double block = 2 * BT * C * (3 * C) + 2 * BT * C * C + 2 * BT * C * (4 * C) + 2 * BT * (4 * C) * C +
                       double(b) * 2.0 * C * T * (T + 1);
  return L * block + 2 * BT * C * V;
}

// Sums of the comm/calls rows of each step, method traffic only.
struct CallSums {
  std::map<int64_t, double> wire, payload, calls;
  std::map<int64_t, std::vector<double>> net;  // per kNets entry
};
CallSums call_sums(const TraceReader& t, int n) {
  CallSums s;
  const auto step = t.read_call_field("step"), control = t.read_call_field("control");
  const auto wire = t.read_call_field("wire_bytes"), payload = t.read_call_field("payload_bytes");
  const auto op = t.read_call_strings("op");
  for (size_t i = 0; i < step.size(); i++) {
    if (control[i] != 0) continue;
    const auto k = static_cast<int64_t>(step[i]);
    s.wire[k] += wire[i], s.payload[k] += payload[i], s.calls[k] += 1;
    auto& net = s.net[k];
    net.resize(kNets.size(), 0.0);
    for (size_t j = 0; j < kNets.size(); j++) net[j] += ring_time(op[i], payload[i], n, kNets[j]);
  }
  return s;
}

// Totals that must agree whatever the method: steps/ columns, comm/calls, ranks/ and the summary.
void expect_consistent(const TraceReader& t, int n) {
  const CallSums calls = call_sums(t, n);
  const auto step = t.read_doubles("steps/step"), bytes = t.read_doubles("steps/comm_bytes");
  double total_bytes = 0;
  for (size_t i = 0; i < step.size(); i++) {
    const auto k = static_cast<int64_t>(step[i]);
    const double from_calls = calls.wire.count(k) ? calls.wire.at(k) : 0.0;
    EXPECT_EQ(bytes[i], from_calls) << "steps/comm_bytes at step " << k << " vs its comm/calls rows";
    total_bytes += bytes[i];
    for (size_t j = 0; j < kNets.size(); j++) {
      const double want = calls.net.count(k) ? calls.net.at(k)[j] : 0.0;
      EXPECT_NEAR(t.read_doubles("steps/net_time_" + kNets[j].name)[i], want, 1e-12 + 1e-9 * want)
          << kNets[j].name << " at step " << k;
    }
  }
  // ranks/: rank 0's totals are the sums of its method calls; the summary is the mean over ranks.
  const auto sent = t.read_doubles("ranks/bytes_sent"), ncalls = t.read_doubles("ranks/calls");
  ASSERT_EQ(sent.size(), size_t(n));
  EXPECT_EQ(sent[0], total_bytes);
  double calls_total = 0, mean_sent = 0;
  for (const auto& [k, c] : calls.calls) calls_total += c;
  EXPECT_EQ(ncalls[0], calls_total);
  for (double s : sent) mean_sent += s / n;
  EXPECT_DOUBLE_EQ(t.attr_double("comm_bytes_per_rank"), mean_sent);
  double flops = 0;
  for (double f : t.read_doubles("steps/flops")) flops += f;
  EXPECT_DOUBLE_EQ(t.attr_double("flops_total"), flops);
  for (const auto& net : kNets) {
    double sum = 0;
    for (double x : t.read_doubles("steps/net_time_" + net.name)) sum += x;
    EXPECT_NEAR(t.attr_double("net_time_s_" + net.name), sum, 1e-9 * sum) << net.name;
  }
}

}  // namespace

TEST(TraceValues, DdpCountsTokensFlopsRingBytesAndModelledTimes) {
  ASSERT_EQ(run_experiment("", tiny("ddp")), 0);
  if (world_rank() != 0) return;
  const int n = world_size();
  TraceReader t(trace_of("ddp"));
  const int64_t params = t.attr_int("n_params");
  const int64_t V = load_dataset(resolve_config(suite_schema(), "", tiny("x"))).vocab_size;
  const int64_t vocab = (V + 63) / 64 * 64;  // padded to model.vocab_multiple
  const auto tokens = t.read_doubles("steps/tokens"), flops = t.read_doubles("steps/flops");
  const auto bytes = t.read_doubles("steps/comm_bytes");
  // n_params by hand: embeddings, per block 2 LayerNorms + qkv + proj + MLP, final LayerNorm.
  EXPECT_EQ(params, vocab * C + T * C + L * (4 * C + 3 * C * C + 3 * C + C * C + C + 4 * C * C + 4 * C + 4 * C * C + C) + 2 * C);
  ASSERT_EQ(tokens.size(), size_t(kSteps));
  for (int64_t i = 0; i < kSteps; i++) {
    EXPECT_EQ(tokens[i], double((i + 1) * B * T)) << "step " << i + 1;
    // Forward + backward (2 x forward) of every rank's B/n sequences.
    EXPECT_DOUBLE_EQ(flops[i], 3.0 * n * forward_flops(B / n, vocab)) << "step " << i + 1;
    // One ring all-reduce of the fp32 gradients: 2 (n-1)/n of their bytes leave each rank.
    EXPECT_EQ(bytes[i], double(2 * (n - 1) * (4 * params) / n)) << "step " << i + 1;
    for (const auto& net : kNets)
      EXPECT_NEAR(t.read_doubles("steps/net_time_" + net.name)[i], ring_time("allreduce", 4.0 * params, n, net), 1e-12)
          << net.name;
  }
  EXPECT_EQ(t.attr_int("tokens_total"), kSteps * B * T);
  EXPECT_EQ(t.attr_int("final_step"), kSteps);
  expect_consistent(t, n);
}

TEST(TraceValues, SparseLoCoSendsItsMessagesAndTheirCountsOnlyAtOuterSteps) {
  ASSERT_EQ(run_experiment("", tiny("sparseloco", {"--run.method=sparseloco", "--sparseloco.inner_steps=3"})), 0);
  if (world_rank() != 0) return;
  const int n = world_size();
  TraceReader t(trace_of("sparseloco"));
  const auto bytes = t.read_doubles("steps/comm_bytes"), message = t.read_doubles("steps/wire_message_bytes");
  const CallSums calls = call_sums(t, n);
  for (int64_t i = 0; i < kSteps; i++) {
    if ((i + 1) % 3 != 0) {
      EXPECT_EQ(bytes[i], 0) << "an inner step sends nothing (step " << i + 1 << ")";
      continue;
    }
    // An all-gather of the n message sizes (8 bytes each) and the all-gatherv of the messages, whose
    // payload is every rank's message; with 2 ranks rank 0 forwards exactly its own message.
    EXPECT_EQ(calls.calls.at(i + 1), 2);
    EXPECT_GE(calls.payload.at(i + 1), n * 1.0 + 8.0 * n);
    if (n == 2) {
      EXPECT_EQ(bytes[i], message[i] + 8) << "step " << i + 1;
    }
    EXPECT_GT(message[i], 0);
  }
  expect_consistent(t, n);
}

TEST(TraceValues, EveryMethodsTotalsAddUp) {
  for (const std::string m : {"diloco", "demo", "est", "eggroll", "openai_es", "ppo"}) {
    SCOPED_TRACE(m);
    ASSERT_EQ(run_experiment("", tiny(m, {"--run.method=" + m, "--diloco.inner_steps=2", "--es.population=8",
                                          "--ppo.num_envs=4", "--ppo.num_steps=16", "--ppo.num_minibatches=2",
                                          "--policy.hidden_size=16", "--est.stage1_end=0.5", "--est.stage2_end=0.75"})),
              0);
    if (world_rank() == 0) expect_consistent(TraceReader(trace_of(m)), world_size());
  }
}

// trace.comm_calls = false keeps the totals (the same bytes and modelled times) without the rows;
// trace.path puts the trace where it is told.
TEST(TraceValues, CommCallsOffKeepsTotalsAndTracePathIsHonoured) {
  const std::string path = scratch() + "/elsewhere/custom_trace.h5";
  ASSERT_EQ(run_experiment("", tiny("calls_off", {"--trace.comm_calls=false", "--trace.path=" + path})), 0);
  if (world_rank() != 0) return;
  EXPECT_FALSE(fs::exists(trace_of("calls_off")));
  TraceReader off(path), on(trace_of("ddp"));
  EXPECT_EQ(off.num_call_records(), 0);
  EXPECT_GT(on.num_call_records(), 0);
  EXPECT_EQ(off.read_doubles("steps/comm_bytes"), on.read_doubles("steps/comm_bytes"));
  EXPECT_EQ(off.read_doubles("ranks/bytes_sent"), on.read_doubles("ranks/bytes_sent"));
  EXPECT_EQ(off.read_doubles("steps/net_time_custom"), on.read_doubles("steps/net_time_custom"));
}
