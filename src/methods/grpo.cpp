// GRPO (Shao et al. 2024, "DeepSeekMath"), methods.md section 3, with the options verl names.
// One step:
//   1. generate: this rank's P/R problems, G sampled completions each (KV-cached, model/decode.hpp)
//   2. verify: reward of each completion (rlvr/tasks.hpp); group advantages
//        grpo   A_i = (R_i - mean_G R) / (std_G R + 1e-6)   (std: unbiased, as torch/verl)
//               or R_i - mean_G R without the division (Dr.GRPO: grpo.norm_adv_by_std = false)
//        rloo   A_i = R_i - mean_{j != i} R_j
//      dynamic sampling (grpo.dynamic_sampling) drops groups whose rewards are all equal (their
//      advantages are 0: they would only dilute the normaliser) - a filter, without refilling
//   3. log-probs: the rollout policy's (old) and the reference's (the base model: LoRA off, or a
//      frozen copy under full fine-tuning) log-probs of every completion token, teacher-forced
//   4. update: grpo.epochs passes over grpo.minibatches minibatches; per token
//        ratio = exp(logp - logp_old), pg = max(-A ratio, -A clip(ratio, 1 - clip_low, 1 + clip_high))
//        (dual clip: for A < 0, pg = min(pg, -A dual_clip)), kl = k1 | k2 | k3 to the reference,
//      loss = sum_tokens w_t (pg_t + beta kl_t) with w from grpo.loss_agg:
//        seq-mean-token-mean      1 / (sequences |o_i|)           (the GRPO paper)
//        token-mean               1 / tokens                      (DAPO; verl's default)
//        seq-mean-token-sum-norm  1 / (sequences max_new_tokens)  (Dr.GRPO)
//      counted over the whole minibatch on all ranks; gradients summed over ranks (tag grpo.grad),
//      clipped, AdamW on the LoRA adapters or on every weight (grpo.finetune).
// Trajectory (grpo.trajectory_every = c > 0): the model with the adapters merged in, after every c
// steps (and at the start), with its greedy eval accuracy, into <run dir>/trajectory.h5 - what the
// extrapolators (src/extrapolate) read. The accuracy is the runner's evaluation where one was just
// made (eval.every = c costs nothing extra), else computed on eval.batches problems.
// Minibatch m holds the problems whose index within the step is m mod M, so the global minibatch
// - hence every update - is the same whatever the rank count.
// run.device = "cuda": generation, the log-prob passes (policy and reference) and the backward run on
// the rank's GPU (methods/lm_device.hpp), the gradients all-reduced through the host (full
// fine-tuning with run.device_comm = "nccl": on the GPUs). Full
// fine-tuning keeps AdamW on the GPU too; LoRA keeps its adapters' AdamW on the host (the adapters are
// small: their gradients come down, their parameters go up). Evaluation, trajectories and the saved
// model use host copies of the parameters.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.hpp"
#include "core/timer.hpp"
#include "extrapolate/trajectory.hpp"
#include "kernels/cpu/crossentropy.hpp"
#include "methods/lm.hpp"
#include "methods/lm_device.hpp"
#include "methods/rlvr.hpp"
#include "model/lora.hpp"
#include "optim/adamw.hpp"

