#pragma once
// PPO's agent and its clipped loss with the hand-written gradient, separate from the training loop
// (methods/ppo.cpp) so a test can check the gradient against finite differences.
//
// Agent (CleanRL): separate actor and critic MLPs (policy.* sizes, tanh), orthogonal init with gain
// sqrt(2) on hidden layers, 0.01 on the actor head and 1 on the critic head, zero biases; for
// continuous actions a state-independent log-std vector (init 0). One flat parameter buffer:
// actor, critic, log-std.
#include <cstdint>
#include <vector>

#include "comm/communicator.hpp"
#include "core/config.hpp"
#include "core/params.hpp"
#include "envs/env.hpp"
#include "model/mlp.hpp"

namespace frugal {

struct PpoAgent {
  envs::EnvSpec spec;
  bool continuous = false;
  int actions = 0;  // logits (discrete) or action dimensions (continuous)
  ParamLayout layout;
  MlpView actor, critic;
  size_t logstd_off = 0;  // continuous only
};
PpoAgent make_ppo_agent(const Config& config, const envs::EnvSpec& spec);
void init_ppo_agent(const PpoAgent& agent, float* params, Rng& rng);

// One minibatch, n samples. Exactly one of act_discrete / act_continuous is used.
struct PpoMinibatch {
  int n = 0;
  const float* obs = nullptr;             // (n, obs_dim)
  const int32_t* act_discrete = nullptr;  // (n)
  const float* act_continuous = nullptr;  // (n, actions), as sampled (before the env clips it)
  const float* logp_old = nullptr;        // (n)
  const float* advantages = nullptr;      // (n), already normalised if norm_adv
  const float* returns = nullptr;         // (n)
  const float* values_old = nullptr;      // (n)
};

struct PpoCoefs {
  float clip = 0.2f, ent = 0.01f, vf = 0.5f;
  bool clip_vloss = true;
};

struct PpoLoss {
  double loss = 0, pg = 0, v = 0, entropy = 0, approx_kl = 0, clipfrac = 0;
};

struct PpoWorkspace {
  MlpActs actor_acts, critic_acts;
  std::vector<float> dlogits, dvalue, scratch;
};

// loss = pg - ent * entropy + vf * v over the minibatch (means over its n samples), CleanRL's
// formulas (methods.md section 2). ACCUMULATES dloss/dparams into grads when grads is non-null.
PpoLoss ppo_loss(const PpoAgent& agent, const float* params, const PpoMinibatch& mb, const PpoCoefs& coefs,
                 float* grads, PpoWorkspace& ws);

// Generalised advantage estimation (Schulman et al. 2016) over a rollout of T steps of n
// environments, row t * n + i, CleanRL's convention: dones[t n + i] = 1 when the observation of
// step t starts a new episode (step t - 1 ended one: terminated OR truncated - a time limit is not
// bootstrapped through either), next_value / next_done describe the observation after step T - 1.
//   delta_t = r_t + gamma V_{t+1} (1 - done_{t+1}) - V_t;  A_t = delta_t + gamma lambda (1 - done_{t+1}) A_{t+1}
void gae(const float* rewards, const float* values, const float* dones, const float* next_value, const float* next_done,
         int T, int n, float gamma, float lambda, float* adv);

// (A - mean) / (std + 1e-8) over the global minibatch: this rank's slice a of it, the statistics
// summed over all ranks (one tiny control all-reduce), the std unbiased as torch.std's.
void normalize_advantages(std::vector<float>& a, Communicator& comm);

// log pi(a|s) for one sample, from the actor's output row (logits or mean) and the log-std vector
// (continuous). The entropy is computed in ppo_loss, where its gradient is needed too.
double log_prob(const PpoAgent& agent, const float* out_row, const float* logstd, const int32_t* a_discrete,
                const float* a_continuous);

}  // namespace frugal
