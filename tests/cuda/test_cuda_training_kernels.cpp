// The CUDA twins of the CPU training kernels (encoder, layernorm backward, GELU, residual, matmul
// backward, softmax cross-entropy, token log-probabilities, attention, EST's slices, AdamW, gradient
// norm) against kernels/cpu/ and src/optim/, the ground truth. Plain C++ (g++): only
// kernels/cuda/kernels.hpp is visible.
//
// Conventions of every comparison test:
// - inputs are random, fixed seeds, never all zero;
// - outputs the kernel overwrites are poisoned with NaN first, so an element it forgets fails;
// - outputs it accumulates into (+=) start from the same random values on both sides;
// - shapes straddle the block/warp sizes (odd, below/above 32) plus a GPT-2-like one.
// Tolerances: exact where the CUDA kernel performs the same IEEE operations in the same order
// (said in kernels.hpp); otherwise |got - want| <= rtol (|want| + typical), where "typical" is the
// mean magnitude of what the kernel computed (the increment, for += outputs): rounding of the
// final value scales with |want|, reduction-order differences with the size of the summed terms.
// rtol 1e-5 for element-wise ops and row-local math, 1e-4 where long reductions are reordered.
// Without a GPU the comparison tests skip; the CudaNoDevice/CudaShapes tests run anywhere.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "kernels/cpu/attention.hpp"
#include "kernels/cpu/crossentropy.hpp"
#include "kernels/cpu/encoder.hpp"
#include "kernels/cpu/layernorm.hpp"
#include "kernels/cpu/matmul.hpp"
#include "kernels/cpu/pointwise.hpp"
#include "kernels/cuda/kernels.hpp"
#include "optim/adamw.hpp"
#include "tests/cuda/kernel_checks.hpp"

namespace {

namespace fc = frugal::cuda;
using namespace frugal::testing;

class CudaTraining : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fc::device_available()) GTEST_SKIP() << "no CUDA device visible (cudaGetDeviceCount found none): skipping";
  }
};

// ---------------------------------------------------------------- encoder

struct EncShape {
  int B, T, C, V;
};
// Odd small shape, a vocabulary of 3 (every token repeats many times: colliding dwte rows), C not a
// multiple of the 256-thread block, and GPT-2 small's embedding (V = 50257, C = 768).
const std::vector<EncShape> kEncShapes = {{2, 7, 24, 50}, {3, 40, 33, 3}, {1, 1, 1, 1}, {2, 65, 300, 17},
                                          {2, 64, 768, 50257}};

TEST_F(CudaTraining, EncoderForwardBitIdenticalToCpu) {
  std::mt19937 rng(11);
  for (const auto& s : kEncShapes) {
    SCOPED_TRACE("B=" + std::to_string(s.B) + " T=" + std::to_string(s.T) + " C=" + std::to_string(s.C) +
                 " V=" + std::to_string(s.V));
    const auto inp = random_ints(size_t(s.B) * s.T, rng, 0, s.V - 1);
    const auto wte = random_vec(size_t(s.V) * s.C, rng);
    const auto wpe = random_vec(size_t(s.T + 3) * s.C, rng);  // maxT > T, as in the model
    std::vector<float> want(size_t(s.B) * s.T * s.C);
    frugal::cpu::encoder_forward(want.data(), inp.data(), wte.data(), wpe.data(), s.B, s.T, s.C);

    fc::IntDeviceBuffer d_inp(inp);
    fc::DeviceBuffer d_wte(wte), d_wpe(wpe), d_out = poisoned(want.size());
    fc::encoder_forward(d_out.data(), d_inp.data(), d_wte.data(), d_wpe.data(), s.B, s.T, s.C);
    EXPECT_TRUE(bit_equal(d_out.to_host(), want));
  }
}

TEST_F(CudaTraining, EncoderBackwardBitIdenticalToCpu) {
  // Bit-identical: each (token, channel) sum is added in the CPU's (b, t) order (no atomics).
  std::mt19937 rng(12);
  for (const auto& s : kEncShapes) {
    SCOPED_TRACE("B=" + std::to_string(s.B) + " T=" + std::to_string(s.T) + " C=" + std::to_string(s.C) +
                 " V=" + std::to_string(s.V));
    const auto inp = random_ints(size_t(s.B) * s.T, rng, 0, s.V - 1);
    const auto dout = random_vec(size_t(s.B) * s.T * s.C, rng);
    auto dwte = random_vec(size_t(s.V) * s.C, rng);  // accumulated into
    auto dwpe = random_vec(size_t(s.T) * s.C, rng);
    fc::DeviceBuffer d_dwte(dwte), d_dwpe(dwpe), d_dout(dout);
    fc::IntDeviceBuffer d_inp(inp);
    frugal::cpu::encoder_backward(dwte.data(), dwpe.data(), dout.data(), inp.data(), s.B, s.T, s.C);
    fc::encoder_backward(d_dwte.data(), d_dwpe.data(), d_dout.data(), d_inp.data(), s.B, s.T, s.C);
    EXPECT_TRUE(bit_equal(d_dwte.to_host(), dwte)) << "dwte";
    EXPECT_TRUE(bit_equal(d_dwpe.to_host(), dwpe)) << "dwpe";
  }
}

