// EGGROLL on the transformer (methods.md section 1, the LLM runs): evolution strategies on a
// language model with rank-r perturbations of the block matrices, fitness from verified answers.
// One step (epoch):
//   1. every rank regenerates all pairs' factors of every perturbed matrix from the keys
//      (seed, tensor = 16 + matrix kind, layer, epoch'); embeddings, norms and biases stay frozen
//   2. the population of N members (antithetic pairs) is split into N / G groups of G members
//      (G = rlvr.group_size); group k answers problems [k Q, (k+1) Q) of the step (Q = P G / N), every
//      member of the group all of them, one sampled completion each. Rank r generates for members
//      [r N/R, (r+1) N/R), all at once: perturbed KV-cached generation, one shared GEMM per matrix
//      for every member's rows plus each member's rank-r correction (W + E never formed)
//   3. fitness of a member = its mean reward; the N fitness values are all-gathered - the only
//      bytes the method sends
//   4. shaping: z-scores with the group's mean subtracted and the global std (es.fitness)
//   5. every rank computes the same update -sqrt(N) G_W per matrix (one GEMM over the stacked
//      factors) and applies it (SGD as the paper's LLM runs, or Adam): the replicas stay identical.
// run.device = "cuda": steps 1, 2 and 5's GEMMs run on the rank's GPU (methods/eggroll_lm_device.hpp);
// the optimiser, the greedy evaluation and checkpoints use the host model, kept current.
#include <array>
#include <cmath>

#include "core/error.hpp"
#include "core/timer.hpp"
#include "methods/eggroll_lm_device.hpp"
#include "methods/es.hpp"
#include "methods/rlvr.hpp"
#include "optim/adamw.hpp"

namespace frugal {
namespace {

void add_eggroll_lm_keys(Schema& s) {
  s.add("eggroll_lm.rank", int64_t{1}, "rank r of each matrix perturbation (the paper's LLM runs: 1)", 1, 1 << 16);
  s.add("eggroll_lm.matrices", std::string("qkv,attproj,fc,fcproj"),
        "comma-separated block matrices that are perturbed and trained (embeddings, norms, biases stay frozen)");
}

class EggrollLm final : public Method {
 public:
  explicit EggrollLm(RunContext& ctx) : ctx_(ctx), model_(make_rlvr_model(ctx.config, ctx.seed)) {
    const Config& cfg = ctx.config;
    s_ = rlvr_settings_from(cfg, model_.config, ctx.seed);
    const int R = ctx.comm.size();
    population_ = static_cast<int>(cfg.integer("es.population"));
    FRUGAL_CHECK(population_ % 2 == 0, "es.population must be even (antithetic pairs), got ", population_);
    FRUGAL_CHECK(population_ % R == 0, "es.population ", population_, " must be divisible by the number of ranks (", R, ")");
    FRUGAL_CHECK(s_.group >= 2 && s_.group % 2 == 0 && population_ % s_.group == 0, "rlvr.group_size (", s_.group,
                 ") must be even, at least 2 and divide es.population (", population_,
                 "): a group of members shares its problems and holds whole antithetic pairs");
    const int groups = population_ / s_.group;
    FRUGAL_CHECK(s_.prompts % groups == 0, "rlvr.prompts (", s_.prompts, ") must be a multiple of the number of groups (",
                 "es.population / rlvr.group_size = ", groups, ")");
    per_group_ = s_.prompts / groups;
    sigma_ = static_cast<float>(cfg.real("es.sigma"));
    lr_ = static_cast<float>(cfg.real("es.lr"));
    rank_ = static_cast<int>(cfg.integer("eggroll_lm.rank"));
    noise_reuse_ = cfg.integer("es.noise_reuse");
    fitness_kind_ = cfg.str("es.fitness");
    perturbed_ = parse_block_matrices(cfg.str("eggroll_lm.matrices"), "eggroll_lm.matrices");
    opt_ = es_optimizer(cfg, model_.layout);
    if (cfg.str("run.device") == "cuda") device_ = eggroll_lm_device_create(model_, sigma_, rank_);
  }