namespace frugal {
namespace {

void add_grpo_keys(Schema& s) {
  s.add("grpo.finetune", std::string("lora"), "what trains: LoRA adapters on the frozen base, or every weight", {}, {},
        {"lora", "full"});
  s.add("grpo.epochs", int64_t{1}, "passes over each step's completions", 1, 1000);
  s.add("grpo.minibatches", int64_t{1}, "optimiser updates per epoch (problems dealt by index mod this)", 1, 1 << 20);
  s.add("grpo.clip_low", 0.2, "ratio clip below: 1 - clip_low", 0.0, 1.0);
  s.add("grpo.clip_high", 0.2, "ratio clip above: 1 + clip_high (0.28 = DAPO's clip-higher)", 0.0, 100.0);
  s.add("grpo.dual_clip", 0.0, "dual-clip constant c > 1 for negative advantages (0 = off; verl uses 3)", 0.0, 1e6);
  s.add("grpo.beta", 0.001, "KL coefficient to the reference (the base model); 0 skips the reference pass", 0.0, 1e6);
  s.add("grpo.kl", std::string("k3"), "KL estimator per token: k1 = log(pi/ref), k2 = 0.5 log^2, k3 = ref/pi - log(ref/pi) - 1",
        {}, {}, {"k1", "k2", "k3"});
  s.add("grpo.advantage", std::string("grpo"), "advantage estimator: group-normalised (grpo) or leave-one-out (rloo)", {}, {},
        {"grpo", "rloo"});
  s.add("grpo.norm_adv_by_std", true, "grpo advantages divided by the group's std (false = Dr.GRPO)");
  s.add("grpo.loss_agg", std::string("seq-mean-token-mean"),
        "token weighting: seq-mean-token-mean (GRPO), token-mean (DAPO), seq-mean-token-sum-norm (Dr.GRPO)", {}, {},
        {"seq-mean-token-mean", "token-mean", "seq-mean-token-sum-norm"});
  s.add("grpo.dynamic_sampling", false, "drop groups whose rewards are all equal from the loss (DAPO's filter)");
  s.add("grpo.trajectory_every", int64_t{0},
        "write the merged model and its eval accuracy to <run dir>/trajectory.h5 at the start and every this many "
        "steps (0 = never): the input of the extrapolators",
        0, int64_t{1} << 40);
}

class Grpo final : public Method {
 public:
  explicit Grpo(RunContext& ctx) : ctx_(ctx), model_(make_rlvr_model(ctx.config, ctx.seed)) {
    const Config& cfg = ctx.config;
    s_ = rlvr_settings_from(cfg, model_.config, ctx.seed);
    const int R = ctx.comm.size();
    FRUGAL_CHECK(s_.group >= 2, "rlvr.group_size must be at least 2 for GRPO (got ", s_.group,
                 "): an advantage compares a completion with the others of its group");
    FRUGAL_CHECK(s_.prompts % R == 0, "rlvr.prompts (", s_.prompts, ") must be divisible by the number of ranks (", R, ")");
    minibatches_ = static_cast<int>(cfg.integer("grpo.minibatches"));
    FRUGAL_CHECK((s_.prompts / R) % minibatches_ == 0, "grpo.minibatches (", minibatches_,
                 ") must divide each rank's problems (rlvr.prompts / ranks = ", s_.prompts / R, ")");
    epochs_ = static_cast<int>(cfg.integer("grpo.epochs"));
    clip_low_ = cfg.real("grpo.clip_low"), clip_high_ = cfg.real("grpo.clip_high"), dual_clip_ = cfg.real("grpo.dual_clip");
    FRUGAL_CHECK(dual_clip_ == 0 || dual_clip_ > 1, "grpo.dual_clip must be 0 (off) or greater than 1");
    beta_ = cfg.real("grpo.beta");
    const std::string& kl = cfg.str("grpo.kl");
    kl_ = kl == "k1" ? Kl::k1 : kl == "k2" ? Kl::k2 : Kl::k3;
    rloo_ = cfg.str("grpo.advantage") == "rloo";
    const std::string& agg = cfg.str("grpo.loss_agg");
    loss_agg_ = agg == "token-mean" ? LossAgg::token_mean
                : agg == "seq-mean-token-sum-norm" ? LossAgg::seq_mean_token_sum_norm : LossAgg::seq_mean_token_mean;
    norm_by_std_ = cfg.boolean("grpo.norm_adv_by_std"), dynamic_ = cfg.boolean("grpo.dynamic_sampling");
    lora_mode_ = cfg.str("grpo.finetune") == "lora";
    if (lora_mode_) {
      lora_ = LoraAdapters(model_.config, lora_config_from(cfg), ctx.seed);
      opt_ = adamw_create(adamw_config_from(cfg), lora_.layout());
    } else {
      if (beta_ > 0) reference_ = model_.params;  // the frozen reference: the base
      opt_ = adamw_create(adamw_config_from(cfg), model_.layout);
    }
    schedule_ = schedule_from(cfg, ctx.total_steps);
    grad_clip_ = cfg.real("optim.grad_clip");
    inv_temp_ = s_.sampling.temperature > 0 ? 1.0f / s_.sampling.temperature : 1.0f;
    trajectory_every_ = cfg.integer("grpo.trajectory_every");
    eval_problems_ = cfg.integer("eval.batches");
    FRUGAL_CHECK(trajectory_every_ == 0 || !ctx.run_dir.empty(), "grpo.trajectory_every needs a run directory to write to");
    if (cfg.str("run.device") == "cuda") {
      FRUGAL_CHECK(!lora_mode_ || cfg.str("run.device_comm") != "nccl",
                   "run.device_comm = \"nccl\" all-reduces full fine-tuning's gradients; grpo.finetune = \"lora\" "
                   "exchanges its adapters' gradients through the host (run.device_comm = \"host\")");
      device_ = lm_device_create(model_, lora_mode_ ? AdamW{} : opt_);
      if (lora_mode_) lm_device_attach_lora(*device_, lora_);
      else if (beta_ > 0) lm_device_set_reference(*device_, reference_);
    }
  }

