// PPO (Schulman et al., 2017) following CleanRL's ppo.py (discrete) and ppo_continuous_action.py
// (continuous), data-parallel over ranks: ppo.num_envs environments in all, num_envs / R per rank;
// each rank collects num_steps steps of its own environments, computes GAE, and every minibatch
// gradient is averaged over the ranks with one all-reduce, so all replicas apply the same Adam step.
// One optimiser "step" of the runner = one PPO iteration (rollout + update_epochs epochs).
//
// Choices where CleanRL is single-process: a minibatch is num_minibatches-th of each rank's batch
// (together: the global minibatch), and advantage normalisation uses the global minibatch's mean and
// std (one tiny control all-reduce). Observation/reward normalisation statistics (continuous
// default, as CleanRL's wrappers) are kept per environment, as CleanRL's per-env wrappers do.
#include "methods/ppo.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.hpp"
#include "harness/method.hpp"
#include "methods/rl.hpp"
#include "optim/adamw.hpp"

namespace frugal {

namespace {
constexpr double kLog2Pi = 1.8378770664093453;
// log sum_j exp(x_j), shifted by the maximum so it never overflows.
double log_sum_exp(const float* x, int K) {
  double mx = x[0], z = 0;
  for (int j = 1; j < K; j++) mx = std::max(mx, double(x[j]));
  for (int j = 0; j < K; j++) z += std::exp(x[j] - mx);
  return mx + std::log(z);
}
}  // namespace

void gae(const float* rewards, const float* values, const float* dones, const float* next_value, const float* next_done,
         int T, int n, float gamma, float lambda, float* adv) {
  for (int i = 0; i < n; i++) {
    float last = 0;
    for (int t = T - 1; t >= 0; t--) {
      const size_t b = size_t(t) * n + i;
      const float nonterminal = 1.0f - (t == T - 1 ? next_done[i] : dones[b + n]);
      const float nextv = t == T - 1 ? next_value[i] : values[b + n];
      const float delta = rewards[b] + gamma * nextv * nonterminal - values[b];
      adv[b] = last = delta + gamma * lambda * nonterminal * last;
    }
  }
}

void normalize_advantages(std::vector<float>& a, Communicator& comm) {
  double m[3] = {0, 0, double(a.size())};
  for (float x : a) m[0] += x, m[1] += double(x) * x;
  if (comm.size() > 1) comm.control_allreduce(std::span<double>(m, 3), ReduceOp::sum, "ppo.adv_stats");
  const double mean = m[0] / m[2];
  const double var = std::max(0.0, (m[1] - m[2] * mean * mean) / std::max(1.0, m[2] - 1));
  const double inv = 1.0 / (std::sqrt(var) + 1e-8);
  for (float& x : a) x = static_cast<float>((x - mean) * inv);
}

PpoAgent make_ppo_agent(const Config& cfg, const envs::EnvSpec& spec) {
  PpoAgent a;
  a.spec = spec;
  a.continuous = spec.action_kind == envs::ActionKind::continuous;
  a.actions = policy_outputs(spec);
  const Activation act = activation_from(cfg.str("policy.activation"));
  a.actor = mlp_add(a.layout, "actor", policy_sizes(cfg, spec.obs_dim, a.actions), act);
  a.critic = mlp_add(a.layout, "critic", policy_sizes(cfg, spec.obs_dim, 1), act);
  if (a.continuous) a.logstd_off = a.layout.add("actor.logstd", {a.actions}).offset;
  return a;
}

void init_ppo_agent(const PpoAgent& a, float* params, Rng& rng) {
  mlp_init_orthogonal(a.actor, params, std::sqrt(2.0f), 0.01f, rng);
  mlp_init_orthogonal(a.critic, params, std::sqrt(2.0f), 1.0f, rng);
  if (a.continuous) std::fill_n(params + a.logstd_off, a.actions, 0.0f);
}

double log_prob(const PpoAgent& a, const float* out, const float* logstd, const int32_t* ad, const float* ac) {
  if (!a.continuous) return out[*ad] - log_sum_exp(out, a.actions);
  double lp = 0;
  for (int j = 0; j < a.actions; j++) {
    const double d = (ac[j] - out[j]) * std::exp(-double(logstd[j]));
    lp += -0.5 * d * d - logstd[j] - 0.5 * kLog2Pi;
  }
  return lp;
}

PpoLoss ppo_loss(const PpoAgent& a, const float* params, const PpoMinibatch& mb, const PpoCoefs& c, float* grads,
                 PpoWorkspace& ws) {
  const int n = mb.n, K = a.actions;
  const float* out = mlp_forward(a.actor, params, mb.obs, n, ws.actor_acts);
  const float* value = mlp_forward(a.critic, params, mb.obs, n, ws.critic_acts);
  const float* logstd = a.continuous ? params + a.logstd_off : nullptr;
  ws.dlogits.assign(size_t(n) * K, 0.0f);
  ws.dvalue.assign(n, 0.0f);
  std::vector<double> dlogstd(a.continuous ? K : 0, 0.0);
  PpoLoss L;
  const double inv_n = 1.0 / n;
  for (int b = 0; b < n; b++) {
    const float* o = out + size_t(b) * K;
    float* dl = ws.dlogits.data() + size_t(b) * K;
    // Policy term: max(-A r, -A clip(r)); its gradient flows through r where the unclipped branch wins.
    const double logp = log_prob(a, o, logstd, mb.act_discrete ? mb.act_discrete + b : nullptr,
                                 mb.act_continuous ? mb.act_continuous + size_t(b) * K : nullptr);
    const double logratio = logp - mb.logp_old[b], ratio = std::exp(logratio), A = mb.advantages[b];
    const double clipped = std::clamp(ratio, 1.0 - c.clip, 1.0 + c.clip);
    const double pg1 = -A * ratio, pg2 = -A * clipped;
    L.pg += std::max(pg1, pg2) * inv_n;
    L.approx_kl += ((ratio - 1) - logratio) * inv_n;
    L.clipfrac += (std::fabs(ratio - 1) > c.clip ? 1.0 : 0.0) * inv_n;
    const double dlogp = pg1 >= pg2 ? -A * ratio * inv_n : 0.0;  // d(pg)/d(logp)
    double entropy = 0;
    if (!a.continuous) {
      const double lz = log_sum_exp(o, K);
      for (int j = 0; j < K; j++) entropy -= std::exp(o[j] - lz) * (o[j] - lz);
      for (int j = 0; j < K; j++) {
        const double p = std::exp(o[j] - lz), lpj = o[j] - lz;
        // d logp / d logit_j = [j == a] - p_j;  d H / d logit_j = -p_j (log p_j + H)
        const double d_logp = (j == mb.act_discrete[b] ? 1.0 : 0.0) - p;
        const double d_ent = -p * (lpj + entropy);
        dl[j] = static_cast<float>(dlogp * d_logp - c.ent * inv_n * d_ent);
      }
    } else {
      const float* act = mb.act_continuous + size_t(b) * K;
      for (int j = 0; j < K; j++) {
        const double inv_var = std::exp(-2.0 * logstd[j]), d = act[j] - o[j];
        entropy += 0.5 + 0.5 * kLog2Pi + logstd[j];
        dl[j] = static_cast<float>(dlogp * d * inv_var);               // d logp / d mean = (a - mu) / sigma^2
        dlogstd[j] += dlogp * (d * d * inv_var - 1.0) - c.ent * inv_n;  // d logp / d logstd; d H / d logstd = 1
      }
    }
    L.entropy += entropy * inv_n;
    // Value term: 0.5 max((V - R)^2, (V_clip - R)^2), V_clip = V_old + clip(V - V_old, +-clip).
    const double V = value[b], R = mb.returns[b], Vold = mb.values_old[b];
    double dv;
    if (c.clip_vloss) {
      const double Vc = Vold + std::clamp(V - Vold, -double(c.clip), double(c.clip));
      const double u = (V - R) * (V - R), w = (Vc - R) * (Vc - R);
      L.v += 0.5 * std::max(u, w) * inv_n;
      const bool inside = std::fabs(V - Vold) < c.clip;
      dv = u >= w ? (V - R) * inv_n : (inside ? (Vc - R) * inv_n : 0.0);
    } else {
      L.v += 0.5 * (V - R) * (V - R) * inv_n;
      dv = (V - R) * inv_n;
    }
    ws.dvalue[b] = static_cast<float>(c.vf * dv);
  }
  L.loss = L.pg - c.ent * L.entropy + c.vf * L.v;
  if (grads) {
    mlp_backward(a.actor, params, mb.obs, ws.actor_acts, ws.dlogits.data(), n, grads, ws.scratch);
    mlp_backward(a.critic, params, mb.obs, ws.critic_acts, ws.dvalue.data(), n, grads, ws.scratch);
    for (int j = 0; j < (a.continuous ? K : 0); j++) grads[a.logstd_off + j] += static_cast<float>(dlogstd[j]);
  }
  return L;
}

namespace {

// Gymnasium's RunningMeanStd (epsilon-count start) over `dim` values, updated one sample at a time.
struct RunningMeanStd {
  std::vector<double> mean, var;
  double count = 1e-4;
  explicit RunningMeanStd(int dim = 0) : mean(dim, 0.0), var(dim, 1.0) {}
  void update(const float* x) {
    const double tot = count + 1;
    for (size_t j = 0; j < mean.size(); j++) {
      const double delta = x[j] - mean[j];
      mean[j] += delta / tot;
      var[j] = (var[j] * count + delta * delta * count / tot) / tot;
    }
    count = tot;
  }
};

// The loop's hyperparameters, read once.
struct PpoSettings {
  std::string env_name;
  float lr = 0;
  double gamma = 0;  // double: the reward normaliser's accumulator is double, as Gymnasium's
  float lambda = 0;
  bool anneal_lr = true, norm_adv = true;
  double max_grad_norm = 0;
  int64_t update_epochs = 0;
  static PpoSettings from(const Config& c) {
    return {c.str("env.name"), static_cast<float>(c.real("ppo.lr")), c.real("ppo.gamma"),
            static_cast<float>(c.real("ppo.gae_lambda")), c.boolean("ppo.anneal_lr"), c.boolean("ppo.norm_adv"),
            c.real("ppo.max_grad_norm"), c.integer("ppo.update_epochs")};
  }
};

class Ppo final : public Method {
 public:
  explicit Ppo(RunContext& ctx) : ctx_(ctx), set_(PpoSettings::from(ctx.config)), env_(envs::make_env(set_.env_name, 1, ctx.seed, 0)) {
    const Config& cfg = ctx.config;
    const int R = ctx.comm.size();
    const int64_t num_envs = cfg.integer("ppo.num_envs");
    FRUGAL_CHECK(num_envs % R == 0, "ppo.num_envs ", num_envs, " must be divisible by the number of ranks (", R, ")");
    n_ = static_cast<int>(num_envs / R);
    first_ = n_ * ctx.comm.rank();
    T_ = static_cast<int>(cfg.integer("ppo.num_steps"));
    minibatches_ = static_cast<int>(cfg.integer("ppo.num_minibatches"));
    FRUGAL_CHECK((int64_t(n_) * T_) % minibatches_ == 0, "ppo.num_minibatches ", minibatches_,
                 " must divide each rank's batch (num_steps x num_envs / ranks = ", int64_t(n_) * T_, ")");
    env_ = envs::make_env(set_.env_name, n_, ctx.seed, static_cast<uint32_t>(first_));
    agent_ = make_ppo_agent(cfg, env_.spec());
    const auto& spec = agent_.spec;
    const std::string norm = cfg.str("ppo.normalize");
    normalize_ = norm == "on" || (norm == "auto" && agent_.continuous);
    coefs_.clip = static_cast<float>(cfg.real("ppo.clip_coef"));
    coefs_.ent = static_cast<float>(cfg.real("ppo.ent_coef"));
    coefs_.vf = static_cast<float>(cfg.real("ppo.vf_coef"));
    coefs_.clip_vloss = cfg.boolean("ppo.clip_vloss");
    params_.assign(agent_.layout.total, 0.0f);
    grads_.assign(agent_.layout.total, 0.0f);
    Rng init(ctx.seed, Stream::init);
    init_ppo_agent(agent_, params_.data(), init);
    AdamWConfig ac;
    ac.lr = static_cast<float>(cfg.real("ppo.lr")), ac.beta1 = 0.9f, ac.beta2 = 0.999f;
    ac.eps = static_cast<float>(cfg.real("ppo.adam_eps")), ac.weight_decay = 0.0f;
    opt_ = adamw_create(ac, agent_.layout);
    for (int i = 0; i < n_; i++) action_rng_.emplace_back(ctx.seed, static_cast<uint32_t>(Stream::ppo_actions), uint32_t(first_ + i));
    shuffle_rng_ = Rng(ctx.seed, Stream::ppo_shuffle, uint32_t(ctx.comm.rank()));
    obs_rms_.assign(n_, RunningMeanStd(spec.obs_dim));
    ret_rms_.assign(n_, RunningMeanStd(1));
    ret_acc_.assign(n_, 0.0);
    next_obs_.resize(size_t(n_) * spec.obs_dim);
    next_done_.assign(n_, 0.0f);
    raw_obs_.resize(next_obs_.size());
    env_.reset(raw_obs_.data());
    for (int i = 0; i < n_; i++) observe(i, raw_obs_.data() + size_t(i) * spec.obs_dim, true);
  }

