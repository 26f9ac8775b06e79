#pragma once
// RL environments with Gymnasium's physics, vectorised: one object holds n environments of one kind
// and steps them all in one call. CartPole-v1, Pendulum-v1 and Acrobot-v1 live in their own files
// (envs/cartpole.hpp, envs/pendulum.hpp, envs/acrobot.hpp); this header has what they share, and
// `Env` / `make_env` to pick one by name.
//
// Conventions every environment here follows - read this once:
//
// * Physics = Gymnasium 1.x, constant for constant and operation for operation (same integrator,
//   same evaluation order, same thresholds, same time limit). Each file says where it follows a
//   numpy detail on purpose (e.g. `x**2` is the C library's pow, not x*x).
// * dtypes: the physics state is float64 (`double`), as in Gymnasium (CartPole computes in Python
//   floats, Pendulum and Acrobot in numpy float64). Observations handed to the policy are float32,
//   rounded from the float64 state, as Gymnasium's `np.array(..., dtype=np.float32)`. Rewards are
//   returned as float32 (the policy's buffers are float32); the running episode return is float64.
// * Actions: discrete environments take one int32 per environment, continuous ones `action_dim`
//   floats per environment. An out-of-range discrete action or a NaN continuous action throws
//   frugal::Error before any environment moves (Gymnasium asserts on the first, and would silently
//   propagate the NaN). Continuous actions are clipped to the bounds, as Gymnasium's envs do.
// * Layout: obs is [n][obs_dim] row-major; reward, terminated, truncated are [n].
// * Time limit: like Gymnasium's TimeLimit wrapper, `truncated` is set on the step at which the
//   episode reaches `max_episode_steps` steps. `terminated` comes from the physics alone, so on that
//   last step both can be 1 - exactly as in Gymnasium.
// * Autoreset = SAME-STEP (what CleanRL's PPO expects): when env i ends (terminated or truncated),
//   step() resets it at once and returns the FIRST observation of its next episode in obs; the
//   observation the step actually reached is in `final_obs` (kept for every env, done or not - for
//   an env that did not end it equals obs). Bootstrap a truncated episode with V(final_obs[i]).
//   Gymnasium >= 1.0's vector envs default to NEXT-STEP autoreset instead (the reset happens on
//   the following step() call, which ignores that env's action); we do not do that.
//   The episode that ended also leaves its return and length in `done_return` / `done_length`
//   (what RecordEpisodeStatistics reports).
// * Randomness: env i draws its resets from its own Philox stream Rng(seed, env_stream,
//   first_index + i). `first_index` is the global index of this object's env 0 (e.g. rank *
//   envs_per_rank), so env k's trajectory depends only on (seed, k) and its actions - not on how
//   many environments share an object, nor on how they are split across ranks or threads.
//   The uniforms are low + (high - low) * u with u in (0, 1] (32 random bits), so the ranges are
//   (low, high]; numpy's are [low, high). The numbers differ from numpy's generator, of course.
// * Checkpoint: every field is public; save_state() / load_state() turn the whole state (physics
//   vectors, step counters, episode statistics, RNG counters) into a flat byte vector and back
//   (native byte order; same object kind and n required).
#include "core/error.hpp"
#include "core/rng.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace frugal::envs {

// Philox stream id for environment resets (core/rng.hpp's Stream::env; one sub-stream per environment).
inline constexpr uint32_t env_stream = static_cast<uint32_t>(Stream::env);

enum class ActionKind { discrete, continuous };

// What a generic policy needs to know about an environment.
struct EnvSpec {
  std::string name;                            // Gymnasium id, e.g. "CartPole-v1"
  int obs_dim = 0;                             // floats per observation
  ActionKind action_kind = ActionKind::discrete;
  int num_actions = 0;                         // discrete: actions are 0 .. num_actions - 1
  int action_dim = 0;                          // values per env in the action buffer (discrete: 1)
  std::vector<float> action_low, action_high;  // continuous: clip bounds, action_dim each
  std::vector<float> obs_low, obs_high;        // Gymnasium's observation_space bounds
  int max_episode_steps = 0;                   // TimeLimit
  std::optional<double> reward_threshold;      // Gymnasium's "solved" return, where it has one
};

