// Tests for src/envs: CartPole-v1, Pendulum-v1 and Acrobot-v1.
// Single steps are checked against the equations written out again here (from Gymnasium's
// documented dynamics, not by calling the library's physics); edges of termination and truncation;
// same-step autoreset; reset distributions; determinism and independence of the vector split;
// checkpoints; and reference rollouts whose numbers were produced by Gymnasium itself.
#include "envs/make_env.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <limits>
#include <numbers>
#include <string>
#include <vector>

using namespace frugal::envs;

namespace {

constexpr double pi = std::numbers::pi;

// Buffers for one step of an n-env vector.
struct Buffers {
  std::vector<float> obs, reward;
  std::vector<uint8_t> terminated, truncated;
  Buffers(int n, int obs_dim) : obs(static_cast<size_t>(n) * obs_dim), reward(n), terminated(n), truncated(n) {}
};

template <typename E, typename A>
void step1(E& env, A action, Buffers& b) {
  std::vector<A> actions(env.num_envs(), action);
  env.step(actions.data(), b.obs.data(), b.reward.data(), b.terminated.data(), b.truncated.data());
}

// ---- CartPole equations, written out from the spec ------------------------------------------
struct CartPoleState {
  double x, x_dot, theta, theta_dot;
};

CartPoleState cartpole_reference(CartPoleState s, int action) {
  const double g = 9.8, m_cart = 1.0, m_pole = 0.1, half_len = 0.5, f_mag = 10.0, tau = 0.02;
  const double total = m_cart + m_pole;
  const double F = action == 1 ? f_mag : -f_mag;
  const double c = std::cos(s.theta), sn = std::sin(s.theta);
  const double temp = (F + m_pole * half_len * s.theta_dot * s.theta_dot * sn) / total;
  const double thacc = (g * sn - c * temp) / (half_len * (4.0 / 3.0 - m_pole * c * c / total));
  const double xacc = temp - m_pole * half_len * thacc * c / total;
  // explicit Euler: positions move with the old velocities
  return {s.x + tau * s.x_dot, s.x_dot + tau * xacc, s.theta + tau * s.theta_dot, s.theta_dot + tau * thacc};
}

void set_state(CartPoleVec& e, int i, CartPoleState s) {
  e.x[i] = s.x;
  e.x_dot[i] = s.x_dot;
  e.theta[i] = s.theta;
  e.theta_dot[i] = s.theta_dot;
}

// ---- Pendulum equations ---------------------------------------------------------------------
double normalise_reference(double th) { return th - 2 * pi * std::floor((th + pi) / (2 * pi)); }

struct PendulumStep {
  double th, thdot, reward;
};

// The torque terms are float32 in Gymnasium (numpy float32 action); we write them as floats too.
PendulumStep pendulum_reference(double th, double thdot, float action) {
  const double g = 10.0, m = 1.0, l = 1.0, dt = 0.05, max_speed = 8.0;
  const float u = std::fmin(std::fmax(action, -2.0f), 2.0f);
  const double an = normalise_reference(th);
  const float u_cost = 0.001f * (u * u);
  const double cost = an * an + 0.1 * thdot * thdot + u_cost;
  const float u_acc = 3.0f * u;  // 3 / (m l^2) * u with m = l = 1
  double nthdot = thdot + (3.0 * g / (2.0 * l) * std::sin(th) + u_acc / (m * l * l)) * dt;
  nthdot = std::fmin(std::fmax(nthdot, -max_speed), max_speed);
  return {th + nthdot * dt, nthdot, -cost};
}

// ---- Acrobot: the book's dynamics and a classical RK4, written independently ----------------
using A4 = std::array<double, 4>;

// Sutton & Barto's acrobot (book version): theta1, theta2 (relative), their velocities; torque tau.
A4 acrobot_derivative(const A4& s, double tau) {
  const double m1 = 1, m2 = 1, l1 = 1, lc1 = 0.5, lc2 = 0.5, I1 = 1, I2 = 1, g = 9.8;
  const double t1 = s[0], t2 = s[1], w1 = s[2], w2 = s[3];
  const double d11 = m1 * lc1 * lc1 + m2 * (l1 * l1 + lc2 * lc2 + 2 * l1 * lc2 * std::cos(t2)) + I1 + I2;
  const double d12 = m2 * (lc2 * lc2 + l1 * lc2 * std::cos(t2)) + I2;
  const double d22 = m2 * lc2 * lc2 + I2;
  const double h1 = -m2 * l1 * lc2 * std::sin(t2) * w2 * w2 - 2 * m2 * l1 * lc2 * std::sin(t2) * w2 * w1;
  const double h2 = m2 * l1 * lc2 * std::sin(t2) * w1 * w1;
  const double phi2 = m2 * lc2 * g * std::cos(t1 + t2 - pi / 2);
  const double phi1 = (m1 * lc1 + m2 * l1) * g * std::cos(t1 - pi / 2) + phi2;
  const double acc2 = (tau + d12 / d11 * (h1 + phi1) - h2 - phi2) / (d22 - d12 * d12 / d11);
  const double acc1 = -(d12 * acc2 + h1 + phi1) / d11;
  return {w1, w2, acc1, acc2};
}

A4 rk4_step(const A4& y, double tau, double h) {
  auto add = [](const A4& a, double c, const A4& b) {
    A4 r;
    for (int j = 0; j < 4; ++j) r[j] = a[j] + c * b[j];
    return r;
  };
  const A4 k1 = acrobot_derivative(y, tau);
  const A4 k2 = acrobot_derivative(add(y, h / 2, k1), tau);
  const A4 k3 = acrobot_derivative(add(y, h / 2, k2), tau);
  const A4 k4 = acrobot_derivative(add(y, h, k3), tau);
  A4 r;
  for (int j = 0; j < 4; ++j) r[j] = y[j] + h / 6 * (k1[j] + 2 * k2[j] + 2 * k3[j] + k4[j]);
  return r;
}

// The full Acrobot-v1 step: RK4 over 0.2 s, wrap angles into [-pi, pi], bound velocities.
A4 acrobot_reference(const A4& s, int action) {
  const double tau = action - 1.0;  // actions 0, 1, 2 -> torque -1, 0, +1
  A4 r = rk4_step(s, tau, 0.2);
  for (int j = 0; j < 2; ++j) r[j] = r[j] - 2 * pi * std::floor((r[j] + pi) / (2 * pi));
  r[2] = std::fmin(std::fmax(r[2], -4 * pi), 4 * pi);
  r[3] = std::fmin(std::fmax(r[3], -9 * pi), 9 * pi);
  return r;
}

double acrobot_height(const A4& s) { return -std::cos(s[0]) - std::cos(s[1] + s[0]); }

void set_state(AcrobotVec& e, int i, const A4& s) {
  e.theta1[i] = s[0];
  e.theta2[i] = s[1];
  e.dtheta1[i] = s[2];
  e.dtheta2[i] = s[3];
}
A4 get_state(const AcrobotVec& e, int i) { return {e.theta1[i], e.theta2[i], e.dtheta1[i], e.dtheta2[i]}; }

constexpr double tol = 1e-12;

}  // namespace

