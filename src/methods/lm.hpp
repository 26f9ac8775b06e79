#pragma once
// The pieces every language-model method shares: the data, a GPT-2 model with its AdamW optimiser
// and schedule, this rank's slice of each step's global batch, held-out evaluation, and the
// LmMethod base that gives a method its evaluation, checkpointed state and size.
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "data/tokens.hpp"
#include "harness/method.hpp"
#include "methods/lm_device.hpp"
#include "model/gpt2.hpp"
#include "model/subnet.hpp"
#include "optim/adamw.hpp"

namespace frugal {

struct LmWorker {
  GPT2 model;
  AdamW opt;
  Schedule schedule;
  double grad_clip = 0;
  int global_batch = 0, local_batch = 0, seq_len = 0;
  std::vector<int> inputs, targets;  // local_batch * seq_len
  // run.device = "cuda": the parameters and optimiser state live on the rank's GPU, which runs the
  // forward, backward, clip and AdamW; model.grads carries the gradients through the host for the
  // all-reduce, and model.params / opt are brought up to date for checkpoints (lm_state).
  LmDevicePtr device;
  // On a GPU, whether the gradients stay there between backward and update: set by a method that
  // never needs them on the host (DiLoCo's and SparseLoCo's local steps; ddp with run.device_comm =
  // "nccl"). Otherwise lm_forward_backward brings them to model.grads and lm_adamw_update takes
  // them back.
  bool grads_on_device = false;
};

// Every language-model method reads the sections [model] (add_model_keys), [data] (add_data_keys)
// and [optim] (add_optim_keys): each registers them by name, so a section several method families
// share (the RLVR methods read [model] and [optim] too) is declared once.

// The model of the [model] section: loaded from model.init_from (an llm.c checkpoint, which must
// have the configured shape) or initialised from the seed.
GPT2 make_gpt2(const Config& config, int data_vocab_size, uint64_t seed);
// Worker with make_gpt2's model; local batch =
// data.batch_size / ranks (an error if it does not divide).
LmWorker make_lm_worker(RunContext& ctx, const Dataset& data);
// Loads this rank's slice of step `step`'s global batch, runs forward and backward (grads are
// zeroed first), of the subnetwork if one is given (EST). Returns the mean loss of the slice.
float lm_forward_backward(LmWorker& w, const TokenStream& train, int64_t step, int rank,
                          SubnetSlices* subnet = nullptr);
// The update after the gradients are final: clip, schedule, AdamW (only where update_mask is 1, if
// one is given). Fills grad_norm, lr, samples and flops (of the subnetwork, if one is given).
void lm_adamw_update(LmWorker& w, int64_t step, StepResult& r, const GPT2Subnet* subnet = nullptr,
                     std::span<const uint8_t> update_mask = {});
// One local AdamW step (forward, backward, clip, update) with no communication: the inner step of
// DiLoCo and SparseLoCo (on a GPU they set grads_on_device: nothing needs the gradients on the
// host). Fills loss, grad_norm, lr, samples and flops.
StepResult lm_local_adamw_step(LmWorker& w, const TokenStream& train, int64_t step, int rank);
// The mean of the gradients over the ranks, in place, wherever they are: model.grads through the
// communicator's host back end, or the GPU's buffer through its device back end (grads_on_device).
void lm_allreduce_grads_mean(LmWorker& w, Communicator& comm, std::string_view tag);
// The sum over ranks of a device worker's gradients (sft, grpo): on the GPUs through the
// communicator's device back end (run.device_comm = "nccl"), else through staging.grads (MPI).
void lm_device_allreduce_grads_sum(LmDevice& d, GPT2& staging, Communicator& comm, std::string_view tag);
// Host staging of the worker's parameters for methods whose outer step runs on the host (DiLoCo,
// SparseLoCo, DeMo): lm_params_to_host before reading w.model.params, lm_params_to_device after
// changing them. No-ops on the CPU, where w.model.params is the model.
void lm_params_to_host(LmWorker& w);
void lm_params_to_device(LmWorker& w);
// FLOPs of one forward+backward on the local batch (of the subnetwork if one is given).
double lm_step_flops(const LmWorker& w, const GPT2Subnet* subnet = nullptr);
// Mean loss over `batches` batches of eval.batch_size x seq_len from the start of the held-out
// stream, in file order; batches are dealt round-robin to ranks and the sum reduced (control
// traffic), so the value does not depend on the rank count.
double lm_evaluate(LmWorker& w, const TokenStream& val, int64_t batches, int64_t batch_size, Communicator& comm);
// lm_evaluate on `params` (e.g. the global parameters of DiLoCo) instead of the worker's own.
double lm_evaluate_params(LmWorker& w, std::vector<float>& params, const TokenStream& val, int64_t batches,
                          int64_t batch_size, Communicator& comm);
// The worker's parameters and AdamW state: <prefix>params, adam_m, adam_v, adam_t.
void lm_state(StateFields& f, LmWorker& w, const std::string& prefix);

// The base of the language-model methods: loads the data, builds the worker, and answers
// evaluate, state (lm_state under `state_prefix`) and num_params. A method adds step() and, where
// it keeps more state, extends state(). Methods whose workers restart from global parameters
// (DiLoCo, SparseLoCo) name them `global_name`: the base keeps them in global_, evaluates them
// (what the method would ship, not one worker's drift) and checkpoints them under that name.
class LmMethod : public Method {
 public:
  LmMethod(RunContext& ctx, std::string state_prefix, std::string global_name = "");
  double evaluate(int64_t batches) override;
  void state(StateFields& f) override;
  int64_t num_params() const override { return static_cast<int64_t>(w_.model.params.size()); }

 protected:
  RunContext& ctx_;
  const Dataset data_;
  LmWorker w_;
  std::vector<float> global_;  // the global parameters, where the method has them
  const std::string prefix_, global_name_;
  const int64_t eval_batch_size_;
};

}  // namespace frugal
