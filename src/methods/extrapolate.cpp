// Extrapolation of an RL trajectory as a run (methods.md section 4): one step reads the trajectory
// a GRPO run wrote (grpo.trajectory_every) up to extrapolate.observed_step, predicts the weights
// further along with one extrapolator (src/extrapolate: NExt, AlphaRL, RL-Extra, RELEX) and
// evaluates the prediction greedily on the task's eval split; the run writes the predicted model
// as <run dir>/model.bin, from which GRPO continues with a fresh LoRA (model.init_from,
// rlvr.first_step). Before the step the model is the last observed checkpoint W_K, so
// eval.at_start gives its accuracy beside the prediction's. The trace records the extrapolator's
// own cost (FLOPs and seconds of its linear algebra and of fitting), so a saving of RL steps can be
// stated net of it. Every rank computes the same prediction (it is deterministic); evaluation
// problems are dealt over the ranks.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <sstream>

#include "core/error.hpp"
#include "core/timer.hpp"
#include "extrapolate/extrapolate.hpp"
#include "methods/rlvr.hpp"

namespace frugal {
namespace {

// "0.5,1, 2" -> {"0.5", "1", "2"} (spaces dropped, empty items skipped).
std::vector<std::string> split_list(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream items(list);
  std::string item;
  while (std::getline(items, item, ',')) {
    item.erase(std::remove(item.begin(), item.end(), ' '), item.end());
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

void add_extrapolate_keys(Schema& s) {
  s.add("extrapolate.method", std::string("next"), "the extrapolator", {}, {}, {"next", "alpharl", "rl_extra", "relex"});
  s.add("extrapolate.trajectory", std::string(""), "trajectory file of a GRPO run (<its run dir>/trajectory.h5)");
  s.add("extrapolate.observed_step", int64_t{-1},
        "use the trajectory's checkpoints up to this RL step (-1 = all): the early run the extrapolator sees", -1,
        int64_t{1} << 40);
  s.add("extrapolate.target_step", int64_t{0},
        "RL step the linear extrapolators (alpharl, rl_extra, relex) predict the weights of; beyond the last observed "
        "checkpoint", 0, int64_t{1} << 40);
  s.add("extrapolate.target_accuracy", -1.0,
        "alpharl: the accuracy to solve for (< 0: the least-squares trend of the observed accuracy at target_step)", -1.0,
        1.0);
}

void add_next_keys(Schema& s) {
  s.add("next.k", int64_t{5}, "target delta k checkpoints ahead: W_{i+k} - W_i", 1, 1 << 20);
  s.add("next.alpha", 1.5, "extend: W_K + alpha * predicted delta (the paper: 1.5, stable in 0.5 - 2.5)", 0.0, 1e6);
  s.add("next.alpha_sweep", std::string(""),
        "comma-separated alphas at which the prediction is also evaluated (trace columns sweep_accuracy_alpha_<a>); "
        "the predictor is trained once: W_K + a * delta for each a");
  s.add("next.align_signs", true, "align the SVD signs across checkpoints (the official code does not)");
  s.add("next.hidden", int64_t{256}, "predictor width", 1, 1 << 20);
  s.add("next.epochs", int64_t{1000}, "predictor training epochs (full batch, one AdamW step each)", 1, 1 << 30);
  s.add("next.lr", 2e-5, "predictor AdamW learning rate, cosine-annealed to next.lr_min", 0.0, 1.0);
  s.add("next.lr_min", 2e-6, "predictor learning rate at the last epoch", 0.0, 1.0);
  s.add("next.weight_decay", 0.01, "predictor AdamW weight decay", 0.0, 1.0);
}

class Extrapolate final : public Method {
 public:
  explicit Extrapolate(RunContext& ctx) : ctx_(ctx), model_(make_rlvr_model(ctx.config, ctx.seed)) {
    const Config& cfg = ctx.config;
    s_ = rlvr_settings_from(cfg, model_.config, ctx.seed);
    FRUGAL_CHECK(ctx.total_steps == 1, "extrapolate is a single step (the extrapolation): set run.steps = 1 (got ",
                 ctx.total_steps, ")");
    method_ = cfg.str("extrapolate.method");
    const std::string& path = cfg.str("extrapolate.trajectory");
    FRUGAL_CHECK(!path.empty(), "extrapolate.trajectory is not set: give the trajectory file of a GRPO run "
                 "(grpo.trajectory_every > 0 writes <run dir>/trajectory.h5)");
    const int64_t observed = cfg.integer("extrapolate.observed_step");
    trajectory_ = read_trajectory(path, observed < 0 ? std::numeric_limits<int64_t>::max() : observed);
    FRUGAL_CHECK(trajectory_.checkpoints() >= 1, "trajectory '", path, "' has no checkpoint at or before step ", observed);
    FRUGAL_CHECK(observed < 0 || trajectory_.steps.back() == observed, "extrapolate.observed_step = ", observed,
                 " is not a checkpoint of trajectory '", path, "' (the last one before it is step ",
                 trajectory_.steps.back(), ")");
    const GPT2Config &a = trajectory_.model, &b = model_.config;
    FRUGAL_CHECK(a.num_layers == b.num_layers && a.num_heads == b.num_heads && a.channels == b.channels &&
                     a.max_seq_len == b.max_seq_len && a.vocab_size == b.vocab_size,
                 "trajectory '", path, "' is of a model with n_layer = ", a.num_layers, ", n_head = ", a.num_heads,
                 ", n_embd = ", a.channels, ", block_size = ", a.max_seq_len, ", vocab_size = ", a.vocab_size,
                 "; the config's [model] differs: set it to the trajectory's shape");
    target_step_ = cfg.integer("extrapolate.target_step");
    target_accuracy_ = cfg.real("extrapolate.target_accuracy");
    next_.k = static_cast<int>(cfg.integer("next.k"));
    next_.alpha = cfg.real("next.alpha");
    next_.align_signs = cfg.boolean("next.align_signs");
    next_.predictor.hidden = static_cast<int>(cfg.integer("next.hidden"));
    next_.predictor.epochs = static_cast<int>(cfg.integer("next.epochs"));
    next_.predictor.lr = static_cast<float>(cfg.real("next.lr"));
    next_.predictor.lr_min = static_cast<float>(cfg.real("next.lr_min"));
    next_.predictor.weight_decay = static_cast<float>(cfg.real("next.weight_decay"));
    next_.seed = ctx.seed;
    for (const std::string& a : split_list(cfg.str("next.alpha_sweep"))) {
      char* end = nullptr;
      const double v = std::strtod(a.c_str(), &end);
      FRUGAL_CHECK(end && *end == '\0' && v >= 0, "next.alpha_sweep: '", a, "' is not a non-negative number");
      sweep_.push_back({a, v});
    }
    FRUGAL_CHECK(sweep_.empty() || method_ == "next", "next.alpha_sweep applies to extrapolate.method = next only");
    eval_problems_ = cfg.integer("eval.batches");
    model_.params = trajectory_params(trajectory_, trajectory_.checkpoints() - 1);  // W_K until the step
  }

  StepResult step(int64_t) override {
    Timer timer;
    Extrapolation e;
    if (method_ == "next") e = extrapolate_next(trajectory_, next_);
    else if (method_ == "alpharl") e = extrapolate_alpharl(trajectory_, target_step_, target_accuracy_ < 0 ? std::nan("") : target_accuracy_);
    else if (method_ == "rl_extra") e = extrapolate_rl_extra(trajectory_, target_step_);
    else e = extrapolate_relex(trajectory_, target_step_);
    const int K = trajectory_.checkpoints() - 1;
    // The sweep: W_K + a * delta, the predicted delta being (prediction - W_K) / alpha.
    std::vector<std::pair<std::string, double>> sweep;
    Timer sweep_timer;
    if (!sweep_.empty()) {
      const std::vector<float> last = trajectory_params(trajectory_, K);
      for (const auto& [name, a] : sweep_) {
        for (size_t i = 0; i < last.size(); i++)
          model_.params[i] = static_cast<float>(last[i] + a / next_.alpha * (double(e.params[i]) - last[i]));
        sweep.push_back({"sweep_accuracy_alpha_" + name,
                         eval_problems_ > 0 ? rlvr_greedy_accuracy(model_, nullptr, s_, eval_problems_, ctx_.comm, gen_)
                                            : std::nan("")});
      }
    }
    const double sweep_s = sweep_timer.seconds();
    model_.params = std::move(e.params);
    StepResult r;
    r.loss = e.fit_loss;
    r.samples = K + 1;
    r.flops = e.cost.linalg_flops + e.cost.fit_flops;
    r.metrics = {{"observed_step", double(trajectory_.steps[size_t(K)])},
                 {"observed_accuracy", trajectory_.accuracy[size_t(K)]},
                 {"target_step", method_ == "next" ? std::nan("") : double(target_step_)},
                 {"alpha", method_ == "next" ? next_.alpha : std::nan("")},
                 {"linalg_flops", e.cost.linalg_flops},
                 {"linalg_s", e.cost.linalg_seconds},
                 {"fit_flops", e.cost.fit_flops},
                 {"fit_s", e.cost.fit_seconds},
                 {"extrapolate_s", timer.seconds() - sweep_s},
                 {"sweep_s", sweep_s}};
    for (const auto& kv : e.info) r.metrics.push_back(kv);
    for (const auto& kv : sweep) r.metrics.push_back(kv);
    return r;
  }

  double evaluate(int64_t problems) override { return rlvr_greedy_accuracy(model_, nullptr, s_, problems, ctx_.comm, gen_); }
  void state(StateFields& f) override { f.field("extrapolate.params", model_.params); }
  int64_t num_params() const override { return static_cast<int64_t>(model_.params.size()); }
  void finished() override { save_run_model(ctx_, model_); }

 private:
  RunContext& ctx_;
  GPT2 model_;
  RlvrSettings s_;
  std::string method_;
  Trajectory trajectory_;
  int64_t target_step_ = 0;
  double target_accuracy_ = -1;
  NextSettings next_;
  std::vector<std::pair<std::string, double>> sweep_;  // next.alpha_sweep: (as written, value)
  int64_t eval_problems_ = 0;
  Generator gen_;
};

}  // namespace

FRUGAL_REGISTER_METHOD(extrapolate, MethodInfo{"extrapolate",
                                               "predict a model further along a GRPO trajectory (NExt, AlphaRL, RL-Extra, "
                                               "RELEX); writes <run dir>/model.bin for GRPO to continue from",
                                               Domain::extrapolation,
                                               {add_model_keys, add_task_keys, add_rlvr_keys, add_extrapolate_keys, add_next_keys},
                                               [](RunContext& ctx) { return std::make_unique<Extrapolate>(ctx); }});

}  // namespace frugal
