// The evolution-strategy kernels on the device (kernels/cuda/perturb.cu) against model/perturb.hpp,
// the CPU reference: the keyed noise bit for bit, EGGROLL's perturbed layer with stored and with
// regenerated factors, OpenAI-ES's full-rank forward and the update GEMMs, in fp32 and bf16.
// Inputs random with fixed seeds; outputs poisoned with NaN first. Tolerances are relative L2 errors
// ||got - want|| / ||want|| (plus a NaN check): fp32 1e-5 (the sums run in another order), bf16
// 1e-2 (inputs are rounded to bf16 first on both sides, so only the device's bf16 output rounding
// and intermediate rounding remain). Without a GPU the comparisons skip.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "core/error.hpp"
#include "kernels/cpu/matmul.hpp"
#include "kernels/cuda/kernels.hpp"
#include "model/perturb.hpp"

namespace {

namespace fc = frugal::cuda;
using frugal::NoiseKey;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

class CudaPerturb : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fc::device_available()) GTEST_SKIP() << "no CUDA device visible: skipping";
  }
};

std::vector<float> random_vec(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// ||got - want|| / ||want||; infinity when got holds a NaN (an unwritten or poisoned element).
double rel_l2(const std::vector<float>& got, const std::vector<float>& want) {
  EXPECT_EQ(got.size(), want.size());
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < want.size(); i++) {
    if (std::isnan(got[i])) return std::numeric_limits<double>::infinity();
    num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    den += double(want[i]) * want[i];
  }
  return std::sqrt(num / den);
}

std::vector<fc::bf16> to_bf16(const std::vector<float>& v) {
  std::vector<fc::bf16> h(v.size());
  for (size_t i = 0; i < v.size(); i++) h[i] = fc::to_bf16(v[i]);
  return h;
}
std::vector<float> from_bf16(const std::vector<fc::bf16>& h) {
  std::vector<float> v(h.size());
  for (size_t i = 0; i < h.size(); i++) v[i] = fc::from_bf16(h[i]);
  return v;
}
std::vector<float> round_bf16(const std::vector<float>& v) { return from_bf16(to_bf16(v)); }

bool bits_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Members of a batch from pairs [first_pair, first_pair + pairs): either a random mix of both signs
// (rows b, b+1 rarely share a pair: the kernels' one-row path) or the population's own order, member
// b = 2 first_pair + b cycling (rows 2i, 2i+1 are one antithetic pair: the shared-factor path).
std::vector<int32_t> members_of(int batch, int first_pair, int pairs, std::mt19937& rng, bool paired = false) {
  std::vector<int32_t> m(batch);
  std::uniform_int_distribution<int> pick(2 * first_pair, 2 * (first_pair + pairs) - 1);
  for (int b = 0; b < batch; b++) m[b] = paired ? 2 * first_pair + b % (2 * pairs) : pick(rng);
  return m;
}

TEST(CudaBf16, RoundsToNearestEven) {  // host conversion, runs anywhere
  EXPECT_EQ(fc::to_bf16(1.0f).bits, 0x3f80);
  EXPECT_EQ(fc::from_bf16(fc::to_bf16(-2.5f)), -2.5f);
  EXPECT_EQ(fc::to_bf16(1.00390625f).bits, 0x3f80);   // exactly halfway, even stays
  EXPECT_EQ(fc::to_bf16(1.01171875f).bits, 0x3f82);   // halfway above odd 0x3f81: rounds up to even
  EXPECT_EQ(fc::to_bf16(1.0040f).bits, 0x3f81);       // above halfway
  EXPECT_TRUE(std::isnan(fc::from_bf16(fc::to_bf16(kNaN))));
}

TEST_F(CudaPerturb, KeyedNormalsBitIdenticalToCpu) {
  for (const NoiseKey key : {NoiseKey{7, 0, 3, 11}, NoiseKey{0xdeadbeefcafeull, 2, 1 << 20, 0}})
    for (const uint32_t pair : {0u, 5u, 1u << 30}) {
      const int64_t n = (1 << 18) + 3;  // a partial last Philox block
      std::vector<float> want(n);
      frugal::keyed_normals(key, pair, want.data(), n);
      fc::DeviceBuffer d(std::vector<float>(n, kNaN));
      fc::keyed_normals(d.data(), key, pair, n);
      EXPECT_TRUE(bits_equal(d.to_host(), want)) << "pair " << pair;
    }
}

