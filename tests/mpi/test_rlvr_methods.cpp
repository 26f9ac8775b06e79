// RL on a language model on several ranks: sft, grpo (LoRA and full fine-tuning) and eggroll_lm,
// and the extrapolation of GRPO's trajectories.
// - R ranks compute what one process computes (the same global batch, split): losses and
//   parameters agree to float tolerance; the replicas are bit-identical
// - eggroll_lm sends exactly the N fitness floats per step
// - resume after a stop signal continues the identical trace; same seed, identical traces
// - bad input gets a clear error: G = 1, problems that do not divide over the ranks, a base of
//   another shape, max_new_tokens beyond the context, an unknown task
// All start from a small SFT base made once per test program (run through the runner, written by
// the sft method as an llm.c checkpoint), with a format reward so rewards vary within groups.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <filesystem>

#include "core/error.hpp"
#include "extrapolate/trajectory.hpp"
#include "harness/method.hpp"
#include "harness/runner.hpp"
#include "model/llmc_checkpoint.hpp"
#include "scratch.hpp"
#include "trace/trace.hpp"

using namespace frugal;
namespace fs = std::filesystem;

namespace {

std::string scratch() { return testing::TempDir() + "frugal_rlvr_np" + std::to_string(world_size()); }
std::string trace_of(const std::string& name) { return scratch() + "/" + name + "/trace.h5"; }

// A 1-block, 32-wide byte model on 1-digit additions and subtractions.
std::vector<std::string> small(std::vector<std::string> extra = {}) {
  std::vector<std::string> o = {"--run.out_dir=" + scratch(), "--run.overwrite=true", "--run.log_every=0",
                                "--model.n_layer=1", "--model.n_embd=32", "--model.n_head=2", "--model.block_size=16",
                                "--model.vocab_size=128", "--task.max_digits=1", "--task.ops=+-",
                                "--task.format_reward=0.5", "--rlvr.prompts=8", "--rlvr.group_size=4",
                                "--rlvr.max_new_tokens=4", "--sft.batch_size=16", "--es.population=16",
                                "--es.optimizer=sgd", "--es.sigma=0.05", "--es.lr=0.01", "--optim.lr=3e-3",
                                "--optim.warmup_steps=0", "--eval.every=2", "--eval.batches=8", "--trace.flush_every=2"};
  o.insert(o.end(), extra.begin(), extra.end());
  return o;
}

// The SFT base: made once per program, by every rank together; rank 0 writes it.
const std::string& sft_base() {
  static const std::string path = [] {
    const int rc = run_experiment("", small({"--run.name=base", "--run.method=sft", "--run.steps=60", "--eval.batches=0"}));
    EXPECT_EQ(rc, 0);
    MPI_Barrier(MPI_COMM_WORLD);
    return scratch() + "/base/model.bin";
  }();
  return path;
}

Config rlvr_config(const std::string& method, std::vector<std::string> extra = {}) {
  std::vector<std::string> o = small({"--run.method=" + method, "--model.init_from=" + sft_base()});
  o.insert(o.end(), extra.begin(), extra.end());
  return resolve_config(suite_schema(), "", o);
}

uint64_t fnv1a(const std::vector<float>& v) {
  uint64_t h = 1469598103934665603ull;
  const auto* b = reinterpret_cast<const unsigned char*>(v.data());
  for (size_t i = 0; i < v.size() * sizeof(float); i++) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

struct Ran {
  std::vector<double> losses;
  std::vector<float> params;
  int64_t wire_bytes = 0;
  double accuracy = 0;
};

Ran run_steps(Communicator& comm, const Config& cfg, const std::string& method, const std::string& section, int steps) {
  RunContext ctx{cfg, comm, steps, 1, ""};
  auto m = find_method(method).make(ctx);
  Ran out;
  for (int s = 0; s < steps; s++) out.losses.push_back(m->step(s).loss);
  out.wire_bytes = comm.run_totals().wire_bytes;
  out.params = state_section(*m, section);
  out.accuracy = m->evaluate(8);
  return out;
}

struct Case {
  std::string name, method, section;
  std::vector<std::string> overrides;
};
const std::vector<Case> kCases = {
    {"sft", "sft", "sft.params", {}},
    {"grpo_lora", "grpo", "grpo.params", {"--lora.rank=2"}},
    {"grpo_full_dapo", "grpo", "grpo.params",
     {"--grpo.finetune=full", "--grpo.loss_agg=token-mean", "--grpo.clip_high=0.28", "--grpo.epochs=2",
      "--grpo.minibatches=2", "--grpo.dynamic_sampling=true"}},
    {"grpo_drgrpo_rloo", "grpo", "grpo.params",
     {"--grpo.norm_adv_by_std=false", "--grpo.loss_agg=seq-mean-token-sum-norm", "--grpo.advantage=rloo",
      "--grpo.kl=k1", "--grpo.beta=0.01"}},
    {"grpo_sampled_dualclip", "grpo", "grpo.params",
     {"--rlvr.temperature=0.8", "--rlvr.top_k=20", "--rlvr.top_p=0.9", "--grpo.clip_low=0.1", "--grpo.dual_clip=3",
      "--grpo.epochs=2"}},
    {"eggroll_lm", "eggroll_lm", "eggroll_lm.params", {}},
    {"eggroll_lm_r2_qkv_fc", "eggroll_lm", "eggroll_lm.params", {"--eggroll_lm.rank=2", "--eggroll_lm.matrices=qkv,fc"}},
};

}  // namespace

// The same global batch on R ranks and on one process: the same losses (rewards) and parameters to
// float tolerance, and bit-identical replicas.
TEST(RlvrMethods, RanksComputeWhatOneProcessComputes) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    const Config cfg = rlvr_config(c.method, c.overrides);
    Communicator world(make_mpi_backend(), {});
    Communicator self(make_mpi_self_backend(), {});
    const Ran split = run_steps(world, cfg, c.method, c.section, 3);
    const Ran single = run_steps(self, cfg, c.method, c.section, 3);
    double root_loss_sum = 0;
    for (size_t s = 0; s < split.losses.size(); s++) {
      // Every rank reports the global value (sums crossed the ranks as control traffic).
      EXPECT_NEAR(split.losses[s], single.losses[s], 1e-5) << "step " << s;
      root_loss_sum += single.losses[s];
    }
    uint64_t mine = fnv1a(split.params), root = mine;
    MPI_Bcast(&root, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    EXPECT_EQ(mine, root) << "replicas differ";
    // The parameters agree to float tolerance relative to how far they moved (AdamW divides by
    // sqrt(v), so an element with a near-zero gradient may differ by a few ulps of its update).
    RunContext ctx{cfg, self, 0, 1, ""};
    auto fresh = find_method(c.method).make(ctx);
    const std::vector<float> base = state_section(*fresh, c.section);
    double moved = 0, apart = 0;
    for (size_t i = 0; i < base.size(); i++)
      moved += std::pow(single.params[i] - base[i], 2), apart += std::pow(split.params[i] - single.params[i], 2);
    EXPECT_GT(std::sqrt(moved), 1e-4) << "no update at all";
    EXPECT_LT(std::sqrt(apart), 1e-3 * std::sqrt(moved)) << "R ranks and one process disagree";
    EXPECT_EQ(split.accuracy, single.accuracy);
    if (c.method != "sft") {
      EXPECT_GT(root_loss_sum, 0.0) << "no reward in 3 steps";
    }
  }
}