  StepResult step(int64_t it) override {
    const auto& spec = agent_.spec;
    const int D = spec.obs_dim, K = agent_.actions, N = n_ * T_;
    const float gamma = static_cast<float>(set_.gamma), lambda = set_.lambda;
    float lr = set_.lr;
    if (set_.anneal_lr) lr *= 1.0f - float(double(it) / double(ctx_.total_steps));

    // ---- rollout: T steps of n environments -----------------------------------------------------
    obs_.resize(size_t(N) * D), logp_.resize(N), values_.resize(N), rewards_.resize(N), dones_.resize(N);
    act_d_.resize(agent_.continuous ? 0 : N), act_c_.resize(agent_.continuous ? size_t(N) * K : 0);
    std::vector<float> reward(n_), env_act_c(agent_.continuous ? size_t(n_) * K : 0);
    std::vector<int32_t> env_act_d(agent_.continuous ? 0 : n_);
    std::vector<uint8_t> term(n_), trunc(n_);
    double ep_sum = 0, ep_count = 0;
    MlpActs acts;
    for (int t = 0; t < T_; t++) {
      std::copy(next_obs_.begin(), next_obs_.end(), obs_.begin() + size_t(t) * n_ * D);
      std::copy(next_done_.begin(), next_done_.end(), dones_.begin() + size_t(t) * n_);
      const float* v = mlp_forward(agent_.critic, params_.data(), next_obs_.data(), n_, acts);
      std::copy_n(v, n_, values_.begin() + size_t(t) * n_);
      const float* out = mlp_forward(agent_.actor, params_.data(), next_obs_.data(), n_, acts);
      for (int i = 0; i < n_; i++) {
        const size_t b = size_t(t) * n_ + i;
        const float* o = out + size_t(i) * K;
        if (!agent_.continuous) {
          env_act_d[i] = act_d_[b] = sample_categorical(o, K, action_rng_[i]);
          logp_[b] = static_cast<float>(log_prob(agent_, o, nullptr, &act_d_[b], nullptr));
        } else {
          const float* logstd = params_.data() + agent_.logstd_off;
          float* a = act_c_.data() + b * K;
          for (int j = 0; j < K; j++) a[j] = o[j] + std::exp(logstd[j]) * action_rng_[i].normal();
          std::copy_n(a, K, env_act_c.data() + size_t(i) * K);  // the environment clips it
          logp_[b] = static_cast<float>(log_prob(agent_, o, logstd, nullptr, a));
        }
      }
      step_env(env_, env_act_d, env_act_c, raw_obs_.data(), reward.data(), term.data(), trunc.data());
      for (int i = 0; i < n_; i++) {
        const size_t b = size_t(t) * n_ + i;
        const bool done = term[i] || trunc[i];
        rewards_[b] = normalize_ ? normalize_reward(i, reward[i], term[i]) : reward[i];
        if (normalize_ && done) observe(i, env_.final_obs() + size_t(i) * D, false);  // the wrapper saw it
        observe(i, raw_obs_.data() + size_t(i) * D, true);
        next_done_[i] = done ? 1.0f : 0.0f;
        if (done) ep_sum += env_.common().done_return[i], ep_count += 1;
      }
    }
    // ---- GAE (CleanRL: done = terminated or truncated, no bootstrap through a time limit) ---------
    const float* next_v = mlp_forward(agent_.critic, params_.data(), next_obs_.data(), n_, acts);
    adv_.assign(N, 0.0f), ret_.resize(N);
    gae(rewards_.data(), values_.data(), dones_.data(), next_v, next_done_.data(), T_, n_, gamma, lambda, adv_.data());
    for (int b = 0; b < N; b++) ret_[b] = adv_[b] + values_[b];

    // ---- update: epochs x minibatches, gradients averaged over ranks ----------------------------
    const int mbn = N / minibatches_;
    std::vector<int> perm(N);
    std::vector<float> mb_obs(size_t(mbn) * D), mb_act_c(agent_.continuous ? size_t(mbn) * K : 0), mb_logp(mbn),
        mb_adv(mbn), mb_ret(mbn), mb_val(mbn);
    std::vector<int32_t> mb_act_d(agent_.continuous ? 0 : mbn);
    PpoLoss last;
    double grad_norm = 0;
    const int64_t epochs = set_.update_epochs;
    for (int64_t e = 0; e < epochs; e++) {
      std::iota(perm.begin(), perm.end(), 0);
      for (int i = N - 1; i > 0; i--) std::swap(perm[i], perm[shuffle_rng_.below(uint32_t(i + 1))]);  // Fisher-Yates
      for (int start = 0; start < N; start += mbn) {
        for (int k = 0; k < mbn; k++) {
          const int b = perm[start + k];
          std::copy_n(obs_.data() + size_t(b) * D, D, mb_obs.data() + size_t(k) * D);
          if (agent_.continuous) std::copy_n(act_c_.data() + size_t(b) * K, K, mb_act_c.data() + size_t(k) * K);
          else mb_act_d[k] = act_d_[b];
          mb_logp[k] = logp_[b], mb_adv[k] = adv_[b], mb_ret[k] = ret_[b], mb_val[k] = values_[b];
        }
        if (set_.norm_adv) normalize_advantages(mb_adv, ctx_.comm);
        std::fill(grads_.begin(), grads_.end(), 0.0f);
        PpoMinibatch mb{mbn, mb_obs.data(), agent_.continuous ? nullptr : mb_act_d.data(),
                        agent_.continuous ? mb_act_c.data() : nullptr, mb_logp.data(), mb_adv.data(), mb_ret.data(), mb_val.data()};
        last = ppo_loss(agent_, params_.data(), mb, coefs_, grads_.data(), ws_);
        if (ctx_.comm.size() > 1) allreduce_mean(ctx_.comm, std::span<float>(grads_), "ppo.grad");
        grad_norm = global_norm(grads_);
        adamw_step(opt_, params_, grads_, lr, {}, clip_scale(grad_norm, set_.max_grad_norm));
      }
    }

    // Training return: episodes that ended in this iteration, over all ranks (else the last value).
    double m[2] = {ep_sum, ep_count};
    ctx_.comm.control_allreduce(std::span<double>(m, 2), ReduceOp::sum, "ppo.returns");
    if (m[1] > 0) last_return_ = m[0] / m[1];
    StepResult r;
    r.loss = last_return_;
    r.lr = lr;
    r.grad_norm = grad_norm;
    r.samples = N;
    double fwd = 0;  // multiply-adds of actor + critic per sample, x2 FLOPs
    for (const MlpView* v : {&agent_.actor, &agent_.critic})
      for (int l = 0; l < v->layers(); l++) fwd += 2.0 * v->sizes[l] * v->sizes[l + 1];
    r.flops = fwd * N * (1 + 3.0 * double(epochs));  // rollout forwards + (forward + backward) per epoch
    r.metrics = {{"pg_loss", last.pg}, {"v_loss", last.v}, {"entropy", last.entropy}, {"approx_kl", last.approx_kl},
                 {"clipfrac", last.clipfrac}, {"episodes", m[1]}};
    return r;
  }