TEST_F(CudaPerturb, LowRankAndVectorNoiseBitIdenticalToCpu) {
  const NoiseKey key{42, 0, 2, 7};
  for (const int rank : {1, 3, 4, 8})
    for (const auto& [rows, cols] : {std::pair{257, 129}, std::pair{64, 1024}}) {
      frugal::LowRankFactors f;
      frugal::lowrank_generate(f, key, 3, 5, rows, cols, rank);
      fc::DeviceBuffer bt(std::vector<float>(f.Bt.size(), kNaN)), at(std::vector<float>(f.At.size(), kNaN));
      fc::lowrank_generate(bt.data(), at.data(), key, 3, 5, rows, cols, rank);
      EXPECT_TRUE(bits_equal(bt.to_host(), f.Bt)) << "B, rank " << rank << " " << rows << "x" << cols;
      EXPECT_TRUE(bits_equal(at.to_host(), f.At)) << "A, rank " << rank << " " << rows << "x" << cols;
    }
  frugal::VectorNoise v;
  frugal::vector_noise_generate(v, NoiseKey{42, 1, 2, 7}, 2, 6, 1001);
  fc::DeviceBuffer eps(std::vector<float>(v.eps.size(), kNaN));
  fc::vector_noise_generate(eps.data(), NoiseKey{42, 1, 2, 7}, 2, 6, 1001);
  EXPECT_TRUE(bits_equal(eps.to_host(), v.eps));
}

// One perturbed-layer case: the CPU reference and everything the device versions need.
struct LayerCase {
  int batch, rows, cols, rank, first_pair, pairs;
  bool with_bias;
  std::vector<float> x, w, bias;
  std::vector<int32_t> member;
  frugal::LowRankFactors f;
  frugal::VectorNoise bias_noise;
  NoiseKey key{9, 0, 4, 2}, bias_key{9, 1, 4, 2};
  float sigma = 0.3f;

  LayerCase(int batch_, int rows_, int cols_, int rank_, bool bias_, uint32_t seed, bool paired = false)
      : batch(batch_), rows(rows_), cols(cols_), rank(rank_), first_pair(2), pairs(7), with_bias(bias_) {
    std::mt19937 rng(seed);
    x = random_vec(size_t(batch) * cols, rng);
    w = random_vec(size_t(rows) * cols, rng, 1.0f / std::sqrt(float(cols)));
    bias = random_vec(rows, rng, 0.1f);
    member = members_of(batch, first_pair, pairs, rng, paired);
    frugal::lowrank_generate(f, key, first_pair, pairs, rows, cols, rank);
    frugal::vector_noise_generate(bias_noise, bias_key, first_pair, pairs, rows);
  }
  void round_inputs_to_bf16() {  // so the CPU reference sees the device's bf16 inputs exactly
    x = round_bf16(x), w = round_bf16(w), bias = round_bf16(bias);
    f.Bt = round_bf16(f.Bt), f.At = round_bf16(f.At), bias_noise.eps = round_bf16(bias_noise.eps);
  }
  std::vector<float> cpu() const {
    std::vector<float> y(size_t(batch) * rows);
    frugal::lowrank_linear_forward(x.data(), batch, w.data(), with_bias ? bias.data() : nullptr, member.data(), f,
                                   with_bias ? &bias_noise : nullptr, sigma, y.data());
    return y;
  }
};

TEST_F(CudaPerturb, LowRankForwardMatchesCpuFp32) {
  // Odd shapes take the scalar path, multiples of 8 the 16-byte one; rank 9 needs two rank groups.
  for (const auto& [batch, rows, cols] : {std::tuple{37, 65, 129}, std::tuple{64, 512, 1024}})
    for (const int rank : {1, 4, 9})
      for (const bool bias : {false, true})
        for (const bool paired : {false, true}) {
        LayerCase c(batch, rows, cols, rank, bias, 100 + rank, paired);
        const auto want = c.cpu();
        fc::DeviceBuffer x(c.x), w(c.w), b(c.bias), bt(c.f.Bt), at(c.f.At), eps(c.bias_noise.eps);
        fc::DeviceBuffer y(std::vector<float>(want.size(), kNaN));
        fc::IntDeviceBuffer mem(std::vector<int>(c.member.begin(), c.member.end()));
        const fc::LowRankView<float> view{bt.data(), at.data(), c.first_pair, c.pairs, rank, rows, cols};
        fc::lowrank_linear_forward(y.data(), x.data(), batch, w.data(), bias ? b.data() : nullptr, mem.data(), view,
                                   bias ? eps.data() : nullptr, c.sigma);
        EXPECT_LT(rel_l2(y.to_host(), want), 1e-5) << batch << "x" << cols << "->" << rows << " r" << rank
                                                    << (paired ? " paired" : "");
      }
}