// =================================== CartPole-v1 =============================================

TEST(CartPole, SingleStepsMatchTheEquations) {
  const std::vector<CartPoleState> states = {
      {0.0, 0.0, 0.0, 0.0},       {0.01, -0.02, 0.03, 0.04},  {-1.3, 0.7, -0.15, 1.9},
      {2.2, -1.5, 0.19, -2.5},    {0.4, 3.0, -0.2, 0.0},      {-0.05, 0.05, 0.1, -0.3},
  };
  CartPoleVec env(1, 7);
  Buffers b(1, 4);
  env.reset(b.obs.data());
  for (const auto& s : states) {
    for (int a = 0; a < 2; ++a) {
      set_state(env, 0, s);
      env.common.steps[0] = 0;
      step1(env, int32_t(a), b);
      const CartPoleState want = cartpole_reference(s, a);
      const bool done = std::fabs(want.x) > 2.4 || std::fabs(want.theta) > 12 * 2 * pi / 360;
      EXPECT_EQ(b.terminated[0], done ? 1 : 0);
      EXPECT_EQ(b.truncated[0], 0);
      EXPECT_EQ(b.reward[0], 1.0f);
      const float* fin = env.final_obs();
      EXPECT_NEAR(fin[0], want.x, 1e-6);
      EXPECT_EQ(fin[0], static_cast<float>(want.x));  // obs is the float64 state rounded to float32
      EXPECT_EQ(fin[1], static_cast<float>(want.x_dot));
      EXPECT_EQ(fin[2], static_cast<float>(want.theta));
      EXPECT_EQ(fin[3], static_cast<float>(want.theta_dot));
      if (!done) {
        EXPECT_NEAR(env.x[0], want.x, tol);
        EXPECT_NEAR(env.x_dot[0], want.x_dot, tol);
        EXPECT_NEAR(env.theta[0], want.theta, tol);
        EXPECT_NEAR(env.theta_dot[0], want.theta_dot, tol);
        for (int j = 0; j < 4; ++j) EXPECT_EQ(b.obs[j], fin[j]);
      }
    }
  }
}

TEST(CartPole, ConstantsAreGymnasiums) {
  EXPECT_DOUBLE_EQ(CartPoleVec::theta_threshold_radians, 0.20943951023931953);
  EXPECT_EQ(CartPoleVec::x_threshold, 2.4);
  EXPECT_EQ(CartPoleVec::tau, 0.02);
  EXPECT_EQ(CartPoleVec::max_episode_steps, 500);
}

// With x_dot = 0 (theta_dot = 0) the step leaves x (theta) exactly where it was, so the state can
// be put on either side of the threshold to the last bit.
TEST(CartPole, TerminationEdges) {
  CartPoleVec env(1, 3);
  Buffers b(1, 4);
  env.reset(b.obs.data());
  const double inf = std::numeric_limits<double>::infinity();
  const double th = 12 * 2 * pi / 360;
  struct Case {
    CartPoleState s;
    bool done;
  };
  const std::vector<Case> cases = {
      {{2.4, 0, 0, 0}, false},
      {{std::nextafter(2.4, inf), 0, 0, 0}, true},
      {{-2.4, 0, 0, 0}, false},
      {{std::nextafter(-2.4, -inf), 0, 0, 0}, true},
      {{2.39, 0, 0, 0}, false},
      {{2.41, 0, 0, 0}, true},
      {{0, 0, th, 0}, false},
      {{0, 0, std::nextafter(th, inf), 0}, true},
      {{0, 0, -th, 0}, false},
      {{0, 0, std::nextafter(-th, -inf), 0}, true},
      {{0, 0, 0.2094, 0}, false},   // just under 12 degrees
      {{0, 0, 0.2096, 0}, true},    // just over
      {{0, 0, -0.2096, 0}, true},
  };
  for (const auto& c : cases) {
    for (int a = 0; a < 2; ++a) {
      set_state(env, 0, c.s);
      step1(env, int32_t(a), b);
      EXPECT_EQ(b.terminated[0], c.done ? 1 : 0) << "x " << c.s.x << " theta " << c.s.theta;
      EXPECT_EQ(b.reward[0], 1.0f);  // the terminating step is rewarded too
      EXPECT_EQ(env.final_obs()[0], static_cast<float>(c.s.x));
      EXPECT_EQ(env.final_obs()[2], static_cast<float>(c.s.theta));
    }
  }
}

TEST(CartPole, AutoresetOnTermination) {
  CartPoleVec env(2, 11);
  Buffers b(2, 4);
  env.reset(b.obs.data());
  // env 0 falls this step, env 1 does not
  set_state(env, 0, {2.5, 0, 0, 0});
  set_state(env, 1, {0, 0, 0, 0});
  env.common.steps[0] = 17;
  env.common.ep_return[0] = 17.0;
  step1(env, int32_t(1), b);
  EXPECT_EQ(b.terminated[0], 1);
  EXPECT_EQ(b.terminated[1], 0);
  EXPECT_EQ(b.truncated[0], 0);
  // final_obs keeps the observation the step reached, obs has the new episode's first observation
  EXPECT_EQ(env.final_obs()[0], 2.5f);
  for (int j = 0; j < 4; ++j) {
    EXPECT_LE(std::fabs(b.obs[j]), 0.05f);
    EXPECT_EQ(b.obs[4 + j], env.final_obs()[4 + j]);  // env 1 carries on
  }
  EXPECT_EQ(b.obs[0], static_cast<float>(env.x[0]));
  EXPECT_EQ(env.common.done_length[0], 18);
  EXPECT_EQ(env.common.done_return[0], 18.0);
  EXPECT_EQ(env.common.steps[0], 0);
  EXPECT_EQ(env.common.ep_return[0], 0.0);
  EXPECT_EQ(env.common.steps[1], 1);
}

