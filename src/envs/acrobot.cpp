#include "envs/acrobot.hpp"

#include <algorithm>

namespace frugal::envs {

namespace {

constexpr double pi = std::numbers::pi;

// Gymnasium's wrap(): shift x by whole periods until m <= x <= M.
double wrap(double x, double m, double M) {
  const double diff = M - m;
  while (x > M) x = x - diff;
  while (x < m) x = x + diff;
  return x;
}

// Gymnasium's bound(): min(max(x, m), M).
double bound(double x, double m, double M) { return std::min(std::max(x, m), M); }

using State5 = std::array<double, 5>;

// y + h * k, element by element (numpy's `y0 + dt2 * k1`).
State5 axpy(const State5& y, double h, const State5& k) {
  State5 r;
  for (int j = 0; j < 5; ++j) r[j] = y[j] + h * k[j];
  return r;
}

}  // namespace

AcrobotVec::AcrobotVec(int n_envs, uint64_t seed, uint32_t first_index)
    : common(n_envs, obs_dim, seed, first_index),
      theta1(n_envs, 0.0),
      theta2(n_envs, 0.0),
      dtheta1(n_envs, 0.0),
      dtheta2(n_envs, 0.0) {}

EnvSpec AcrobotVec::spec() {
  EnvSpec s;
  s.name = name;
  s.obs_dim = obs_dim;
  s.action_kind = ActionKind::discrete;
  s.num_actions = num_actions;
  s.action_dim = action_dim;
  s.obs_high = {1.0f, 1.0f, 1.0f, 1.0f, static_cast<float>(MAX_VEL_1), static_cast<float>(MAX_VEL_2)};
  for (float h : s.obs_high) s.obs_low.push_back(-h);
  s.max_episode_steps = max_episode_steps;
  s.reward_threshold = reward_threshold;
  return s;
}

void AcrobotVec::reset(float* obs) { reset_all(*this, obs); }

void AcrobotVec::step(const int32_t* actions, float* obs, float* reward, uint8_t* terminated,
                      uint8_t* truncated) {
  check_discrete_actions(name, common.n, actions, num_actions);
  step_all(*this, actions, obs, reward, terminated, truncated);
}

State5 AcrobotVec::dsdt(const State5& s_augmented) {
  const double m1 = LINK_MASS_1, m2 = LINK_MASS_2;
  const double l1 = LINK_LENGTH_1;
  const double lc1 = LINK_COM_POS_1, lc2 = LINK_COM_POS_2;
  const double I1 = LINK_MOI, I2 = LINK_MOI;
  const double a = s_augmented[4];
  const double theta1 = s_augmented[0], theta2 = s_augmented[1];
  const double dtheta1 = s_augmented[2], dtheta2 = s_augmented[3];
  const auto sq = [](double v) { return py_square(v); };  // Python's v**2

  // Same expressions, same evaluation order as Gymnasium's _dsdt.
  const double d1 = m1 * sq(lc1) + m2 * (sq(l1) + sq(lc2) + 2 * l1 * lc2 * std::cos(theta2)) + I1 + I2;
  const double d2 = m2 * (sq(lc2) + l1 * lc2 * std::cos(theta2)) + I2;
  const double phi2 = m2 * lc2 * g * std::cos(theta1 + theta2 - pi / 2.0);
  const double phi1 = -m2 * l1 * lc2 * sq(dtheta2) * std::sin(theta2) -
                      2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * std::sin(theta2) +
                      (m1 * lc1 + m2 * l1) * g * std::cos(theta1 - pi / 2) + phi2;
  // "book" dynamics (the NIPS paper's version lacks the dtheta1^2 term).
  const double ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * sq(dtheta1) * std::sin(theta2) - phi2) /
                          (m2 * sq(lc2) + I2 - sq(d2) / d1);
  const double ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
  return {dtheta1, dtheta2, ddtheta1, ddtheta2, 0.0};
}

PhysicsResult AcrobotVec::physics(int i, const int32_t* action) {
  const double torque = AVAIL_TORQUE[static_cast<size_t>(*action)];  // torque_noise_max = 0
  const State5 y0 = {theta1[i], theta2[i], dtheta1[i], dtheta2[i], torque};

  // One step of Gymnasium's rk4(derivs, y0, [0, dt]).
  const double h = dt - 0.0;
  const double h2 = h / 2.0;
  const State5 k1 = dsdt(y0);
  const State5 k2 = dsdt(axpy(y0, h2, k1));
  const State5 k3 = dsdt(axpy(y0, h2, k2));
  const State5 k4 = dsdt(axpy(y0, h, k3));
  State5 ns;
  for (int j = 0; j < 5; ++j) ns[j] = y0[j] + h / 6.0 * (k1[j] + 2 * k2[j] + 2 * k3[j] + k4[j]);

  theta1[i] = wrap(ns[0], -pi, pi);
  theta2[i] = wrap(ns[1], -pi, pi);
  dtheta1[i] = bound(ns[2], -MAX_VEL_1, MAX_VEL_1);
  dtheta2[i] = bound(ns[3], -MAX_VEL_2, MAX_VEL_2);

  const bool terminated = -std::cos(theta1[i]) - std::cos(theta2[i] + theta1[i]) > 1.0;
  return {terminated ? 0.0 : -1.0, terminated};
}

void AcrobotVec::reset_one(int i) {
  Rng& rng = common.rng[i];
  // Drawn in float64, then rounded to float32 like Gymnasium's .astype(np.float32).
  const auto draw = [&] { return double{static_cast<float>(uniform(rng, -reset_high, reset_high))}; };
  theta1[i] = draw();
  theta2[i] = draw();
  dtheta1[i] = draw();
  dtheta2[i] = draw();
}

void AcrobotVec::observe(int i, float* out) const {
  out[0] = static_cast<float>(std::cos(theta1[i]));
  out[1] = static_cast<float>(std::sin(theta1[i]));
  out[2] = static_cast<float>(std::cos(theta2[i]));
  out[3] = static_cast<float>(std::sin(theta2[i]));
  out[4] = static_cast<float>(dtheta1[i]);
  out[5] = static_cast<float>(dtheta2[i]);
}

std::vector<uint8_t> AcrobotVec::save_state() const {
  return save_with(*this, [&](ByteWriter& w) {
    w.put(theta1);
    w.put(theta2);
    w.put(dtheta1);
    w.put(dtheta2);
  });
}

void AcrobotVec::load_state(const std::vector<uint8_t>& bytes) {
  const size_t n = static_cast<size_t>(common.n);
  load_with(*this, bytes, [n](AcrobotVec& e, ByteReader& r) {
    r.get(e.theta1, n);
    r.get(e.theta2, n);
    r.get(e.dtheta1, n);
    r.get(e.dtheta2, n);
  });
}

}  // namespace frugal::envs
