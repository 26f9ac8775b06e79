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
#include <numeric>

#include "compress/dct.hpp"
#include "compress/error_feedback.hpp"
#include "harness/method.hpp"
#include "envs/make_env.hpp"
#include "methods/lm.hpp"
#include "methods/ppo.hpp"
#include "methods/rl.hpp"
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
  RunContext ctx{cfg, world, kSteps, 1, ""};
  auto m = find_method(cfg.str("run.method")).make(ctx);
  for (int s = 0; s < kSteps; s++) m->step(s);
  return state_section(*m, section);
}

// R replicas of the language-model worker in this process: replica r takes rank r's slice.
struct Replicas {
  Dataset data;
  std::vector<LmWorker> w;
  Replicas(const Config& cfg, Communicator& world) : data(load_dataset(cfg)) {
    RunContext ctx{cfg, world, kSteps, 1, ""};
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

// PPO on one process with every rank's part simulated (CartPole: discrete actions, no
// normalisation wrappers): rank r's environments [r n, (r + 1) n) and action streams, its own
// shuffle stream; per minibatch the advantages normalised with the statistics of all ranks'
// minibatches, the ranks' loss gradients averaged, one clip and one Adam step on the shared policy.
std::vector<float> ppo_reference(const Config& cfg, int iterations) {
  Communicator world(make_mpi_backend(), {});
  Communicator self(make_mpi_self_backend(), {});
  const int R = world.size();
  const uint64_t seed = 1;
  const int n = int(cfg.integer("ppo.num_envs")) / R, T = int(cfg.integer("ppo.num_steps"));
  const int minibatches = int(cfg.integer("ppo.num_minibatches")), N = n * T, mbn = N / minibatches;
  const float gamma = float(cfg.real("ppo.gamma")), lambda = float(cfg.real("ppo.gae_lambda"));
  struct Part {  // one rank's environments and streams
    envs::Env env;
    std::vector<Rng> act;
    Rng shuffle;
    std::vector<float> next_obs, next_done;
  };
  std::vector<Part> parts;
  for (int r = 0; r < R; r++) {
    Part p{envs::make_env(cfg.str("env.name"), n, seed, uint32_t(r * n)), {}, Rng(seed, Stream::ppo_shuffle, uint32_t(r)), {}, {}};
    for (int i = 0; i < n; i++) p.act.emplace_back(seed, uint32_t(Stream::ppo_actions), uint32_t(r * n + i));
    parts.push_back(std::move(p));
  }
  const PpoAgent agent = make_ppo_agent(cfg, parts[0].env.spec());
  const int D = agent.spec.obs_dim, K = agent.actions;
  std::vector<float> params(agent.layout.total), grads(params.size()), sum(params.size());
  Rng init(seed, Stream::init);
  init_ppo_agent(agent, params.data(), init);
  AdamWConfig ac;
  ac.lr = float(cfg.real("ppo.lr")), ac.beta1 = 0.9f, ac.beta2 = 0.999f, ac.eps = float(cfg.real("ppo.adam_eps"));
  ac.weight_decay = 0.0f;
  AdamW opt = adamw_create(ac, agent.layout);
  for (auto& p : parts) {
    p.next_obs.resize(size_t(n) * D), p.next_done.assign(n, 0.0f);
    p.env.reset(p.next_obs.data());
  }
  const PpoCoefs coefs{float(cfg.real("ppo.clip_coef")), float(cfg.real("ppo.ent_coef")), float(cfg.real("ppo.vf_coef")),
                       cfg.boolean("ppo.clip_vloss")};
  PpoWorkspace ws;
  MlpActs acts;
  for (int it = 0; it < iterations; it++) {
    const float lr = float(cfg.real("ppo.lr")) * (1.0f - float(double(it) / double(iterations)));
    struct Rollout {
      std::vector<float> obs, logp, values, rewards, dones, adv, ret;
      std::vector<int32_t> act;
    };
    std::vector<Rollout> ro(static_cast<size_t>(R));
    for (int r = 0; r < R; r++) {
      Part& p = parts[size_t(r)];
      Rollout& o = ro[size_t(r)];
      o.obs.resize(size_t(N) * D), o.logp.resize(N), o.values.resize(N), o.rewards.resize(N), o.dones.resize(N);
      o.act.resize(N), o.adv.resize(N), o.ret.resize(N);
      std::vector<float> reward(n);
      std::vector<int32_t> a(n);
      std::vector<uint8_t> term(n), trunc(n);
      for (int t = 0; t < T; t++) {
        std::copy(p.next_obs.begin(), p.next_obs.end(), o.obs.begin() + size_t(t) * n * D);
        std::copy(p.next_done.begin(), p.next_done.end(), o.dones.begin() + size_t(t) * n);
        const float* v = mlp_forward(agent.critic, params.data(), p.next_obs.data(), n, acts);
        std::copy_n(v, n, o.values.begin() + size_t(t) * n);
        const float* out = mlp_forward(agent.actor, params.data(), p.next_obs.data(), n, acts);
        for (int i = 0; i < n; i++) {
          const float* l = out + size_t(i) * K;  // inverse-CDF sample of softmax(l)
          double mx = l[0], z = 0;
          for (int j = 1; j < K; j++) mx = std::max(mx, double(l[j]));
          for (int j = 0; j < K; j++) z += std::exp(l[j] - mx);
          const double u = p.act[size_t(i)].uniform_double() * z;
          double c = 0;
          int32_t pick = K - 1;
          for (int j = 0; j < K; j++) {
            c += std::exp(l[j] - mx);
            if (u <= c) {
              pick = j;
              break;
            }
          }
          const size_t b = size_t(t) * n + i;
          a[size_t(i)] = o.act[b] = pick;
          o.logp[b] = float(log_prob(agent, l, nullptr, &o.act[b], nullptr));
        }
        p.env.step(a.data(), p.next_obs.data(), reward.data(), term.data(), trunc.data());
        for (int i = 0; i < n; i++) {
          o.rewards[size_t(t) * n + i] = reward[size_t(i)];
          p.next_done[size_t(i)] = term[size_t(i)] || trunc[size_t(i)] ? 1.0f : 0.0f;
        }
      }
      const float* next_v = mlp_forward(agent.critic, params.data(), p.next_obs.data(), n, acts);
      gae(o.rewards.data(), o.values.data(), o.dones.data(), next_v, p.next_done.data(), T, n, gamma, lambda, o.adv.data());
      for (int b = 0; b < N; b++) o.ret[size_t(b)] = o.adv[size_t(b)] + o.values[size_t(b)];
    }
    for (int64_t e = 0; e < cfg.integer("ppo.update_epochs"); e++) {
      std::vector<std::vector<int>> perm(static_cast<size_t>(R), std::vector<int>(static_cast<size_t>(N)));
      for (int r = 0; r < R; r++) {
        std::iota(perm[size_t(r)].begin(), perm[size_t(r)].end(), 0);
        for (int i = N - 1; i > 0; i--) std::swap(perm[size_t(r)][size_t(i)], perm[size_t(r)][parts[size_t(r)].shuffle.below(uint32_t(i + 1))]);
      }
      for (int start = 0; start < N; start += mbn) {
        // Every rank's minibatch; the advantages normalised over all of them together.
        std::vector<std::vector<float>> adv(static_cast<size_t>(R));
        double s1 = 0, s2 = 0, cnt = 0;
        for (int r = 0; r < R; r++)
          for (int k = 0; k < mbn; k++) {
            const float x = ro[size_t(r)].adv[size_t(perm[size_t(r)][size_t(start + k)])];
            adv[size_t(r)].push_back(x), s1 += x, s2 += double(x) * x, cnt += 1;
          }
        const double mean = s1 / cnt, sd = std::sqrt(std::max(0.0, (s2 - cnt * mean * mean) / (cnt - 1)));
        std::fill(sum.begin(), sum.end(), 0.0f);
        for (int r = 0; r < R; r++) {
          const Rollout& o = ro[size_t(r)];
          std::vector<float> mb_obs, mb_logp, mb_adv, mb_ret, mb_val;
          std::vector<int32_t> mb_act;
          for (int k = 0; k < mbn; k++) {
            const int b = perm[size_t(r)][size_t(start + k)];
            mb_obs.insert(mb_obs.end(), o.obs.begin() + size_t(b) * D, o.obs.begin() + size_t(b + 1) * D);
            mb_act.push_back(o.act[size_t(b)]), mb_logp.push_back(o.logp[size_t(b)]), mb_ret.push_back(o.ret[size_t(b)]);
            mb_val.push_back(o.values[size_t(b)]);
            mb_adv.push_back(float((adv[size_t(r)][size_t(k)] - mean) * (1.0 / (sd + 1e-8))));
          }
          std::fill(grads.begin(), grads.end(), 0.0f);
          const PpoMinibatch mb{mbn, mb_obs.data(), mb_act.data(), nullptr, mb_logp.data(), mb_adv.data(), mb_ret.data(), mb_val.data()};
          ppo_loss(agent, params.data(), mb, coefs, grads.data(), ws);
          for (size_t i = 0; i < sum.size(); i++) sum[i] += grads[i];
        }
        for (size_t i = 0; i < sum.size(); i++) sum[i] *= 1.0f / float(R);
        clip_grad_norm(sum, cfg.real("ppo.max_grad_norm"));
        adamw_step(opt, params, sum, lr);
      }
    }
  }
  (void)self;
  return params;
}

}  // namespace

TEST(VsOneProcess, PpoEqualsEveryRanksRolloutWithGloballyNormalisedAdvantagesAndAveragedGradients) {
  const int iterations = 2;
  const Config cfg = resolve_config(suite_schema(), "", {"--run.method=ppo", "--env.name=CartPole-v1", "--ppo.num_envs=4",
                                                         "--ppo.num_steps=32", "--ppo.num_minibatches=2",
                                                         "--ppo.update_epochs=2", "--policy.hidden_size=16"});
  Communicator world(make_mpi_backend(), {});
  RunContext ctx{cfg, world, iterations, 1, ""};
  auto m = find_method("ppo").make(ctx);
  for (int s = 0; s < iterations; s++) m->step(s);
  const std::vector<float> got = state_section(*m, "ppo.params");
  const std::vector<float> want = ppo_reference(cfg, iterations);
  // Sums over ranks in MPI's order there and in rank order here: equal to float rounding.
  EXPECT_LT(max_abs_diff(got, want), 1e-5);
}

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
