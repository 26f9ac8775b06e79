#include "methods/rlvr.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "kernels/cpu/crossentropy.hpp"
#include "methods/lm.hpp"
#include "model/llmc_checkpoint.hpp"

namespace frugal {

void add_rlvr_keys(Schema& s) {
  s.add("rlvr.prompts", int64_t{16}, "problems per step P, all ranks together (a multiple of the rank count)", 1, 1 << 24);
  s.add("rlvr.group_size", int64_t{8}, "completions per problem G (GRPO) / members sharing a problem (eggroll_lm)", 1,
        1 << 16);
  s.add("rlvr.max_new_tokens", int64_t{16}, "generation stops after this many tokens (then the completion is truncated)",
        1, 1 << 20);
  s.add("rlvr.first_step", int64_t{0},
        "RL step the run starts at: step s draws problems and samples as step first_step + s (a continuation of "
        "an earlier run - e.g. after an extrapolation - sees fresh problems)", 0, int64_t{1} << 40);
  s.add("rlvr.temperature", 1.0, "sampling temperature (0 = greedy)", 0.0, 100.0);
  s.add("rlvr.top_k", int64_t{0}, "sample among the k most likely tokens (0 = all)", 0, 1 << 20);
  s.add("rlvr.top_p", 1.0, "nucleus sampling: the smallest set of tokens with this probability (1 = all)", 0.0, 1.0);
}

RlvrSettings rlvr_settings_from(const Config& cfg, const GPT2Config& model, uint64_t seed) {
  RlvrSettings s;
  s.task = task_settings_from(cfg, seed);
  s.prompts = static_cast<int>(cfg.integer("rlvr.prompts"));
  s.group = static_cast<int>(cfg.integer("rlvr.group_size"));
  s.first_step = cfg.integer("rlvr.first_step");
  s.sampling.max_new_tokens = static_cast<int>(cfg.integer("rlvr.max_new_tokens"));
  s.sampling.temperature = static_cast<float>(cfg.real("rlvr.temperature"));
  s.sampling.top_k = static_cast<int>(cfg.integer("rlvr.top_k"));
  s.sampling.top_p = static_cast<float>(cfg.real("rlvr.top_p"));
  FRUGAL_CHECK(s.sampling.top_p > 0.0f, "rlvr.top_p must be positive");
  s.sampling.end_token = kEndMarker;
  // The longest prompt plus max_new_tokens must fit the context: checked here, before any step.
  const int longest_prompt = max_problem_chars(s.task);  // prompt + solution + end: a bound on the prompt
  FRUGAL_CHECK(longest_prompt + s.sampling.max_new_tokens <= model.max_seq_len, "rlvr.max_new_tokens (",
               s.sampling.max_new_tokens, ") plus the longest ", task_name(s.task.kind), " prompt (up to ", longest_prompt,
               " characters with its answer) exceeds the model's context (model.block_size = ", model.max_seq_len,
               "): lower rlvr.max_new_tokens or raise model.block_size");
  s.eval_max_new_tokens = s.sampling.max_new_tokens;
  return s;
}

GPT2 make_rlvr_model(const Config& cfg, uint64_t seed) {
  const int64_t vocab = cfg.integer("model.vocab_size");
  FRUGAL_CHECK(vocab == 0 || vocab >= kTaskVocab, "model.vocab_size (", vocab, ") must be 0 or at least ", kTaskVocab,
               ": the tasks are byte-level ASCII");
  return make_gpt2(cfg, kTaskVocab, seed);
}

std::vector<int> encode_text(std::string_view text) {
  std::vector<int> t(text.size());
  for (size_t i = 0; i < text.size(); i++) t[i] = static_cast<unsigned char>(text[i]);
  return t;
}

std::string decode_tokens(const std::vector<int>& tokens) {
  std::string s(tokens.size(), '\0');
  for (size_t i = 0; i < tokens.size(); i++) s[i] = static_cast<char>(tokens[i] < 256 ? tokens[i] : '?');
  return s;
}

void save_run_model(const RunContext& ctx, const GPT2& model) {
  if (ctx.comm.rank() == 0 && !ctx.run_dir.empty()) save_llmc_checkpoint(model, ctx.run_dir + "/model.bin");
}

double rlvr_greedy_accuracy(GPT2& model, GPT2BlockHook* blocks, const RlvrSettings& s, int64_t problems,
                            Communicator& comm, Generator& gen) {
  std::vector<Problem> mine;
  std::vector<std::vector<int>> prompts;
  std::vector<uint32_t> ids;
  for (int64_t i = comm.rank(); i < problems; i += comm.size()) {
    mine.push_back(make_problem(s.task, Split::eval, i));
    prompts.push_back(encode_text(mine.back().prompt));
    ids.push_back(static_cast<uint32_t>(i));
  }
  SamplingSettings greedy = s.sampling;
  greedy.temperature = 0.0f;
  greedy.max_new_tokens = s.eval_max_new_tokens;
  std::vector<Completion> out;
  GenerateRequest req{prompts, ids, {}, 0, 0};
  generate(model, blocks, nullptr, req, greedy, gen, out);
  double correct = 0;
  for (size_t j = 0; j < mine.size(); j++)
    correct += score_completion(s.task, mine[j], decode_tokens(out[j].tokens)).reward >= 1.0 ? 1.0 : 0.0;
  comm.control_allreduce(std::span<double>(&correct, 1), ReduceOp::sum, "eval.correct");
  return problems > 0 ? correct / double(problems) : NAN;
}

CompletionStats completion_stats(const std::vector<Completion>& completions, const std::vector<Verdict>& verdicts,
                                 Communicator& comm, std::string_view tag) {
  double sums[6] = {0, 0, 0, 0, 0, 0};  // count, reward, reward^2, correct, length, truncated
  double max_len = 0;
  for (size_t i = 0; i < completions.size(); i++) {
    const double r = verdicts[i].reward, len = double(completions[i].tokens.size());
    sums[0] += 1, sums[1] += r, sums[2] += r * r, sums[3] += verdicts[i].correct && verdicts[i].finished ? 1 : 0;
    sums[4] += len, sums[5] += completions[i].truncated ? 1 : 0;
    max_len = std::max(max_len, len);
  }
  comm.control_allreduce(std::span<double>(sums, 6), ReduceOp::sum, tag);
  comm.control_allreduce(std::span<double>(&max_len, 1), ReduceOp::max, tag);
  CompletionStats st;
  st.count = sums[0];
  if (st.count == 0) return st;
  st.reward_mean = sums[1] / st.count;
  st.reward_std = std::sqrt(std::max(0.0, sums[2] / st.count - st.reward_mean * st.reward_mean));
  st.accuracy = sums[3] / st.count;
  st.length_mean = sums[4] / st.count;
  st.length_max = max_len;
  st.truncated = sums[5] / st.count;
  return st;
}

void build_token_batch(TokenBatch& b, const std::vector<const std::vector<int>*>& prompts,
                       const std::vector<const std::vector<int>*>& completions) {
  b.B = static_cast<int>(prompts.size());
  size_t longest = 2;
  for (int i = 0; i < b.B; i++) longest = std::max(longest, prompts[size_t(i)]->size() + completions[size_t(i)]->size());
  b.T = static_cast<int>(longest) - 1;
  const size_t BT = size_t(b.B) * b.T;
  b.inputs.assign(BT, 0), b.targets.assign(BT, 0), b.counted.assign(BT, 0);
  for (int i = 0; i < b.B; i++) {
    const std::vector<int>& p = *prompts[size_t(i)];
    const std::vector<int>& c = *completions[size_t(i)];
    const size_t len = p.size() + c.size();
    const auto tok = [&](size_t t) { return t < p.size() ? p[t] : c[t - p.size()]; };
    for (size_t t = 0; t + 1 < len; t++) {
      const size_t at = size_t(i) * b.T + t;
      b.inputs[at] = tok(t);
      b.targets[at] = tok(t + 1);
      b.counted[at] = t + 1 >= p.size() ? 1 : 0;
    }
  }
}

void batch_logprobs(GPT2& model, GPT2BlockHook* blocks, const TokenBatch& b, float inv_temp, std::vector<float>& logp,
                    std::vector<float>* entropy) {
  const GPT2Config& c = model.config;
  const int BT = b.B * b.T;
  gpt2_forward(model, b.inputs.data(), nullptr, b.B, b.T, blocks);
  logp.resize(size_t(BT));
  if (entropy) entropy->resize(size_t(BT));
  cpu::token_logprob_forward(logp.data(), entropy ? entropy->data() : nullptr, model.acts.logits.data(), b.targets.data(),
                             BT, c.vocab_size, c.padded_vocab_size, inv_temp);
}

}  // namespace frugal