// ---------------------------------------------------------------- layernorm backward

TEST_F(CudaTraining, LayernormBackwardMatchesCpu) {
  std::mt19937 rng(13);
  struct LnShape {
    int N, C;
  };
  // N = B*T = 14 with C = 24; C below/above the warp width and not a multiple of 32 (the column
  // reduction's tile); N not a multiple of the 8 rows a block handles or the 32 row lanes; GPT-2.
  const std::vector<LnShape> shapes = {{14, 24}, {1, 1}, {5, 3}, {33, 37}, {7, 768}, {1025, 129}, {512, 768}};
  for (const auto& s : shapes) {
    SCOPED_TRACE("N=" + std::to_string(s.N) + " C=" + std::to_string(s.C));
    const size_t NC = size_t(s.N) * s.C;
    const auto inp = random_vec(NC, rng, -1.5f, 2.5f);
    const auto weight = random_vec(size_t(s.C), rng, 0.5f, 1.5f);
    const auto bias = random_vec(size_t(s.C), rng, -0.5f, 0.5f);
    const auto dout = random_vec(NC, rng);
    std::vector<float> out(NC), mean(s.N), rstd(s.N);
    frugal::cpu::layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), weight.data(), bias.data(), s.N,
                                   s.C);
    const auto dinp0 = random_vec(NC, rng), dw0 = random_vec(size_t(s.C), rng), db0 = random_vec(size_t(s.C), rng);
    auto dinp = dinp0, dw = dw0, db = db0;
    frugal::cpu::layernorm_backward(dinp.data(), dw.data(), db.data(), dout.data(), inp.data(), weight.data(),
                                    mean.data(), rstd.data(), s.N, s.C);

    // The CPU's mean/rstd go in, so only the backward is compared.
    fc::DeviceBuffer d_dinp(dinp0), d_dw(dw0), d_db(db0), d_dout(dout), d_inp(inp), d_w(weight), d_mean(mean),
        d_rstd(rstd);
    fc::layernorm_backward(d_dinp.data(), d_dw.data(), d_db.data(), d_dout.data(), d_inp.data(), d_w.data(),
                           d_mean.data(), d_rstd.data(), s.N, s.C);
    // dinp: row-local sums over C (warp tree vs sequential): 1e-5. dweight/dbias: N-row column sums
    // reordered (32-way tree vs sequential): 1e-4.
    EXPECT_TRUE(close(d_dinp.to_host(), dinp, 1e-5, dinp0)) << "dinp";
    EXPECT_TRUE(close(d_dw.to_host(), dw, 1e-4, dw0)) << "dweight";
    EXPECT_TRUE(close(d_db.to_host(), db, 1e-4, db0)) << "dbias";
  }
}

// ---------------------------------------------------------------- GELU, residual

// n: 1, below/above one block, odd large, GPT-2's MLP activation for B*T = 256 (256 * 3072).
const std::vector<size_t> kPointwiseSizes = {1, 7, 255, 257, 100003, 256 * 3072};

TEST_F(CudaTraining, GeluForwardMatchesCpu) {
  std::mt19937 rng(14);
  for (size_t n : kPointwiseSizes) {
    SCOPED_TRACE("n=" + std::to_string(n));
    const auto inp = random_vec(n, rng, -5.0f, 5.0f);  // both tails and the curved middle
    std::vector<float> want(n);
    frugal::cpu::gelu_forward(want.data(), inp.data(), n);
    fc::DeviceBuffer d_inp(inp), d_out = poisoned(n);
    fc::gelu_forward(d_out.data(), d_inp.data(), n);
    // Unfused arithmetic like the CPU; only tanhf differs (CUDA <= 2 ulp vs glibc): 1e-5, with the
    // typical-magnitude floor covering the x << 0 tail where 1 + tanh cancels.
    EXPECT_TRUE(close(d_out.to_host(), want, 1e-5));
  }
}

TEST_F(CudaTraining, GeluBackwardMatchesCpu) {
  std::mt19937 rng(15);
  for (size_t n : kPointwiseSizes) {
    SCOPED_TRACE("n=" + std::to_string(n));
    const auto inp = random_vec(n, rng, -5.0f, 5.0f);
    const auto dout = random_vec(n, rng);
    const auto dinp0 = random_vec(n, rng);
    auto want = dinp0;
    frugal::cpu::gelu_backward(want.data(), inp.data(), dout.data(), n);
    fc::DeviceBuffer d_inp(inp), d_dout(dout), d_dinp(dinp0);
    fc::gelu_backward(d_dinp.data(), d_inp.data(), d_dout.data(), n);
    EXPECT_TRUE(close(d_dinp.to_host(), want, 1e-5, dinp0));
  }
}