  StepResult step(int64_t epoch) override {
    const int R = ctx_.comm.size(), local = population_ / R, first = ctx_.comm.rank() * local;
    const uint32_t epoch_key = noise_reuse_ == 0 ? 0u : static_cast<uint32_t>(epoch / noise_reuse_);
    if (epoch_key != noise_epoch_) regenerate(epoch_key);

    // Member i answers its group's problems; completion q of member i is sequence i Q + q.
    Timer t_gen;
    std::vector<Problem> problems;
    std::vector<std::vector<int>> prompts;
    std::vector<uint32_t> ids;
    std::vector<int32_t> members;
    std::vector<int> problem_of;
    for (int i = first; i < first + local; i++) {
      const int group = i / s_.group;
      for (int q = 0; q < per_group_; q++) {
        const int64_t index = (s_.first_step + epoch) * s_.prompts + int64_t(group) * per_group_ + q;
        problems.push_back(make_problem(s_.task, Split::train, index));
        prompts.push_back(encode_text(problems.back().prompt));
        ids.push_back(static_cast<uint32_t>(i * per_group_ + q));
        members.push_back(i);
      }
    }
    std::vector<Completion> completions;
    const GenerateRequest request{prompts, ids, members, ctx_.seed, s_.first_step + epoch};
    int64_t tokens_generated = 0;
    double gen_flops = 0;
    if (device_) {
      eggroll_lm_device_generate(*device_, request, s_.sampling, completions, &tokens_generated, &gen_flops);
    } else {
      generate(model_, nullptr, &factors_.noise, request, s_.sampling, gen_, completions);
      tokens_generated = gen_.tokens_generated, gen_flops = gen_.flops;
    }
    const double gen_time = t_gen.seconds();
    std::vector<Verdict> verdicts(completions.size());
    std::vector<float> fitness_local(size_t(local), 0.0f);
    for (size_t k = 0; k < completions.size(); k++) {
      verdicts[k] = score_completion(s_.task, problems[k], decode_tokens(completions[k].tokens));
      fitness_local[k / size_t(per_group_)] += static_cast<float>(verdicts[k].reward / per_group_);
    }
    const CompletionStats stats = completion_stats(completions, verdicts, ctx_.comm, "eggroll_lm.stats");

    // The only traffic of the method: N fitness values.
    std::vector<float> fitness(size_t(population_), 0.0f);
    ctx_.comm.allgather(std::span<const float>(fitness_local), std::span<float>(fitness), "eggroll_lm.fitness");
    const std::vector<float> shaped = shape_fitness(fitness, fitness_kind_, s_.group);

    // g = -sqrt(N) G_W for every perturbed matrix, one GEMM each; everything else gets no update.
    const float scale = -std::sqrt(static_cast<float>(population_));
    double update_flops = 0;
    for (int l = 0; l < model_.config.num_layers; l++)
      for (int k = 0; k < 4; k++) {
        if (!perturbed_[size_t(k)]) continue;
        int rows = 0, cols = 0;
        block_matrix_shape(model_.config, k, &rows, &cols);
        update_flops += 2.0 * rows * cols * double(population_ / 2) * rank_;
      }
    if (device_) {
      eggroll_lm_device_update(*device_, shaped, scale, model_.grads);
    } else {
      std::fill(model_.grads.begin(), model_.grads.end(), 0.0f);
      for (int l = 0; l < model_.config.num_layers; l++) {
        const GPT2BlockWeights d = gpt2_block_weights(model_, l);
        float* grad[4] = {d.dqkvw, d.dattprojw, d.dfcw, d.dfcprojw};
        for (int k = 0; k < 4; k++) {
          if (!perturbed_[size_t(k)]) continue;
          const LowRankFactors& f = factors_.factors[size_t(l)][size_t(k)];
          lowrank_update(f, shaped.data(), population_, sigma_, grad[k], scratch_);
          for (size_t j = 0; j < size_t(f.rows) * f.cols; j++) grad[k][j] *= scale;
        }
      }
    }
    StepResult r;
    r.grad_norm = global_norm(model_.grads);
    r.lr = lr_;
    es_apply(opt_, model_.params, model_.grads, lr_);
    if (device_) eggroll_lm_device_params(*device_, model_);
    r.loss = stats.reward_mean;
    r.samples = tokens_generated;
    r.flops = gen_flops + update_flops;
    r.metrics = {{"reward_std", stats.reward_std},
                 {"accuracy", stats.accuracy},
                 {"fitness_max", *std::max_element(fitness.begin(), fitness.end())},
                 {"fitness_min", *std::min_element(fitness.begin(), fitness.end())},
                 {"response_length_mean", stats.length_mean},
                 {"response_length_max", stats.length_max},
                 {"truncated_fraction", stats.truncated},
                 {"time_generate_s", gen_time},
                 {"generate_tokens_per_s", gen_time > 0 ? double(tokens_generated) / gen_time : 0.0}};
    return r;
  }

  double evaluate(int64_t problems) override {
    return rlvr_greedy_accuracy(model_, nullptr, s_, problems, ctx_.comm, gen_);
  }
  void state(StateFields& f) override {
    f.field("eggroll_lm.params", model_.params);
    adamw_state(f, opt_, "eggroll_lm.");
    f.after_load([&] {
      noise_epoch_ = UINT32_MAX;  // regenerate at the next step
      if (device_) eggroll_lm_device_params(*device_, model_);
    });
  }
  int64_t num_params() const override { return static_cast<int64_t>(model_.params.size()); }

 private:
  // Every pair's factors of every perturbed matrix for epoch' `key` (all ranks: the update needs them).
  void regenerate(uint32_t key) {
    noise_epoch_ = key;
    if (device_) return eggroll_lm_device_regenerate(*device_, ctx_.seed, key, perturbed_, population_ / 2);
    population_factors_generate(factors_, model_.config, perturbed_, ctx_.seed, key, population_ / 2, rank_,
                                sigma_);
  }

  RunContext& ctx_;
  GPT2 model_;
  RlvrSettings s_;
  int population_ = 0, per_group_ = 0, rank_ = 1;
  float sigma_ = 0, lr_ = 0;
  int64_t noise_reuse_ = 1;
  std::string fitness_kind_;
  std::array<bool, 4> perturbed_{};  // by LoraSlot: the block matrices perturbed and trained
  AdamW opt_;
  PopulationFactors factors_;  // on the CPU: every perturbed matrix's factors and the noise over them
  uint32_t noise_epoch_ = UINT32_MAX;
  std::vector<float> scratch_;
  Generator gen_;
  EggrollLmDevicePtr device_;  // run.device = "cuda" only
};

}  // namespace

FRUGAL_REGISTER_METHOD(eggroll_lm, MethodInfo{"eggroll_lm",
                                              "EGGROLL on the transformer: rank-r perturbed generation, fitness from "
                                              "verified answers, only N fitness values on the wire",
                                              Domain::rlvr,
                                              {add_model_keys, add_task_keys, add_rlvr_keys, add_es_keys, add_eggroll_lm_keys},
                                              [](RunContext& ctx) { return std::make_unique<EggrollLm>(ctx); },
                                              /*cuda=*/true});

}  // namespace frugal