  double evaluate(int64_t episodes) override {
    MlpActs acts;
    std::vector<float> x;
    return evaluate_episodes(set_.env_name, episodes, ctx_.seed, ctx_.comm,
                             [&](const float* obs, int n, float* out) {
                               const int D = agent_.spec.obs_dim;
                               x.assign(obs, obs + size_t(n) * D);
                               if (normalize_)  // with this rank's env 0 statistics, frozen
                                 for (int i = 0; i < n; i++) normalize_obs(0, x.data() + size_t(i) * D);
                               const float* y = mlp_forward(agent_.actor, params_.data(), x.data(), n, acts);
                               std::copy_n(y, size_t(n) * agent_.actions, out);
                             });
  }

  void state(StateFields& f) override {
    f.field("ppo.params", params_);
    adamw_state(f, opt_, "ppo.");
    f.packed<uint8_t>("ppo.env", [&] { return env_.save_state(); }, [&](const std::vector<uint8_t>& b) { env_.load_state(b); });
    f.field("ppo.next_obs", next_obs_);
    f.field("ppo.next_done", next_done_);
    f.packed<uint64_t>("ppo.rng", [&] { return rng_counters(); }, [&](const std::vector<uint64_t>& c) { set_rng_counters(c); });
    f.packed<double>("ppo.stats", [&] { return pack_stats(); }, [&](const std::vector<double>& v) { unpack_stats(v); });
  }
  int64_t num_params() const override { return static_cast<int64_t>(params_.size()); }

