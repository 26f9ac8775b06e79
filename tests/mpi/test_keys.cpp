// Every configuration key does something. A key that is parsed but never read, or read and then
// ignored, passes every other test; here each key of the table is changed from its default and the
// run's outcome - the method's checkpointed state, its losses and the bytes it sent - must change.
// The runner's own keys (run.max_samples, run.threads, network.presets, checkpoint.keep) get a test
// of what exactly they do. tests/unit/test_config.cpp checks that every key of the schema is
// mentioned by some test, so a new key without a test fails the suite.
#include <gtest/gtest.h>
#include <mpi.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>

#include "harness/method.hpp"
#include "harness/runner.hpp"
#include "scratch.hpp"
#include "trace/trace.hpp"

using namespace frugal;
namespace fs = std::filesystem;

namespace {

// One folder for the whole job (run_experiment needs every rank to name the same run folder).
std::string runs_dir() {
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return testing::TempDir() + "frugal_keys_np" + std::to_string(n);
}

const std::vector<std::string> kSmall = {"--model.n_embd=32", "--model.n_head=2", "--model.block_size=16",
                                         "--data.seq_len=16", "--data.batch_size=8", "--data.corpus_tokens=30000",
                                         "--es.population=8", "--ppo.num_envs=4", "--ppo.num_steps=16",
                                         "--ppo.num_minibatches=2", "--policy.hidden_size=8",
                                         "--diloco.inner_steps=2", "--sparseloco.inner_steps=2",
                                         "--optim.warmup_steps=2", "--est.stage1_end=1", "--est.stage2_end=1"};

// What a short run leaves behind: the method's state bytes, the training losses, the bytes sent.
struct Outcome {
  std::vector<char> state;
  std::vector<double> losses;
  int64_t wire_bytes = 0;
  int64_t params = 0;
  bool operator==(const Outcome&) const = default;
};

Outcome run_short(const std::string& method, const std::vector<std::string>& extra, int steps = 5) {
  std::vector<std::string> o = kSmall;
  o.push_back("--run.method=" + method);
  o.insert(o.end(), extra.begin(), extra.end());
  const Config cfg = resolve_config(suite_schema(), "", o);
  Communicator world(make_mpi_backend(), networks_from(cfg));
  RunContext ctx{cfg, world, steps, static_cast<uint64_t>(cfg.integer("run.seed")), {}};
  auto m = find_method(method).make(ctx);
  Outcome out;
  for (int s = 0; s < steps; s++) out.losses.push_back(m->step(s).loss);
  StateWriter w;
  StateFields fields(w);
  m->state(fields);
  const std::string path = scratch_file("keys_state");
  w.save(path);
  std::ifstream in(path, std::ios::binary);
  out.state.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  out.wire_bytes = world.run_totals().wire_bytes;
  out.params = m->num_params();
  return out;
}

struct Live {
  std::string key, value, method;
  std::vector<std::string> with = {};  // context the key needs to matter (on both sides)
};

// Each key with a value other than its default, and a method that reads it.
const std::vector<Live> kLive = {
    {"model.vocab_size", "600", "ddp"},          {"model.init_std", "0.05", "ddp"},
    {"model.vocab_multiple", "100", "ddp"},      {"data.corpus_vocab", "300", "ddp"},
    {"data.corpus_topics", "3", "ddp"},          {"data.corpus_seed", "7", "ddp"},
    {"optim.warmup_steps", "1", "ddp"},          {"optim.min_lr_ratio", "0.5", "ddp"},
    {"optim.beta1", "0.5", "ddp"},               {"optim.beta2", "0.5", "ddp"},
    {"optim.eps", "0.01", "ddp"},                {"optim.grad_clip", "0.01", "ddp"},
    {"optim.schedule", "linear", "ddp"},         {"optim.decay_vectors", "true", "ddp"},
    {"optim.weight_decay", "0.5", "ddp"},        {"diloco.outer_momentum", "0.5", "diloco"},
    {"demo.index_coding", "packed12", "demo"},   {"demo.decay", "0.5", "demo"},
    {"sparseloco.index_coding", "packed12", "sparseloco"}, {"sparseloco.ef_beta", "0.5", "sparseloco"},
    {"sparseloco.value_coding", "plain", "sparseloco"},
    {"est.share_across_layers", "true", "est", {"--est.stage1_layers=1"}},  {"est.stage1_layers", "1", "est"},
    {"policy.hidden_layers", "1", "eggroll"},    {"policy.activation", "relu", "eggroll"},
    {"es.sigma", "0.05", "eggroll"},             {"es.lr", "0.1", "eggroll"},
    {"es.optimizer", "sgd", "eggroll"},          {"es.weight_decay", "0.1", "eggroll"},
    {"es.fitness", "centered_rank", "eggroll"},  {"es.group_size", "2", "eggroll"},
    {"es.noise_reuse", "2", "eggroll"},          {"es.population", "16", "openai_es"},
    {"eggroll.rank", "2", "eggroll"},            {"env.name", "Acrobot-v1", "ppo"},
    {"ppo.anneal_lr", "false", "ppo"},           {"ppo.adam_eps", "0.1", "ppo"},
    {"ppo.gamma", "0.5", "ppo"},                 {"ppo.gae_lambda", "0.5", "ppo"},
    {"ppo.update_epochs", "2", "ppo"},           {"ppo.norm_adv", "false", "ppo"},
    {"ppo.clip_coef", "0.01", "ppo"},            {"ppo.clip_vloss", "false", "ppo", {"--ppo.clip_coef=0.001"}},
    {"ppo.ent_coef", "0.5", "ppo"},              {"ppo.vf_coef", "2", "ppo"},
    {"ppo.max_grad_norm", "0.01", "ppo"},        {"ppo.normalize", "on", "ppo"},
    {"ppo.lr", "0.01", "ppo"},
};

}  // namespace

