// EGGROLL, OpenAI-ES and PPO on several ranks:
// - every rank ends every step with bit-identical parameters (a hash compared across ranks)
// - ES sharded over R ranks is the single-process algorithm: member i plays environment i and its
//   noise is keyed by its pair whatever the sharding, so the fitness vector - and the update - match
//   a one-rank run of the same population
// - only N fitness floats per epoch cross the network for ES
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <cstring>

#include "harness/method.hpp"
#include "scratch.hpp"

using namespace frugal;

namespace {


uint64_t fnv1a(const std::vector<float>& v) {
  uint64_t h = 1469598103934665603ull;
  const auto* b = reinterpret_cast<const unsigned char*>(v.data());
  for (size_t i = 0; i < v.size() * sizeof(float); i++) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

Config rl_config(const std::string& method, std::vector<std::string> extra = {}) {
  std::vector<std::string> o = {"--run.method=" + method, "--es.population=8", "--ppo.num_envs=4", "--ppo.num_steps=32",
                                "--ppo.num_minibatches=2", "--policy.hidden_size=16"};
  o.insert(o.end(), extra.begin(), extra.end());
  return resolve_config(suite_schema(), "", o);
}

struct Ran {
  std::vector<float> params;
  std::vector<double> returns;
  int64_t wire_bytes = 0;
};

Ran run_steps(Communicator& comm, const Config& cfg, const std::string& method, int steps) {
  RunContext ctx{cfg, comm, steps, 1, {}};
  auto m = find_method(method).make(ctx);
  Ran out;
  for (int s = 0; s < steps; s++) out.returns.push_back(m->step(s).loss);
  out.wire_bytes = comm.run_totals().wire_bytes;
  out.params = state_section(*m, method + ".params");
  return out;
}

}  // namespace

TEST(RlMethods, ReplicasStayBitIdentical) {
  for (const std::string method : {"eggroll", "openai_es", "ppo"}) {
    for (const std::string env : {"CartPole-v1", "Pendulum-v1"}) {
      SCOPED_TRACE(method + " on " + env);
      Communicator world(make_mpi_backend(), {});
      const Ran r = run_steps(world, rl_config(method, {"--env.name=" + env}), method, 3);
      uint64_t mine = fnv1a(r.params), root = mine;
      MPI_Bcast(&root, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
      EXPECT_EQ(mine, root);
    }
  }
}

TEST(RlMethods, ShardedPopulationEqualsOneRankAndSendsOnlyFitness) {
  for (const std::string method : {"eggroll", "openai_es"}) {
    SCOPED_TRACE(method);
    const Config cfg = rl_config(method);
    Communicator world(make_mpi_backend(), {});
    Communicator self(make_mpi_self_backend(), {});
    const Ran sharded = run_steps(world, cfg, method, 3);
    const Ran single = run_steps(self, cfg, method, 3);
    // The mean return of the whole population: average of the ranks' local means.
    for (size_t s = 0; s < sharded.returns.size(); s++) {
      double m[1] = {sharded.returns[s]};
      MPI_Allreduce(MPI_IN_PLACE, m, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
      EXPECT_NEAR(m[0] / world.size(), single.returns[s], 1e-9) << "step " << s;
    }
    double max_diff = 0;
    for (size_t i = 0; i < single.params.size(); i++)
      max_diff = std::max(max_diff, double(std::fabs(sharded.params[i] - single.params[i])));
    EXPECT_LT(max_diff, 1e-5);
    // All-gather of 8 floats per epoch: each rank sends its share to every other rank.
    const int R = world.size();
    EXPECT_EQ(sharded.wire_bytes, 3 * int64_t(8 / R) * 4 * (R - 1)) << "bytes on the wire per rank";
  }
}
