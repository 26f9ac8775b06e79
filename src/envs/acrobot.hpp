#pragma once
// Acrobot-v1 (Gymnasium 1.x, classic_control/acrobot.py), n environments stepped together.
// Two links hanging from a fixed pivot; the joint between them is actuated with torque -1, 0 or +1
// (actions 0, 1, 2). Goal: swing the free end above the bar, i.e. -cos(s0) - cos(s1 + s0) > 1.0
// (terminates, reward 0); every other step gives -1; truncated at 500 steps.
// Dynamics: Sutton & Barto's book equations (Gymnasium's default book_or_nips = "book"), torque
// noise 0, integrated by ONE classical RK4 step of dt = 0.2 on the state augmented with the torque;
// then both angles are wrapped into [-pi, pi] and the velocities bounded to +-4 pi and +-9 pi.
// Reset: all four state values ~ U(-0.1, 0.1), rounded to float32 (Gymnasium's reset does
// `.astype(np.float32)`; the first step promotes back to float64, as here).
// Observation: [cos s0, sin s0, cos s1, sin s1, dtheta1, dtheta2] as float32.
// `**2` in Gymnasium's _dsdt is the C library's pow (py_square), for bit-identical results.
// Conventions: see envs/env.hpp.
#include "envs/env.hpp"

#include <array>
#include <numbers>

namespace frugal::envs {

struct AcrobotVec {
  static constexpr const char* name = "Acrobot-v1";
  static constexpr int obs_dim = 6;
  static constexpr int action_dim = 1;  // one int32 per env
  static constexpr int num_actions = 3;
  static constexpr int max_episode_steps = 500;
  static constexpr double reward_threshold = -100.0;

  // Gymnasium's constants, same names.
  static constexpr double dt = 0.2;
  static constexpr double LINK_LENGTH_1 = 1.0;   // [m]
  static constexpr double LINK_LENGTH_2 = 1.0;   // [m]
  static constexpr double LINK_MASS_1 = 1.0;     // [kg] mass of link 1
  static constexpr double LINK_MASS_2 = 1.0;     // [kg] mass of link 2
  static constexpr double LINK_COM_POS_1 = 0.5;  // [m] position of the centre of mass of link 1
  static constexpr double LINK_COM_POS_2 = 0.5;  // [m] position of the centre of mass of link 2
  static constexpr double LINK_MOI = 1.0;        // moments of inertia for both links
  static constexpr double MAX_VEL_1 = 4 * std::numbers::pi;
  static constexpr double MAX_VEL_2 = 9 * std::numbers::pi;
  static constexpr std::array<double, 3> AVAIL_TORQUE = {-1.0, 0.0, +1.0};
  static constexpr double g = 9.8;  // in _dsdt
  static constexpr double reset_high = 0.1;

  VecCommon common;
  // The physics state, one entry per env: the two joint angles and their angular velocities.
  std::vector<double> theta1, theta2, dtheta1, dtheta2;

  AcrobotVec() = default;
  AcrobotVec(int n_envs, uint64_t seed, uint32_t first_index = 0);

  static EnvSpec spec();
  int num_envs() const { return common.n; }
  const float* final_obs() const { return common.final_obs.data(); }

  void reset(float* obs);
  // actions[i] in {0, 1, 2}; same-step autoreset, see envs/env.hpp.
  void step(const int32_t* actions, float* obs, float* reward, uint8_t* terminated, uint8_t* truncated);

  std::vector<uint8_t> save_state() const;
  void load_state(const std::vector<uint8_t>& bytes);

  PhysicsResult physics(int i, const int32_t* action);
  void reset_one(int i);
  void observe(int i, float* out) const;

  // Time derivative of the augmented state [theta1, theta2, dtheta1, dtheta2, torque] (book
  // dynamics); the torque's derivative is 0.
  static std::array<double, 5> dsdt(const std::array<double, 5>& s);
};

}  // namespace frugal::envs
