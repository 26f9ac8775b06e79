#include "envs/cartpole.hpp"

#include <limits>

namespace frugal::envs {

CartPoleVec::CartPoleVec(int n_envs, uint64_t seed, uint32_t first_index)
    : common(n_envs, obs_dim, seed, first_index),
      x(n_envs, 0.0),
      x_dot(n_envs, 0.0),
      theta(n_envs, 0.0),
      theta_dot(n_envs, 0.0) {}

EnvSpec CartPoleVec::spec() {
  EnvSpec s;
  s.name = name;
  s.obs_dim = obs_dim;
  s.action_kind = ActionKind::discrete;
  s.num_actions = num_actions;
  s.action_dim = action_dim;
  const float big = std::numeric_limits<float>::max();
  const auto th2 = static_cast<float>(theta_threshold_radians * 2);
  s.obs_high = {static_cast<float>(x_threshold * 2), big, th2, big};
  s.obs_low = {-s.obs_high[0], -big, -th2, -big};
  s.max_episode_steps = max_episode_steps;
  s.reward_threshold = reward_threshold;
  return s;
}

void CartPoleVec::reset(float* obs) { reset_all(*this, obs); }

void CartPoleVec::step(const int32_t* actions, float* obs, float* reward, uint8_t* terminated,
                       uint8_t* truncated) {
  check_discrete_actions(name, common.n, actions, num_actions);
  step_all(*this, actions, obs, reward, terminated, truncated);
}

PhysicsResult CartPoleVec::physics(int i, const int32_t* action) {
  const double force = *action == 1 ? force_mag : -force_mag;
  const double costheta = std::cos(theta[i]);
  const double sintheta = std::sin(theta[i]);

  // Gymnasium 1.x writes np.square here (exactly x*x), not **2.
  const double temp = (force + polemass_length * (theta_dot[i] * theta_dot[i]) * sintheta) / total_mass;
  const double thetaacc = (gravity * sintheta - costheta * temp) /
                          (length * (4.0 / 3.0 - masspole * (costheta * costheta) / total_mass));
  const double xacc = temp - polemass_length * thetaacc * costheta / total_mass;

  // Explicit Euler: every update uses the values from before the step.
  x[i] = x[i] + tau * x_dot[i];
  x_dot[i] = x_dot[i] + tau * xacc;
  theta[i] = theta[i] + tau * theta_dot[i];
  theta_dot[i] = theta_dot[i] + tau * thetaacc;

  const bool terminated = x[i] < -x_threshold || x[i] > x_threshold ||
                          theta[i] < -theta_threshold_radians || theta[i] > theta_threshold_radians;
  return {1.0, terminated};  // +1 on every step, the terminating one included
}

void CartPoleVec::reset_one(int i) {
  Rng& rng = common.rng[i];
  x[i] = uniform(rng, -reset_high, reset_high);
  x_dot[i] = uniform(rng, -reset_high, reset_high);
  theta[i] = uniform(rng, -reset_high, reset_high);
  theta_dot[i] = uniform(rng, -reset_high, reset_high);
}

void CartPoleVec::observe(int i, float* out) const {
  out[0] = static_cast<float>(x[i]);
  out[1] = static_cast<float>(x_dot[i]);
  out[2] = static_cast<float>(theta[i]);
  out[3] = static_cast<float>(theta_dot[i]);
}

std::vector<uint8_t> CartPoleVec::save_state() const {
  return save_with(*this, [&](ByteWriter& w) {
    w.put(x);
    w.put(x_dot);
    w.put(theta);
    w.put(theta_dot);
  });
}

void CartPoleVec::load_state(const std::vector<uint8_t>& bytes) {
  const size_t n = static_cast<size_t>(common.n);
  load_with(*this, bytes, [n](CartPoleVec& e, ByteReader& r) {
    r.get(e.x, n);
    r.get(e.x_dot, n);
    r.get(e.theta, n);
    r.get(e.theta_dot, n);
  });
}

}  // namespace frugal::envs