 private:
  // Checkpoint forms: the action streams' and the shuffle stream's counters; per environment the
  // observation and return statistics and the return accumulator, then the last training return.
  std::vector<uint64_t> rng_counters() const {
    std::vector<uint64_t> counters;
    for (const Rng& r : action_rng_) counters.push_back(r.counter);
    counters.push_back(shuffle_rng_.counter);
    return counters;
  }
  void set_rng_counters(const std::vector<uint64_t>& counters) {
    FRUGAL_CHECK(counters.size() == action_rng_.size() + 1, "checkpoint section ppo.rng holds ", counters.size(),
                 " counters, expected ", action_rng_.size() + 1, " (ppo.num_envs or the rank count differs?)");
    for (size_t i = 0; i < action_rng_.size(); i++) action_rng_[i].counter = counters[i];
    shuffle_rng_.counter = counters.back();
  }
  std::vector<double> pack_stats() const {
    std::vector<double> stats;
    for (int i = 0; i < n_; i++) {
      for (const auto* s : {&obs_rms_[i], &ret_rms_[i]}) {
        stats.insert(stats.end(), s->mean.begin(), s->mean.end());
        stats.insert(stats.end(), s->var.begin(), s->var.end());
        stats.push_back(s->count);
      }
      stats.push_back(ret_acc_[i]);
    }
    stats.push_back(last_return_);
    return stats;
  }
  void unpack_stats(const std::vector<double>& stats) {
    const size_t D = agent_.spec.obs_dim, expected = size_t(n_) * (2 * D + 1 + 3 + 1) + 1;
    FRUGAL_CHECK(stats.size() == expected, "checkpoint section ppo.stats holds ", stats.size(), " values, expected ",
                 expected, " (environment or ppo.num_envs differs?)");
    size_t k = 0;
    for (int i = 0; i < n_; i++) {
      for (auto* s : {&obs_rms_[i], &ret_rms_[i]}) {
        for (auto& v : s->mean) v = stats[k++];
        for (auto& v : s->var) v = stats[k++];
        s->count = stats[k++];
      }
      ret_acc_[i] = stats[k++];
    }
    last_return_ = stats[k];
  }