TEST_F(CudaPerturb, LowRankForwardMatchesCpuBf16) {
  for (const auto& [batch, rows, cols] : {std::tuple{37, 65, 129}, std::tuple{64, 512, 1024}})
    for (const int rank : {1, 4})
      for (const bool bias : {false, true})
        for (const bool paired : {false, true}) {
        LayerCase c(batch, rows, cols, rank, bias, 200 + rank, paired);
        c.round_inputs_to_bf16();
        const auto want = c.cpu();
        fc::DeviceArray<fc::bf16> x(to_bf16(c.x)), w(to_bf16(c.w)), b(to_bf16(c.bias)), bt(to_bf16(c.f.Bt)),
            at(to_bf16(c.f.At)), eps(to_bf16(c.bias_noise.eps));
        fc::DeviceArray<fc::bf16> y(to_bf16(std::vector<float>(want.size(), kNaN)));
        fc::IntDeviceBuffer mem(std::vector<int>(c.member.begin(), c.member.end()));
        const fc::LowRankView<fc::bf16> view{bt.data(), at.data(), c.first_pair, c.pairs, rank, rows, cols};
        fc::lowrank_linear_forward(y.data(), x.data(), batch, w.data(), bias ? b.data() : nullptr, mem.data(), view,
                                   bias ? eps.data() : nullptr, c.sigma);
        EXPECT_LT(rel_l2(from_bf16(y.to_host()), want), 1e-2) << batch << "x" << cols << "->" << rows << " r" << rank
                                                                << (paired ? " paired" : "");
      }
}

TEST_F(CudaPerturb, KeyedForwardMatchesCpuWithGeneratedFactors) {
  for (const auto& [batch, rows, cols] : {std::tuple{37, 65, 132}, std::tuple{64, 512, 1024}})
    for (const int rank : {1, 2, 4, 8})
      for (const bool bias : {false, true})
        for (const bool paired : {false, true}) {
        LayerCase c(batch, rows, cols, rank, bias, 300 + rank, paired);
        c.first_pair = 0;  // keyed noise is addressed by absolute pair: regenerate from pair 0
        frugal::lowrank_generate(c.f, c.key, 0, c.pairs + 2, rows, cols, rank);
        frugal::vector_noise_generate(c.bias_noise, c.bias_key, 0, c.pairs + 2, rows);
        const auto want = c.cpu();
        fc::DeviceBuffer x(c.x), w(c.w), b(c.bias), y(std::vector<float>(want.size(), kNaN));
        fc::IntDeviceBuffer mem(std::vector<int>(c.member.begin(), c.member.end()));
        fc::lowrank_linear_forward_keyed(y.data(), x.data(), batch, w.data(), bias ? b.data() : nullptr, mem.data(),
                                         c.key, rank, rows, cols, bias ? &c.bias_key : nullptr, c.sigma);
        EXPECT_LT(rel_l2(y.to_host(), want), 1e-5) << batch << "x" << cols << "->" << rows << " r" << rank
                                                    << (paired ? " paired" : "");
      }
}

TEST_F(CudaPerturb, KeyedForwardBf16MatchesCpu) {
  LayerCase c(64, 512, 1024, 1, true, 400, true);
  frugal::lowrank_generate(c.f, c.key, 0, c.pairs + 2, c.rows, c.cols, 1);
  frugal::vector_noise_generate(c.bias_noise, c.bias_key, 0, c.pairs + 2, c.rows);
  c.x = round_bf16(c.x), c.w = round_bf16(c.w), c.bias = round_bf16(c.bias);
  const auto want = c.cpu();  // fp32 noise: the keyed kernel generates it in fp32 too
  fc::DeviceArray<fc::bf16> x(to_bf16(c.x)), w(to_bf16(c.w)), b(to_bf16(c.bias));
  fc::DeviceArray<fc::bf16> y(to_bf16(std::vector<float>(want.size(), kNaN)));
  fc::IntDeviceBuffer mem(std::vector<int>(c.member.begin(), c.member.end()));
  fc::lowrank_linear_forward_keyed(y.data(), x.data(), c.batch, w.data(), b.data(), mem.data(), c.key, 1, c.rows,
                                   c.cols, &c.bias_key, c.sigma);
  EXPECT_LT(rel_l2(from_bf16(y.to_host()), want), 1e-2);
}