// ---- flat byte (de)serialisation for checkpoints --------------------------------------------
struct ByteWriter {
  std::vector<uint8_t> bytes;
  template <typename T>
  void put(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    // resize + memcpy rather than insert: GCC 12 misreports insert of a small object (-Wstringop-overflow)
    const size_t at = bytes.size();
    bytes.resize(at + sizeof(T));
    std::memcpy(bytes.data() + at, &v, sizeof(T));
  }
  template <typename T>
  void put(const std::vector<T>& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    put<uint64_t>(v.size());
    put_raw(v.data(), v.size() * sizeof(T));
  }
  void put(const std::string& s) {
    put<uint64_t>(s.size());
    put_raw(s.data(), s.size());
  }
  void put_raw(const void* p, size_t n) {
    if (n == 0) return;
    const size_t at = bytes.size();
    bytes.resize(at + n);
    std::memcpy(bytes.data() + at, p, n);
  }
};

struct ByteReader {
  const std::vector<uint8_t>& bytes;
  size_t pos = 0;
  explicit ByteReader(const std::vector<uint8_t>& b) : bytes(b) {}
  void need(size_t k) const {
    FRUGAL_CHECK(k <= bytes.size() - pos, "environment checkpoint is truncated (", bytes.size(),
                 " bytes, needed ", pos + k, ")");
  }
  template <typename T>
  T get() {
    static_assert(std::is_trivially_copyable_v<T>);
    need(sizeof(T));
    T v;
    std::memcpy(&v, bytes.data() + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  // Reads a vector that must have exactly `expected` elements.
  template <typename T>
  void get(std::vector<T>& v, size_t expected) {
    const auto size = get<uint64_t>();
    FRUGAL_CHECK(size == expected, "environment checkpoint: vector of ", size, " elements, expected ",
                 expected);
    need(size * sizeof(T));
    v.resize(size);
    std::memcpy(v.data(), bytes.data() + pos, size * sizeof(T));
    pos += size * sizeof(T);
  }
  std::string get_string() {
    const auto size = get<uint64_t>();
    need(size);
    std::string s(bytes.begin() + pos, bytes.begin() + pos + size);
    pos += size;
    return s;
  }
};

// ---- what every vectorised environment keeps besides its physics -------------------------------
struct VecCommon {
  int n = 0;                        // environments in this object
  int obs_dim = 0;
  uint64_t seed = 0;
  uint32_t first_index = 0;         // global index of env 0: names the RNG streams
  bool needs_reset = true;          // step() refuses to run before the first reset()
  std::vector<Rng> rng;             // rng[i] = Rng(seed, env_stream, first_index + i)
  std::vector<int32_t> steps;       // steps taken in the current episode
  std::vector<double> ep_return;    // return of the current episode so far
  std::vector<double> done_return;  // return and length of the episode that ended at env i's
  std::vector<int32_t> done_length; //   last done step (valid where that step had a done flag)
  std::vector<float> final_obs;     // [n][obs_dim]: observation reached by the last step, pre-reset

  VecCommon() = default;
  VecCommon(int n_envs, int obs_dim_, uint64_t seed_, uint32_t first_index_);
  void save(ByteWriter& w) const;
  void load(ByteReader& r);
};

// Uniform in (low, high] from env i's stream (see the header comment on ranges).
inline double uniform(Rng& rng, double low, double high) { return low + (high - low) * rng.uniform_double(); }

// Python's `x**2` on a float (or numpy float64) calls the C library's pow(x, 2.0), which with glibc
// differs from x*x in the last bit for about 1 input in 1000. To stay bit-identical with Gymnasium
// where it writes `**2` we call pow as well; the exponent is read through a volatile so the
// compiler cannot rewrite pow(x, 2.0) into x*x.
inline double py_square(double x) {
  static volatile double two = 2.0;
  return std::pow(x, static_cast<double>(two));
}
// numpy float32 scalar `u**2`: powf.
inline float py_square(float x) {
  static volatile float two = 2.0f;
  return std::pow(x, static_cast<float>(two));
}

// Throws when any discrete action is outside [0, num_actions).
void check_discrete_actions(const char* env_name, int n, const int32_t* actions, int num_actions);
// Throws when any continuous action is NaN.
void check_continuous_actions(const char* env_name, int n, int action_dim, const float* actions);

// The loop every environment's step() runs: env.physics(i, action) advances env i and returns
// {reward, terminated}; then the time limit, the episode statistics, final_obs and - where the
// episode ended - the same-step autoreset (env.reset_one(i)) and the returned observation.
struct PhysicsResult {
  double reward;
  bool terminated;
};

template <typename E, typename Action>
void step_all(E& env, const Action* actions, float* obs, float* reward, uint8_t* terminated,
              uint8_t* truncated) {
  VecCommon& c = env.common;
  FRUGAL_CHECK(!c.needs_reset, E::name, ": call reset() before step()");
  constexpr int D = E::obs_dim;
  for (int i = 0; i < c.n; ++i) {
    const PhysicsResult r = env.physics(i, actions + static_cast<size_t>(i) * E::action_dim);
    c.steps[i] += 1;
    c.ep_return[i] += r.reward;
    const bool trunc = c.steps[i] >= E::max_episode_steps;
    reward[i] = static_cast<float>(r.reward);
    terminated[i] = r.terminated ? 1 : 0;
    truncated[i] = trunc ? 1 : 0;
    float* fin = c.final_obs.data() + static_cast<size_t>(i) * D;
    env.observe(i, fin);
    if (r.terminated || trunc) {
      c.done_return[i] = c.ep_return[i];
      c.done_length[i] = c.steps[i];
      c.ep_return[i] = 0.0;
      c.steps[i] = 0;
      env.reset_one(i);
      env.observe(i, obs + static_cast<size_t>(i) * D);
    } else {
      std::memcpy(obs + static_cast<size_t>(i) * D, fin, D * sizeof(float));
    }
  }
}

// reset(): every env starts a new episode (drawing from its own stream); obs gets [n][obs_dim].
template <typename E>
void reset_all(E& env, float* obs) {
  VecCommon& c = env.common;
  for (int i = 0; i < c.n; ++i) {
    env.reset_one(i);
    c.steps[i] = 0;
    c.ep_return[i] = 0.0;
    env.observe(i, obs + static_cast<size_t>(i) * E::obs_dim);
  }
  c.needs_reset = false;
}

// Checkpoint framing shared by the environments: a tag, the name, the common part, then the
// environment's own physics vectors (written/read by the callback).
inline constexpr uint64_t checkpoint_magic = 0x31564e454c475246ull;  // "FRGLENV1"

template <typename E, typename F>
std::vector<uint8_t> save_with(const E& env, F&& physics) {
  ByteWriter w;
  w.put(checkpoint_magic);
  w.put(std::string(E::name));
  env.common.save(w);
  physics(w);
  return std::move(w.bytes);
}

template <typename E, typename F>
void load_with(E& env, const std::vector<uint8_t>& bytes, F&& physics) {
  ByteReader r(bytes);
  FRUGAL_CHECK(r.get<uint64_t>() == checkpoint_magic, "not an environment checkpoint");
  const std::string name = r.get_string();
  FRUGAL_CHECK(name == E::name, "environment checkpoint is for ", name, ", not ", E::name);
  E loaded = env;  // fill a copy, so a bad checkpoint leaves env untouched
  loaded.common.load(r);
  physics(loaded, r);
  FRUGAL_CHECK(r.pos == bytes.size(), "environment checkpoint has ", bytes.size() - r.pos,
               " trailing bytes");
  env = std::move(loaded);
}

}  // namespace frugal::envs