TEST_F(CudaTraining, ResidualForwardAndBackwardBitIdenticalToCpu) {
  std::mt19937 rng(16);
  for (size_t n : kPointwiseSizes) {
    SCOPED_TRACE("n=" + std::to_string(n));
    const auto a = random_vec(n, rng), b = random_vec(n, rng), dout = random_vec(n, rng);
    std::vector<float> out(n);
    frugal::cpu::residual_forward(out.data(), a.data(), b.data(), n);
    fc::DeviceBuffer d_a(a), d_b(b), d_out = poisoned(n);
    fc::residual_forward(d_out.data(), d_a.data(), d_b.data(), n);
    EXPECT_TRUE(bit_equal(d_out.to_host(), out)) << "forward";

    // Backward accumulates into both (the a and b buffers double as da, db here).
    auto da = a, db = b;
    frugal::cpu::residual_backward(da.data(), db.data(), dout.data(), n);
    fc::DeviceBuffer d_dout(dout);
    fc::residual_backward(d_a.data(), d_b.data(), d_dout.data(), n);
    EXPECT_TRUE(bit_equal(d_a.to_host(), da)) << "da";
    EXPECT_TRUE(bit_equal(d_b.to_host(), db)) << "db";
  }
}

// scale: what allreduce_mean does to the summed gradients on the host, on the device.
TEST_F(CudaTraining, ScaleBitIdenticalToCpu) {
  std::mt19937 rng(17);
  for (size_t n : kPointwiseSizes) {
    SCOPED_TRACE("n=" + std::to_string(n));
    auto x = random_vec(n, rng);
    fc::DeviceBuffer d_x(x);
    fc::scale(d_x.data(), 0.25f / 3.0f, n);
    for (float& v : x) v *= 0.25f / 3.0f;
    EXPECT_TRUE(bit_equal(d_x.to_host(), x));
  }
}

// ---------------------------------------------------------------- matmul backward

// Per-element error normalised by the bound on what was summed: |init| + sum |terms|, obtained by
// running the CPU backward on absolute values. Sum-order independent, like the forward GEMM test.
double normalised_error(const std::vector<float>& got, const std::vector<float>& want,
                        const std::vector<float>& scale) {
  double worst = 0.0;
  for (size_t k = 0; k < got.size(); k++) {
    const double err = std::fabs(double(got[k]) - double(want[k]));
    const double e = scale[k] > 0 ? err / scale[k] : err;
    if (!(e <= worst)) worst = std::isnan(e) ? std::numeric_limits<double>::infinity() : e;
  }
  return worst;
}

std::vector<float> absolute(std::vector<float> v) {
  for (auto& x : v) x = std::fabs(x);
  return v;
}

TEST_F(CudaTraining, MatmulBackwardMatchesCpu) {
  std::mt19937 rng(17);
  struct MmShape {
    int N, C, OC;
  };
  // B*T=14 rows with C=24 -> 3C (the qkv projection of the odd shape); odd and 32/64/128-straddling
  // shapes; GPT-2's qkv projection for B*T = 128.
  const std::vector<MmShape> shapes = {{14, 24, 72}, {1, 1, 1}, {33, 65, 31}, {127, 129, 257}, {128, 768, 2304}};
  for (const auto& s : shapes) {
    // which = bit mask of the gradients requested: 7 = all; 6, 5, 3 = one of them null.
    for (int which : {7, 6, 5, 3}) {
      SCOPED_TRACE("N=" + std::to_string(s.N) + " C=" + std::to_string(s.C) + " OC=" + std::to_string(s.OC) +
                   " which=" + std::to_string(which));
      const bool want_dinp = which & 1, want_dw = which & 2, want_db = which & 4;
      const auto inp = random_vec(size_t(s.N) * s.C, rng), weight = random_vec(size_t(s.OC) * s.C, rng),
                 dout = random_vec(size_t(s.N) * s.OC, rng);
      const auto dinp0 = random_vec(size_t(s.N) * s.C, rng), dw0 = random_vec(size_t(s.OC) * s.C, rng),
                 db0 = random_vec(size_t(s.OC), rng);
      auto dinp = dinp0, dw = dw0, db = db0;
      frugal::cpu::matmul_backward(want_dinp ? dinp.data() : nullptr, want_dw ? dw.data() : nullptr,
                                   want_db ? db.data() : nullptr, dout.data(), inp.data(), weight.data(), s.N, s.C,
                                   s.OC);
      auto sc_dinp = absolute(dinp0), sc_dw = absolute(dw0), sc_db = absolute(db0);
      frugal::cpu::matmul_backward(sc_dinp.data(), sc_dw.data(), sc_db.data(), absolute(dout).data(),
                                   absolute(inp).data(), absolute(weight).data(), s.N, s.C, s.OC);

      fc::DeviceBuffer d_dinp(dinp0), d_dw(dw0), d_db(db0), d_dout(dout), d_inp(inp), d_w(weight);
      fc::matmul_backward(want_dinp ? d_dinp.data() : nullptr, want_dw ? d_dw.data() : nullptr,
                          want_db ? d_db.data() : nullptr, d_dout.data(), d_inp.data(), d_w.data(), s.N, s.C, s.OC);
      // Plain FP32 cuBLAS (no TF32) and a reordered column sum: 1e-5 of the summed magnitudes, the
      // forward GEMM test's bound. Gradients not requested must be left exactly as they were.
      const auto g_dinp = d_dinp.to_host(), g_dw = d_dw.to_host(), g_db = d_db.to_host();
      EXPECT_LE(normalised_error(g_dinp, dinp, sc_dinp), 1e-5) << "dinp";
      EXPECT_LE(normalised_error(g_dw, dw, sc_dw), 1e-5) << "dweight";
      EXPECT_LE(normalised_error(g_db, db, sc_db), 1e-5) << "dbias";
      if (!want_dinp) {
        EXPECT_TRUE(bit_equal(g_dinp, dinp0)) << "dinp must stay untouched";
      }
      if (!want_dw) {
        EXPECT_TRUE(bit_equal(g_dw, dw0)) << "dweight must stay untouched";
      }
      if (!want_db) {
        EXPECT_TRUE(bit_equal(g_db, db0)) << "dbias must stay untouched";
      }
    }
  }
}

