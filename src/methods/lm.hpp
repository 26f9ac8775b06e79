#pragma once
// The pieces every language-model method shares: a GPT-2 model with its AdamW optimiser and
// schedule, this rank's slice of each step's global batch, and held-out evaluation.
#include <span>
#include <vector>

#include "methods/method.hpp"
#include "model/gpt2.hpp"
#include "optim/adamw.hpp"

namespace frugal {

struct LmWorker {
  GPT2 model;
  AdamW opt;
  Schedule schedule;
  double grad_clip = 0;
  int global_batch = 0, local_batch = 0, seq_len = 0;
  std::vector<int> inputs, targets;  // local_batch * seq_len
};

// Model from model.init_from (llm.c checkpoint) or a seeded initialisation; local batch =
// data.batch_size / ranks (an error if it does not divide).
LmWorker make_lm_worker(RunContext& ctx);
// Loads this rank's slice of step `step`'s global batch, runs forward and backward (grads are
// zeroed first), of the subnetwork if one is given (EST). Returns the mean loss of the slice.
float lm_forward_backward(LmWorker& w, const TokenStream& train, int64_t step, int rank,
                          const GPT2Subnet* subnet = nullptr);
// The mean of the gradients over the ranks, in place: one all-reduce (tag) and a 1/ranks scale.
void lm_average_grads(LmWorker& w, Communicator& comm, const char* tag);
// The update after the gradients are final: clip, schedule, AdamW (only where update_mask is 1, if
// one is given). Fills grad_norm, lr, tokens and flops (of the subnetwork, if one is given).
void lm_adamw_update(LmWorker& w, int64_t step, StepResult& r, const GPT2Subnet* subnet = nullptr,
                     std::span<const uint8_t> update_mask = {});
// One local AdamW step (forward, backward, clip, update) with no communication: the inner step of
// DiLoCo and SparseLoCo. Fills loss, grad_norm, lr, tokens and flops.
StepResult lm_local_adamw_step(LmWorker& w, const TokenStream& train, int64_t step, int rank);
// FLOPs of one forward+backward on the local batch (of the subnetwork if one is given).
double lm_step_flops(const LmWorker& w, const GPT2Subnet* subnet = nullptr);
// Mean loss over `batches` batches of eval.batch_size x seq_len from the start of the held-out
// stream, in file order; batches are dealt round-robin to ranks and the sum reduced (control
// traffic), so the value does not depend on the rank count.
double lm_evaluate(LmWorker& w, const TokenStream& val, int64_t batches, int64_t batch_size, Communicator& comm);
// lm_evaluate on `params` (e.g. the global parameters of DiLoCo) instead of the worker's own.
double lm_evaluate_params(LmWorker& w, std::vector<float>& params, const TokenStream& val, int64_t batches,
                          int64_t batch_size, Communicator& comm);
void lm_save(const LmWorker& w, StateWriter& out, const std::string& prefix);
void lm_load(LmWorker& w, const StateReader& in, const std::string& prefix);

}  // namespace frugal