TEST(CartPole, TruncatesAt500) {
  CartPoleVec env(1, 5);
  Buffers b(1, 4);
  env.reset(b.obs.data());
  for (int t = 1; t <= 500; ++t) {
    set_state(env, 0, {0, 0, 0, 0});  // hold the pole upright so it never terminates
    step1(env, int32_t(t % 2), b);
    ASSERT_EQ(b.terminated[0], 0);
    ASSERT_EQ(b.truncated[0], t == 500 ? 1 : 0) << "step " << t;
  }
  EXPECT_EQ(env.common.done_length[0], 500);
  EXPECT_EQ(env.common.done_return[0], 500.0);
  EXPECT_EQ(env.common.steps[0], 0);
  for (int j = 0; j < 4; ++j) EXPECT_LE(std::fabs(b.obs[j]), 0.05f);  // autoreset happened
  // both flags on the 500th step when it also terminates, as Gymnasium's TimeLimit does
  env.common.steps[0] = 499;
  set_state(env, 0, {3.0, 0, 0, 0});
  step1(env, int32_t(0), b);
  EXPECT_EQ(b.terminated[0], 1);
  EXPECT_EQ(b.truncated[0], 1);
}

TEST(CartPole, ResetDistribution) {
  const int n = 4000;
  CartPoleVec env(n, 123);
  std::vector<float> obs(n * 4);
  env.reset(obs.data());
  for (const auto* v : {&env.x, &env.x_dot, &env.theta, &env.theta_dot}) {
    double mean = 0, var = 0;
    for (double s : *v) {
      ASSERT_GT(s, -0.05);
      ASSERT_LE(s, 0.05);
      mean += s / n;
    }
    for (double s : *v) var += (s - mean) * (s - mean) / n;
    EXPECT_NEAR(mean, 0.0, 0.003);
    EXPECT_NEAR(var, 0.1 * 0.1 / 12, 0.0003);
  }
  for (int i = 0; i < n; ++i) EXPECT_EQ(obs[4 * i + 2], static_cast<float>(env.theta[i]));
}

TEST(CartPole, InvalidActionsThrowAndChangeNothing) {
  CartPoleVec env(3, 1);
  Buffers b(3, 4);
  EXPECT_THROW(step1(env, int32_t(0), b), frugal::Error);  // before reset
  env.reset(b.obs.data());
  const auto before = env.save_state();
  const std::vector<int32_t> bad = {0, 2, 1};
  EXPECT_THROW(env.step(bad.data(), b.obs.data(), b.reward.data(), b.terminated.data(), b.truncated.data()),
               frugal::Error);
  const std::vector<int32_t> neg = {-1, 0, 0};
  EXPECT_THROW(env.step(neg.data(), b.obs.data(), b.reward.data(), b.terminated.data(), b.truncated.data()),
               frugal::Error);
  EXPECT_EQ(env.save_state(), before);
}

// ===================================== Pendulum-v1 ===========================================

TEST(Pendulum, SingleStepsMatchTheEquations) {
  PendulumVec env(1, 9);
  Buffers b(1, 3);
  env.reset(b.obs.data());
  const std::vector<std::array<double, 2>> states = {
      {0.0, 0.0}, {pi - 0.3, 0.5}, {-2.0, -3.0}, {1.0, 7.5}, {5.5, -0.2}, {-7.0, 1.0}, {12.0, -7.9}};
  const std::vector<float> torques = {0.0f, 1.0f, -1.7f, 2.0f, 0.3f, 5.0f, -3.0f};
  for (const auto& s : states) {
    for (float u : torques) {
      env.theta[0] = s[0];
      env.theta_dot[0] = s[1];
      env.common.steps[0] = 0;
      env.common.ep_return[0] = 0.0;  // so that ep_return is this step's float64 reward
      step1(env, u, b);
      const PendulumStep want = pendulum_reference(s[0], s[1], u);
      EXPECT_NEAR(env.theta[0], want.th, tol);
      EXPECT_NEAR(env.theta_dot[0], want.thdot, tol);
      EXPECT_NEAR(env.common.ep_return[0], want.reward, tol);  // reward at float64
      EXPECT_EQ(b.reward[0], static_cast<float>(env.common.ep_return[0]));
      EXPECT_EQ(b.terminated[0], 0);
      EXPECT_EQ(b.truncated[0], 0);
      EXPECT_EQ(b.obs[0], static_cast<float>(std::cos(env.theta[0])));
      EXPECT_EQ(b.obs[1], static_cast<float>(std::sin(env.theta[0])));
      EXPECT_EQ(b.obs[2], static_cast<float>(env.theta_dot[0]));
    }
  }
}

TEST(Pendulum, TorqueIsClipped) {
  PendulumVec a(1, 1), c(1, 1);
  Buffers b(1, 3);
  a.reset(b.obs.data());
  c.reset(b.obs.data());
  const std::vector<std::array<float, 2>> pairs = {
      {5.0f, 2.0f}, {-7.0f, -2.0f}, {std::numeric_limits<float>::infinity(), 2.0f},
      {-std::numeric_limits<float>::infinity(), -2.0f}, {2.0001f, 2.0f}};
  for (const auto& p : pairs) {
    for (auto* e : {&a, &c}) {
      e->theta[0] = 0.7;
      e->theta_dot[0] = -1.2;
    }
    step1(a, p[0], b);
    const float r_big = b.reward[0];
    step1(c, p[1], b);
    EXPECT_EQ(a.theta[0], c.theta[0]);
    EXPECT_EQ(a.theta_dot[0], c.theta_dot[0]);
    EXPECT_EQ(r_big, b.reward[0]);  // the cost uses the clipped torque
  }
}