// ---------------------------------------------------------------- softmax cross-entropy

struct CeShape {
  int N, V, Vp;
};
// The odd shape (V = 50 padded to 64), V = Vp, V = 1, V not a multiple of the 256-thread block, and
// GPT-2's padded vocabulary (50257 -> 50304).
const std::vector<CeShape> kCeShapes = {{14, 50, 64}, {3, 1, 1}, {5, 257, 257}, {9, 1000, 1003}, {4, 50257, 50304}};

TEST_F(CudaTraining, SoftmaxCrossentropyForwardMatchesCpu) {
  std::mt19937 rng(18);
  for (const auto& s : kCeShapes) {
    SCOPED_TRACE("N=" + std::to_string(s.N) + " V=" + std::to_string(s.V) + " Vp=" + std::to_string(s.Vp));
    const auto logits = random_vec(size_t(s.N) * s.Vp, rng, -8.0f, 8.0f);  // padding logits are junk: ignored
    const auto targets = random_ints(size_t(s.N), rng, 0, s.V - 1);
    std::vector<float> probs(size_t(s.N) * s.Vp), losses(s.N);
    frugal::cpu::softmax_crossentropy_forward(probs.data(), losses.data(), logits.data(), targets.data(), s.N, s.V,
                                              s.Vp);
    fc::DeviceBuffer d_logits(logits), d_probs = poisoned(probs.size()), d_losses = poisoned(losses.size());
    fc::IntDeviceBuffer d_targets(targets);
    fc::softmax_crossentropy_forward(d_probs.data(), d_losses.data(), d_logits.data(), d_targets.data(), s.N, s.V,
                                     s.Vp);
    // probs: expf (<= 2 ulp) and a reordered double sum: a few ulp, 1e-5 relative; the padding
    // must be exactly 0. losses: log-sum-exp in double on both sides: 1e-5.
    const auto got = d_probs.to_host();
    for (int i = 0; i < s.N; i++)
      for (int v = s.V; v < s.Vp; v++) ASSERT_EQ(got[size_t(i) * s.Vp + v], 0.0f) << "padding row " << i;
    EXPECT_TRUE(close(got, probs, 1e-5)) << "probs";
    EXPECT_TRUE(close(d_losses.to_host(), losses, 1e-5)) << "losses";
  }
}

TEST_F(CudaTraining, SoftmaxCrossentropyBackwardBitIdenticalToCpu) {
  // Same probs in (the CPU's), same two unfused float operations: bit-identical, padding 0.
  std::mt19937 rng(19);
  for (const auto& s : kCeShapes) {
    SCOPED_TRACE("N=" + std::to_string(s.N) + " V=" + std::to_string(s.V) + " Vp=" + std::to_string(s.Vp));
    const auto logits = random_vec(size_t(s.N) * s.Vp, rng, -8.0f, 8.0f);
    const auto targets = random_ints(size_t(s.N), rng, 0, s.V - 1);
    std::vector<float> probs(size_t(s.N) * s.Vp), losses(s.N), dlogits(size_t(s.N) * s.Vp);
    frugal::cpu::softmax_crossentropy_forward(probs.data(), losses.data(), logits.data(), targets.data(), s.N, s.V,
                                              s.Vp);
    const float dloss = 1.0f / static_cast<float>(s.N);  // mean over the batch, as the model does
    frugal::cpu::softmax_crossentropy_backward(dlogits.data(), probs.data(), targets.data(), dloss, s.N, s.V, s.Vp);
    fc::DeviceBuffer d_probs(probs), d_dlogits = poisoned(dlogits.size());
    fc::IntDeviceBuffer d_targets(targets);
    fc::softmax_crossentropy_backward(d_dlogits.data(), d_probs.data(), d_targets.data(), dloss, s.N, s.V, s.Vp);
    EXPECT_TRUE(bit_equal(d_dlogits.to_host(), dlogits));
  }
}

