// DDP on R ranks equals single-process AdamW on the same global batch (to float tolerance), and
// every rank ends with bit-identical parameters. The same holds for EST (data-parallel on a shared
// sampled subnetwork, only its gradients all-reduced) through all three stages.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <cstring>

#include "core/error.hpp"
#include "scratch.hpp"

#include "harness/method.hpp"

using namespace frugal;

namespace {
std::vector<double> run_losses(const std::string& name, Communicator& comm, const Config& cfg, int steps, std::vector<float>* params_hash_input) {
  RunContext ctx{cfg, comm, steps, 1, {}};
  auto method = find_method(name).make(ctx);
  std::vector<double> losses;
  for (int s = 0; s < steps; s++) {
    const StepResult r = method->step(s);
    double m[1] = {r.loss};
    comm.control_allreduce(std::span<double>(m, 1), ReduceOp::sum, "test.loss");
    losses.push_back(m[0] / comm.size());
  }
  StateWriter w;
  StateFields fields(w);
  method->state(fields);
  const std::string path = scratch_file(name + "_state_on_" + std::to_string(comm.size()) + "_ranks");
  w.save(path);
  StateReader rd(path);
  params_hash_input->assign(static_cast<size_t>(method->num_params()), 0.0f);
  rd.get(name + ".params", *params_hash_input);
  return losses;
}
}  // namespace

TEST(Ddp, ManyRanksMatchOneRankOnTheSameGlobalBatch) {
  for (const std::string method : {"ddp", "est"}) {
    SCOPED_TRACE("method " + method);
    // EST: 12 steps = 4 in stage 1 (blocks, heads, units sampled), 4 in stage 2, 4 dense.
    const Config cfg = resolve_config(
        suite_schema(), "",
        {"--run.method=" + method, "--model.n_layer=2", "--model.n_head=4", "--model.n_embd=32", "--model.block_size=16",
         "--data.seq_len=16", "--data.batch_size=8", "--data.corpus_tokens=50000", "--optim.lr=3e-3",
         "--est.stage1_end=0.34", "--est.stage2_end=0.67"});
    Communicator world(make_mpi_backend(), {network_preset("wan")});
    Communicator self(make_mpi_self_backend(), {network_preset("wan")});
    std::vector<float> p_world, p_self;
    const auto lw = run_losses(method, world, cfg, 12, &p_world);
    const auto ls = run_losses(method, self, cfg, 12, &p_self);
    for (size_t i = 0; i < lw.size(); i++) EXPECT_NEAR(lw[i], ls[i], 1e-5 * std::fabs(ls[i])) << "step " << i;
    double max_diff = 0;
    for (size_t i = 0; i < p_world.size(); i++) max_diff = std::max(max_diff, double(std::fabs(p_world[i] - p_self[i])));
    EXPECT_LT(max_diff, 1e-4);
    // Bit-identical replicas: compare rank 0's parameters with every rank's.
    std::vector<float> root = p_world;
    MPI_Bcast(root.data(), static_cast<int>(root.size()), MPI_FLOAT, 0, MPI_COMM_WORLD);
    EXPECT_EQ(0, std::memcmp(root.data(), p_world.data(), root.size() * sizeof(float)));
  }
}

TEST(Ddp, BatchThatRanksCannotShareIsAClearError) {
  const Config cfg = resolve_config(suite_schema(), "", {"--data.batch_size=3", "--data.corpus_tokens=10000"});
  Communicator world(make_mpi_backend(), {});
  RunContext ctx{cfg, world, 1, 1, {}};
  if (world.size() == 1 || 3 % world.size() == 0) GTEST_SKIP() << "3 divides the rank count";
  try {
    find_method("ddp").make(ctx);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("must be divisible by the number of ranks"), std::string::npos) << e.what();
  }
}