  StepResult step(int64_t step) override {
    if (trajectory_every_ > 0 && step % trajectory_every_ == 0) write_trajectory(step);
    const int R = ctx_.comm.size(), per_rank = s_.prompts / R, first = ctx_.comm.rank() * per_rank, G = s_.group;
    const int64_t rl_step = s_.first_step + step;
    Timer t_gen;
    // 1. generate: completion g of problem j (index within the step) is sequence j G + g.
    problems_.clear();
    prompts_.clear();
    std::vector<uint32_t> ids;
    for (int j = first; j < first + per_rank; j++) {
      problems_.push_back(make_problem(s_.task, Split::train, rl_step * s_.prompts + j));
      const std::vector<int> prompt = encode_text(problems_.back().prompt);
      for (int g = 0; g < G; g++) prompts_.push_back(prompt), ids.push_back(static_cast<uint32_t>(j * G + g));
    }
    const GenerateRequest request{prompts_, ids, {}, ctx_.seed, rl_step};
    int64_t tokens_generated = 0;
    double flops = 0;
    if (device_) {
      lm_device_generate(*device_, request, s_.sampling, completions_, &tokens_generated, &flops);
    } else {
      generate(model_, hook(), nullptr, request, s_.sampling, gen_, completions_);
      tokens_generated = gen_.tokens_generated, flops = gen_.flops;
    }
    const double gen_time = t_gen.seconds();

    // 2. rewards and advantages, group by group (a group never straddles ranks).
    const int n = per_rank * G;
    verdicts_.resize(size_t(n));
    std::vector<float> adv(size_t(n), 0.0f);
    kept_.assign(size_t(n), 1);
    double groups_kept = 0;
    for (int j = 0; j < per_rank; j++) {
      double mean = 0, var = 0;
      for (int g = 0; g < G; g++) {
        const int i = j * G + g;
        verdicts_[size_t(i)] = score_completion(s_.task, problems_[size_t(j)], decode_tokens(completions_[size_t(i)].tokens));
        mean += verdicts_[size_t(i)].reward;
      }
      mean /= G;
      for (int g = 0; g < G; g++) var += std::pow(verdicts_[size_t(j * G + g)].reward - mean, 2);
      const double std = std::sqrt(var / (G - 1));
      // Exactly equal rewards (not var == 0: the mean of eight 0.1 rewards is not exactly 0.1).
      bool all_equal = true;
      for (int g = 1; g < G; g++) all_equal = all_equal && verdicts_[size_t(j * G + g)].reward == verdicts_[size_t(j * G)].reward;
      for (int g = 0; g < G; g++) {
        const int i = j * G + g;
        const double r = verdicts_[size_t(i)].reward;
        if (rloo_) adv[size_t(i)] = static_cast<float>((r - mean) * G / (G - 1));
        else adv[size_t(i)] = static_cast<float>(norm_by_std_ ? (r - mean) / (std + 1e-6) : r - mean);
        if (dynamic_ && all_equal) kept_[size_t(i)] = 0;
      }
      groups_kept += dynamic_ && all_equal ? 0 : 1;
    }
    const CompletionStats stats = completion_stats(completions_, verdicts_, ctx_.comm, "grpo.stats");

    // 3. old and reference log-probs, minibatch by minibatch (the shapes the update will use).
    Timer t_lp;
    minibatch_rows_.assign(size_t(minibatches_), {});
    for (int j = 0; j < per_rank; j++)
      for (int g = 0; g < G; g++) minibatch_rows_[size_t((first + j) % minibatches_)].push_back(j * G + g);
    batches_.resize(size_t(minibatches_));
    old_logp_.resize(size_t(minibatches_)), ref_logp_.resize(size_t(minibatches_));
    std::vector<double> norm(static_cast<size_t>(minibatches_));
    double entropy_sum = 0, token_count = 0, mismatch = 0;
    std::vector<float> entropy;
    for (int m = 0; m < minibatches_; m++) {
      std::vector<const std::vector<int>*> ps, cs;
      for (int i : minibatch_rows_[size_t(m)]) ps.push_back(&prompts_[size_t(i)]), cs.push_back(&completions_[size_t(i)].tokens);
      TokenBatch& b = batches_[size_t(m)];
      build_token_batch(b, ps, cs);
      policy_logprobs(b, old_logp_[size_t(m)], &entropy);
      flops += gpt2_forward_flops(model_.config, b.B, b.T);
      for (size_t k = 0; k < b.counted.size(); k++)
        if (b.counted[k]) entropy_sum += entropy[k], token_count += 1;
      // The sampler's log-probs (KV-cached decoder) against the trainer's (full forward): the two
      // computations of one policy must agree, or the ratio's "old" policy is not the rollout's.
      for (int bi = 0; bi < b.B; bi++) {
        const Completion& comp = completions_[size_t(minibatch_rows_[size_t(m)][size_t(bi)])];
        const size_t start = size_t(bi) * b.T + prompts_[size_t(minibatch_rows_[size_t(m)][size_t(bi)])].size() - 1;
        for (size_t t = 0; t < comp.tokens.size(); t++)
          mismatch = std::max(mismatch, double(std::fabs(comp.logprobs[t] - old_logp_[size_t(m)][start + t])));
      }
      if (beta_ > 0) {
        with_reference([&] { policy_logprobs(b, ref_logp_[size_t(m)], nullptr, /*adapters=*/false); });
        flops += gpt2_forward_flops(model_.config, b.B, b.T);
      }
      norm[size_t(m)] = minibatch_normaliser(m);
    }
    const double lp_time = t_lp.seconds();

    // 4. the update.
    Timer t_upd;
    const float lr = schedule_lr(schedule_, step);
    std::vector<float> logp, weight;
    double sums[8] = {};  // loss, kl, clipped, ratio, tokens, entropy, entropy tokens, groups kept
    double ratio_max = 0, grad_norm = 0;
    for (int e = 0; e < epochs_; e++) {
      for (int m = 0; m < minibatches_; m++) {
        const TokenBatch& b = batches_[size_t(m)];
        policy_logprobs(b, logp);
        weight.assign(logp.size(), 0.0f);
        for (int bi = 0; bi < b.B; bi++) {
          const int i = minibatch_rows_[size_t(m)][size_t(bi)];
          if (!kept_[size_t(i)]) continue;
          const double A = adv[size_t(i)];
          const double length = double(completions_[size_t(i)].tokens.size());
          const double w = loss_agg_ == LossAgg::token_mean               ? 1.0 / norm[size_t(m)]
                           : loss_agg_ == LossAgg::seq_mean_token_sum_norm ? 1.0 / (norm[size_t(m)] * s_.sampling.max_new_tokens)
                                                                     : 1.0 / (norm[size_t(m)] * length);
          for (int t = 0; t < b.T; t++) {
            const size_t k = size_t(bi) * b.T + t;
            if (!b.counted[k]) continue;
            const double ratio = std::exp(double(logp[k]) - old_logp_[size_t(m)][k]);
            const double pg1 = -A * ratio, pg2 = -A * std::clamp(ratio, 1.0 - clip_low_, 1.0 + clip_high_);
            double pg = std::max(pg1, pg2), dpg = pg1 >= pg2 ? -A * ratio : 0.0;  // d pg / d logp
            if (dual_clip_ > 0 && A < 0 && pg > -A * dual_clip_) pg = -A * dual_clip_, dpg = 0.0;
            double kl = 0, dkl = 0;
            if (beta_ > 0) {
              const double d = std::clamp(double(logp[k]) - ref_logp_[size_t(m)][k], -20.0, 20.0);  // log(pi / ref)
              if (kl_ == Kl::k1) kl = d, dkl = 1;
              else if (kl_ == Kl::k2) kl = 0.5 * d * d, dkl = d;
              else kl = std::exp(-d) + d - 1, dkl = 1 - std::exp(-d);
            }
            weight[k] = static_cast<float>(w * (dpg + beta_ * dkl));
            sums[0] += w * (pg + beta_ * kl), sums[1] += kl, sums[2] += pg2 > pg1 ? 1 : 0, sums[3] += ratio, sums[4] += 1;
            ratio_max = std::max(ratio_max, ratio);
          }
        }
        grad_norm = policy_update(b, weight, lr);
        flops += 3 * gpt2_forward_flops(model_.config, b.B, b.T);
      }
    }
    evaluated_ = false;  // the model moved
    steps_done_ = step + 1;
    sums[5] = entropy_sum, sums[6] = token_count, sums[7] = groups_kept;
    ctx_.comm.control_allreduce(std::span<double>(sums, 8), ReduceOp::sum, "grpo.stats");
    double maxima[2] = {ratio_max, mismatch};
    ctx_.comm.control_allreduce(std::span<double>(maxima, 2), ReduceOp::max, "grpo.stats");
    ratio_max = maxima[0], mismatch = maxima[1];
    const double upd_time = t_upd.seconds();

    StepResult r;
    r.loss = stats.reward_mean;  // the same on every rank (summed above)
    r.grad_norm = grad_norm;
    r.lr = lr;
    r.samples = tokens_generated;
    r.flops = flops;
    const double tokens = std::max(sums[4], 1.0);
    r.metrics = {{"reward_std", stats.reward_std},
                 {"accuracy", stats.accuracy},
                 {"response_length_mean", stats.length_mean},
                 {"response_length_max", stats.length_max},
                 {"truncated_fraction", stats.truncated},
                 {"entropy", sums[5] / std::max(sums[6], 1.0)},
                 {"kl", sums[1] / tokens},
                 {"pg_loss", sums[0] / (epochs_ * minibatches_)},
                 {"clip_fraction", sums[2] / tokens},
                 {"ratio_mean", sums[3] / tokens},
                 {"ratio_max", ratio_max},
                 {"groups_kept", sums[7]},
                 {"logprob_mismatch_max", mismatch},
                 {"time_generate_s", gen_time},
                 {"time_logprobs_s", lp_time},
                 {"time_update_s", upd_time},
                 {"generate_tokens_per_s", gen_time > 0 ? double(tokens_generated) / gen_time : 0.0}};
    return r;
  }