TEST_F(CudaTraining, TokenLogprobsMatchCpu) {
  // The RL / SFT head: log-probabilities and entropies of the targets at two temperatures, and the
  // weighted gradient with some rows of weight 0 (padding: exactly 0) and the padded columns 0.
  std::mt19937 rng(23);
  for (const auto& s : kCeShapes) {
    for (const float inv_temp : {1.0f, 1.0f / 0.7f}) {
      SCOPED_TRACE("N=" + std::to_string(s.N) + " V=" + std::to_string(s.V) + " inv_temp=" + std::to_string(inv_temp));
      const auto logits = random_vec(size_t(s.N) * s.Vp, rng, -8.0f, 8.0f);
      const auto targets = random_ints(size_t(s.N), rng, 0, s.V - 1);
      auto weight = random_vec(size_t(s.N), rng);
      for (size_t i = 0; i < weight.size(); i += 3) weight[i] = 0.0f;
      std::vector<float> logp(s.N), entropy(s.N), dlogits(size_t(s.N) * s.Vp);
      frugal::cpu::token_logprob_forward(logp.data(), entropy.data(), logits.data(), targets.data(), s.N, s.V, s.Vp,
                                         inv_temp);
      frugal::cpu::token_logprob_backward(dlogits.data(), logits.data(), targets.data(), weight.data(), s.N, s.V, s.Vp,
                                          inv_temp);
      fc::DeviceBuffer d_logits(logits), d_weight(weight), d_logp = poisoned(logp.size()),
          d_entropy = poisoned(entropy.size()), d_dlogits = poisoned(dlogits.size());
      fc::IntDeviceBuffer d_targets(targets);
      fc::token_logprob_forward(d_logp.data(), d_entropy.data(), d_logits.data(), d_targets.data(), s.N, s.V, s.Vp,
                                inv_temp);
      fc::token_logprob_backward(d_dlogits.data(), d_logits.data(), d_targets.data(), d_weight.data(), s.N, s.V, s.Vp,
                                 inv_temp);
      // logp, entropy: log-sum-exp in double on both sides, expf vs std::exp and a reordered double
      // sum: 1e-5. dlogits: the same float operations per element with the sum's rounding: 1e-5.
      EXPECT_TRUE(close(d_logp.to_host(), logp, 1e-5)) << "logp";
      EXPECT_TRUE(close(d_entropy.to_host(), entropy, 1e-5)) << "entropy";
      const auto got = d_dlogits.to_host();
      for (int i = 0; i < s.N; i++)
        for (int v = (weight[size_t(i)] == 0.0f ? 0 : s.V); v < s.Vp; v++)
          ASSERT_EQ(got[size_t(i) * s.Vp + v], 0.0f) << "row " << i << " column " << v << " must be 0";
      EXPECT_TRUE(close(got, dlogits, 1e-5)) << "dlogits";
      // Without entropies the log-probabilities are the same.
      fc::DeviceBuffer d_logp2 = poisoned(logp.size());
      fc::token_logprob_forward(d_logp2.data(), nullptr, d_logits.data(), d_targets.data(), s.N, s.V, s.Vp, inv_temp);
      EXPECT_TRUE(bit_equal(d_logp2.to_host(), d_logp.to_host()));
    }
  }
}

// ---------------------------------------------------------------- attention

struct AttShape {
  int B, T, C, NH;
};
// The odd shape (hs = 8 < a warp), T = 1, T straddling 32 with hs = 32, hs = 40 (lanes loop over
// channels unevenly), T = 70 (3 key passes per lane), and GPT-2 small (hs = 64) at T = 256; B < NH
// and B >= NH both, so the GEMMs batch over sequences in some and over heads in others.
const std::vector<AttShape> kAttShapes = {{2, 7, 24, 3}, {1, 1, 8, 2},  {2, 33, 64, 2},
                                          {1, 31, 80, 2}, {1, 70, 96, 3}, {2, 256, 768, 12}};

std::string att_trace(const AttShape& s) {
  return "B=" + std::to_string(s.B) + " T=" + std::to_string(s.T) + " C=" + std::to_string(s.C) +
         " NH=" + std::to_string(s.NH);
}

TEST_F(CudaTraining, AttentionForwardMatchesCpu) {
  std::mt19937 rng(20);
  for (const auto& s : kAttShapes) {
    SCOPED_TRACE(att_trace(s));
    const auto qkv = random_vec(size_t(s.B) * s.T * 3 * s.C, rng, -2.0f, 2.0f);  // peaked softmaxes too
    std::vector<float> out(size_t(s.B) * s.T * s.C), att(size_t(s.B) * s.NH * s.T * s.T);
    frugal::cpu::attention_forward(out.data(), att.data(), qkv.data(), s.B, s.T, s.C, s.NH);
    fc::DeviceBuffer d_qkv(qkv), d_out = poisoned(out.size()), d_att = poisoned(att.size());
    fc::attention_forward(d_out.data(), d_att.data(), d_qkv.data(), s.B, s.T, s.C, s.NH);
    // att: the scores come from cuBLAS (another dot order: ~1e-7 of |s| <= ~8 here), then expf and
    // the reordered softmax sum: 1e-5. Above the diagonal exactly 0 (the CPU layout the backward reads).
    const auto g_att = d_att.to_host();
    for (size_t r = 0; r < size_t(s.B) * s.NH * s.T; r++)
      for (int t2 = int(r % s.T) + 1; t2 < s.T; t2++) ASSERT_EQ(g_att[r * s.T + t2], 0.0f) << "row " << r;
    EXPECT_TRUE(close(g_att, att, 1e-5)) << "att";
    // out: att-weighted sums of v, a GEMM over up to T terms: 1e-5.
    EXPECT_TRUE(close(d_out.to_host(), out, 1e-5)) << "out";
  }
}

