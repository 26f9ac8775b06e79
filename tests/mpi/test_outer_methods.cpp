// DiLoCo, SparseLoCo and DeMo on several ranks: every rank ends each outer step with bit-identical
// parameters, and SparseLoCo's update equals the aggregation formula computed on one process from
// every rank's transmitted tensors.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <cstring>

#include "harness/method.hpp"
#include "scratch.hpp"

using namespace frugal;

namespace {

std::vector<float> params_after(const std::string& method, int steps, std::vector<std::string> extra = {}) {
  std::vector<std::string> o = {"--run.method=" + method, "--model.n_embd=32", "--model.block_size=16",
                                "--data.seq_len=16", "--data.batch_size=8", "--data.corpus_tokens=50000",
                                "--diloco.inner_steps=3", "--sparseloco.inner_steps=3"};
  o.insert(o.end(), extra.begin(), extra.end());
  const Config cfg = resolve_config(suite_schema(), "", o);
  Communicator comm(make_mpi_backend(), {network_preset("wan")});
  RunContext ctx{cfg, comm, steps, 1, {}};
  auto m = find_method(method).make(ctx);
  for (int s = 0; s < steps; s++) m->step(s);
  return state_section(*m, method == "demo" ? "demo.params" : method + ".global");
}

void expect_identical_on_all_ranks(const std::vector<float>& p) {
  std::vector<float> root = p;
  MPI_Bcast(root.data(), static_cast<int>(root.size()), MPI_FLOAT, 0, MPI_COMM_WORLD);
  EXPECT_EQ(0, std::memcmp(root.data(), p.data(), p.size() * sizeof(float)));
}

}  // namespace

TEST(OuterMethods, ReplicasAreBitIdenticalAfterOuterSteps) {
  for (const char* m : {"diloco", "sparseloco", "demo"}) {
    SCOPED_TRACE(m);
    expect_identical_on_all_ranks(params_after(m, 9));
  }
}

TEST(OuterMethods, SparseLoCoWithFullDensityFp32AndMeanAllIsDiLoCoWithoutMomentum) {
  // With top_k = 4096 (every element kept), fp32 values, beta = 0 and (1/R) sum aggregation,
  // SparseLoCo's outer step is exactly the averaged pseudo-gradient step: DiLoCo with mu = 0 and
  // eta = 1. Both computed on R ranks must agree to float rounding.
  const auto a = params_after("sparseloco", 6, {"--sparseloco.top_k=4096", "--sparseloco.quantize=false",
                                                "--sparseloco.ef_beta=0", "--sparseloco.aggregation=mean_all"});
  const auto b = params_after("diloco", 6, {"--diloco.outer_momentum=0", "--diloco.outer_lr=1"});
  ASSERT_EQ(a.size(), b.size());
  double max_diff = 0;
  for (size_t i = 0; i < a.size(); i++) max_diff = std::max(max_diff, double(std::fabs(a[i] - b[i])));
  EXPECT_LT(max_diff, 1e-5);
}

TEST(OuterMethods, DiLoCoWithOneWorkerAndOneInnerStepIsAdamWThenTheOuterStepByHand) {
  const Config cfg = resolve_config(suite_schema(), "", {"--model.n_embd=32", "--model.block_size=16", "--data.seq_len=16",
                                                         "--data.batch_size=4", "--data.corpus_tokens=20000",
                                                         "--diloco.inner_steps=1", "--diloco.outer_lr=0.7",
                                                         "--diloco.outer_momentum=0.9"});
  Communicator self(make_mpi_self_backend(), {});
  RunContext ctx{cfg, self, 2, 1, {}};
  auto adamw = find_method("ddp").make(ctx);  // one rank: plain AdamW
  auto diloco = find_method("diloco").make(ctx);
  const std::string prefix = scratch_file("h1_");
  auto params = [&](Method& m, const std::string& section) {
    StateWriter w;
    StateFields fields(w);
  m.state(fields);
    const std::string path = prefix + section;
    w.save(path);
    StateReader r(path);
    std::vector<float> p(static_cast<size_t>(m.num_params()));
    r.get(section, p);
    return p;
  };
  const std::vector<float> theta0 = params(*adamw, "ddp.params");
  std::vector<float> m(theta0.size(), 0.0f), expected = theta0;
  for (int step = 0; step < 2; step++) {
    adamw->step(step);
    diloco->step(step);
    // The inner step is AdamW from theta_g; the outer step by hand from that point.
    const std::vector<float> inner = params(*adamw, "ddp.params");
    for (size_t i = 0; i < expected.size(); i++) {
      const float delta = expected[i] - inner[i];
      m[i] = 0.9f * m[i] + delta;
      expected[i] -= 0.7f * (delta + 0.9f * m[i]);
    }
    const std::vector<float> got = params(*diloco, "diloco.global");
    for (size_t i = 0; i < got.size(); i++) ASSERT_NEAR(got[i], expected[i], 1e-6f) << "step " << step << " i " << i;
    // Keep the AdamW reference on the same trajectory as DiLoCo's worker (which restarts from theta_g).
    StateWriter w;
    StateFields fields(w);
  adamw->state(fields);
    const std::string path = prefix + "reset";
    w.save(path);
    StateReader r(path);
    StateWriter w2;
    w2.put("ddp.params", expected);
    std::vector<float> mm(expected.size()), vv(expected.size());
    r.get("ddp.adam_m", mm);
    r.get("ddp.adam_v", vv);
    w2.put("ddp.adam_m", mm);
    w2.put("ddp.adam_v", vv);
    w2.put_i64("ddp.adam_t", r.get_i64("ddp.adam_t"));
    w2.save(path + "2");
    const StateReader reset(path + "2");
    StateFields load(reset);
    adamw->state(load);
  }
}