TEST(Keys, EveryMethodKeyChangesTheOutcome) {
  std::map<std::vector<std::string>, Outcome> baseline;
  for (const auto& k : kLive) {
    SCOPED_TRACE(k.key + "=" + k.value + " (" + k.method + ")");
    std::vector<std::string> id = k.with;
    id.push_back(k.method);
    if (!baseline.count(id)) baseline[id] = run_short(k.method, k.with);
    std::vector<std::string> changed_with = k.with;
    changed_with.push_back("--" + k.key + "=" + k.value);
    const Outcome changed = run_short(k.method, changed_with);
    EXPECT_FALSE(changed == baseline[id]) << "the key changed nothing";
  }
  // es.noise_reuse = 2 shares one draw between epochs 0 and 1: the second epoch differs from a
  // fresh draw, but 0 (the same noise forever) and 2 agree over the first two epochs.
  EXPECT_EQ(run_short("eggroll", {"--es.noise_reuse=0"}, 2).state, run_short("eggroll", {"--es.noise_reuse=2"}, 2).state);
}

TEST(Keys, MaxSamplesEndsTheRunAtTheStepThatReachesIt) {
  std::vector<std::string> o = kSmall;
  // 8 x 16 = 128 tokens a step: 300 tokens are reached at step 3.
  o.insert(o.end(), {"--run.name=budget", "--run.out_dir=" + runs_dir(), "--run.overwrite=true",
                     "--run.log_every=0", "--run.steps=50", "--run.max_samples=300", "--eval.batches=1",
                     "--eval.every=0", "--run.threads=1", "--network.presets=wan"});
  ASSERT_EQ(run_experiment("", o), 0);
  if (world_rank() != 0) return;
  TraceReader t(runs_dir() + "/budget/trace.h5");
  EXPECT_EQ(t.attr_int("final_step"), 3);
  EXPECT_EQ(t.attr_int("tokens_total"), 3 * 128);
  EXPECT_EQ(t.read_doubles("eval/step"), std::vector<double>{3.0});  // the budget's last step is evaluated
  EXPECT_EQ(t.attr_int("threads_per_rank"), 1);                       // run.threads
  EXPECT_EQ(t.attr_string("networks"), "wan");                        // network.presets
  EXPECT_TRUE(t.has_dataset("steps/net_time_wan"));
  EXPECT_FALSE(t.has_dataset("steps/net_time_datacenter"));
}

TEST(Keys, CheckpointKeepLeavesTheNewestCheckpoints) {
  std::vector<std::string> o = kSmall;
  o.insert(o.end(), {"--run.name=keep", "--run.out_dir=" + runs_dir(), "--run.overwrite=true",
                     "--run.log_every=0", "--run.steps=8", "--checkpoint.every=2", "--checkpoint.keep=3",
                     "--eval.batches=0"});
  ASSERT_EQ(run_experiment("", o), 0);
  if (world_rank() != 0) return;
  std::vector<std::string> dirs;
  for (const auto& e : fs::directory_iterator(runs_dir() + "/keep/checkpoints"))
    if (e.is_directory()) dirs.push_back(e.path().filename().string());
  std::sort(dirs.begin(), dirs.end());
  EXPECT_EQ(dirs, (std::vector<std::string>{"step_00000004", "step_00000006", "step_00000008"}));
  // No evaluation configured: eval/ still has its columns (SCHEMA.md), empty.
  TraceReader t(runs_dir() + "/keep/trace.h5");
  for (const char* d : {"eval/step", "eval/tokens", "eval/loss"}) {
    ASSERT_TRUE(t.has_dataset(d)) << d;
    EXPECT_TRUE(t.read_doubles(d).empty()) << d;
  }
}

// SIGTERM (what Slurm sends at a time limit without --signal) stops the run like SIGUSR1: every
// rank checkpoints at the next step boundary, the trace says stopped, and a resume finishes it with
// the losses of an uninterrupted run.
TEST(Keys, SigtermCheckpointsAndStopsLikeSigusr1) {
  std::vector<std::string> o = kSmall;
  o.insert(o.end(), {"--run.out_dir=" + runs_dir(), "--run.overwrite=true", "--run.log_every=0", "--run.steps=6",
                     "--eval.batches=0"});
  auto with = [&](std::vector<std::string> extra) {
    extra.insert(extra.begin(), o.begin(), o.end());
    return extra;
  };
  ASSERT_EQ(run_experiment("", with({"--run.name=term_straight"})), 0);
  ASSERT_EQ(run_experiment("", with({"--run.name=term", "--debug.signal_at_step=3", "--debug.signal=SIGTERM"})), 0);
  if (world_rank() == 0) {
    TraceReader t(runs_dir() + "/term/trace.h5");
    EXPECT_EQ(t.attr_string("status"), "stopped");
    EXPECT_EQ(t.attr_int("final_step"), 3);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  ASSERT_EQ(run_experiment("", with({"--run.name=term", "--checkpoint.resume=auto", "--run.overwrite=false"})), 0);
  if (world_rank() != 0) return;
  TraceReader a(runs_dir() + "/term_straight/trace.h5"), b(runs_dir() + "/term/trace.h5");
  EXPECT_EQ(b.attr_string("status"), "finished");
  EXPECT_EQ(a.read_doubles("steps/loss"), b.read_doubles("steps/loss"));
}
