#include "methods/es.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.hpp"
#include "methods/rl.hpp"
#include "optim/adamw.hpp"

namespace frugal {

void add_es_keys(Schema& s) {
  s.add("es.population", int64_t{64}, "population size N (antithetic pairs: even; a multiple of the rank count)", 2, 1 << 24);
  s.add("es.sigma", 0.2, "noise scale sigma", 0.0, 1e6);
  s.add("es.lr", 0.03, "learning rate of the ES update", 0.0, 1e6);
  s.add("es.optimizer", std::string("adam"), "optimiser applied to -sqrt(N) G", {}, {}, {"adam", "sgd"});
  s.add("es.weight_decay", 0.0, "decoupled weight decay on matrices (adam)", 0.0, 1.0);
  s.add("es.fitness", std::string("zscore"), "fitness shaping", {}, {}, {"zscore", "centered_rank"});
  s.add("es.group_size", int64_t{0}, "zscore: subtract the mean of groups of this many members (0 = global mean)", 0, 1 << 24);
  s.add("es.noise_reuse", int64_t{1}, "epochs that share one noise draw (epoch' = epoch / noise_reuse; 0 = the same noise forever)", 0, 1e12);
}

std::vector<float> shape_fitness(const std::vector<float>& returns, const std::string& kind, int group_size) {
  const size_t n = returns.size();
  std::vector<float> f(n);
  if (kind == "centered_rank") {
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return returns[a] < returns[b]; });
    for (size_t r = 0; r < n; r++) f[order[r]] = n > 1 ? static_cast<float>(double(r) / double(n - 1) - 0.5) : 0.0f;
    return f;
  }
  double mean = 0, var = 0;
  for (float r : returns) mean += r;
  mean /= double(n);
  for (float r : returns) var += (r - mean) * (r - mean);
  var /= double(n);
  const double inv_std = 1.0 / std::sqrt(var + 1e-5);
  if (group_size > 0) {
    FRUGAL_CHECK(n % size_t(group_size) == 0, "es.group_size ", group_size, " does not divide the population ", n);
    for (size_t g = 0; g < n; g += size_t(group_size)) {
      double gm = 0;
      for (size_t i = g; i < g + size_t(group_size); i++) gm += returns[i];
      gm /= group_size;
      for (size_t i = g; i < g + size_t(group_size); i++) f[i] = static_cast<float>((returns[i] - gm) * inv_std);
    }
    return f;
  }
  for (size_t i = 0; i < n; i++) f[i] = static_cast<float>((returns[i] - mean) * inv_std);
  return f;
}

AdamW es_optimizer(const Config& cfg, const ParamLayout& layout) {
  AdamWConfig ac;
  ac.lr = static_cast<float>(cfg.real("es.lr")), ac.beta1 = 0.9f, ac.beta2 = 0.999f, ac.eps = 1e-8f;
  ac.weight_decay = static_cast<float>(cfg.real("es.weight_decay"));
  AdamW opt = adamw_create(ac, layout);
  if (cfg.str("es.optimizer") != "adam") opt.m.clear(), opt.v.clear();  // SGD keeps no state
  return opt;
}

void es_apply(AdamW& opt, std::span<float> params, std::span<const float> g, float lr) {
  if (opt.m.empty()) {
    for (size_t i = 0; i < params.size(); i++) params[i] -= lr * g[i];
  } else {
    adamw_step(opt, params, g, lr);
  }
}

