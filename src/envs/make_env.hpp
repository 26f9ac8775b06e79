#pragma once
// Pick an environment by its Gymnasium id at run time:
//   auto env = frugal::envs::make_env("CartPole-v1", 4, seed, rank * 4);
//   const EnvSpec& spec = env.spec();          // obs_dim, action kind, time limit, ...
//   env.reset(obs.data());
//   env.step(int_actions, obs, reward, terminated, truncated);    // discrete environments
//   env.step(float_actions, obs, reward, terminated, truncated);  // continuous environments
//   env.final_obs();                           // observations before the same-step autoreset
// Env is a std::variant of the concrete vectors: no virtual hierarchy; `as<CartPoleVec>()` gives
// the concrete object (its public fields are the whole state). Conventions: see envs/env.hpp.
#include "envs/acrobot.hpp"
#include "envs/cartpole.hpp"
#include "envs/env.hpp"
#include "envs/pendulum.hpp"

#include <string>
#include <variant>
#include <vector>

namespace frugal::envs {

class Env {
 public:
  using Impl = std::variant<CartPoleVec, PendulumVec, AcrobotVec>;

  explicit Env(Impl impl);

  const EnvSpec& spec() const { return spec_; }
  int num_envs() const;
  const VecCommon& common() const;
  const float* final_obs() const { return common().final_obs.data(); }

  void reset(float* obs);
  // Discrete environments: one int32 action per env. Throws for a continuous environment.
  void step(const int32_t* actions, float* obs, float* reward, uint8_t* terminated, uint8_t* truncated);
  // Continuous environments: spec().action_dim floats per env. Throws for a discrete environment.
  void step(const float* actions, float* obs, float* reward, uint8_t* terminated, uint8_t* truncated);

  std::vector<uint8_t> save_state() const;
  void load_state(const std::vector<uint8_t>& bytes);

  template <typename T>
  T& as() {
    return std::get<T>(impl_);
  }
  template <typename T>
  const T& as() const {
    return std::get<T>(impl_);
  }

 private:
  Impl impl_;
  EnvSpec spec_;
};

// The ids make_env knows, in a fixed order.
std::vector<std::string> env_names();

// n_envs environments named by a Gymnasium id; env i draws its resets from
// Rng(seed, env_stream, first_index + i). Throws frugal::Error for an unknown name.
Env make_env(const std::string& name, int n_envs, uint64_t seed, uint32_t first_index = 0);

}  // namespace frugal::envs
