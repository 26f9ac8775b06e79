#include "envs/pendulum.hpp"

#include <algorithm>

namespace frugal::envs {

double angle_normalize(double x) {
  constexpr double pi = std::numbers::pi;
  constexpr double two_pi = 2 * pi;
  // numpy's float remainder: C fmod, then shifted into the divisor's sign (here: non-negative).
  double mod = std::fmod(x + pi, two_pi);
  if (mod != 0.0) {
    if (mod < 0.0) mod += two_pi;
  } else {
    mod = 0.0;  // copysign(0, 2 pi)
  }
  return mod - pi;
}

PendulumVec::PendulumVec(int n_envs, uint64_t seed, uint32_t first_index)
    : common(n_envs, obs_dim, seed, first_index), theta(n_envs, 0.0), theta_dot(n_envs, 0.0) {}

EnvSpec PendulumVec::spec() {
  EnvSpec s;
  s.name = name;
  s.obs_dim = obs_dim;
  s.action_kind = ActionKind::continuous;
  s.num_actions = 0;
  s.action_dim = action_dim;
  s.action_low = {-max_torque};
  s.action_high = {max_torque};
  s.obs_high = {1.0f, 1.0f, static_cast<float>(max_speed)};
  s.obs_low = {-1.0f, -1.0f, -static_cast<float>(max_speed)};
  s.max_episode_steps = max_episode_steps;
  return s;  // Pendulum-v1 has no reward threshold
}

void PendulumVec::reset(float* obs) { reset_all(*this, obs); }

void PendulumVec::step(const float* actions, float* obs, float* reward, uint8_t* terminated,
                       uint8_t* truncated) {
  check_continuous_actions(name, common.n, action_dim, actions);
  step_all(*this, actions, obs, reward, terminated, truncated);
}

PhysicsResult PendulumVec::physics(int i, const float* action) {
  const double th = theta[i];
  const double thdot = theta_dot[i];

  const float u = std::clamp(action[0], -max_torque, max_torque);  // float32, as numpy's clip
  const float torque_cost = 0.001f * py_square(u);                  // float32 arithmetic
  const double costs = py_square(angle_normalize(th)) + 0.1 * py_square(thdot) + double{torque_cost};

  const float torque_acc = static_cast<float>(3.0 / (m * l * l)) * u;  // float32 arithmetic
  double newthdot = thdot + (3 * g / (2 * l) * std::sin(th) + double{torque_acc}) * dt;
  newthdot = std::clamp(newthdot, -max_speed, max_speed);
  const double newth = th + newthdot * dt;

  theta[i] = newth;
  theta_dot[i] = newthdot;
  return {-costs, false};  // never terminates; the time limit truncates
}

void PendulumVec::reset_one(int i) {
  Rng& rng = common.rng[i];
  theta[i] = uniform(rng, -reset_high_theta, reset_high_theta);
  theta_dot[i] = uniform(rng, -reset_high_thetadot, reset_high_thetadot);
}

void PendulumVec::observe(int i, float* out) const {
  out[0] = static_cast<float>(std::cos(theta[i]));
  out[1] = static_cast<float>(std::sin(theta[i]));
  out[2] = static_cast<float>(theta_dot[i]);
}

std::vector<uint8_t> PendulumVec::save_state() const {
  return save_with(*this, [&](ByteWriter& w) {
    w.put(theta);
    w.put(theta_dot);
  });
}

void PendulumVec::load_state(const std::vector<uint8_t>& bytes) {
  const size_t n = static_cast<size_t>(common.n);
  load_with(*this, bytes, [n](PendulumVec& e, ByteReader& r) {
    r.get(e.theta, n);
    r.get(e.theta_dot, n);
  });
}

}  // namespace frugal::envs