TEST(Pendulum, SpeedIsClipped) {
  PendulumVec env(1, 1);
  Buffers b(1, 3);
  env.reset(b.obs.data());
  // thdot + (15 sin(pi/2) + 3 * 2) * 0.05 = 7.9 + 1.05 > 8
  env.theta[0] = pi / 2;
  env.theta_dot[0] = 7.9;
  step1(env, 2.0f, b);
  EXPECT_EQ(env.theta_dot[0], 8.0);
  EXPECT_EQ(env.theta[0], pi / 2 + 8.0 * 0.05);  // the new, clipped speed moves the angle
  EXPECT_NEAR(env.common.ep_return[0], -((pi / 2) * (pi / 2) + 0.1 * 7.9 * 7.9 + 0.001 * 4.0), 1e-9);
  env.theta[0] = -pi / 2;
  env.theta_dot[0] = -7.9;
  step1(env, -2.0f, b);
  EXPECT_EQ(env.theta_dot[0], -8.0);
  EXPECT_EQ(b.obs[2], -8.0f);
}

TEST(Pendulum, AngleNormalisation) {
  for (double x : {0.0, 0.5, -0.5, 3.0, -3.0, 3.5, -3.5, 7.0, -7.0, 10 * pi + 0.25, -10 * pi - 0.25, 100.0}) {
    const double got = angle_normalize(x);
    EXPECT_GE(got, -pi);
    EXPECT_LT(got, pi);
    EXPECT_NEAR(got, normalise_reference(x), 1e-12) << x;
  }
  // numpy's floored modulo puts both ends of the period at -pi
  EXPECT_EQ(angle_normalize(pi), -pi);
  EXPECT_EQ(angle_normalize(-pi), -pi);
  // the cost sees the normalised angle: theta and theta + 2 pi cost the same (to rounding)
  PendulumVec env(2, 1);
  Buffers b(2, 3);
  env.reset(b.obs.data());
  env.theta = {0.4, 0.4 + 2 * pi};
  env.theta_dot = {0.0, 0.0};
  step1(env, 0.0f, b);
  EXPECT_NEAR(b.reward[0], -0.16f, 1e-6);
  EXPECT_NEAR(b.reward[1], b.reward[0], 1e-6);
  EXPECT_NEAR(env.theta[1], 0.4 + 2 * pi + 0.05 * env.theta_dot[1], 1e-12);  // the state is not normalised
}

TEST(Pendulum, TruncatesAt200AndNeverTerminates) {
  PendulumVec env(1, 4);
  Buffers b(1, 3);
  env.reset(b.obs.data());
  for (int t = 1; t <= 200; ++t) {
    step1(env, 2.0f, b);
    ASSERT_EQ(b.terminated[0], 0);
    ASSERT_EQ(b.truncated[0], t == 200 ? 1 : 0) << "step " << t;
  }
  EXPECT_EQ(env.common.done_length[0], 200);
  EXPECT_EQ(env.common.steps[0], 0);
  // obs is the new episode's first observation: thdot within the reset range
  EXPECT_LE(std::fabs(b.obs[2]), 1.0f);
  EXPECT_EQ(b.obs[2], static_cast<float>(env.theta_dot[0]));
}

TEST(Pendulum, ResetDistribution) {
  const int n = 4000;
  PendulumVec env(n, 77);
  std::vector<float> obs(n * 3);
  env.reset(obs.data());
  double m_th = 0, m_w = 0;
  for (int i = 0; i < n; ++i) {
    ASSERT_GT(env.theta[i], -pi);
    ASSERT_LE(env.theta[i], pi);
    ASSERT_GT(env.theta_dot[i], -1.0);
    ASSERT_LE(env.theta_dot[i], 1.0);
    m_th += env.theta[i] / n;
    m_w += env.theta_dot[i] / n;
  }
  EXPECT_NEAR(m_th, 0.0, 0.15);
  EXPECT_NEAR(m_w, 0.0, 0.05);
}

TEST(Pendulum, NaNActionThrows) {
  PendulumVec env(2, 1);
  Buffers b(2, 3);
  env.reset(b.obs.data());
  const auto before = env.save_state();
  const std::vector<float> bad = {0.5f, std::numeric_limits<float>::quiet_NaN()};
  EXPECT_THROW(env.step(bad.data(), b.obs.data(), b.reward.data(), b.terminated.data(), b.truncated.data()),
               frugal::Error);
  EXPECT_EQ(env.save_state(), before);
}

// ===================================== Acrobot-v1 ============================================

TEST(Acrobot, SingleStepsMatchAnIndependentRK4) {
  AcrobotVec env(1, 2);
  Buffers b(1, 6);
  env.reset(b.obs.data());
  const std::vector<A4> states = {{0, 0, 0, 0},         {0.05, -0.03, 0.02, -0.01}, {1.0, -2.0, 3.0, -4.0},
                                  {-2.5, 1.2, -6.0, 10.0}, {3.0, 3.0, 1.0, 1.0},    {-0.1, 0.1, 12.0, -25.0}};
  for (const auto& s : states) {
    for (int a = 0; a < 3; ++a) {
      set_state(env, 0, s);
      env.common.steps[0] = 0;
      step1(env, int32_t(a), b);
      const A4 want = acrobot_reference(s, a);
      const bool done = acrobot_height(want) > 1.0;
      EXPECT_EQ(b.terminated[0], done ? 1 : 0);
      EXPECT_EQ(b.reward[0], done ? 0.0f : -1.0f);
      const float* fin = env.final_obs();
      EXPECT_NEAR(fin[0], std::cos(want[0]), 1e-6);
      EXPECT_NEAR(fin[1], std::sin(want[0]), 1e-6);
      EXPECT_NEAR(fin[2], std::cos(want[1]), 1e-6);
      EXPECT_NEAR(fin[3], std::sin(want[1]), 1e-6);
      EXPECT_NEAR(fin[4], want[2], 1e-5);
      EXPECT_NEAR(fin[5], want[3], 1e-5);
      if (!done) {
        const A4 got = get_state(env, 0);
        for (int j = 0; j < 4; ++j) EXPECT_NEAR(got[j], want[j], 1e-11) << "component " << j;
      }
    }
  }
}