  double evaluate(int64_t problems) override {
    params_to_host();
    last_accuracy_ = rlvr_greedy_accuracy(model_, hook(), s_, problems, ctx_.comm, gen_);
    evaluated_ = problems == eval_problems_;
    return last_accuracy_;
  }

  void state(StateFields& f) override {
    if (device_ && !lora_mode_ && !f.loading()) lm_device_to_host(*device_, model_, opt_);
    f.field("grpo.params", lora_mode_ ? lora_.params : model_.params);
    adamw_state(f, opt_, "grpo.");
    if (device_ && f.loading()) {
      if (lora_mode_) lm_device_lora_params_from_host(*device_, lora_);
      else lm_device_from_host(*device_, model_, opt_);
    }
  }
  int64_t num_params() const override {
    return static_cast<int64_t>(lora_mode_ ? lora_.params.size() : model_.params.size());
  }

  // The trained model, adapters merged in, as an llm.c checkpoint (<run dir>/model.bin).
  void finished() override {
    // The last checkpoint, where the run ended on one (run.steps, or run.max_samples before it).
    if (trajectory_every_ > 0 && steps_done_ > 0 && steps_done_ % trajectory_every_ == 0) write_trajectory(steps_done_);
    params_to_host();
    if (ctx_.comm.rank() == 0) save_run_model(ctx_, merged_model());
  }

