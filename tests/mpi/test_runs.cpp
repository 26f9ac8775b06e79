// Whole runs through the runner on several ranks: evaluation-only runs from an llm.c checkpoint
// and token shard, bitwise resume after a stop signal, and identical traces for identical seeds.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <filesystem>

#include "core/error.hpp"
#include "data/tokens.hpp"
#include "methods/est.hpp"
#include "harness/method.hpp"
#include "harness/runner.hpp"
#include "model/llmc_checkpoint.hpp"
#include "scratch.hpp"
#include "trace/trace.hpp"

using namespace frugal;
namespace fs = std::filesystem;

namespace {

std::string scratch() { return testing::TempDir() + "frugal_runs_np" + std::to_string(world_size()); }

std::vector<std::string> tiny(const std::string& name, std::vector<std::string> extra = {}) {
  std::vector<std::string> o = {"--run.name=" + name, "--run.out_dir=" + scratch(), "--run.overwrite=true",
                                "--run.log_every=0", "--model.n_embd=32", "--model.block_size=16", "--data.seq_len=16",
                                "--data.batch_size=8", "--data.corpus_tokens=50000", "--eval.every=5", "--eval.batches=4",
                                "--trace.flush_every=3"};
  o.insert(o.end(), extra.begin(), extra.end());
  return o;
}
std::string trace_of(const std::string& name) { return scratch() + "/" + name + "/trace.h5"; }

}  // namespace