TEST(Acrobot, WrapsAnglesAndBoundsVelocities) {
  AcrobotVec env(1, 2);
  Buffers b(1, 6);
  env.reset(b.obs.data());
  // fast enough to leave [-pi, pi] within the step (theta2 by more than one period), and above
  // the velocity bounds afterwards
  set_state(env, 0, {3.0, -3.0, 12.5, -28.0});
  const A4 raw = rk4_step({3.0, -3.0, 12.5, -28.0}, 0.0, 0.2);
  step1(env, int32_t(1), b);
  const A4 got = get_state(env, 0);
  ASSERT_GT(raw[0], pi);  // the premise: the integrator leaves [-pi, pi]
  ASSERT_LT(raw[1], -3 * pi);
  EXPECT_NEAR(got[0], raw[0] - 2 * pi, 1e-11);
  EXPECT_NEAR(got[1], raw[1] + 4 * pi, 1e-11);
  for (int j = 0; j < 2; ++j) {
    EXPECT_GE(got[j], -pi);
    EXPECT_LE(got[j], pi);
  }
  EXPECT_LE(std::fabs(got[2]), 4 * pi);
  EXPECT_LE(std::fabs(got[3]), 9 * pi);
  // a velocity far beyond the bound lands exactly on it
  set_state(env, 0, {0.0, 0.0, 0.0, 60.0});
  step1(env, int32_t(2), b);
  EXPECT_EQ(env.dtheta2[0], 9 * pi);
  EXPECT_EQ(b.obs[5], static_cast<float>(9 * pi));
  set_state(env, 0, {0.0, 0.0, -30.0, 0.0});
  step1(env, int32_t(0), b);
  EXPECT_EQ(env.dtheta1[0], -4 * pi);
}

// Find, with the test's own model, two starting angles whose post-step heights lie just below and
// just above 1.0; the environment must terminate on one and not the other.
TEST(Acrobot, TerminationThreshold) {
  auto height_after = [](double t1) { return acrobot_height(acrobot_reference({t1, 0, 0, 0}, 1)); };
  double lo = 1.5, hi = 3.0;  // straight, at rest: low -> stays below, high -> starts above
  ASSERT_LT(height_after(lo), 1.0);
  ASSERT_GT(height_after(hi), 1.0);
  double below = lo, above = hi;
  for (int it = 0; it < 200 && (height_after(above) - 1.0 > 1e-9 || 1.0 - height_after(below) > 1e-9); ++it) {
    const double mid = 0.5 * (lo + hi);
    if (height_after(mid) > 1.0) {
      hi = above = mid;
    } else {
      lo = below = mid;
    }
  }
  ASSERT_LT(height_after(above) - 1.0, 1e-9);
  ASSERT_LT(1.0 - height_after(below), 1e-9);
  ASSERT_GT(height_after(above) - 1.0, 1e-13);  // far enough from 1.0 for any rounding
  ASSERT_GT(1.0 - height_after(below), 1e-13);

  AcrobotVec env(1, 8);
  Buffers b(1, 6);
  env.reset(b.obs.data());
  set_state(env, 0, {below, 0, 0, 0});
  step1(env, int32_t(1), b);
  EXPECT_EQ(b.terminated[0], 0);
  EXPECT_EQ(b.reward[0], -1.0f);
  set_state(env, 0, {above, 0, 0, 0});
  env.common.steps[0] = 41;
  env.common.ep_return[0] = -41.0;
  step1(env, int32_t(1), b);
  EXPECT_EQ(b.terminated[0], 1);
  EXPECT_EQ(b.reward[0], 0.0f);  // reaching the goal costs nothing
  EXPECT_EQ(env.common.done_length[0], 42);
  EXPECT_EQ(env.common.done_return[0], -41.0);
  // autoreset: obs is a fresh hanging-down state, final_obs the goal state
  EXPECT_GT(b.obs[0], 0.99f);
  EXPECT_LT(env.final_obs()[0], 0.0f);
}

TEST(Acrobot, TruncatesAt500) {
  AcrobotVec env(1, 6);
  Buffers b(1, 6);
  env.reset(b.obs.data());
  for (int t = 1; t <= 500; ++t) {
    set_state(env, 0, {0, 0, 0, 0});  // hanging at rest: never reaches the goal
    step1(env, int32_t(1), b);
    ASSERT_EQ(b.terminated[0], 0);
    ASSERT_EQ(b.truncated[0], t == 500 ? 1 : 0) << "step " << t;
  }
  EXPECT_EQ(env.common.done_return[0], -500.0);
  EXPECT_EQ(env.common.done_length[0], 500);
}

TEST(Acrobot, ResetDistributionIsFloat32Rounded) {
  const int n = 3000;
  AcrobotVec env(n, 31);
  std::vector<float> obs(n * 6);
  env.reset(obs.data());
  for (const auto* v : {&env.theta1, &env.theta2, &env.dtheta1, &env.dtheta2}) {
    double mean = 0;
    for (double s : *v) {
      ASSERT_GE(s, -0.1);
      ASSERT_LE(s, static_cast<double>(0.1f));
      ASSERT_EQ(s, static_cast<double>(static_cast<float>(s)));  // Gymnasium's .astype(np.float32)
      mean += s / n;
    }
    EXPECT_NEAR(mean, 0.0, 0.01);
  }
  for (int i = 0; i < n; ++i) EXPECT_EQ(obs[6 * i + 4], static_cast<float>(env.dtheta1[i]));
}

TEST(Acrobot, InvalidActionsThrow) {
  AcrobotVec env(2, 1);
  Buffers b(2, 6);
  env.reset(b.obs.data());
  EXPECT_THROW(step1(env, int32_t(3), b), frugal::Error);
  EXPECT_THROW(step1(env, int32_t(-1), b), frugal::Error);
  EXPECT_NO_THROW(step1(env, int32_t(2), b));
}

// ============================ reference rollouts from Gymnasium ==============================
// The numbers below were produced by Gymnasium 1.4.0 (numpy 2.4.6, x86-64, glibc 2.36) on the
// unwrapped environments, with `env.state` set by hand and the same actions as here, e.g.
//   env = gym.make("CartPole-v1").unwrapped; env.reset(seed=0)
//   env.state = np.array([0.01, -0.02, 0.03, 0.04]); env.step(a) ...
// repr() of the float64 state, float32 observations printed as doubles. On that platform our
// states agree to the last bit; the tolerances leave room for another libm.

