#include "envs/make_env.hpp"

#include <sstream>

namespace frugal::envs {

Env::Env(Impl impl)
    : impl_(std::move(impl)), spec_(std::visit([](const auto& e) { return e.spec(); }, impl_)) {}

int Env::num_envs() const {
  return std::visit([](const auto& e) { return e.num_envs(); }, impl_);
}

const VecCommon& Env::common() const {
  return std::visit([](const auto& e) -> const VecCommon& { return e.common; }, impl_);
}

void Env::reset(float* obs) {
  std::visit([&](auto& e) { e.reset(obs); }, impl_);
}

void Env::step(const int32_t* actions, float* obs, float* reward, uint8_t* terminated,
               uint8_t* truncated) {
  std::visit(
      [&](auto& e) {
        using E = std::decay_t<decltype(e)>;
        if constexpr (requires { e.step(actions, obs, reward, terminated, truncated); }) {
          e.step(actions, obs, reward, terminated, truncated);
        } else {
          fail(E::name, " has continuous actions: pass float actions to step()");
        }
      },
      impl_);
}

void Env::step(const float* actions, float* obs, float* reward, uint8_t* terminated,
               uint8_t* truncated) {
  std::visit(
      [&](auto& e) {
        using E = std::decay_t<decltype(e)>;
        if constexpr (requires { e.step(actions, obs, reward, terminated, truncated); }) {
          e.step(actions, obs, reward, terminated, truncated);
        } else {
          fail(E::name, " has discrete actions: pass int32 actions to step()");
        }
      },
      impl_);
}

std::vector<uint8_t> Env::save_state() const {
  return std::visit([](const auto& e) { return e.save_state(); }, impl_);
}

void Env::load_state(const std::vector<uint8_t>& bytes) {
  std::visit([&](auto& e) { e.load_state(bytes); }, impl_);
}

std::vector<std::string> env_names() { return {CartPoleVec::name, PendulumVec::name, AcrobotVec::name}; }

Env make_env(const std::string& name, int n_envs, uint64_t seed, uint32_t first_index) {
  if (name == CartPoleVec::name) return Env(CartPoleVec(n_envs, seed, first_index));
  if (name == PendulumVec::name) return Env(PendulumVec(n_envs, seed, first_index));
  if (name == AcrobotVec::name) return Env(AcrobotVec(n_envs, seed, first_index));
  std::ostringstream known;
  for (const auto& n : env_names()) known << " " << n;
  fail("unknown environment '", name, "'; known:", known.str());
}

}  // namespace frugal::envs
