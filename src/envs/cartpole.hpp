#pragma once
// CartPole-v1 (Gymnasium 1.x, classic_control/cartpole.py), n environments stepped together.
// Barto, Sutton & Anderson's cart-pole: push the cart left (action 0) or right (action 1) with a
// fixed force; +1 reward every step including the last; the episode terminates when the cart leaves
// |x| <= 2.4 or the pole leaves |theta| <= 12 degrees, and is truncated at 500 steps.
// Integrator: explicit Euler with tau = 0.02 (Gymnasium's default kinematics_integrator "euler":
// positions advance with the OLD velocities). Reset: all four state values ~ U(-0.05, 0.05),
// float64 (the single-env CartPoleEnv that gym.make / SyncVectorEnv use; Gymnasium's separate
// CartPoleVectorEnv rounds its reset states to float32, we follow the single env).
// Observation: [x, x_dot, theta, theta_dot] as float32. Conventions: see envs/env.hpp.
#include "envs/env.hpp"

#include <numbers>

namespace frugal::envs {

struct CartPoleVec {
  static constexpr const char* name = "CartPole-v1";
  static constexpr int obs_dim = 4;
  static constexpr int action_dim = 1;  // one int32 per env
  static constexpr int num_actions = 2;
  static constexpr int max_episode_steps = 500;
  static constexpr double reward_threshold = 475.0;

  // Gymnasium's constants, same names.
  static constexpr double gravity = 9.8;
  static constexpr double masscart = 1.0;
  static constexpr double masspole = 0.1;
  static constexpr double total_mass = masspole + masscart;
  static constexpr double length = 0.5;  // actually half the pole's length
  static constexpr double polemass_length = masspole * length;
  static constexpr double force_mag = 10.0;
  static constexpr double tau = 0.02;  // seconds between state updates
  static constexpr double theta_threshold_radians = 12 * 2 * std::numbers::pi / 360;
  static constexpr double x_threshold = 2.4;
  static constexpr double reset_high = 0.05;  // reset: U(-0.05, 0.05)

  VecCommon common;
  std::vector<double> x, x_dot, theta, theta_dot;  // the physics state, one entry per env

  CartPoleVec() = default;
  // n_envs environments; env i draws from Rng(seed, env_stream, first_index + i).
  CartPoleVec(int n_envs, uint64_t seed, uint32_t first_index = 0);

  static EnvSpec spec();
  int num_envs() const { return common.n; }
  const float* final_obs() const { return common.final_obs.data(); }

  // Start a new episode in every env; obs gets [n][4].
  void reset(float* obs);
  // Advance every env by one step (actions[i] in {0, 1}); same-step autoreset, see envs/env.hpp.
  void step(const int32_t* actions, float* obs, float* reward, uint8_t* terminated, uint8_t* truncated);

  std::vector<uint8_t> save_state() const;
  void load_state(const std::vector<uint8_t>& bytes);

  // The pieces step_all / reset_all use (public so tests can drive one env by hand).
  PhysicsResult physics(int i, const int32_t* action);
  void reset_one(int i);
  void observe(int i, float* out) const;
};

}  // namespace frugal::envs