TEST_F(CudaPerturb, FullRankForwardMatchesCpu) {
  for (const auto& [batch, rows, cols] : {std::tuple{9, 33, 77}, std::tuple{16, 256, 512}}) {
    std::mt19937 rng(rows);
    const int first_pair = 1, pairs = 4;
    const auto x = random_vec(size_t(batch) * cols, rng), w = random_vec(size_t(rows) * cols, rng, 0.05f);
    const auto bias = random_vec(rows, rng, 0.1f);
    const auto member = members_of(batch, first_pair, pairs, rng);
    frugal::FullRankNoise e;
    frugal::fullrank_generate(e, NoiseKey{5, 0, 0, 1}, first_pair, pairs, rows, cols);
    frugal::VectorNoise v;
    frugal::vector_noise_generate(v, NoiseKey{5, 1, 0, 1}, first_pair, pairs, rows);
    std::vector<float> want(size_t(batch) * rows);
    frugal::fullrank_linear_forward(x.data(), batch, w.data(), bias.data(), member.data(), e, &v, 0.02f, want.data());
    fc::DeviceBuffer dx(x), dw(w), db(bias), dE(e.E), deps(v.eps), y(std::vector<float>(want.size(), kNaN));
    fc::IntDeviceBuffer mem(std::vector<int>(member.begin(), member.end()));
    fc::fullrank_linear_forward(y.data(), dx.data(), batch, dw.data(), db.data(), mem.data(), dE.data(), first_pair,
                                rows, cols, deps.data(), 0.02f);
    EXPECT_LT(rel_l2(y.to_host(), want), 1e-5) << rows << "x" << cols;

    // bf16: the same on bf16-rounded inputs
    const auto xr = round_bf16(x), wr = round_bf16(w), br = round_bf16(bias);
    frugal::FullRankNoise er = e;
    er.E = round_bf16(e.E);
    frugal::VectorNoise vr = v;
    vr.eps = round_bf16(v.eps);
    frugal::fullrank_linear_forward(xr.data(), batch, wr.data(), br.data(), member.data(), er, &vr, 0.02f, want.data());
    fc::DeviceArray<fc::bf16> hx(to_bf16(xr)), hw(to_bf16(wr)), hb(to_bf16(br)), hE(to_bf16(er.E)),
        heps(to_bf16(vr.eps)), hy(to_bf16(std::vector<float>(want.size(), kNaN)));
    fc::fullrank_linear_forward(hy.data(), hx.data(), batch, hw.data(), hb.data(), mem.data(), hE.data(), first_pair,
                                rows, cols, heps.data(), 0.02f);
    EXPECT_LT(rel_l2(from_bf16(hy.to_host()), want), 1e-2) << "bf16 " << rows << "x" << cols;
  }
}

// Populations past gridDim.y's 65535 limit (es.population allows 2^24): the noise generators and
// OpenAI-ES's forward split their launches; the results still equal the CPU's.
TEST_F(CudaPerturb, PopulationsPastTheGridLimit) {
  const int pairs = 70001, rows = 3, cols = 8;
  frugal::LowRankFactors f;
  frugal::lowrank_generate(f, NoiseKey{7, 0, 1, 3}, 5, pairs, rows, cols, 2);
  fc::DeviceBuffer bt(std::vector<float>(f.Bt.size(), kNaN)), at(std::vector<float>(f.At.size(), kNaN));
  fc::lowrank_generate(bt.data(), at.data(), NoiseKey{7, 0, 1, 3}, 5, pairs, rows, cols, 2);
  EXPECT_TRUE(bits_equal(bt.to_host(), f.Bt));
  EXPECT_TRUE(bits_equal(at.to_host(), f.At));
  frugal::VectorNoise v;
  frugal::vector_noise_generate(v, NoiseKey{7, 1, 1, 3}, 5, pairs, rows);
  fc::DeviceBuffer eps(std::vector<float>(v.eps.size(), kNaN));
  fc::vector_noise_generate(eps.data(), NoiseKey{7, 1, 1, 3}, 5, pairs, rows);
  EXPECT_TRUE(bits_equal(eps.to_host(), v.eps));

  const int batch = 2 * pairs;  // every member once, in order
  std::mt19937 rng(8);
  const auto x = random_vec(size_t(batch) * cols, rng), w = random_vec(size_t(rows) * cols, rng, 0.3f);
  std::vector<int32_t> member(static_cast<size_t>(batch));
  for (int b = 0; b < batch; b++) member[size_t(b)] = 2 * 5 + b;
  frugal::FullRankNoise e;
  frugal::fullrank_generate(e, NoiseKey{7, 0, 1, 3}, 5, pairs, rows, cols);
  std::vector<float> want(size_t(batch) * rows);
  frugal::fullrank_linear_forward(x.data(), batch, w.data(), nullptr, member.data(), e, &v, 0.1f, want.data());
  fc::DeviceBuffer dx(x), dw(w), dE(e.E), y(std::vector<float>(want.size(), kNaN));
  fc::IntDeviceBuffer mem(std::vector<int>(member.begin(), member.end()));
  fc::fullrank_linear_forward(y.data(), dx.data(), batch, dw.data(), nullptr, mem.data(), dE.data(), 5, rows, cols,
                              eps.data(), 0.1f);
  EXPECT_LT(rel_l2(y.to_host(), want), 1e-5);
}

