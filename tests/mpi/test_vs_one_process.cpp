// The low-communication methods on R ranks against the same arithmetic on one process. Every rank
// also simulates all R replicas itself - each replica's slice of the global batch, its inner AdamW
// steps or its DeMo momentum - and applies the method's outer formula written out here from the
// spec (methods.md sections 6-8): the mean pseudo-gradient and Nesterov step (DiLoCo), error
// feedback, per-replica compression and the mean over the replicas that selected a coordinate with
// the outer lr applied once (SparseLoCo), the mean of the transmitted DCT coefficients and the
// sign step (DeMo). The parameters the method reached on R ranks must equal the simulation's.
// The compressors themselves (ef_compress, demo_compress) are tested against hand cases in
// tests/unit; here they are building blocks, and what is checked is everything around them: the
// rank slices of the data, the all-gather, decoding, aggregation and the outer update.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <cstring>

#include "compress/dct.hpp"
#include "compress/error_feedback.hpp"
#include "harness/method.hpp"
#include "methods/lm.hpp"
#include "scratch.hpp"

using namespace frugal;
using namespace frugal::compress;

namespace {

constexpr int kInner = 3;  // H
constexpr int kSteps = 9;  // three outer steps

Config outer_config(const std::string& method, std::vector<std::string> extra = {}) {
  std::vector<std::string> o = {"--run.method=" + method, "--model.n_embd=32", "--model.block_size=16",
                                "--data.seq_len=16", "--data.batch_size=8", "--data.corpus_tokens=50000",
                                "--diloco.inner_steps=" + std::to_string(kInner),
                                "--sparseloco.inner_steps=" + std::to_string(kInner), "--optim.lr=3e-3"};
  o.insert(o.end(), extra.begin(), extra.end());
  return resolve_config(suite_schema(), "", o);
}

// The method on every rank of the world; returns the named section of its state (its parameters).
std::vector<float> method_params(const Config& cfg, const std::string& section) {
  Communicator world(make_mpi_backend(), {});
  RunContext ctx{cfg, world, kSteps, 1};
  auto m = find_method(cfg.str("run.method")).make(ctx);
  for (int s = 0; s < kSteps; s++) m->step(s);
  StateWriter w;
  StateFields fields(w);
  m->state(fields);
  const std::string path = scratch_file("vs_one_" + section);
  w.save(path);
  StateReader r(path);
  std::vector<float> p(static_cast<size_t>(m->num_params()));
  r.get(section, p);
  return p;
}

// R replicas of the language-model worker in this process: replica r takes rank r's slice.
struct Replicas {
  Dataset data;
  std::vector<LmWorker> w;
  Replicas(const Config& cfg, Communicator& world) : data(load_dataset(cfg)) {
    RunContext ctx{cfg, world, kSteps, 1};
    for (int r = 0; r < world.size(); r++) w.push_back(make_lm_worker(ctx, data));
  }
  size_t n() const { return w[0].model.params.size(); }
};

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0;
  for (size_t i = 0; i < a.size(); i++) d = std::max(d, double(std::fabs(a[i] - b[i])));
  return d;
}

// theta_g on one process: R inner AdamW loops, then m <- mu m + mean(Delta) and
// theta -= eta (Delta + mu m) (Nesterov) or theta -= eta m (heavy ball).
std::vector<float> diloco_reference(const Config& cfg) {
  Communicator world(make_mpi_backend(), {});
  Replicas rep(cfg, world);
  const int R = world.size();
  const float eta = float(cfg.real("diloco.outer_lr")), mu = float(cfg.real("diloco.outer_momentum"));
  const bool nesterov = cfg.boolean("diloco.nesterov");
  std::vector<float> global = rep.w[0].model.params, m(rep.n(), 0.0f);
  for (int step = 0; step < kSteps; step++) {
    for (int r = 0; r < R; r++) lm_local_adamw_step(rep.w[r], rep.data.train, step, r);
    if ((step + 1) % kInner != 0) continue;
    for (size_t i = 0; i < rep.n(); i++) {
      double sum = 0;
      for (int r = 0; r < R; r++) sum += double(global[i]) - double(rep.w[r].model.params[i]);
      const float delta = float(sum / R);
      m[i] = mu * m[i] + delta;
      global[i] -= eta * (nesterov ? delta + mu * m[i] : m[i]);
    }
    for (auto& w : rep.w) w.model.params = global;
  }
  return global;
}

