// SFT: the warm start that gives RL on a language model a base it can improve. Teacher-forced
// training on "prompt solution<end>" strings of the task's training split, the loss on the answer
// tokens only (solution and end marker: the prompt is given, not learnt). Step s uses training
// problems [s B, (s + 1) B) (B = sft.batch_size, dealt to ranks in contiguous blocks); the loss is
// the mean over the answer tokens of the whole global batch, gradients summed over ranks (tag
// sft.grad), AdamW. When the run finishes, the model is written as an llm.c checkpoint,
// <run dir>/model.bin: the base the RLVR studies load (model.init_from).
//
// run.device = "cuda": forward, token head, backward and AdamW on the rank's GPU (methods/lm_device);
// the log-probabilities come down for the loss and the weights, the gradients cross the host for the
// all-reduce (or stay on the GPUs with run.device_comm = "nccl"). Greedy evaluation runs on the host
// model, brought up to date, and so does the saved model.
#include <algorithm>

#include "core/error.hpp"
#include "kernels/cpu/crossentropy.hpp"
#include "methods/lm.hpp"
#include "methods/lm_device.hpp"
#include "methods/rlvr.hpp"
#include "optim/adamw.hpp"

namespace frugal {
namespace {

void add_sft_keys(Schema& s) {
  s.add("sft.batch_size", int64_t{32}, "problems per step, all ranks together (a multiple of the rank count)", 1, 1 << 24);
}

class Sft final : public Method {
 public:
  explicit Sft(RunContext& ctx) : ctx_(ctx), model_(make_rlvr_model(ctx.config, ctx.seed)) {
    const Config& cfg = ctx.config;
    s_ = rlvr_settings_from(cfg, model_.config, ctx.seed);
    batch_ = static_cast<int>(cfg.integer("sft.batch_size"));
    FRUGAL_CHECK(batch_ % ctx.comm.size() == 0, "sft.batch_size (", batch_, ") must be divisible by the number of ranks (",
                 ctx.comm.size(), ")");
    FRUGAL_CHECK(max_problem_chars(s_.task) <= model_.config.max_seq_len, "the longest ", task_name(s_.task.kind),
                 " problem with its answer (", max_problem_chars(s_.task), " characters) exceeds model.block_size (",
                 model_.config.max_seq_len, ")");
    opt_ = adamw_create(adamw_config_from(cfg), model_.layout);
    schedule_ = schedule_from(cfg, ctx.total_steps);
    grad_clip_ = cfg.real("optim.grad_clip");
    if (cfg.str("run.device") == "cuda") device_ = lm_device_create(model_, opt_);
  }

  StepResult step(int64_t step) override {
    const int local = batch_ / ctx_.comm.size(), first = ctx_.comm.rank() * local;
    std::vector<std::vector<int>> prompts(static_cast<size_t>(local)), answers(static_cast<size_t>(local));
    std::vector<const std::vector<int>*> ps, as;
    for (int k = 0; k < local; k++) {
      const Problem p = make_problem(s_.task, Split::train, step * batch_ + first + k);
      prompts[size_t(k)] = encode_text(p.prompt);
      answers[size_t(k)] = encode_text(p.solution + kEndMarker);
      ps.push_back(&prompts[size_t(k)]), as.push_back(&answers[size_t(k)]);
    }
    build_token_batch(batch_tokens_, ps, as);
    const TokenBatch& b = batch_tokens_;
    std::vector<float> logp(size_t(b.B) * b.T);
    if (device_) lm_device_token_logprobs(*device_, b.inputs.data(), b.targets.data(), b.B, b.T, 1.0f, logp.data());
    else batch_logprobs(model_, nullptr, b, 1.0f, logp);
    // Mean over the global batch's answer tokens: their count and the loss sum cross ranks as control traffic.
    double sums[2] = {0, 0};  // answer tokens, -sum logp
    for (size_t k = 0; k < logp.size(); k++)
      if (b.counted[k]) sums[0] += 1, sums[1] -= logp[k];
    ctx_.comm.control_allreduce(std::span<double>(sums, 2), ReduceOp::sum, "sft.loss");
    std::vector<float> weight(logp.size());
    for (size_t k = 0; k < logp.size(); k++) weight[k] = b.counted[k] ? static_cast<float>(-1.0 / sums[0]) : 0.0f;
    const GPT2Config& c = model_.config;
    StepResult r;
    r.lr = schedule_lr(schedule_, step);
    if (device_) {
      lm_device_logprob_backward(*device_, weight.data(), 1.0f);
      lm_device_allreduce_grads_sum(*device_, model_, ctx_.comm, "sft.grad");
      r.grad_norm = lm_device_update(*device_, grad_clip_, static_cast<float>(r.lr));
    } else {
      cpu::token_logprob_backward(gpt2_dlogits(model_), model_.acts.logits.data(), b.targets.data(), weight.data(),
                                  b.B * b.T, c.vocab_size, c.padded_vocab_size, 1.0f);
      gpt2_zero_grad(model_);
      gpt2_backward_from_dlogits(model_);
      ctx_.comm.allreduce(std::span<float>(model_.grads), ReduceOp::sum, "sft.grad");
      r.grad_norm = global_norm(model_.grads);
      adamw_step(opt_, model_.params, model_.grads, r.lr, {}, clip_scale(r.grad_norm, grad_clip_));
    }
    r.loss = sums[1] / sums[0];  // the global mean, on every rank
    r.samples = int64_t(b.B) * b.T;
    r.flops = 3 * gpt2_forward_flops(c, b.B, b.T);
    return r;
  }

  double evaluate(int64_t problems) override {
    if (device_) lm_device_params_to_host(*device_, model_);
    return rlvr_greedy_accuracy(model_, nullptr, s_, problems, ctx_.comm, gen_);
  }
  void state(StateFields& f) override {
    if (device_ && !f.loading()) lm_device_to_host(*device_, model_, opt_);
    f.field("sft.params", model_.params);
    adamw_state(f, opt_, "sft.");
    if (device_ && f.loading()) lm_device_from_host(*device_, model_, opt_);
  }
  int64_t num_params() const override { return static_cast<int64_t>(model_.params.size()); }
  void finished() override {
    if (device_) lm_device_params_to_host(*device_, model_);
    save_run_model(ctx_, model_);
  }

 private:
  RunContext& ctx_;
  GPT2 model_;
  RlvrSettings s_;
  int batch_ = 0;
  AdamW opt_;
  Schedule schedule_;
  double grad_clip_ = 0;
  TokenBatch batch_tokens_;
  Generator gen_;
  LmDevicePtr device_;  // run.device = "cuda" only
};

}  // namespace

FRUGAL_REGISTER_METHOD(sft, MethodInfo{"sft",
                                       "supervised warm start on a verifiable task (loss on the answer tokens); writes "
                                       "<run dir>/model.bin for RL",
                                       Domain::sft,
                                       {add_model_keys, add_task_keys, add_rlvr_keys, add_optim_keys, add_sft_keys},
                                       [](RunContext& ctx) { return std::make_unique<Sft>(ctx); }, /*cuda=*/true,
                                       /*device_comm=*/true});

}  // namespace frugal
