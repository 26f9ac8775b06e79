#include "methods/lm.hpp"

#include "core/error.hpp"
#include "model/llmc_checkpoint.hpp"

namespace frugal {

GPT2 make_gpt2(const Config& cfg, int data_vocab_size, uint64_t seed) {
  GPT2 model;
  const std::string& init_from = cfg.str("model.init_from");
  if (!init_from.empty()) {
    model = load_llmc_checkpoint(init_from);
    const GPT2Config& c = model.config;
    FRUGAL_CHECK(c.vocab_size >= data_vocab_size, "checkpoint '", init_from, "' has vocabulary ", c.vocab_size,
                 " but the data holds token ids up to ", data_vocab_size - 1);
    // The config must describe the model that runs (the trace records the config): a checkpoint of
    // another shape is an error, not a silent switch.
    const int64_t vocab = cfg.integer("model.vocab_size");
    FRUGAL_CHECK(c.num_layers == cfg.integer("model.n_layer") && c.num_heads == cfg.integer("model.n_head") &&
                     c.channels == cfg.integer("model.n_embd") && c.max_seq_len == cfg.integer("model.block_size") &&
                     (vocab == 0 || vocab == c.vocab_size),
                 "model.init_from checkpoint '", init_from, "' is a model with n_layer = ", c.num_layers, ", n_head = ",
                 c.num_heads, ", n_embd = ", c.channels, ", block_size = ", c.max_seq_len, ", vocab_size = ", c.vocab_size,
                 "; the config says n_layer = ", cfg.integer("model.n_layer"), ", n_head = ", cfg.integer("model.n_head"),
                 ", n_embd = ", cfg.integer("model.n_embd"), ", block_size = ", cfg.integer("model.block_size"),
                 ", vocab_size = ", vocab, ": set the [model] keys to the checkpoint's shape");
  } else {
    model = gpt2_create(gpt2_config_from(cfg, data_vocab_size));
    gpt2_init_weights(model, seed, static_cast<float>(cfg.real("model.init_std")));
  }
  return model;
}

LmWorker make_lm_worker(RunContext& ctx, const Dataset& data) {
  const Config& cfg = ctx.config;
  LmWorker w;
  w.model = make_gpt2(cfg, data.vocab_size, ctx.seed);
  w.seq_len = static_cast<int>(cfg.integer("data.seq_len"));
  FRUGAL_CHECK(w.seq_len <= w.model.config.max_seq_len, "data.seq_len (", w.seq_len, ") exceeds the model's context (",
               w.model.config.max_seq_len, ")");
  w.global_batch = static_cast<int>(cfg.integer("data.batch_size"));
  const int ranks = ctx.comm.size();
  FRUGAL_CHECK(w.global_batch % ranks == 0, "data.batch_size (", w.global_batch, ") must be divisible by the number of ranks (",
               ranks, "): every rank takes an equal slice of the global batch");
  w.local_batch = w.global_batch / ranks;
  // A stream shorter than one batch would train on the same few sequences over and over.
  FRUGAL_CHECK(ctx.total_steps == 0 || data.train.num_sequences(w.seq_len) >= uint64_t(w.global_batch),
               "the training data holds ",
               data.train.num_sequences(w.seq_len), " sequences of ", w.seq_len, " tokens, fewer than one batch (",
               "data.batch_size = ", w.global_batch, "): give it more tokens or lower data.batch_size / data.seq_len");
  w.opt = adamw_create(adamw_config_from(cfg), w.model.layout);
  w.schedule = schedule_from(cfg, ctx.total_steps);
  w.grad_clip = cfg.real("optim.grad_clip");
  w.inputs.resize(size_t(w.local_batch) * w.seq_len);
  w.targets.resize(w.inputs.size());
  if (cfg.str("run.device") == "cuda") w.device = lm_device_create(w.model, w.opt);
  return w;
}

float lm_forward_backward(LmWorker& w, const TokenStream& train, int64_t step, int rank, SubnetSlices* subnet) {
  const uint64_t first = static_cast<uint64_t>(step) * w.global_batch + static_cast<uint64_t>(rank) * w.local_batch;
  load_batch(train, first, w.local_batch, w.seq_len, w.inputs.data(), w.targets.data());
  if (w.device) {
    const float loss = lm_device_forward_backward(*w.device, w.inputs.data(), w.targets.data(), w.local_batch,
                                                  w.seq_len, subnet ? &subnet->subnet() : nullptr);
    if (!w.grads_on_device) lm_device_grads_to_host(*w.device, w.model);
    return loss;
  }
  gpt2_zero_grad(w.model);
  const float loss = gpt2_forward(w.model, w.inputs.data(), w.targets.data(), w.local_batch, w.seq_len, subnet);
  gpt2_backward(w.model, subnet);
  return loss;
}

void lm_adamw_update(LmWorker& w, int64_t step, StepResult& r, const GPT2Subnet* subnet,
                     std::span<const uint8_t> update_mask) {
  r.lr = schedule_lr(w.schedule, step);
  if (w.device) {
    if (!w.grads_on_device) lm_device_grads_from_host(*w.device, w.model);
    r.grad_norm = lm_device_update(*w.device, w.grad_clip, static_cast<float>(r.lr), update_mask);
  } else {
    r.grad_norm = global_norm(w.model.grads);
    adamw_step(w.opt, w.model.params, w.model.grads, static_cast<float>(r.lr), update_mask,
               clip_scale(r.grad_norm, w.grad_clip));
  }
  r.samples = int64_t(w.local_batch) * w.seq_len;
  r.flops = lm_step_flops(w, subnet);
}

StepResult lm_local_adamw_step(LmWorker& w, const TokenStream& train, int64_t step, int rank) {
  StepResult r;
  r.loss = lm_forward_backward(w, train, step, rank);
  lm_adamw_update(w, step, r);
  return r;
}

void lm_allreduce_grads_mean(LmWorker& w, Communicator& comm, std::string_view tag) {
  if (w.grads_on_device) {  // NCCL on the GPU's own buffer
    comm.device_allreduce(lm_device_grads(*w.device), ReduceOp::sum, tag);
    lm_device_scale_grads(*w.device, 1.0f / static_cast<float>(comm.size()));
  } else {
    allreduce_mean(comm, std::span<float>(w.model.grads), tag);
  }
}

void lm_device_allreduce_grads_sum(LmDevice& d, GPT2& staging, Communicator& comm, std::string_view tag) {
  if (comm.has_device_backend()) {
    comm.device_allreduce(lm_device_grads(d), ReduceOp::sum, tag);
    return;
  }
  lm_device_grads_to_host(d, staging);
  comm.allreduce(std::span<float>(staging.grads), ReduceOp::sum, tag);
  lm_device_grads_from_host(d, staging);
}

void lm_params_to_host(LmWorker& w) {
  if (w.device) lm_device_params_to_host(*w.device, w.model);
}

void lm_params_to_device(LmWorker& w) {
  if (w.device) lm_device_params_from_host(*w.device, w.model);
}

double lm_evaluate_params(LmWorker& w, std::vector<float>& params, const TokenStream& val, int64_t batches,
                          int64_t batch_size, Communicator& comm) {
  lm_params_to_host(w);  // on a GPU: the worker's own parameters, kept aside while `params` are up
  std::swap(w.model.params, params);
  lm_params_to_device(w);
  const double loss = lm_evaluate(w, val, batches, batch_size, comm);
  std::swap(w.model.params, params);
  lm_params_to_device(w);
  return loss;
}

double lm_step_flops(const LmWorker& w, const GPT2Subnet* subnet) {
  const GPT2Config& c = w.model.config;
  return 3.0 * (subnet ? subnet_forward_flops(c, w.local_batch, w.seq_len, *subnet)
                       : gpt2_forward_flops(c, w.local_batch, w.seq_len));
}

double lm_evaluate(LmWorker& w, const TokenStream& val, int64_t batches, int64_t batch_size, Communicator& comm) {
  const int B = static_cast<int>(batch_size > 0 ? batch_size : w.global_batch), T = w.seq_len;
  std::vector<int> in(size_t(B) * T), tg(size_t(B) * T);
  double sums[2] = {0.0, 0.0};  // loss sum, batches
  for (int64_t i = comm.rank(); i < batches; i += comm.size()) {
    load_batch(val, static_cast<uint64_t>(i) * B, B, T, in.data(), tg.data());
    sums[0] += w.device ? lm_device_loss(*w.device, in.data(), tg.data(), B, T)
                        : gpt2_forward(w.model, in.data(), tg.data(), B, T);
    sums[1] += 1;
  }
  comm.control_allreduce(std::span<double>(sums, 2), ReduceOp::sum, "eval.loss");
  return sums[1] > 0 ? sums[0] / sums[1] : 0.0;
}

void lm_state(StateFields& f, LmWorker& w, const std::string& prefix) {
  if (w.device && !f.loading()) lm_device_to_host(*w.device, w.model, w.opt);
  f.field(prefix + "params", w.model.params);
  adamw_state(f, w.opt, prefix);
  if (w.device && f.loading()) lm_device_from_host(*w.device, w.model, w.opt);
}

LmMethod::LmMethod(RunContext& ctx, std::string state_prefix, std::string global_name)
    : ctx_(ctx), data_(load_dataset(ctx.config)), w_(make_lm_worker(ctx, data_)), prefix_(std::move(state_prefix)),
      global_name_(std::move(global_name)), eval_batch_size_(ctx.config.integer("eval.batch_size")) {
  if (!global_name_.empty()) global_ = w_.model.params;
}

double LmMethod::evaluate(int64_t batches) {
  if (!global_name_.empty()) return lm_evaluate_params(w_, global_, data_.val, batches, eval_batch_size_, ctx_.comm);
  return lm_evaluate(w_, data_.val, batches, eval_batch_size_, ctx_.comm);
}

void LmMethod::state(StateFields& f) {
  lm_state(f, w_, prefix_);
  if (!global_name_.empty()) f.field(global_name_, global_);
}

}  // namespace frugal