TEST(Reference, CartPoleBalancingController) {
  CartPoleVec env(1, 0);
  Buffers b(1, 4);
  env.reset(b.obs.data());
  set_state(env, 0, {0.01, -0.02, 0.03, 0.04});
  std::string actions;
  for (int t = 1; t <= 200; ++t) {
    const int a = env.theta[0] + 0.3 * env.theta_dot[0] + 0.01 * env.x[0] + 0.05 * env.x_dot[0] > 0 ? 1 : 0;
    actions += char('0' + a);
    step1(env, int32_t(a), b);
    ASSERT_EQ(b.terminated[0], 0);
    if (t == 1) {
      EXPECT_NEAR(env.x[0], 0.009600000000000001, 1e-15);
      EXPECT_NEAR(env.x_dot[0], 0.17467919574755525, 1e-15);
      EXPECT_NEAR(env.theta[0], 0.030799999999999998, 1e-15);
      EXPECT_NEAR(env.theta_dot[0], -0.2430687179600081, 1e-15);
      EXPECT_EQ(b.obs[0], static_cast<float>(0.009600000455975533));
      EXPECT_EQ(b.obs[1], static_cast<float>(0.17467918992042542));
      EXPECT_EQ(b.obs[2], static_cast<float>(0.030799999833106995));
      EXPECT_EQ(b.obs[3], static_cast<float>(-0.24306872487068176));
    }
    if (t == 50) {
      EXPECT_NEAR(env.x[0], 0.12028633098210531, 1e-12);
      EXPECT_NEAR(env.x_dot[0], 0.36041490159472456, 1e-12);
      EXPECT_NEAR(env.theta[0], 0.00404731715177944, 1e-12);
      EXPECT_NEAR(env.theta_dot[0], -0.3285649253870756, 1e-12);
    }
  }
  EXPECT_NEAR(env.x[0], 0.5353949670459472, 1e-10);
  EXPECT_NEAR(env.x_dot[0], -0.02918643972250451, 1e-10);
  EXPECT_NEAR(env.theta[0], -0.006703149607144751, 1e-10);
  EXPECT_NEAR(env.theta_dot[0], 0.24264212930935614, 1e-10);
  EXPECT_EQ(actions,
            "101010101010101010101010101101001011001100101100110011001011001011001011001100101100101100101100"
            "110010110010110011001010110011001011001011001011001011001011001011001011001010110010110011001010"
            "11001100");
}

TEST(Reference, CartPolePushRightFallsAtStep9) {
  CartPoleVec env(1, 0);
  Buffers b(1, 4);
  env.reset(b.obs.data());
  set_state(env, 0, {0, 0, 0, 0});
  for (int t = 1; t <= 9; ++t) {
    step1(env, int32_t(1), b);
    ASSERT_EQ(b.terminated[0], t == 9 ? 1 : 0) << "step " << t;
  }
  const float* fin = env.final_obs();
  EXPECT_EQ(fin[0], static_cast<float>(0.14065097203306187));
  EXPECT_EQ(fin[1], static_cast<float>(1.7603811257683097));
  EXPECT_EQ(fin[2], static_cast<float>(-0.21518604988500967));
  EXPECT_EQ(fin[3], static_cast<float>(-2.777886494012814));
  EXPECT_EQ(env.common.done_return[0], 9.0);
}

TEST(Reference, PendulumSineTorque) {
  PendulumVec env(1, 0);
  Buffers b(1, 3);
  env.reset(b.obs.data());
  env.theta[0] = pi - 0.3;
  env.theta_dot[0] = 0.5;
  for (int t = 0; t < 200; ++t) {
    const float u = static_cast<float>(3.0 * std::sin(0.37 * t));  // |u| up to 3: clipped half the time
    step1(env, u, b);
    if (t == 0) {
      EXPECT_NEAR(env.theta[0], 2.8776746613395936, 1e-15);
      EXPECT_NEAR(env.theta_dot[0], 0.7216401549960046, 1e-15);
      EXPECT_NEAR(env.common.ep_return[0], -8.099648808935484, 1e-14);
      EXPECT_EQ(b.obs[0], static_cast<float>(-0.9653753042221069));
      EXPECT_EQ(b.obs[1], static_cast<float>(0.26086488366127014));
      EXPECT_EQ(b.obs[2], static_cast<float>(0.7216401696205139));
    }
    if (t == 9) {
      EXPECT_NEAR(env.theta[0], 3.8224840960096995, 1e-13);
      EXPECT_NEAR(env.theta_dot[0], 1.8884775646737966, 1e-13);
      EXPECT_NEAR(b.reward[0], -7.099151666805492, 1e-5);
    }
    if (t == 199) {
      EXPECT_EQ(b.truncated[0], 1);
      EXPECT_NEAR(b.reward[0], -9.143644543830403, 1e-5);
    }
  }
  // the 200th step truncated: the state was reset, final_obs holds where the pendulum got to
  EXPECT_NEAR(env.final_obs()[0], std::cos(3.0465674084394325), 1e-6);
  EXPECT_NEAR(env.final_obs()[1], std::sin(3.0465674084394325), 1e-6);
  EXPECT_NEAR(env.final_obs()[2], 1.9401152848003607, 1e-6);
  EXPECT_NEAR(env.common.done_return[0], -1596.2338474764504, 1e-9);  // Python's sum() of the rewards
}

TEST(Reference, AcrobotOpenLoop) {
  AcrobotVec env(1, 0);
  Buffers b(1, 6);
  env.reset(b.obs.data());
  set_state(env, 0, {0.05, -0.03, 0.02, -0.01});
  for (int t = 0; t < 60; ++t) {
    step1(env, int32_t((t * 5 + t / 3) % 3), b);
    ASSERT_EQ(b.terminated[0], 0);
    ASSERT_EQ(b.reward[0], -1.0f);
    const A4 s = get_state(env, 0);
    if (t == 0) {
      const A4 want = {0.06046159233179129, -0.05839873926004771, 0.0814760773903368, -0.26719409203149896};
      for (int j = 0; j < 4; ++j) EXPECT_NEAR(s[j], want[j], 1e-15);
    }
    if (t == 9) {
      const A4 want = {0.00959773425351905, -0.0327077427774943, 0.4248518105595056, -0.8551654096144654};
      for (int j = 0; j < 4; ++j) EXPECT_NEAR(s[j], want[j], 1e-13);
    }
    if (t == 59) {
      const A4 want = {0.014305931023998145, -0.08729582767264356, -0.33365462208638585, 0.6211253586276284};
      for (int j = 0; j < 4; ++j) EXPECT_NEAR(s[j], want[j], 1e-10);
    }
  }
}

