#pragma once
// Pendulum-v1 (Gymnasium 1.x, classic_control/pendulum.py), n environments stepped together.
// Swing a pendulum up and hold it: theta = 0 is upright. Action: one torque per env, clipped to
// [-2, 2]. Reward = -(angle_normalize(th)^2 + 0.1 thdot^2 + 0.001 u^2), computed from the state
// BEFORE the update; then (semi-implicit Euler, dt = 0.05)
//   thdot' = clip(thdot + (3 g / (2 l) sin(th) + 3 / (m l^2) u) dt, -8, 8),  th' = th + thdot' dt.
// Never terminates; truncated at 200 steps. Reset: th ~ U(-pi, pi), thdot ~ U(-1, 1), float64.
// theta is kept unnormalised in the state (as Gymnasium does); only the cost normalises it.
// Observation: [cos th, sin th, thdot] as float32.
//
// dtype detail followed on purpose: Gymnasium's torque u is a numpy float32 (the action array is
// float32), and numpy keeps `0.001 * u**2` and `3.0 / (m l^2) * u` in float32 before adding them to
// the float64 terms. We do the same (float arithmetic, powf for u**2), so rewards and states match
// Gymnasium bit for bit on glibc. Conventions: see envs/env.hpp.
#include "envs/env.hpp"

#include <numbers>

namespace frugal::envs {

// Gymnasium's angle_normalize: ((x + pi) mod 2 pi) - pi with numpy's floored modulo (the result
// takes the divisor's sign), so the angle lands in [-pi, pi).
double angle_normalize(double x);

struct PendulumVec {
  static constexpr const char* name = "Pendulum-v1";
  static constexpr int obs_dim = 3;
  static constexpr int action_dim = 1;  // one float per env
  static constexpr int max_episode_steps = 200;

  // Gymnasium's constants, same names.
  static constexpr double max_speed = 8;
  static constexpr float max_torque = 2.0f;
  static constexpr double dt = 0.05;
  static constexpr double g = 10.0;
  static constexpr double m = 1.0;
  static constexpr double l = 1.0;
  static constexpr double reset_high_theta = std::numbers::pi;  // DEFAULT_X
  static constexpr double reset_high_thetadot = 1.0;            // DEFAULT_Y

  VecCommon common;
  std::vector<double> theta, theta_dot;  // the physics state, one entry per env

  PendulumVec() = default;
  PendulumVec(int n_envs, uint64_t seed, uint32_t first_index = 0);

  static EnvSpec spec();
  int num_envs() const { return common.n; }
  const float* final_obs() const { return common.final_obs.data(); }

  void reset(float* obs);
  // actions: [n] torques (clipped to [-2, 2]; NaN throws). Same-step autoreset, see envs/env.hpp.
  void step(const float* actions, float* obs, float* reward, uint8_t* terminated, uint8_t* truncated);

  std::vector<uint8_t> save_state() const;
  void load_state(const std::vector<uint8_t>& bytes);

  PhysicsResult physics(int i, const float* action);
  void reset_one(int i);
  void observe(int i, float* out) const;
};

}  // namespace frugal::envs