TEST(Runs, EvaluationOnlyFromLlmcCheckpointAndShardReadsInFileOrder) {
  const std::string dir = scratch() + "/eval_inputs";
  GPT2Config c;
  c.vocab_size = 60;
  c.padded_vocab_size = 64;
  c.max_seq_len = 16;
  c.num_layers = 2;
  c.num_heads = 2;
  c.channels = 16;
  GPT2 model = gpt2_create(c);
  gpt2_init_weights(model, 4, 0.2f);
  std::vector<uint16_t> tokens(3000);
  for (size_t i = 0; i < tokens.size(); i++) tokens[i] = static_cast<uint16_t>((i * 7 + i / 13) % 60);
  if (world_rank() == 0) {
    fs::create_directories(dir);
    save_llmc_checkpoint(model, dir + "/model.bin");
    write_token_shard(dir + "/val_000.bin", tokens);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  const int B = 4, T = 16, batches = 5;
  ASSERT_EQ(run_experiment("", tiny("evalonly", {"--run.steps=0", "--model.init_from=" + dir + "/model.bin",
                                                 "--model.n_layer=2", "--model.n_head=2", "--model.n_embd=16",
                                                 "--data.source=shards", "--data.val_path=" + dir + "/val_*.bin",
                                                 "--eval.batches=" + std::to_string(batches), "--eval.batch_size=4"})),
            0);
  // Reference: the same batches, in file order, on one process.
  double sum = 0;
  std::vector<int> in(B * T), tg(B * T);
  for (int i = 0; i < batches; i++) {
    for (int b = 0; b < B; b++)
      for (int t = 0; t < T; t++) {
        const size_t pos = size_t(i * B + b) * T + t;
        in[b * T + t] = tokens[pos];
        tg[b * T + t] = tokens[pos + 1];
      }
    sum += gpt2_forward(model, in.data(), tg.data(), B, T);
  }
  if (world_rank() == 0) {
    TraceReader t(trace_of("evalonly"));
    EXPECT_EQ(t.attr_string("status"), "finished");
    EXPECT_NEAR(t.attr_double("final_eval_loss"), sum / batches, 1e-5);
    EXPECT_EQ(t.read_doubles("eval/loss").size(), 1u);
  }
}

// Every method, with outer steps every 4 steps so a stop at step 6 falls inside a round (the
// checkpoint must carry inner optimisers, global parameters, momenta and error buffers).
// The RL methods run small: 8 ES members, PPO with 4 environments x 16 steps; PPO also runs on
// Pendulum so the checkpoint must carry the normalisation statistics.
// EST runs steps [0, 7) in stage 1 (so the stop at step 6 falls there), [7, 11) in stage 2, the
// rest dense; est_zero_grad also updates unselected parameters with zero-gradient AdamW.
const std::vector<std::string> kMethods = {"ddp",    "diloco",        "sparseloco", "demo", "est", "est_zero_grad",
                                           "eggroll", "openai_es",    "ppo",        "ppo_pendulum"};
std::vector<std::string> with_method(const std::string& m, std::vector<std::string> extra) {
  const bool pendulum = m == "ppo_pendulum";
  if (m.rfind("est", 0) == 0) extra.insert(extra.end(), {"--est.stage1_end=0.5", "--est.stage2_end=0.75"});
  if (m == "est_zero_grad") extra.push_back("--est.unselected=zero_grad_adamw");
  const std::string method = pendulum ? "ppo" : m == "est_zero_grad" ? "est" : m;
  extra.insert(extra.end(), {"--run.method=" + method, "--diloco.inner_steps=4",
                             "--sparseloco.inner_steps=4", "--es.population=8", "--ppo.num_envs=4", "--ppo.num_steps=16",
                             "--ppo.num_minibatches=2", "--policy.hidden_size=16"});
  if (pendulum) extra.push_back("--env.name=Pendulum-v1");
  return extra;
}
bool is_rl(const std::string& m) { return m == "eggroll" || m == "openai_es" || m.rfind("ppo", 0) == 0; }
// Trace names of the method's domain (see method.hpp: Domain).
std::string samples(const std::string& m) { return is_rl(m) ? "env_steps" : "tokens"; }
std::string metric(const std::string& m) { return is_rl(m) ? "return" : "loss"; }

TEST(Runs, ResumeAfterAStopSignalContinuesTheIdenticalLossSequence) {
  for (const auto& m : kMethods) {
    SCOPED_TRACE("method " + m);
    ASSERT_EQ(run_experiment("", tiny(m + "_straight", with_method(m, {"--run.steps=14"}))), 0);
    // Rank 0 alone raises SIGUSR1 after step 6: all ranks must agree, checkpoint and stop.
    ASSERT_EQ(run_experiment("", tiny(m + "_resumed", with_method(m, {"--run.steps=14", "--debug.signal_at_step=6"}))), 0);
    if (world_rank() == 0) {
      TraceReader t(trace_of(m + "_resumed"));
      EXPECT_EQ(t.attr_string("status"), "stopped");
      EXPECT_EQ(t.attr_int("final_step"), 6);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    ASSERT_EQ(run_experiment("", tiny(m + "_resumed", with_method(m, {"--run.steps=14", "--checkpoint.resume=auto",
                                                                      "--run.overwrite=false"}))),
              0);
    if (world_rank() == 0) {
      TraceReader a(trace_of(m + "_straight")), b(trace_of(m + "_resumed"));
      EXPECT_EQ(b.attr_string("status"), "finished");
      for (const std::string& d : {std::string("steps/step"), "steps/" + metric(m), std::string("steps/lr"),
                                   std::string("steps/grad_norm"), "steps/" + samples(m), std::string("steps/comm_bytes"),
                                   std::string("eval/step"), "eval/" + metric(m)}) {
        const auto x = a.read_doubles(d), y = b.read_doubles(d);
        ASSERT_EQ(x.size(), y.size()) << d;
        for (size_t i = 0; i < x.size(); i++) EXPECT_EQ(x[i], y[i]) << d << " row " << i;  // bitwise
      }
      EXPECT_EQ(a.attr_double("final_eval_" + metric(m)), b.attr_double("final_eval_" + metric(m)));
      EXPECT_EQ(a.attr_double("comm_bytes_per_rank"), b.attr_double("comm_bytes_per_rank"));
    }
  }
}

TEST(Runs, SameSeedAndRanksGiveIdenticalTraces) {
  for (const auto& m : kMethods) {
    SCOPED_TRACE("method " + m);
    ASSERT_EQ(run_experiment("", tiny(m + "_det_a", with_method(m, {"--run.steps=10"}))), 0);
    ASSERT_EQ(run_experiment("", tiny(m + "_det_b", with_method(m, {"--run.steps=10"}))), 0);
    ASSERT_EQ(run_experiment("", tiny(m + "_det_c", with_method(m, {"--run.steps=10", "--run.seed=2"}))), 0);
    if (world_rank() != 0) continue;
    TraceReader a(trace_of(m + "_det_a")), b(trace_of(m + "_det_b")), c(trace_of(m + "_det_c"));
    // Everything but what is measured (times, rates, hosts, the start time) and the run's name.
    const std::set<std::string> measured = {"wall_time", "step_time", "comm_time", "compute_time"};
    const auto same = [&](const std::vector<double>& x, const std::vector<double>& y, const std::string& what) {
      ASSERT_EQ(x.size(), y.size()) << what;
      for (size_t i = 0; i < x.size(); i++)  // NaN == NaN here: "not applicable" on both sides
        EXPECT_TRUE(x[i] == y[i] || (std::isnan(x[i]) && std::isnan(y[i]))) << what << " row " << i;
    };
    size_t compared = 0;
    for (const std::string g : {"steps", "eval", "ranks"}) {
      EXPECT_EQ(a.dataset_names(g), b.dataset_names(g)) << g;
      for (const auto& name : a.dataset_names(g))
        if (!measured.count(name)) same(a.read_doubles(g + "/" + name), b.read_doubles(g + "/" + name), g + "/" + name), compared++;
    }
    for (const char* f : {"step", "control", "payload_bytes", "wire_bytes", "net_time_datacenter", "net_time_wan"})
      same(a.read_call_field(f), b.read_call_field(f), std::string("comm/calls ") + f), compared++;
    EXPECT_EQ(a.read_call_strings("op"), b.read_call_strings("op"));
    EXPECT_EQ(a.read_call_strings("tag"), b.read_call_strings("tag"));
    const std::set<std::string> measured_attrs = {"start_time", "wall_time_s", "comm_time_s", "tokens_per_s",
                                                  "env_steps_per_s", "hosts", "run_name", "label", "config"};
    EXPECT_EQ(a.attr_names(), b.attr_names());
    for (const auto& name : a.attr_names()) {
      if (measured_attrs.count(name)) continue;
      std::string x, y;
      try {
        x = a.attr_string(name), y = b.attr_string(name);
      } catch (const Error&) {
        const double dx = a.attr_double(name), dy = b.attr_double(name);
        EXPECT_TRUE(dx == dy || (std::isnan(dx) && std::isnan(dy))) << "attribute " << name;
        continue;
      }
      EXPECT_EQ(x, y) << "attribute " << name;
    }
    EXPECT_GE(compared, 18u);  // steps/, eval/, ranks/ columns and comm/calls fields
    EXPECT_NE(a.read_doubles("steps/grad_norm"), c.read_doubles("steps/grad_norm"));  // the seed matters
  }
}

// EST end to end: with every rate 1 its trace is DDP's (same losses, gradients and parameters bit
// for bit); with the default schedule the trace's FLOPs are the planned saving exactly, the wire
// bytes shrink in the sampled stages, and the step-time and stage columns are there.
TEST(Runs, EstWithRatesOneIsDdpAndItsTraceCountsTheSavedFlops) {
  const std::vector<std::string> ones = {"--est.stage1_layers=1", "--est.stage1_heads=1", "--est.stage1_mlp=1",
                                         "--est.stage2_heads=1", "--est.stage2_mlp=1", "--model.n_head=4"};
  std::vector<std::string> est_ones = {"--run.method=est", "--run.steps=10"}, ddp = {"--run.method=ddp", "--run.steps=10",
                                                                                   "--model.n_head=4"};
  est_ones.insert(est_ones.end(), ones.begin(), ones.end());
  ASSERT_EQ(run_experiment("", tiny("est_ones", est_ones)), 0);
  ASSERT_EQ(run_experiment("", tiny("est_ddp", ddp)), 0);
  ASSERT_EQ(run_experiment("", tiny("est_default", {"--run.method=est", "--run.steps=20", "--model.n_head=4"})), 0);
  if (world_rank() != 0) return;
  TraceReader a(trace_of("est_ones")), b(trace_of("est_ddp")), e(trace_of("est_default"));
  for (const char* d : {"steps/loss", "steps/grad_norm", "steps/flops", "steps/comm_bytes", "eval/loss"})
    EXPECT_EQ(a.read_doubles(d), b.read_doubles(d)) << d;
  const auto flops = e.read_doubles("steps/flops"), dense = e.read_doubles("steps/flops_dense");
  const auto stage = e.read_doubles("steps/est_stage"), bytes = e.read_doubles("steps/comm_bytes");
  ASSERT_EQ(flops.size(), 20u);
  EXPECT_EQ(e.read_doubles("steps/step_time").size(), 20u);
  double sum = 0, sum_dense = 0;
  for (size_t i = 0; i < flops.size(); i++) {
    sum += flops[i], sum_dense += dense[i];
    EXPECT_EQ(stage[i], i < 4 ? 1.0 : i < 13 ? 2.0 : 3.0) << "step " << i;  // round(0.2 * 20), round(0.65 * 20)
    if (stage[i] < 3) {
      EXPECT_LT(flops[i], dense[i]);
      EXPECT_LT(bytes[i], bytes.back());  // only the subnetwork's gradients travel
    } else {
      EXPECT_EQ(flops[i], dense[i]);
    }
  }
  // The saving the method announced at the start (est_flops_saving) is what the trace adds up to.
  const Config cfg = resolve_config(suite_schema(), "", tiny("x", {"--run.method=est", "--run.steps=20", "--model.n_head=4"}));
  const GPT2Config c = gpt2_config_from(cfg, load_dataset(cfg).vocab_size);
  const double planned = est_flops_saving(est_schedule_from(cfg, 20), c, 8 / world_size(), 16);
  EXPECT_NEAR(1.0 - sum / sum_dense, planned, 1e-12);
  EXPECT_GT(planned, 0.15);  // 22.9% on this tiny model, whose head (Vp x 32) weighs more than in GPT-2
}