TEST_F(CudaTraining, AttentionBackwardMatchesCpu) {
  std::mt19937 rng(21);
  for (const auto& s : kAttShapes) {
    SCOPED_TRACE(att_trace(s));
    const auto qkv = random_vec(size_t(s.B) * s.T * 3 * s.C, rng, -2.0f, 2.0f);
    std::vector<float> out(size_t(s.B) * s.T * s.C), att(size_t(s.B) * s.NH * s.T * s.T);
    frugal::cpu::attention_forward(out.data(), att.data(), qkv.data(), s.B, s.T, s.C, s.NH);
    const auto dout = random_vec(out.size(), rng);
    const auto dqkv0 = random_vec(qkv.size(), rng, -0.1f, 0.1f);  // accumulated into
    auto dqkv = dqkv0;
    frugal::cpu::attention_backward(dqkv.data(), dout.data(), qkv.data(), att.data(), s.B, s.T, s.C, s.NH);
    // The CPU's att goes in, so only the backward is compared.
    fc::DeviceBuffer d_qkv(qkv), d_att(att), d_dout(dout), d_dqkv(dqkv0);
    fc::attention_backward(d_dqkv.data(), d_dout.data(), d_qkv.data(), d_att.data(), s.B, s.T, s.C, s.NH);
    // dq/dk/dv sum up to T terms per element, in a different grouping than the CPU's (which adds each
    // term straight into dqkv), after the softmax backward's cancellation a (datt - dot): 1e-4.
    EXPECT_TRUE(close(d_dqkv.to_host(), dqkv, 1e-4, dqkv0));
  }
}

TEST_F(CudaTraining, AttentionBackwardRunsTwiceTheSame) {
  // Deterministic (no atomics) and the scratch reuse is safe: two runs are bit-identical, and a
  // larger call in between (growing the scratch) changes nothing.
  std::mt19937 rng(22);
  const AttShape s{2, 33, 64, 2}, big{1, 70, 96, 3};
  const auto qkv = random_vec(size_t(s.B) * s.T * 3 * s.C, rng);
  std::vector<float> out(size_t(s.B) * s.T * s.C), att(size_t(s.B) * s.NH * s.T * s.T);
  frugal::cpu::attention_forward(out.data(), att.data(), qkv.data(), s.B, s.T, s.C, s.NH);
  const auto dout = random_vec(out.size(), rng);
  fc::DeviceBuffer d_qkv(qkv), d_att(att), d_dout(dout);
  std::vector<std::vector<float>> results;
  for (int run = 0; run < 2; run++) {
    fc::DeviceBuffer d_dqkv(std::vector<float>(qkv.size(), 0.0f));
    fc::attention_backward(d_dqkv.data(), d_dout.data(), d_qkv.data(), d_att.data(), s.B, s.T, s.C, s.NH);
    results.push_back(d_dqkv.to_host());
    if (run == 0) {
      fc::DeviceBuffer b_qkv(size_t(big.B) * big.T * 3 * big.C), b_att(size_t(big.B) * big.NH * big.T * big.T),
          b_dout(size_t(big.B) * big.T * big.C), b_dqkv(b_qkv.size());
      b_qkv.zero(), b_att.zero(), b_dout.zero(), b_dqkv.zero();
      fc::attention_backward(b_dqkv.data(), b_dout.data(), b_qkv.data(), b_att.data(), big.B, big.T, big.C, big.NH);
    }
  }
  EXPECT_TRUE(bit_equal(results[1], results[0]));
}

// ---------------------------------------------------------------- EST slices