namespace {

class EsMethod final : public Method {
 public:
  EsMethod(RunContext& ctx, std::string name, std::unique_ptr<EsPerturbation> perturbation)
      : ctx_(ctx), name_(std::move(name)), perturbation_(std::move(perturbation)), env_name_(ctx.config.str("env.name")),
        fitness_kind_(ctx.config.str("es.fitness")), group_size_(static_cast<int>(ctx.config.integer("es.group_size"))),
        spec_(envs::make_env(env_name_, 1, ctx.seed, 0).spec()) {
    const Config& cfg = ctx.config;
    const int R = ctx.comm.size();
    population_ = static_cast<int>(cfg.integer("es.population"));
    FRUGAL_CHECK(population_ % 2 == 0, "es.population must be even (antithetic pairs), got ", population_);
    FRUGAL_CHECK(population_ % R == 0, "es.population ", population_, " must be divisible by the number of ranks (", R, ")");
    sigma_ = static_cast<float>(cfg.real("es.sigma"));
    lr_ = static_cast<float>(cfg.real("es.lr"));
    noise_reuse_ = cfg.integer("es.noise_reuse");
    first_ = population_ / R * ctx.comm.rank();
    local_ = population_ / R;
    mlp_ = mlp_add(layout_, "policy", policy_sizes(cfg, spec_.obs_dim, policy_outputs(spec_)),
                   activation_from(cfg.str("policy.activation")));
    params_.assign(layout_.total, 0.0f);
    grads_.assign(layout_.total, 0.0f);
    Rng init(ctx.seed, Stream::init);
    mlp_init_orthogonal(mlp_, params_.data(), std::sqrt(2.0f), 0.01f, init);
    opt_ = es_optimizer(cfg, layout_);
  }

  StepResult step(int64_t epoch) override {
    const uint32_t epoch_key = noise_reuse_ == 0 ? 0u : static_cast<uint32_t>(epoch / noise_reuse_);
    if (epoch_key != noise_epoch_) {
      perturbation_->generate(mlp_, ctx_.seed, epoch_key, population_ / 2);
      noise_epoch_ = epoch_key;
    }
    perturbation_->set_params(params_);
    // A fresh set of environments per epoch, seeded by (seed, epoch): member i's episode depends on
    // (seed, epoch, i) only - not on how many members share a rank, nor on how long the others played.
    const auto key = philox_block(ctx_.seed, static_cast<uint32_t>(Stream::env), 0xE5E5u, static_cast<uint64_t>(epoch));
    auto env = envs::make_env(env_name_, local_, (uint64_t(key.v[1]) << 32) | key.v[0],
                              static_cast<uint32_t>(first_));
    int64_t env_steps = 0;
    double flops = 0;
    std::vector<float> fitness_local = rollout(env, &env_steps, &flops);

    // The only traffic of the method: N fitness values.
    std::vector<float> fitness(size_t(population_), 0.0f);
    ctx_.comm.allgather(std::span<const float>(fitness_local), std::span<float>(fitness), name_ + ".fitness");
    const std::vector<float> shaped = shape_fitness(fitness, fitness_kind_, group_size_);

    // g = -sqrt(N) G for every tensor; the optimiser minimises, so the ES ascent direction is -g.
    for (int l = 0; l < mlp_.layers(); l++)
      perturbation_->update(l, mlp_, shaped.data(), population_, grads_.data() + mlp_.w_off[l], grads_.data() + mlp_.b_off[l]);
    const float scale = -std::sqrt(static_cast<float>(population_));
    for (float& g : grads_) g *= scale;
    StepResult r;
    r.grad_norm = global_norm(grads_);
    r.lr = lr_;
    es_apply(opt_, params_, grads_, lr_);
    double sum = 0;
    for (float f : fitness_local) sum += f;
    r.loss = sum / local_;  // the runner averages over ranks: the population's mean return
    r.samples = env_steps;
    r.flops = flops;
    r.metrics = {{"return_max", *std::max_element(fitness.begin(), fitness.end())},
                 {"return_min", *std::min_element(fitness.begin(), fitness.end())}};
    return r;
  }

  double evaluate(int64_t episodes) override {
    MlpActs acts;
    return evaluate_episodes(env_name_, episodes, ctx_.seed, ctx_.comm,
                             [&](const float* obs, int n, float* out) {
                               const float* y = mlp_forward(mlp_, params_.data(), obs, n, acts);
                               std::copy_n(y, size_t(n) * mlp_.out(), out);
                             });
  }

