// Methods that must learn: on CartPole-v1 (random policies score about 10-50; 500 is the cap) every
// RL method, trained briefly on all ranks, lifts the greedy policy's evaluation return far above
// where it started - and the same method with its update's sign flipped (a negative learning rate
// set behind the schema's back, in the test) does not. A sign error in an ES update or in PPO's
// loss would pass every equivalence test; it cannot pass this one.
#include <gtest/gtest.h>
#include <mpi.h>

#include "harness/method.hpp"

using namespace frugal;

namespace {

struct Learned {
  double before = 0, after = 0;
};

Learned train(const std::string& method, int steps, double lr_sign) {
  Config cfg = resolve_config(suite_schema(), "",
                              {"--run.method=" + method, "--env.name=CartPole-v1", "--es.population=32", "--run.seed=3"});
  const char* lr_key = method == "ppo" ? "ppo.lr" : "es.lr";
  cfg.set(lr_key, lr_sign * cfg.real(lr_key));
  Communicator world(make_mpi_backend(), {});
  RunContext ctx{cfg, world, steps, 3, {}};
  auto m = find_method(method).make(ctx);
  Learned out;
  out.before = m->evaluate(16);
  for (int s = 0; s < steps; s++) m->step(s);
  out.after = m->evaluate(16);
  return out;
}

}  // namespace

TEST(Learning, EveryRlMethodImprovesCartPoleAndASignFlippedUpdateDoesNot) {
  for (const auto& [method, steps] : std::vector<std::pair<std::string, int>>{{"eggroll", 40}, {"openai_es", 40}, {"ppo", 80}}) {
    SCOPED_TRACE(method);
    const Learned good = train(method, steps, +1.0), broken = train(method, steps, -1.0);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0)
      std::printf("%-10s return %.1f -> %.1f; sign flipped: %.1f -> %.1f\n", method.c_str(), good.before, good.after,
                broken.before, broken.after);
    EXPECT_EQ(good.before, broken.before);  // the same start
    EXPECT_GE(good.after, 300.0);
    EXPECT_GE(good.after, good.before + 150.0);
    EXPECT_LE(broken.after, 50.0);
  }
}