TEST_F(CudaPerturb, UpdatesMatchCpu) {
  const int pairs = 12, members = 24, rows = 96, cols = 130;
  std::mt19937 rng(3);
  const auto fitness = random_vec(members, rng);
  for (const int rank : {1, 3}) {
    frugal::LowRankFactors f;
    frugal::lowrank_generate(f, NoiseKey{11, 0, 0, 0}, 0, pairs, rows, cols, rank);
    std::vector<float> want(size_t(rows) * cols), scratch;
    frugal::lowrank_update(f, fitness.data(), members, 0.1f, want.data(), scratch);
    fc::DeviceBuffer bt(f.Bt), at(f.At), g(std::vector<float>(want.size(), kNaN));
    fc::lowrank_update(g.data(), fc::LowRankView<float>{bt.data(), at.data(), 0, pairs, rank, rows, cols},
                       fitness.data(), members, 0.1f);
    EXPECT_LT(rel_l2(g.to_host(), want), 1e-5) << "rank " << rank;
  }
  frugal::VectorNoise v;
  frugal::vector_noise_generate(v, NoiseKey{11, 1, 0, 0}, 0, pairs, rows);
  std::vector<float> want(rows);
  frugal::vector_noise_update(v, fitness.data(), members, 0.1f, want.data());
  fc::DeviceBuffer eps(v.eps), g(std::vector<float>(rows, kNaN));
  fc::vector_noise_update(g.data(), eps.data(), pairs, rows, fitness.data(), members, 0.1f);
  EXPECT_LT(rel_l2(g.to_host(), want), 1e-5);
}

TEST_F(CudaPerturb, MatmulForwardBf16MatchesCpu) {
  for (const auto& [N, C, OC] : {std::tuple{7, 33, 65}, std::tuple{256, 768, 2304}}) {
    std::mt19937 rng(N);
    const auto x = round_bf16(random_vec(size_t(N) * C, rng)), w = round_bf16(random_vec(size_t(OC) * C, rng, 0.05f));
    const auto b = round_bf16(random_vec(OC, rng, 0.1f));
    std::vector<float> want(size_t(N) * OC);
    frugal::cpu::matmul_forward(want.data(), x.data(), w.data(), b.data(), N, C, OC);
    fc::DeviceArray<fc::bf16> dx(to_bf16(x)), dw(to_bf16(w)), db(to_bf16(b)),
        y(to_bf16(std::vector<float>(want.size(), kNaN)));
    fc::matmul_forward(y.data(), dx.data(), dw.data(), db.data(), N, C, OC);
    EXPECT_LT(rel_l2(from_bf16(y.to_host()), want), 1e-2);
  }
}

TEST(CudaPerturbShapes, KeyedForwardRejectsUnsupportedShapesBeforeAnyCudaCall) {  // runs anywhere
  float* none = nullptr;
  EXPECT_THROW(fc::lowrank_linear_forward_keyed(none, none, 1, none, nullptr, nullptr, NoiseKey{}, 3, 8, 8, nullptr,
                                                0.1f),
               frugal::Error);  // rank 3
  EXPECT_THROW(fc::lowrank_linear_forward_keyed(none, none, 1, none, nullptr, nullptr, NoiseKey{}, 1, 8, 7, nullptr,
                                                0.1f),
               frugal::Error);  // cols * rank = 7
}

}  // namespace