TEST_F(CudaTraining, SliceGatherAndScatterBitIdenticalToLoops) {
  // The index lists of a GPT-2-like block (C = 48, 4 heads of 12; 2 kept heads; 70 of 192 units):
  // rows of W_qkv, columns of W_O, rows of W_fc, columns of W_proj, against plain loops.
  std::mt19937 rng(24);
  const int C = 48, M = 4 * C;
  const std::vector<int> rows = {12, 13, 20, 47, 60, 61, 100, 143};  // distinct, any order of blocks
  const std::vector<int> cols = {0, 5, 17, 18, 19, 33, 70, 101, 150, 191};
  const float scale = 2.5f;
  const auto src_rows = random_vec(size_t(3 * C) * C, rng);  // (3C, C)
  const auto src_cols = random_vec(size_t(C) * M, rng);      // (C, M)
  fc::IntDeviceBuffer d_rows(rows), d_cols(cols);
  const int nr = int(rows.size()), nc = int(cols.size());

  std::vector<float> want_r(size_t(nr) * C), want_c(size_t(C) * nc);
  for (int j = 0; j < nr; j++)
    for (int i = 0; i < C; i++) want_r[size_t(j) * C + i] = scale * src_rows[size_t(rows[j]) * C + i];
  for (int o = 0; o < C; o++)
    for (int j = 0; j < nc; j++) want_c[size_t(o) * nc + j] = scale * src_cols[size_t(o) * M + cols[j]];
  fc::DeviceBuffer d_src_r(src_rows), d_src_c(src_cols), d_r = poisoned(want_r.size()), d_c = poisoned(want_c.size());
  fc::gather_rows(d_r.data(), d_src_r.data(), d_rows.data(), nr, C, scale);
  fc::gather_columns(d_c.data(), d_src_c.data(), d_cols.data(), C, M, nc, scale);
  EXPECT_TRUE(bit_equal(d_r.to_host(), want_r)) << "gather_rows";
  EXPECT_TRUE(bit_equal(d_c.to_host(), want_c)) << "gather_columns";

  // Scatter the slices back, scaled, into random gradients: only the listed rows/columns change.
  auto dst_r = random_vec(src_rows.size(), rng), dst_c = random_vec(src_cols.size(), rng);
  fc::DeviceBuffer d_dst_r(dst_r), d_dst_c(dst_c);
  for (int j = 0; j < nr; j++)
    for (int i = 0; i < C; i++) dst_r[size_t(rows[j]) * C + i] += scale * want_r[size_t(j) * C + i];
  for (int o = 0; o < C; o++)
    for (int j = 0; j < nc; j++) dst_c[size_t(o) * M + cols[j]] += scale * want_c[size_t(o) * nc + j];
  fc::scatter_add_rows(d_dst_r.data(), d_r.data(), d_rows.data(), nr, C, scale);
  fc::scatter_add_columns(d_dst_c.data(), d_c.data(), d_cols.data(), C, M, nc, scale);
  EXPECT_TRUE(bit_equal(d_dst_r.to_host(), dst_r)) << "scatter_add_rows";
  EXPECT_TRUE(bit_equal(d_dst_c.to_host(), dst_c)) << "scatter_add_columns";
}

// ---------------------------------------------------------------- AdamW, gradient norm

// One tensor of n parameters through `steps` AdamW steps on both sides (fresh random grads each step).
void run_adamw(size_t n, float weight_decay, bool masked, int steps, std::mt19937& rng) {
  frugal::AdamWConfig cfg;
  cfg.lr = 3e-3f, cfg.beta1 = 0.9f, cfg.beta2 = 0.95f, cfg.eps = 1e-8f, cfg.weight_decay = weight_decay;
  frugal::AdamW opt;
  opt.config = cfg;
  opt.m = random_vec(n, rng, -0.01f, 0.01f);  // mid-training moments, not zeros
  opt.v = random_vec(n, rng, 0.0f, 1e-4f);
  opt.decay = {1};  // the tensor's decay flag: wd below is its effective weight decay
  opt.tensors = {{0, n}};
  auto params = random_vec(n, rng);
  std::vector<uint8_t> keep;
  if (masked) {
    keep.resize(n);
    for (auto& k : keep) k = static_cast<uint8_t>(rng() % 2);
  }
  fc::DeviceBuffer d_p(params), d_m(opt.m), d_v(opt.v), d_g(n);
  fc::ByteDeviceBuffer d_keep(keep);
  const auto params0 = params;
  for (int step = 0; step < steps; step++) {
    // Grads of mixed scales, including some tiny ones (where eps matters).
    auto grads = random_vec(n, rng);
    for (size_t i = 0; i < n; i += 7) grads[i] *= 1e-6f;
    frugal::adamw_step(opt, params, grads, cfg.lr, keep);
    d_g.upload(grads.data(), n);
    fc::adamw_update(d_p.data(), d_g.data(), d_m.data(), d_v.data(), n, cfg.lr, cfg.beta1, cfg.beta2, cfg.eps,
                     weight_decay, opt.t, masked ? d_keep.data() : nullptr);
  }
  // Same IEEE operations in the same order (unfused) and the same host-side bias corrections: expected
  // bit-identical; compared at 1e-6 so a stray ulp reports its size instead of just "not equal".
  EXPECT_TRUE(close(d_p.to_host(), params, 1e-6, params0)) << "params";
  EXPECT_TRUE(close(d_m.to_host(), opt.m, 1e-6)) << "m";
  EXPECT_TRUE(close(d_v.to_host(), opt.v, 1e-6)) << "v";
  if (masked) {
    const auto got = d_p.to_host();
    for (size_t i = 0; i < n; i++) {
      if (!keep[i]) {
        ASSERT_EQ(got[i], params0[i]) << "masked parameter " << i << " moved";
      }
    }
  }
}

TEST_F(CudaTraining, AdamwUpdateMatchesCpu) {
  std::mt19937 rng(23);
  for (size_t n : {size_t{1}, size_t{255}, size_t{257}, size_t{100003}, size_t{768} * 2304})
    for (float wd : {0.1f, 0.0f}) {
      SCOPED_TRACE("n=" + std::to_string(n) + " wd=" + std::to_string(wd));
      run_adamw(n, wd, /*masked=*/false, /*steps=*/3, rng);
    }
}