TEST(RlvrMethods, EggrollLmSendsOnlyTheFitnessVector) {
  const Config cfg = rlvr_config("eggroll_lm");
  Communicator world(make_mpi_backend(), {});
  const Ran r = run_steps(world, cfg, "eggroll_lm", "eggroll_lm.params", 3);
  const int R = world.size();
  // 16 members: per step an all-gather in which each rank sends its 16 / R floats to R - 1 others.
  EXPECT_EQ(r.wire_bytes, 3 * int64_t(16 / R) * 4 * (R - 1));
}

TEST(RlvrMethods, ResumeAndSameSeedGiveIdenticalTraces) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    std::vector<std::string> base =
        small({"--run.method=" + c.method, "--model.init_from=" + sft_base(), "--run.steps=6", "--eval.at_start=true"});
    base.insert(base.end(), c.overrides.begin(), c.overrides.end());
    const auto with = [&](std::vector<std::string> extra) {
      std::vector<std::string> o = base;
      o.insert(o.end(), extra.begin(), extra.end());
      return o;
    };
    ASSERT_EQ(run_experiment("", with({"--run.name=" + c.name + "_a"})), 0);
    ASSERT_EQ(run_experiment("", with({"--run.name=" + c.name + "_b"})), 0);
    ASSERT_EQ(run_experiment("", with({"--run.name=" + c.name + "_r", "--debug.signal_at_step=3"})), 0);
    MPI_Barrier(MPI_COMM_WORLD);
    ASSERT_EQ(run_experiment("", with({"--run.name=" + c.name + "_r", "--checkpoint.resume=auto", "--run.overwrite=false"})), 0);
    if (world_rank() != 0) continue;
    TraceReader a(trace_of(c.name + "_a")), b(trace_of(c.name + "_b")), r(trace_of(c.name + "_r"));
    EXPECT_EQ(r.attr_string("status"), "finished");
    const std::string train = a.attr_string("train_metric"), samples = a.attr_string("sample_unit");
    EXPECT_EQ(a.attr_string("eval_metric"), "accuracy");
    // eval.at_start: the base's accuracy is the first row (step 0), then every eval.every = 2 steps.
    EXPECT_EQ(a.read_doubles("eval/step"), (std::vector<double>{0, 2, 4, 6}));
    for (const std::string& d : {"steps/" + train, std::string("steps/grad_norm"), "steps/" + samples,
                                 std::string("steps/comm_bytes"), std::string("eval/accuracy")}) {
      const auto x = a.read_doubles(d), y = b.read_doubles(d), z = r.read_doubles(d);
      ASSERT_EQ(x.size(), y.size()) << d;
      ASSERT_EQ(x.size(), z.size()) << d;
      for (size_t i = 0; i < x.size(); i++) {
        EXPECT_EQ(x[i], y[i]) << d << " row " << i << " (same seed)";
        EXPECT_EQ(x[i], z[i]) << d << " row " << i << " (resumed)";
      }
    }
    if (c.method != "sft") {
      for (const std::string col : {"accuracy", "response_length_mean", "truncated_fraction"}) {
        const auto x = a.read_doubles("steps/" + col), z = r.read_doubles("steps/" + col);
        EXPECT_EQ(x, z) << col;
      }
    }
  }
}