  static int32_t sample_categorical(const float* logits, int K, Rng& rng) {
    double mx = logits[0], z = 0;  // unnormalised inverse CDF: one exp pass fewer than log_sum_exp
    for (int j = 1; j < K; j++) mx = std::max(mx, double(logits[j]));
    for (int j = 0; j < K; j++) z += std::exp(logits[j] - mx);
    double u = rng.uniform_double() * z, c = 0;
    for (int j = 0; j < K; j++) {
      c += std::exp(logits[j] - mx);
      if (u <= c) return j;
    }
    return K - 1;
  }

  // NormalizeObservation (update, then (x - mean) / sqrt(var + 1e-8)) and clip to +-10, as CleanRL's
  // continuous wrappers; without normalisation the raw observation. `emit` writes it to next_obs.
  void observe(int i, const float* raw, bool emit) {
    const int D = agent_.spec.obs_dim;
    float* dst = next_obs_.data() + size_t(i) * D;
    if (!normalize_) {
      if (emit) std::copy_n(raw, D, dst);
      return;
    }
    obs_rms_[i].update(raw);
    if (!emit) return;
    std::copy_n(raw, D, dst);
    normalize_obs(i, dst);
  }
  void normalize_obs(int i, float* x) const {
    const auto& s = obs_rms_[i];
    for (size_t j = 0; j < s.mean.size(); j++)
      x[j] = std::clamp(static_cast<float>((x[j] - s.mean[j]) / std::sqrt(s.var[j] + 1e-8)), -10.0f, 10.0f);
  }
  // NormalizeReward: discounted return accumulator (reset on termination only), scale by its std, clip +-10.
  float normalize_reward(int i, float r, bool terminated) {
    ret_acc_[i] = ret_acc_[i] * set_.gamma * (terminated ? 0.0 : 1.0) + r;
    const float acc = static_cast<float>(ret_acc_[i]);
    ret_rms_[i].update(&acc);
    return std::clamp(static_cast<float>(r / std::sqrt(ret_rms_[i].var[0] + 1e-8)), -10.0f, 10.0f);
  }
  RunContext& ctx_;
  const PpoSettings set_;
  envs::Env env_;
  PpoAgent agent_;
  PpoCoefs coefs_;
  PpoWorkspace ws_;
  int n_ = 0, first_ = 0, T_ = 0, minibatches_ = 0;
  bool normalize_ = false;
  std::vector<float> params_, grads_;
  AdamW opt_;
  std::vector<Rng> action_rng_;
  Rng shuffle_rng_;
  std::vector<RunningMeanStd> obs_rms_, ret_rms_;
  std::vector<double> ret_acc_;
  std::vector<float> next_obs_, next_done_, raw_obs_;
  std::vector<float> obs_, logp_, values_, rewards_, dones_, adv_, ret_, act_c_;
  std::vector<int32_t> act_d_;
  double last_return_ = 0;
};

void add_ppo_keys(Schema& s) {
  s.add("ppo.num_envs", int64_t{4}, "environments in all (divided among the ranks)", 1, 1 << 20);
  s.add("ppo.num_steps", int64_t{128}, "steps per environment per rollout", 1, 1 << 24);
  s.add("ppo.lr", 2.5e-4, "Adam learning rate", 0.0, 10.0);
  s.add("ppo.anneal_lr", true, "anneal the learning rate linearly to 0 over run.steps iterations");
  s.add("ppo.adam_eps", 1e-5, "Adam epsilon", 0.0, 1.0);
  s.add("ppo.gamma", 0.99, "discount", 0.0, 1.0);
  s.add("ppo.gae_lambda", 0.95, "GAE lambda", 0.0, 1.0);
  s.add("ppo.num_minibatches", int64_t{4}, "minibatches per epoch", 1, 1 << 20);
  s.add("ppo.update_epochs", int64_t{4}, "epochs over each rollout", 1, 1 << 20);
  s.add("ppo.norm_adv", true, "normalise advantages per minibatch");
  s.add("ppo.clip_coef", 0.2, "surrogate clipping coefficient", 0.0, 10.0);
  s.add("ppo.clip_vloss", true, "clipped value loss");
  s.add("ppo.ent_coef", 0.01, "entropy coefficient", 0.0, 10.0);
  s.add("ppo.vf_coef", 0.5, "value loss coefficient", 0.0, 10.0);
  s.add("ppo.max_grad_norm", 0.5, "global gradient norm clip", 0.0, 1e6);
  s.add("ppo.normalize", std::string("auto"),
        "observation and reward normalisation (CleanRL's continuous wrappers); auto = on for continuous actions", {}, {},
        {"auto", "on", "off"});
}

}  // namespace

FRUGAL_REGISTER_METHOD(ppo, MethodInfo{"ppo", "PPO (CleanRL), data-parallel: gradients all-reduced every minibatch",
                                       Domain::rl, {add_rl_keys, add_ppo_keys},
                                       [](RunContext& ctx) { return std::make_unique<Ppo>(ctx); }});

}  // namespace frugal