// The mean over the replicas that sent a coordinate (or over all R), from the densified messages.
std::vector<float> aggregate_reference(const std::vector<std::vector<SparseTensor>>& sent,
                                       const std::vector<CompressBlock>& blocks, size_t n, bool over_selected) {
  const size_t R = sent.size();
  std::vector<float> out(n, 0.0f), dense(n);
  std::vector<float> sum(n, 0.0f);
  std::vector<int> count(n, 0);
  for (size_t r = 0; r < R; r++) {  // rank order, as every rank aggregates
    std::fill(dense.begin(), dense.end(), 0.0f);
    for (size_t b = 0; b < blocks.size(); b++) densify(sent[r][b], dense.data() + blocks[b].offset);
    std::vector<uint8_t> chosen(n, 0);
    for (size_t b = 0; b < blocks.size(); b++) {
      const SparseTensor& s = sent[r][b];
      const ChunkLayout& l = s.layout;
      for (int64_t c = 0; c < l.n_chunks(); c++) {
        const int64_t k = chunk_k(l.chunk_len(c), s.top_k), off = sparse_offset(l, s.top_k, c);
        for (int64_t t = 0; t < k; t++) chosen[blocks[b].offset + size_t(l.element(c, s.idx[size_t(off + t)]))] = 1;
      }
    }
    for (size_t i = 0; i < n; i++)
      if (chosen[i]) sum[i] += dense[i], count[i]++;
  }
  for (size_t i = 0; i < n; i++)
    if (count[i]) out[i] = sum[i] / (over_selected ? float(count[i]) : float(R));
  return out;
}

// SparseLoCo on one process: per replica g = theta_g - theta_r, e_r <- beta e_r + g, top-k, 2-bit
// (ef_compress), then theta_g -= alpha * mean over the selecting replicas.
std::vector<float> sparseloco_reference(const Config& cfg) {
  Communicator world(make_mpi_backend(), {});
  Replicas rep(cfg, world);
  const int R = world.size();
  const float alpha = float(cfg.real("sparseloco.outer_lr"));
  const EfOptions opt{float(cfg.real("sparseloco.ef_beta")), cfg.integer("sparseloco.top_k"), cfg.boolean("sparseloco.quantize")};
  const auto blocks = blocks_for(rep.w[0].model.layout);
  std::vector<float> global = rep.w[0].model.params;
  std::vector<std::vector<float>> error(size_t(R), std::vector<float>(rep.n(), 0.0f));
  std::vector<std::vector<SparseTensor>> sent(size_t(R), std::vector<SparseTensor>(blocks.size()));
  std::vector<float> g(rep.n());
  for (int step = 0; step < kSteps; step++) {
    for (int r = 0; r < R; r++) lm_local_adamw_step(rep.w[r], rep.data.train, step, r);
    if ((step + 1) % kInner != 0) continue;
    for (int r = 0; r < R; r++) {
      for (size_t i = 0; i < rep.n(); i++) g[i] = global[i] - rep.w[r].model.params[i];
      for (size_t b = 0; b < blocks.size(); b++)
        ef_compress(error[r].data() + blocks[b].offset, g.data() + blocks[b].offset, blocks[b].layout, opt, sent[r][b]);
    }
    const auto agg = aggregate_reference(sent, blocks, rep.n(), cfg.str("sparseloco.aggregation") == "mean_selected");
    for (size_t i = 0; i < rep.n(); i++) global[i] -= alpha * agg[i];
    for (auto& w : rep.w) w.model.params = global;
  }
  return global;
}