TEST(RlvrMethods, BadInputGetsAClearError) {
  Communicator world(make_mpi_backend(), {});
  const auto error_of = [&](const std::string& method, std::vector<std::string> extra) -> std::string {
    try {
      const Config cfg = rlvr_config(method, extra);
      RunContext ctx{cfg, world, 2, 1, ""};
      find_method(method).make(ctx);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(error_of("grpo", {"--rlvr.group_size=1"}).find("rlvr.group_size must be at least 2"), std::string::npos);
  if (world_size() > 1) {
    EXPECT_NE(error_of("grpo", {"--rlvr.prompts=" + std::to_string(world_size() + 1)}).find("divisible by the number of ranks"),
              std::string::npos);
  }
  EXPECT_NE(error_of("grpo", {"--rlvr.max_new_tokens=12"}).find("exceeds the model's context"), std::string::npos);
  // Countdown prompts with numbers up to 9 ("9,9,9>729=") and 4 new tokens do not fit 16 positions.
  EXPECT_NE(error_of("grpo", {"--task.name=countdown", "--task.countdown_max_number=9"}).find("exceeds the model's context"),
            std::string::npos);
  EXPECT_NE(error_of("grpo", {"--model.n_embd=64"}).find("set the [model] keys to the checkpoint's shape"), std::string::npos);
  EXPECT_NE(error_of("eggroll_lm", {"--rlvr.group_size=3"}).find("must be even"), std::string::npos);
  EXPECT_NE(error_of("grpo", {"--lora.targets=qkv,attn"}).find("unknown matrix 'attn'"), std::string::npos);
  try {
    rlvr_config("grpo", {"--task.name=gsm8k"});
    ADD_FAILURE() << "an unknown task was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("task.name"), std::string::npos) << e.what();
  }
}

// GRPO's trajectory (grpo.trajectory_every) and the extrapolators that read it: writing the
// trajectory does not change the run; a resumed run writes the identical trajectory; checkpoint
// K is the merged model the run ships, with the accuracy the trace records; every extrapolator
// runs through the runner on it, evaluates W_K to the same accuracy, writes a model GRPO continues
// from; bad input gets a clear error.
TEST(RlvrMethods, TrajectoryFeedsEveryExtrapolatorAndResumesIdentically) {
  const std::vector<std::string> grpo =
      small({"--run.method=grpo", "--model.init_from=" + sft_base(), "--run.steps=6", "--eval.at_start=true",
             "--eval.batches=32", "--optim.lr=1e-2"});  // the accuracy varies: AlphaRL regresses on it
  const auto with = [](std::vector<std::string> o, std::vector<std::string> extra) {
    o.insert(o.end(), extra.begin(), extra.end());
    return o;
  };
  ASSERT_EQ(run_experiment("", with(grpo, {"--run.name=traj_off"})), 0);
  ASSERT_EQ(run_experiment("", with(grpo, {"--run.name=traj_a", "--grpo.trajectory_every=2"})), 0);
  ASSERT_EQ(run_experiment("", with(grpo, {"--run.name=traj_r", "--grpo.trajectory_every=2", "--debug.signal_at_step=3"})), 0);
  MPI_Barrier(MPI_COMM_WORLD);
  ASSERT_EQ(run_experiment("", with(grpo, {"--run.name=traj_r", "--grpo.trajectory_every=2", "--checkpoint.resume=auto",
                                           "--run.overwrite=false"})),
            0);
  MPI_Barrier(MPI_COMM_WORLD);
  const std::string path = scratch() + "/traj_a/trajectory.h5";
  if (world_rank() == 0) {
    TraceReader off(trace_of("traj_off")), a(trace_of("traj_a"));
    EXPECT_EQ(off.read_doubles("steps/reward"), a.read_doubles("steps/reward"));
    EXPECT_EQ(off.read_doubles("eval/accuracy"), a.read_doubles("eval/accuracy"));
    const Trajectory t = read_trajectory(path), r = read_trajectory(scratch() + "/traj_r/trajectory.h5");
    EXPECT_EQ(t.steps, (std::vector<int64_t>{0, 2, 4, 6}));
    EXPECT_EQ(t.accuracy, a.read_doubles("eval/accuracy"));  // eval.every = 2: the runner's evaluations
    EXPECT_EQ(r.steps, t.steps);
    EXPECT_EQ(r.accuracy, t.accuracy);
    for (int i = 0; i < t.checkpoints(); i++) EXPECT_EQ(fnv1a(trajectory_params(r, i)), fnv1a(trajectory_params(t, i))) << i;
    EXPECT_EQ(trajectory_params(t, 3), load_llmc_checkpoint(scratch() + "/traj_a/model.bin").params);
    EXPECT_EQ(trajectory_params(t, 0), load_llmc_checkpoint(sft_base()).params);
  }
  for (const std::string m : {"next", "alpharl", "rl_extra", "relex"}) {
    SCOPED_TRACE(m);
    const std::string name = "extrapolate_" + m;
    ASSERT_EQ(run_experiment("", small({"--run.name=" + name, "--run.method=extrapolate", "--extrapolate.method=" + m,
                                        "--extrapolate.trajectory=" + path, "--extrapolate.observed_step=4",
                                        "--extrapolate.target_step=6", "--next.k=1", "--next.epochs=5", "--next.hidden=8",
                                        m == "next" ? "--next.alpha_sweep=0.5,2" : "--next.alpha_sweep=",
                                        "--run.steps=1", "--eval.at_start=true", "--eval.batches=32"})),
              0);
    MPI_Barrier(MPI_COMM_WORLD);
    if (world_rank() == 0) {
      TraceReader x(trace_of(name));
      EXPECT_EQ(x.attr_string("status"), "finished");
      EXPECT_EQ(x.attr_string("sample_unit"), "checkpoints");
      const auto accuracy = x.read_doubles("eval/accuracy");
      ASSERT_EQ(accuracy.size(), 2u);
      EXPECT_EQ(accuracy[0], read_trajectory(path).accuracy[2]);  // W_K, evaluated again: the same
      EXPECT_EQ(x.read_doubles("steps/observed_step"), std::vector<double>{4});
      EXPECT_GT(x.read_doubles("steps/linalg_flops")[0], 0);
      EXPECT_EQ(x.has_dataset("steps/sweep_accuracy_alpha_2"), m == "next");
    }
    // GRPO continues from the prediction with a fresh LoRA, on fresh problems.
    ASSERT_EQ(run_experiment("", small({"--run.name=" + name + "_grpo", "--run.method=grpo",
                                        "--model.init_from=" + scratch() + "/" + name + "/model.bin",
                                        "--rlvr.first_step=4", "--run.steps=2"})),
              0);
  }
  // The keys reach the extrapolators: AlphaRL solves for the accuracy given; NExt with a zero learning
  // rate and no decay does not train (its fit loss stays the untrained one).
  ASSERT_EQ(run_experiment("", small({"--run.name=extrapolate_keys_alpharl", "--run.method=extrapolate",
                                      "--extrapolate.method=alpharl", "--extrapolate.trajectory=" + path,
                                      "--extrapolate.observed_step=4", "--extrapolate.target_step=6",
                                      "--extrapolate.target_accuracy=0.75", "--run.steps=1", "--eval.batches=32"})),
            0);
  ASSERT_EQ(run_experiment("", small({"--run.name=extrapolate_keys_next", "--run.method=extrapolate",
                                      "--extrapolate.trajectory=" + path, "--extrapolate.observed_step=4", "--next.k=1",
                                      "--next.epochs=5", "--next.hidden=8", "--next.lr=0", "--next.lr_min=0",
                                      "--next.weight_decay=0", "--run.steps=1", "--eval.batches=32"})),
            0);
  MPI_Barrier(MPI_COMM_WORLD);
  if (world_rank() == 0) {
    EXPECT_EQ(TraceReader(trace_of("extrapolate_keys_alpharl")).read_doubles("steps/target_accuracy"),
              std::vector<double>{0.75});
    TraceReader frozen(trace_of("extrapolate_keys_next"));
    EXPECT_EQ(frozen.read_doubles("steps/fit_loss"), frozen.read_doubles("steps/fit_loss_first"));
  }
  Communicator world(make_mpi_backend(), {});
  const auto error_of = [&](std::vector<std::string> extra, int64_t steps = 1) -> std::string {
    try {
      std::vector<std::string> o = small({"--run.method=extrapolate", "--extrapolate.trajectory=" + path});
      o.insert(o.end(), extra.begin(), extra.end());
      const Config cfg = resolve_config(suite_schema(), "", o);
      RunContext ctx{cfg, world, steps, 1, ""};
      find_method("extrapolate").make(ctx)->step(0);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(error_of({}, 2).find("set run.steps = 1"), std::string::npos);
  EXPECT_NE(error_of({"--extrapolate.trajectory=" + scratch() + "/none.h5"}).find("does not exist"), std::string::npos);
  EXPECT_NE(error_of({"--extrapolate.observed_step=3"}).find("is not a checkpoint"), std::string::npos);
  EXPECT_NE(error_of({"--model.n_embd=64"}).find("set it to the trajectory's shape"), std::string::npos);
  EXPECT_NE(error_of({"--next.k=5"}).find("it needs W_0 and at least 6 more"), std::string::npos);
  EXPECT_NE(error_of({"--extrapolate.method=relex", "--extrapolate.target_step=6"}).find("beyond the last checkpoint"),
            std::string::npos);
  EXPECT_NE(error_of({"--extrapolate.method=rl_extra", "--next.alpha_sweep=1"}).find("extrapolate.method = next only"),
            std::string::npos);
}
