#include "methods/rl.hpp"

#include <algorithm>

#include "core/error.hpp"

namespace frugal {

void add_rl_keys(Schema& s) {
  s.add("env.name", std::string("CartPole-v1"), "RL environment (Gymnasium id)", {}, {}, envs::env_names());
  s.add("policy.hidden_layers", int64_t{2}, "hidden layers of the policy (and PPO's critic) MLP", 0, 64);
  s.add("policy.hidden_size", int64_t{64}, "units per hidden layer", 1, 1 << 20);
  s.add("policy.activation", std::string("tanh"), "hidden activation", {}, {}, {"tanh", "relu"});
}

std::vector<int> policy_sizes(const Config& cfg, int in, int out) {
  std::vector<int> sizes{in};
  for (int64_t l = 0; l < cfg.integer("policy.hidden_layers"); l++) sizes.push_back(static_cast<int>(cfg.integer("policy.hidden_size")));
  sizes.push_back(out);
  return sizes;
}

int policy_outputs(const envs::EnvSpec& spec) {
  return spec.action_kind == envs::ActionKind::discrete ? spec.num_actions : spec.action_dim;
}

void greedy_actions(const envs::EnvSpec& spec, const float* out, int n, std::vector<int32_t>& discrete,
                    std::vector<float>& continuous) {
  const int k = policy_outputs(spec);
  if (spec.action_kind == envs::ActionKind::discrete) {
    discrete.resize(n);
    for (int i = 0; i < n; i++) discrete[i] = static_cast<int32_t>(std::max_element(out + size_t(i) * k, out + size_t(i + 1) * k) - (out + size_t(i) * k));
  } else {
    continuous.assign(out, out + size_t(n) * k);
  }
}

void step_env(envs::Env& env, const std::vector<int32_t>& discrete, const std::vector<float>& continuous, float* obs,
              float* reward, uint8_t* terminated, uint8_t* truncated) {
  if (env.spec().action_kind == envs::ActionKind::discrete) env.step(discrete.data(), obs, reward, terminated, truncated);
  else env.step(continuous.data(), obs, reward, terminated, truncated);
}

double evaluate_episodes(const std::string& env_name, int64_t episodes, uint64_t seed, Communicator& comm,
                         const std::function<void(const float* obs, int n, float* out)>& policy) {
  // Rank r plays episodes [lo, hi): one environment each, until each has ended once.
  const int64_t R = comm.size(), r = comm.rank();
  const int64_t lo = episodes * r / R, hi = episodes * (r + 1) / R;
  const int n = static_cast<int>(hi - lo);
  double sum = 0;
  if (n > 0) {
    const uint64_t eval_seed = seed ^ 0x65766131ull;  // "eva1": a different reset stream from training
    auto env = envs::make_env(env_name, n, eval_seed, static_cast<uint32_t>(lo));
    const auto& spec = env.spec();
    std::vector<float> obs(size_t(n) * spec.obs_dim), out(size_t(n) * policy_outputs(spec)), reward(n), cont;
    std::vector<uint8_t> term(n), trunc(n), done(n, 0);
    std::vector<int32_t> disc;
    env.reset(obs.data());
    int remaining = n;
    while (remaining > 0) {
      policy(obs.data(), n, out.data());
      greedy_actions(spec, out.data(), n, disc, cont);
      step_env(env, disc, cont, obs.data(), reward.data(), term.data(), trunc.data());
      for (int i = 0; i < n; i++)
        if (!done[i] && (term[i] || trunc[i])) {
          done[i] = 1, remaining--;
          sum += env.common().done_return[i];
        }
    }
  }
  double m[1] = {sum};
  comm.control_allreduce(std::span<double>(m, 1), ReduceOp::sum, "eval.return");
  return m[0] / static_cast<double>(episodes);
}

}  // namespace frugal