TEST_F(CudaTraining, AdamwUpdateWithMaskMatchesCpu) {
  std::mt19937 rng(24);
  for (size_t n : {size_t{257}, size_t{100003}}) {
    SCOPED_TRACE("n=" + std::to_string(n));
    run_adamw(n, 0.1f, /*masked=*/true, /*steps=*/2, rng);
  }
}

// n: 1, below/above one 256-thread block, more than the 1024 first-pass blocks cover in one sweep,
// GPT-2 small's parameter count (124M: the real call's size).
const std::vector<size_t> kNormSizes = {1, 255, 257, 1000003, 124439808};

TEST_F(CudaTraining, GlobalNormMatchesCpu) {
  std::mt19937 rng(25);
  for (size_t n : kNormSizes) {
    SCOPED_TRACE("n=" + std::to_string(n));
    const auto grads = random_vec(n, rng, -0.01f, 0.01f);
    const double want = frugal::global_norm(grads);
    fc::DeviceBuffer d_g(grads);
    const double got = fc::global_norm(d_g.data(), n);
    // Double sums of float squares on both sides, only the order differs: ~n * 1e-16 relative.
    EXPECT_NEAR(got, want, 1e-10 * want);
    EXPECT_EQ(fc::global_norm(d_g.data(), n), got) << "not deterministic";
  }
  EXPECT_EQ(fc::global_norm(nullptr, 0), 0.0);
}

TEST_F(CudaTraining, ClipGradNormMatchesCpu) {
  std::mt19937 rng(26);
  for (size_t n : {size_t{257}, size_t{1000003}}) {
    // max_norm below the norm (clips), above it (no-op), 0 (off).
    for (double max_norm : {0.05, 1e6, 0.0}) {
      SCOPED_TRACE("n=" + std::to_string(n) + " max_norm=" + std::to_string(max_norm));
      auto grads = random_vec(n, rng, -0.01f, 0.01f);
      fc::DeviceBuffer d_g(grads);
      const auto before = grads;
      const double want = frugal::clip_grad_norm(grads, max_norm);
      const double got = fc::clip_grad_norm(d_g.data(), n, max_norm);
      EXPECT_NEAR(got, want, 1e-10 * want);
      // The scale is one float computed from nearly equal norms: a 1-ulp difference at most.
      EXPECT_TRUE(close(d_g.to_host(), grads, 1e-6));
      if (max_norm == 0.0 || max_norm > want) {
        EXPECT_TRUE(bit_equal(d_g.to_host(), before)) << "must not scale";
      }
    }
  }
}

// ---------------------------------------------------------------- without a device / bad shapes

TEST(CudaNoDevice, KernelCallsThrowFrugalErrors) {
  if (fc::device_available()) GTEST_SKIP() << "a CUDA device is present: the no-device error path cannot be hit";
  float* const none = nullptr;  // typed: the kernels have fp32 and bf16 overloads
  // A launch without a device fails at the launch check, naming the kernel.
  try {
    fc::gelu_forward(none, none, 16);
    FAIL() << "a kernel launch without a device should have thrown";
  } catch (const frugal::Error& e) {
    EXPECT_NE(std::string(e.what()).find("gelu_forward_kernel launch"), std::string::npos) << e.what();
  }
  // The norm needs device scratch first: that allocation is what fails.
  EXPECT_THROW(fc::global_norm(nullptr, 16), frugal::Error);
  // Empty work never touches the device, so it cannot fail.
  EXPECT_NO_THROW(fc::residual_forward(none, none, none, 0));
  EXPECT_NO_THROW(fc::matmul_backward(none, none, none, none, none, none, 0, 4, 4));
}

TEST(CudaShapes, BadShapesThrowBeforeAnyCudaCall) {
  // Shape checks run on the host first, so these throw with or without a device.
  float* const none = nullptr;  // typed: the kernels have fp32 and bf16 overloads
  EXPECT_THROW(fc::attention_forward(none, nullptr, nullptr, 1, 4, 10, 3), frugal::Error);  // C % NH != 0
  EXPECT_THROW(fc::attention_backward(none, nullptr, nullptr, nullptr, 1, 4, 8, 0), frugal::Error);
  EXPECT_THROW(fc::softmax_crossentropy_forward(none, none, none, nullptr, 2, 65, 64), frugal::Error);
  EXPECT_THROW(fc::softmax_crossentropy_backward(none, nullptr, nullptr, 1.0f, 2, 0, 64), frugal::Error);
  EXPECT_THROW(fc::encoder_forward(none, nullptr, nullptr, nullptr, -1, 4, 8), frugal::Error);
  EXPECT_THROW(fc::layernorm_backward(none, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 4, 0),
               frugal::Error);
  EXPECT_THROW(fc::matmul_backward(none, none, none, none, none, none, 4, -1, 4), frugal::Error);
  EXPECT_THROW(fc::adamw_update(nullptr, nullptr, nullptr, nullptr, 4, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0),
               frugal::Error);
}

}  // namespace
