#include "envs/env.hpp"

namespace frugal::envs {

VecCommon::VecCommon(int n_envs, int obs_dim_, uint64_t seed_, uint32_t first_index_)
    : n(n_envs), obs_dim(obs_dim_), seed(seed_), first_index(first_index_) {
  FRUGAL_CHECK(n_envs >= 1, "an environment vector needs at least 1 environment, got ", n_envs);
  rng.reserve(n);
  for (int i = 0; i < n; ++i) rng.emplace_back(seed, env_stream, first_index + static_cast<uint32_t>(i));
  steps.assign(n, 0);
  ep_return.assign(n, 0.0);
  done_return.assign(n, 0.0);
  done_length.assign(n, 0);
  final_obs.assign(static_cast<size_t>(n) * obs_dim, 0.0f);
}

void VecCommon::save(ByteWriter& w) const {
  w.put<int32_t>(n);
  w.put<int32_t>(obs_dim);
  w.put(seed);
  w.put(first_index);
  w.put<uint8_t>(needs_reset ? 1 : 0);
  std::vector<uint64_t> counters(rng.size());
  for (size_t i = 0; i < rng.size(); ++i) counters[i] = rng[i].counter;
  w.put(counters);
  w.put(steps);
  w.put(ep_return);
  w.put(done_return);
  w.put(done_length);
  w.put(final_obs);
}

void VecCommon::load(ByteReader& r) {
  const int32_t saved_n = r.get<int32_t>();
  const int32_t saved_obs_dim = r.get<int32_t>();
  FRUGAL_CHECK(saved_n == n && saved_obs_dim == obs_dim, "environment checkpoint holds ", saved_n,
               " environments with ", saved_obs_dim, " observation values, this vector has ", n,
               " with ", obs_dim);
  seed = r.get<uint64_t>();
  first_index = r.get<uint32_t>();
  needs_reset = r.get<uint8_t>() != 0;
  const size_t nn = static_cast<size_t>(n);
  std::vector<uint64_t> counters;
  r.get(counters, nn);
  for (int i = 0; i < n; ++i) {
    rng[i] = Rng(seed, env_stream, first_index + static_cast<uint32_t>(i));
    rng[i].counter = counters[i];
  }
  r.get(steps, nn);
  r.get(ep_return, nn);
  r.get(done_return, nn);
  r.get(done_length, nn);
  r.get(final_obs, nn * static_cast<size_t>(obs_dim));
}

void check_discrete_actions(const char* env_name, int n, const int32_t* actions, int num_actions) {
  for (int i = 0; i < n; ++i)
    FRUGAL_CHECK(actions[i] >= 0 && actions[i] < num_actions, env_name, ": action ", actions[i],
                 " of environment ", i, " is outside [0, ", num_actions, ")");
}

void check_continuous_actions(const char* env_name, int n, int action_dim, const float* actions) {
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < action_dim; ++j)
      FRUGAL_CHECK(!std::isnan(actions[static_cast<size_t>(i) * action_dim + j]), env_name,
                   ": action ", j, " of environment ", i, " is NaN");
}

}  // namespace frugal::envs
