#pragma once
// What the methods of RL on a language model share (GRPO, the LM EGGROLL, and their warm start
// SFT): the verifiable task, the byte-level model, sampling settings, the draw of each step's
// problems, and greedy evaluation on the task's eval split.
//
// Problems: RL step s uses training problems [s P, (s + 1) P) of the task (P = rlvr.prompts), so
// every step sees fresh problems and the draw depends on (seed, step) only. They are dealt to ranks
// in contiguous blocks of P / R, so a rank's problems - and, with the sampling keyed by sequence id,
// its completions - are the same whatever the thread count, and the union is the same whatever the
// rank count.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "comm/communicator.hpp"
#include "core/config.hpp"
#include "harness/method.hpp"
#include "model/decode.hpp"
#include "model/gpt2.hpp"
#include "rlvr/tasks.hpp"

namespace frugal {

// Section [rlvr] (the methods also read [model] - vocabulary 0 or 128 - and [task]).
void add_rlvr_keys(Schema& schema);

struct RlvrSettings {
  TaskSettings task;
  int prompts = 0;  // P: problems per step, all ranks together
  int group = 0;    // G: completions per problem (GRPO) - members sharing a problem (EGGROLL)
  int64_t first_step = 0;  // run step s is RL step first_step + s (problems and sampling keys)
  SamplingSettings sampling;
  int eval_max_new_tokens = 0;
};
// Reads and checks the keys against the model (a prompt plus max_new_tokens must fit the context).
RlvrSettings rlvr_settings_from(const Config& config, const GPT2Config& model, uint64_t seed);

// The byte-level model: make_gpt2 with the task vocabulary (128).
GPT2 make_rlvr_model(const Config& config, uint64_t seed);

std::vector<int> encode_text(std::string_view text);
std::string decode_tokens(const std::vector<int>& tokens);

// The run's model as an llm.c checkpoint, <run dir>/model.bin, written by rank 0 (nothing without a
// run directory): what sft, grpo and extrapolate leave for the next run (model.init_from).
void save_run_model(const RunContext& ctx, const GPT2& model);

// Greedy accuracy (fraction with reward 1) of the model (with `blocks`, e.g. LoRA) on eval problems
// [0, problems): problems dealt round-robin to ranks, the count of correct answers summed over
// ranks as control traffic; the same value on every rank.
double rlvr_greedy_accuracy(GPT2& model, GPT2BlockHook* blocks, const RlvrSettings& s, int64_t problems,
                            Communicator& comm, Generator& gen);

// Statistics of a set of scored completions, summed over ranks (control traffic) so that rank 0
// reports the whole step: reward mean/std, accuracy, completion length mean/max, truncated fraction.
struct CompletionStats {
  double reward_mean = 0, reward_std = 0, accuracy = 0, length_mean = 0, length_max = 0, truncated = 0;
  double count = 0;
};
CompletionStats completion_stats(const std::vector<Completion>& completions, const std::vector<Verdict>& verdicts,
                                 Communicator& comm, std::string_view tag);

// A teacher-forced batch of sequences (prompt + completion), padded to T = longest - 1 positions:
// inputs[b, t] = seq[t], targets[b, t] = seq[t + 1] (padding: token 0, never counted), and
// counted[b, t] = 1 where the target is a completion token (t >= prompt length - 1).
struct TokenBatch {
  int B = 0, T = 0;
  std::vector<int> inputs, targets;
  std::vector<uint8_t> counted;
};
void build_token_batch(TokenBatch& batch, const std::vector<const std::vector<int>*>& prompts,
                       const std::vector<const std::vector<int>*>& completions);
// Forward of the batch (logits only) and the log-probabilities (B*T) of its targets under
// softmax(logits * inv_temp); entropies of the same distributions if asked. The model keeps the
// activations, so a backward from gpt2_dlogits can follow.
void batch_logprobs(GPT2& model, GPT2BlockHook* blocks, const TokenBatch& batch, float inv_temp, std::vector<float>& logp,
                    std::vector<float>* entropy = nullptr);

}  // namespace frugal