TEST(Reference, AcrobotPumpReachesTheGoalAtStep73) {
  AcrobotVec env(1, 0);
  Buffers b(1, 6);
  env.reset(b.obs.data());
  set_state(env, 0, {0.05, -0.03, 0.02, -0.01});
  std::string actions;
  for (int t = 1; t <= 73; ++t) {
    const int a = env.dtheta2[0] > 0 ? 2 : 0;
    actions += char('0' + a);
    step1(env, int32_t(a), b);
    ASSERT_EQ(b.terminated[0], t == 73 ? 1 : 0) << "step " << t;
    if (t == 72) {
      const A4 want = {1.4274984773389447, 2.6640307217691306, 2.550406126597526, -4.200715810656854};
      const A4 s = get_state(env, 0);
      for (int j = 0; j < 4; ++j) EXPECT_NEAR(s[j], want[j], 1e-9);
    }
  }
  EXPECT_EQ(actions, "0000000222222200000022222200000022222200000002222222200000000022200000000");
  const std::array<double, 6> want_obs = {-0.2492390275001526, 0.9684420228004456, -0.3454444110393524,
                                          0.9384391903877258,  1.4254957437515259, -3.199039936065674};
  for (int j = 0; j < 6; ++j) EXPECT_NEAR(env.final_obs()[j], want_obs[j], 1e-6);
  EXPECT_EQ(env.common.done_return[0], -72.0);
  EXPECT_EQ(env.common.done_length[0], 73);
}

// =============================== vectors, seeds, checkpoints =================================

namespace {

// A deterministic, state-free action for env k at step t.
int32_t scripted_action(int k, int t, int num_actions) {
  return static_cast<int32_t>((static_cast<uint32_t>(k) * 2654435761u + static_cast<uint32_t>(t) * 40503u) %
                              2654435u % static_cast<uint32_t>(num_actions));
}

// Runs `steps` steps of a discrete env and returns every observation and flag, per global env index.
template <typename E>
std::vector<float> run_discrete(E& env, int steps) {
  const int n = env.num_envs(), D = E::obs_dim;
  Buffers b(n, D);
  std::vector<float> trace;
  env.reset(b.obs.data());
  trace.insert(trace.end(), b.obs.begin(), b.obs.end());
  std::vector<int32_t> actions(n);
  for (int t = 0; t < steps; ++t) {
    for (int i = 0; i < n; ++i)
      actions[i] = scripted_action(static_cast<int>(env.common.first_index) + i, t, E::num_actions);
    env.step(actions.data(), b.obs.data(), b.reward.data(), b.terminated.data(), b.truncated.data());
    trace.insert(trace.end(), b.obs.begin(), b.obs.end());
    for (int i = 0; i < n; ++i) trace.push_back(b.terminated[i] + 2 * b.truncated[i]);
  }
  return trace;
}

// Extracts env i's part of a run_discrete trace.
std::vector<float> env_slice(const std::vector<float>& trace, int n, int D, int i, int steps) {
  std::vector<float> out;
  const size_t block0 = static_cast<size_t>(n) * D;
  // Element-wise push_back: GCC 12 misreports range insert here (-Wstringop-overflow).
  for (int d = 0; d < D; ++d) out.push_back(trace[static_cast<size_t>(i) * D + d]);
  for (int t = 0; t < steps; ++t) {
    const size_t base = block0 + static_cast<size_t>(t) * (n * D + n);
    for (int d = 0; d < D; ++d) out.push_back(trace[base + static_cast<size_t>(i) * D + d]);
    out.push_back(trace[base + n * D + i]);
  }
  return out;
}

}  // namespace

TEST(Vector, SameSeedSameTrajectoriesDifferentSeedDifferent) {
  CartPoleVec a(4, 42), b(4, 42), c(4, 43);
  const auto ta = run_discrete(a, 300), tb = run_discrete(b, 300), tc = run_discrete(c, 300);
  EXPECT_EQ(ta, tb);
  EXPECT_NE(ta, tc);
  // the 4 environments of one vector are not copies of each other
  EXPECT_NE(env_slice(ta, 4, 4, 0, 300), env_slice(ta, 4, 4, 1, 300));
}

TEST(Vector, EnvTrajectoryDoesNotDependOnTheSplit) {
  const int steps = 1200;  // many episodes: the resets are exercised, not only the first one
  {
    CartPoleVec whole(8, 5);
    const auto tw = run_discrete(whole, steps);
    CartPoleVec alone(1, 5, 5);  // env 5 on its own, as on another rank
    EXPECT_EQ(env_slice(tw, 8, 4, 5, steps), run_discrete(alone, steps));
    CartPoleVec part0(3, 5, 0), part1(5, 5, 3);  // two "ranks"
    const auto t0 = run_discrete(part0, steps), t1 = run_discrete(part1, steps);
    for (int i = 0; i < 8; ++i) {
      const auto got = i < 3 ? env_slice(t0, 3, 4, i, steps) : env_slice(t1, 5, 4, i - 3, steps);
      EXPECT_EQ(env_slice(tw, 8, 4, i, steps), got) << "env " << i;
    }
    int dones = 0;
    for (int t = 0; t < steps; ++t) dones += env_slice(tw, 8, 4, 5, steps)[4 + t * 5 + 4] != 0;
    EXPECT_GT(dones, 10);
  }
  {
    AcrobotVec whole(6, 9);
    const auto tw = run_discrete(whole, 600);
    AcrobotVec alone(1, 9, 4);
    EXPECT_EQ(env_slice(tw, 6, 6, 4, 600), run_discrete(alone, 600));
  }
}

