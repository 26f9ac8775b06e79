#pragma once
// What the RL methods (PPO, OpenAI-ES, EGGROLL) share: the environment and policy keys, the greedy
// action of a policy output, and evaluation of a policy over held-out episodes.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "comm/communicator.hpp"
#include "core/config.hpp"
#include "envs/make_env.hpp"
#include "model/mlp.hpp"

namespace frugal {

// env.name, policy.hidden_layers, policy.hidden_size, policy.activation.
void add_rl_keys(Schema& schema);

// Layer sizes of a policy/value MLP for this config: [in, hidden x layers, out].
std::vector<int> policy_sizes(const Config& config, int in, int out);
// Outputs of the policy network: logits (discrete) or the action mean (continuous).
int policy_outputs(const envs::EnvSpec& spec);

// Greedy actions from policy outputs (n x policy_outputs): argmax of the logits (first on ties), or
// the mean itself (the environment clips it to its bounds).
void greedy_actions(const envs::EnvSpec& spec, const float* out, int n, std::vector<int32_t>& discrete,
                    std::vector<float>& continuous);
void step_env(envs::Env& env, const std::vector<int32_t>& discrete, const std::vector<float>& continuous, float* obs,
              float* reward, uint8_t* terminated, uint8_t* truncated);

// Mean return of `episodes` evaluation episodes, split over the ranks (the same value on every
// rank). The episodes are fixed for a run: env k of the evaluation set resets from its own stream
// of an evaluation seed derived from `seed`, so every evaluation of a run (and every method) sees
// the same start states. `policy(obs, n, out)` writes n x policy_outputs values.
double evaluate_episodes(const std::string& env_name, int64_t episodes, uint64_t seed, Communicator& comm,
                         const std::function<void(const float* obs, int n, float* out)>& policy);

}  // namespace frugal