  void state(StateFields& f) override {
    f.field(name_ + ".params", params_);
    adamw_state(f, opt_, name_ + ".");
    f.after_load([&] { noise_epoch_ = UINT32_MAX; });  // regenerate at the next step
  }
  int64_t num_params() const override { return static_cast<int64_t>(params_.size()); }

 private:
  // Each local member plays one episode; returns the members' episode returns.
  std::vector<float> rollout(envs::Env& env, int64_t* env_steps, double* flops) {
    const int n = local_, in = spec_.obs_dim, outs = mlp_.out();
    std::vector<float> obs(size_t(n) * in), reward(n), fitness(n, 0.0f), x, y, cont(size_t(n) * spec_.action_dim, 0.0f);
    std::vector<uint8_t> term(n), trunc(n), done(n, 0);
    std::vector<int32_t> members, active, disc(n, 0), greedy_disc;
    std::vector<float> greedy_cont;
    double flops_per_row = 0;
    for (int l = 0; l < mlp_.layers(); l++) flops_per_row += 2.0 * mlp_.sizes[l] * mlp_.sizes[l + 1];
    env.reset(obs.data());
    for (int i = 0; i < n; i++) active.push_back(i);
    while (!active.empty()) {
      // Compact the members still playing into one batch.
      const int na = static_cast<int>(active.size());
      x.resize(size_t(na) * in);
      members.resize(na);
      for (int b = 0; b < na; b++) {
        std::copy_n(obs.data() + size_t(active[b]) * in, in, x.data() + size_t(b) * in);
        members[b] = first_ + active[b];
      }
      const float* h = x.data();
      std::vector<float>* buf[2] = {&y, &hidden_};
      for (int l = 0; l < mlp_.layers(); l++) {
        std::vector<float>& o = *buf[l % 2];
        o.resize(size_t(na) * mlp_.sizes[l + 1]);
        perturbation_->forward(l, mlp_, params_.data(), h, na, members.data(), o.data());
        if (l + 1 < mlp_.layers()) activate(mlp_.act, o.data(), o.size());
        h = o.data();
      }
      greedy_actions(spec_, h, na, greedy_disc, greedy_cont);
      for (int b = 0; b < na; b++) {  // finished members' environments get a dummy action: ignored
        if (spec_.action_kind == envs::ActionKind::discrete) disc[active[b]] = greedy_disc[b];
        else std::copy_n(greedy_cont.data() + size_t(b) * outs, outs, cont.data() + size_t(active[b]) * outs);
      }
      step_env(env, disc, cont, obs.data(), reward.data(), term.data(), trunc.data());
      *env_steps += na;
      *flops += flops_per_row * na;
      std::vector<int32_t> still;
      for (int i : active) {
        if (term[i] || trunc[i]) fitness[i] = static_cast<float>(env.common().done_return[i]);
        else still.push_back(i);
      }
      active.swap(still);
    }
    return fitness;
  }

  RunContext& ctx_;
  std::string name_;
  std::unique_ptr<EsPerturbation> perturbation_;
  const std::string env_name_, fitness_kind_;
  const int group_size_;
  envs::EnvSpec spec_;
  ParamLayout layout_;
  MlpView mlp_;
  std::vector<float> params_, grads_, hidden_;
  AdamW opt_;
  int population_ = 0, first_ = 0, local_ = 0;
  float sigma_ = 0, lr_ = 0;
  int64_t noise_reuse_ = 1;
  uint32_t noise_epoch_ = UINT32_MAX;
};

}  // namespace

std::unique_ptr<Method> make_es_method(RunContext& ctx, const std::string& name, std::unique_ptr<EsPerturbation> perturbation) {
  return std::make_unique<EsMethod>(ctx, name, std::move(perturbation));
}

}  // namespace frugal