 private:
  GPT2BlockHook* hook() { return lora_mode_ ? &lora_ : nullptr; }
  std::vector<float>& trainable_grads() { return lora_mode_ ? lora_.grads : model_.grads; }
  std::vector<float>& trainable_params() { return lora_mode_ ? lora_.params : model_.params; }

  // Checkpoint step / c of the trajectory: the model after `step` steps of this run (RL step
  // first_step + step), adapters merged, and its eval accuracy (every rank takes part in the
  // evaluation; rank 0 writes).
  void write_trajectory(int64_t step) {
    params_to_host();
    const double accuracy = evaluated_ ? last_accuracy_
                            : eval_problems_ > 0 ? rlvr_greedy_accuracy(model_, hook(), s_, eval_problems_, ctx_.comm, gen_)
                                                 : std::nan("");
    if (ctx_.comm.rank() != 0) return;
    write_trajectory_checkpoint(ctx_.run_dir + "/trajectory.h5", static_cast<int>(step / trajectory_every_),
                                s_.first_step + step, accuracy, merged_model());
  }

  // The model with the adapters merged in (under full fine-tuning: the model itself), in merged_.
  const GPT2& merged_model() {
    if (!lora_mode_) return model_;
    if (merged_.params.empty()) merged_ = gpt2_create(model_.config);
    merged_.params = model_.params;
    lora_.merge_into(merged_);
    return merged_;
  }