TEST(Vector, CheckpointRoundTrip) {
  CartPoleVec env(3, 99);
  run_discrete(env, 37);
  const auto saved = env.save_state();
  Buffers b(3, 4), b2(3, 4);
  std::vector<float> first, second;
  for (int t = 0; t < 80; ++t) {
    std::vector<int32_t> a = {scripted_action(0, t, 2), scripted_action(1, t, 2), scripted_action(2, t, 2)};
    env.step(a.data(), b.obs.data(), b.reward.data(), b.terminated.data(), b.truncated.data());
    first.insert(first.end(), b.obs.begin(), b.obs.end());
  }
  CartPoleVec restored(3, 0);  // any seed: the checkpoint carries it
  restored.load_state(saved);
  EXPECT_EQ(restored.save_state(), saved);
  for (int t = 0; t < 80; ++t) {
    std::vector<int32_t> a = {scripted_action(0, t, 2), scripted_action(1, t, 2), scripted_action(2, t, 2)};
    restored.step(a.data(), b2.obs.data(), b2.reward.data(), b2.terminated.data(), b2.truncated.data());
    second.insert(second.end(), b2.obs.begin(), b2.obs.end());
  }
  EXPECT_EQ(first, second);

  // bad checkpoints are refused and leave the target untouched
  CartPoleVec wrong_n(4, 0);
  EXPECT_THROW(wrong_n.load_state(saved), frugal::Error);
  AcrobotVec wrong_kind(3, 0);
  EXPECT_THROW(wrong_kind.load_state(saved), frugal::Error);
  auto cut = saved;
  cut.resize(cut.size() - 5);
  const auto before = restored.save_state();
  EXPECT_THROW(restored.load_state(cut), frugal::Error);
  EXPECT_EQ(restored.save_state(), before);
  EXPECT_THROW(restored.load_state(std::vector<uint8_t>(3, 0)), frugal::Error);
}

// ======================================== make_env ===========================================

TEST(MakeEnv, NamesAndSpecs) {
  EXPECT_EQ(env_names(), (std::vector<std::string>{"CartPole-v1", "Pendulum-v1", "Acrobot-v1"}));
  const auto cp = make_env("CartPole-v1", 4, 1).spec();
  EXPECT_EQ(cp.obs_dim, 4);
  EXPECT_EQ(cp.action_kind, ActionKind::discrete);
  EXPECT_EQ(cp.num_actions, 2);
  EXPECT_EQ(cp.max_episode_steps, 500);
  EXPECT_EQ(cp.reward_threshold, 475.0);
  EXPECT_FLOAT_EQ(cp.obs_high[0], 4.8f);
  const auto pd = make_env("Pendulum-v1", 1, 1).spec();
  EXPECT_EQ(pd.obs_dim, 3);
  EXPECT_EQ(pd.action_kind, ActionKind::continuous);
  EXPECT_EQ(pd.action_dim, 1);
  EXPECT_EQ(pd.action_low, std::vector<float>{-2.0f});
  EXPECT_EQ(pd.action_high, std::vector<float>{2.0f});
  EXPECT_EQ(pd.max_episode_steps, 200);
  EXPECT_FALSE(pd.reward_threshold.has_value());
  const auto ac = make_env("Acrobot-v1", 2, 1).spec();
  EXPECT_EQ(ac.obs_dim, 6);
  EXPECT_EQ(ac.num_actions, 3);
  EXPECT_EQ(ac.max_episode_steps, 500);
  EXPECT_EQ(ac.reward_threshold, -100.0);
  EXPECT_FLOAT_EQ(ac.obs_high[5], static_cast<float>(9 * pi));
}

TEST(MakeEnv, UnknownNameAndWrongActionTypeThrow) {
  try {
    make_env("MountainCar-v0", 1, 0);
    FAIL() << "expected frugal::Error";
  } catch (const frugal::Error& e) {
    EXPECT_NE(std::string(e.what()).find("MountainCar-v0"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("CartPole-v1"), std::string::npos);
  }
  EXPECT_THROW(make_env("CartPole-v1", 0, 0), frugal::Error);
  auto cp = make_env("CartPole-v1", 2, 0);
  auto pd = make_env("Pendulum-v1", 2, 0);
  Buffers b(2, 4);
  cp.reset(b.obs.data());
  pd.reset(b.obs.data());
  const std::vector<float> fa = {0.0f, 1.0f};
  const std::vector<int32_t> ia = {0, 1};
  EXPECT_THROW(cp.step(fa.data(), b.obs.data(), b.reward.data(), b.terminated.data(), b.truncated.data()),
               frugal::Error);
  EXPECT_THROW(pd.step(ia.data(), b.obs.data(), b.reward.data(), b.terminated.data(), b.truncated.data()),
               frugal::Error);
}

TEST(MakeEnv, HandleStepsAndCheckpoints) {
  for (const std::string name : {"CartPole-v1", "Acrobot-v1", "Pendulum-v1"}) {
    auto env = make_env(name, 3, 17, 6);
    const EnvSpec spec = env.spec();
    Buffers b(3, spec.obs_dim);
    auto step_at = [&](Env& e, int t) {
      if (spec.action_kind == ActionKind::discrete) {
        std::vector<int32_t> a(3);
        for (int i = 0; i < 3; ++i) a[i] = scripted_action(i, t, spec.num_actions);
        e.step(a.data(), b.obs.data(), b.reward.data(), b.terminated.data(), b.truncated.data());
      } else {
        std::vector<float> a(3);
        for (int i = 0; i < 3; ++i) a[i] = 2.5f * std::sin(0.1f * static_cast<float>(t) + static_cast<float>(i));
        e.step(a.data(), b.obs.data(), b.reward.data(), b.terminated.data(), b.truncated.data());
      }
      std::vector<float> out = b.obs;
      out.insert(out.end(), b.reward.begin(), b.reward.end());
      out.insert(out.end(), e.final_obs(), e.final_obs() + 3 * spec.obs_dim);
      return out;
    };
    env.reset(b.obs.data());
    std::vector<uint8_t> saved;
    std::vector<std::vector<float>> later;
    for (int t = 0; t < 700; ++t) {
      if (t == 150) saved = env.save_state();
      const auto out = step_at(env, t);
      if (t >= 150) later.push_back(out);
    }
    auto twin = make_env(name, 3, 1234);  // seed and first index come from the checkpoint
    twin.load_state(saved);
    EXPECT_EQ(twin.common().first_index, 6u);
    for (int t = 150; t < 700; ++t) ASSERT_EQ(step_at(twin, t), later[t - 150]) << name << " step " << t;
    EXPECT_EQ(twin.save_state(), env.save_state());
    EXPECT_EQ(env.num_envs(), 3);
  }
  auto env = make_env("Acrobot-v1", 2, 3);
  EXPECT_EQ(env.as<AcrobotVec>().num_envs(), 2);
  EXPECT_THROW(env.as<CartPoleVec>(), std::bad_variant_access);
}