// DeMo on one process: per replica delta_r <- decay delta_r + lr g_r, DCT top-k (demo_compress),
// then p -= lr (sign(IDCT(mean_r kept_r)) + wd p) on every replica.
std::vector<float> demo_reference(const Config& cfg) {
  Communicator world(make_mpi_backend(), {});
  Replicas rep(cfg, world);
  const int R = world.size();
  const auto blocks = blocks_for(rep.w[0].model.layout);
  std::vector<DctPlan> plans;
  for (const auto& b : blocks) plans.push_back(make_dct_plan(b.layout));
  const float wd = float(cfg.real("optim.weight_decay"));
  std::vector<std::vector<float>> delta(size_t(R), std::vector<float>(rep.n(), 0.0f));
  std::vector<std::vector<SparseTensor>> sent(size_t(R), std::vector<SparseTensor>(blocks.size()));
  std::vector<float> update(rep.n());
  for (int step = 0; step < kSteps; step++) {
    const float lr = schedule_lr(rep.w[0].schedule, step);
    DemoOptions opt{float(cfg.real("demo.decay")), lr, cfg.integer("demo.top_k")};
    for (int r = 0; r < R; r++) {
      LmWorker& w = rep.w[r];
      lm_forward_backward(w, rep.data.train, step, r);
      clip_grad_norm(w.model.grads, w.grad_clip);
      for (size_t b = 0; b < blocks.size(); b++)
        demo_compress(delta[r].data() + blocks[b].offset, w.model.grads.data() + blocks[b].offset, blocks[b].layout,
                      plans[b], opt, sent[r][b]);
    }
    const auto coeffs = aggregate_reference(sent, blocks, rep.n(), false);
    for (size_t b = 0; b < blocks.size(); b++)
      idct_tiles(coeffs.data() + blocks[b].offset, blocks[b].layout, plans[b], update.data() + blocks[b].offset);
    for (auto& w : rep.w)
      for (size_t i = 0; i < rep.n(); i++) {
        const float s = update[i] > 0 ? 1.0f : (update[i] < 0 ? -1.0f : 0.0f);
        w.model.params[i] -= lr * (s + wd * w.model.params[i]);
      }
  }
  return rep.w[0].model.params;
}

}  // namespace

TEST(VsOneProcess, DiLoCoEqualsTheMeanPseudoGradientNesterovStep) {
  for (const std::string nesterov : {"true", "false"}) {
    SCOPED_TRACE("nesterov " + nesterov);
    const Config cfg = outer_config("diloco", {"--diloco.outer_lr=0.7", "--diloco.nesterov=" + nesterov});
    const auto got = method_params(cfg, "diloco.global");
    // The mean is summed in double here and in MPI's order there: equal to float rounding.
    EXPECT_LT(max_abs_diff(got, diloco_reference(cfg)), 2e-6);
  }
}

TEST(VsOneProcess, SparseLoCoEqualsErrorFeedbackTopKAndTheSelectedMeanWithAlphaAppliedOnce) {
  // alpha != 1: applying it twice (into the error buffer and to the aggregate) would be caught.
  for (const std::vector<std::string>& extra :
       {std::vector<std::string>{"--sparseloco.outer_lr=0.7"},
        std::vector<std::string>{"--sparseloco.outer_lr=0.5", "--sparseloco.quantize=false", "--sparseloco.top_k=64"},
        std::vector<std::string>{"--sparseloco.outer_lr=1.3", "--sparseloco.aggregation=mean_all"}}) {
    const Config cfg = outer_config("sparseloco", extra);
    SCOPED_TRACE(extra[0]);
    const auto got = method_params(cfg, "sparseloco.global");
    const auto want = sparseloco_reference(cfg);
    EXPECT_EQ(max_abs_diff(got, want), 0.0);  // same arithmetic in the same order: bit for bit
  }
}

TEST(VsOneProcess, DeMoEqualsTheSignOfTheMeanTransmittedDctComponent) {
  const Config cfg = outer_config("demo", {"--demo.top_k=64"});
  EXPECT_EQ(max_abs_diff(method_params(cfg, "demo.params"), demo_reference(cfg)), 0.0);
}