  // Runs fn with the model computing the reference policy: LoRA off (fn passes no hook), or the
  // frozen base weights swapped in under full fine-tuning (on the device: its copy of them).
  template <typename Fn>
  void with_reference(Fn fn) {
    const auto swap = [&] {
      if (lora_mode_) return;
      if (device_) lm_device_swap_reference(*device_);
      else std::swap(model_.params, reference_);
    };
    swap();
    fn();
    swap();
  }

  // The log-probs (and entropies) of a batch's targets under the policy (with its adapters unless
  // adapters is false); the model keeps the activations for policy_update.
  void policy_logprobs(const TokenBatch& b, std::vector<float>& logp, std::vector<float>* entropy = nullptr,
                       bool adapters = true) {
    if (!device_) return batch_logprobs(model_, adapters ? hook() : nullptr, b, inv_temp_, logp, entropy);
    logp.resize(size_t(b.B) * b.T);
    if (entropy) entropy->resize(logp.size());
    lm_device_token_logprobs(*device_, b.inputs.data(), b.targets.data(), b.B, b.T, inv_temp_, logp.data(),
                             entropy ? entropy->data() : nullptr, adapters);
  }

  // The backward of sum_k weight[k] logp_k for the last policy_logprobs of b, the gradients summed
  // over ranks (tag grpo.grad), clipped, AdamW. Returns the gradient norm.
  double policy_update(const TokenBatch& b, const std::vector<float>& weight, float lr) {
    if (device_ && !lora_mode_) {
      lm_device_logprob_backward(*device_, weight.data(), inv_temp_);
      lm_device_allreduce_grads_sum(*device_, model_, ctx_.comm, "grpo.grad");
      return lm_device_update(*device_, grad_clip_, lr);
    }
    if (device_) {  // LoRA: the adapters' gradients down, AdamW on the host, their parameters up
      lm_device_logprob_backward(*device_, weight.data(), inv_temp_);
      lm_device_lora_grads_to_host(*device_, lora_);
      ctx_.comm.allreduce(std::span<float>(lora_.grads), ReduceOp::sum, "grpo.grad");
      const double norm = global_norm(lora_.grads);
      adamw_step(opt_, lora_.params, lora_.grads, lr, {}, clip_scale(norm, grad_clip_));
      lm_device_lora_params_from_host(*device_, lora_);
      return norm;
    }
    const GPT2Config& c = model_.config;
    cpu::token_logprob_backward(gpt2_dlogits(model_), model_.acts.logits.data(), b.targets.data(), weight.data(),
                                b.B * b.T, c.vocab_size, c.padded_vocab_size, inv_temp_);
    std::vector<float>& grads = trainable_grads();
    std::fill(grads.begin(), grads.end(), 0.0f);
    if (lora_mode_) gpt2_zero_grad(model_);  // the frozen base's bias and LayerNorm gradients: unused scratch
    gpt2_backward_from_dlogits(model_, hook());
    ctx_.comm.allreduce(std::span<float>(grads), ReduceOp::sum, "grpo.grad");
    const double norm = global_norm(grads);
    adamw_step(opt_, trainable_params(), grads, lr, {}, clip_scale(norm, grad_clip_));
    return norm;
  }

  // On a GPU under full fine-tuning: the device's parameters into the host model (evaluation,
  // trajectory, the saved model). Under LoRA the host already holds both the base and the adapters.
  void params_to_host() {
    if (device_ && !lora_mode_) lm_device_params_to_host(*device_, model_);
  }

  // The loss normaliser of minibatch m over all ranks: kept sequences, or kept completion tokens
  // (token-mean).
  double minibatch_normaliser(int m) {
    double count = 0;
    for (int i : minibatch_rows_[size_t(m)]) {
      if (!kept_[size_t(i)]) continue;
      count += loss_agg_ == LossAgg::token_mean ? double(completions_[size_t(i)].tokens.size()) : 1.0;
    }
    ctx_.comm.control_allreduce(std::span<double>(&count, 1), ReduceOp::sum, "grpo.normaliser");
    return std::max(count, 1.0);
  }

  RunContext& ctx_;
  GPT2 model_;
  RlvrSettings s_;
  LoraAdapters lora_;
  bool lora_mode_ = true;
  std::vector<float> reference_;  // full fine-tuning with beta > 0: the base weights
  AdamW opt_;
  Schedule schedule_;
  double grad_clip_ = 0, clip_low_ = 0.2, clip_high_ = 0.2, dual_clip_ = 0, beta_ = 0;
  enum class Kl { k1, k2, k3 } kl_ = Kl::k3;
  enum class LossAgg { seq_mean_token_mean, token_mean, seq_mean_token_sum_norm } loss_agg_ = LossAgg::seq_mean_token_mean;
  bool rloo_ = false;
  bool norm_by_std_ = true, dynamic_ = false;
  int epochs_ = 1, minibatches_ = 1;
  float inv_temp_ = 1.0f;
  Generator gen_;
  std::vector<Problem> problems_;
  std::vector<std::vector<int>> prompts_;  // one per completion
  std::vector<Completion> completions_;
  std::vector<Verdict> verdicts_;
  std::vector<uint8_t> kept_;  // per completion: 0 where dynamic sampling dropped its group
  std::vector<std::vector<int>> minibatch_rows_;
  std::vector<TokenBatch> batches_;
  std::vector<std::vector<float>> old_logp_, ref_logp_;
  int64_t trajectory_every_ = 0, eval_problems_ = 0, steps_done_ = 0;
  double last_accuracy_ = 0;
  bool evaluated_ = false;  // last_accuracy_ is the current model's, on eval_problems_ problems
  GPT2 merged_;             // rank 0, LoRA: the model with the adapters merged in (merged_model())
  LmDevicePtr device_;      // run.device = "cuda" only (declared after lora_, which it refers to)
};

}  // namespace

FRUGAL_REGISTER_METHOD(grpo, MethodInfo{"grpo",
                                        "GRPO on a verifiable task: sampled groups, group advantages, clipped policy loss, "
                                        "KL to the base; LoRA or full fine-tuning",
                                        Domain::rlvr,
                                        {add_model_keys, add_task_keys, add_rlvr_keys, add_optim_keys, add_lora_keys, add_grpo_keys},
                                        [](RunContext& ctx) { return std::make_unique<Grpo>(ctx); }, /*cuda=*/true,
                                        /*device_comm=*/true});

}  // namespace frugal
