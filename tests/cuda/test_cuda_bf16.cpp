// The bf16-activation overloads of the CUDA training kernels (model.dtype = bf16) against the CPU
// kernels. Every input is rounded to bf16 first and the CPU computes on those very values, so what
// is compared is the kernel's own rounding: fp32 arithmetic inside, each stored bf16 value rounded
// once (8 significant bits: relative error <= 2^-8), with reordered fp32 sums in the GEMMs and
// reductions. Tolerances (test_cuda_training_kernels.cpp's normalised error):
//   1e-2  bf16 outputs of one rounding (or two: a += into a bf16 buffer)
//   fp32 outputs computed from bf16 inputs (statistics, probabilities, losses, log-probabilities,
//         parameter gradients): 1e-4
//   attention, checked step by step on the device's own intermediates: att 3e-2 (the scores are
//         rounded to bf16 before the softmax: |s| 2^-8 absolute, ~2% in exp at |s| ~ 5, then the
//         softmax's own two roundings), out from the device's att 1e-2, dqkv 5e-2 (the score
//         gradient is rounded in bf16 before the softmax backward, as in llm.c)
// bf16 outputs are poisoned with bf16 NaN first, so an element the kernel forgets fails.
// Without a GPU the tests skip.
#include <gtest/gtest.h>

#include <cstddef>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/attention.hpp"
#include "kernels/cpu/crossentropy.hpp"
#include "kernels/cpu/encoder.hpp"
#include "kernels/cpu/layernorm.hpp"
#include "kernels/cpu/matmul.hpp"
#include "kernels/cpu/pointwise.hpp"
#include "kernels/cuda/kernels.hpp"
#include "tests/cuda/kernel_checks.hpp"

namespace {

namespace fc = frugal::cuda;
namespace cpu = frugal::cpu;
using namespace frugal::testing;
using Bf16Buffer = fc::DeviceArray<fc::bf16>;

constexpr double kBf16Tol = 1e-2, kFp32FromBf16Tol = 1e-4, kAttTol = 3e-2, kDqkvTol = 5e-2;

// x with every element rounded to bf16 (what the device holds), as floats.
std::vector<float> rounded(std::vector<float> x) {
  for (float& v : x) v = fc::from_bf16(fc::to_bf16(v));
  return x;
}
Bf16Buffer up(const std::vector<float>& x) {
  std::vector<fc::bf16> h(x.size());
  for (size_t i = 0; i < x.size(); i++) h[i] = fc::to_bf16(x[i]);
  return Bf16Buffer(h);
}
std::vector<float> down(const Bf16Buffer& d) {
  const std::vector<fc::bf16> h = d.to_host();
  std::vector<float> x(h.size());
  for (size_t i = 0; i < h.size(); i++) x[i] = fc::from_bf16(h[i]);
  return x;
}
Bf16Buffer poisoned16(size_t n) { return up(std::vector<float>(n, kNaN)); }
// Random values already on the bf16 grid.
std::vector<float> random16(size_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  return rounded(random_vec(n, rng, lo, hi));
}

class CudaBf16 : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fc::device_available()) GTEST_SKIP() << "no CUDA device visible (cudaGetDeviceCount found none): skipping";
  }
};

const std::vector<size_t> kSizes = {1, 31, 257, 100003};

TEST_F(CudaBf16, PointwiseOpsMatchCpu) {
  std::mt19937 rng(31);
  for (size_t n : kSizes) {
    SCOPED_TRACE("n=" + std::to_string(n));
    const auto x = random16(n, rng, -5.0f, 5.0f), y = random16(n, rng), acc = random16(n, rng);
    std::vector<float> want(n);

    cpu::gelu_forward(want.data(), x.data(), n);
    Bf16Buffer dx = up(x), dy = up(y), dout = poisoned16(n);
    fc::gelu_forward(dout.data(), dx.data(), n);
    EXPECT_TRUE(close(down(dout), want, kBf16Tol)) << "gelu forward";

    want = acc;
    cpu::gelu_backward(want.data(), x.data(), y.data(), n);
    Bf16Buffer dacc = up(acc);
    fc::gelu_backward(dacc.data(), dx.data(), dy.data(), n);
    EXPECT_TRUE(close(down(dacc), want, kBf16Tol, acc)) << "gelu backward";

    cpu::residual_forward(want.data(), x.data(), y.data(), n);
    dout = poisoned16(n);
    fc::residual_forward(dout.data(), dx.data(), dy.data(), n);
    EXPECT_TRUE(close(down(dout), want, kBf16Tol)) << "residual";

    want = acc;
    for (size_t i = 0; i < n; i++) want[i] += y[i];
    dacc = up(acc);
    fc::accumulate(dacc.data(), dy.data(), n);
    EXPECT_TRUE(close(down(dacc), want, kBf16Tol, acc)) << "accumulate";

    dout = poisoned16(n);
    fc::copy(dout.data(), dy.data(), n);
    EXPECT_EQ(down(dout), y) << "copy";
  }
}

TEST_F(CudaBf16, EncoderMatchesCpu) {
  std::mt19937 rng(32);
  const int B = 3, T = 17, C = 96, V = 40;
  const auto inp = random_ints(size_t(B) * T, rng, 0, V - 1);
  const auto wte = random_vec(size_t(V) * C, rng), wpe = random_vec(size_t(T) * C, rng);
  std::vector<float> want(size_t(B) * T * C);
  cpu::encoder_forward(want.data(), inp.data(), wte.data(), wpe.data(), B, T, C);
  fc::IntDeviceBuffer d_inp(inp);
  fc::DeviceBuffer d_wte(wte), d_wpe(wpe);
  Bf16Buffer out = poisoned16(want.size());
  fc::encoder_forward(out.data(), d_inp.data(), d_wte.data(), d_wpe.data(), B, T, C);
  EXPECT_TRUE(close(down(out), want, kBf16Tol)) << "forward";

  // The backward reads bf16 gradients and sums them into the fp32 embeddings' gradients.
  const auto dout = random16(want.size(), rng);
  auto dwte = random_vec(wte.size(), rng), dwpe = random_vec(wpe.size(), rng);
  const auto dwte0 = dwte, dwpe0 = dwpe;
  cpu::encoder_backward(dwte.data(), dwpe.data(), dout.data(), inp.data(), B, T, C);
  fc::DeviceBuffer d_dwte(dwte0), d_dwpe(dwpe0);
  Bf16Buffer d_dout = up(dout);
  fc::encoder_backward(d_dwte.data(), d_dwpe.data(), d_dout.data(), d_inp.data(), B, T, C);
  EXPECT_TRUE(close(d_dwte.to_host(), dwte, kFp32FromBf16Tol, dwte0)) << "dwte";
  EXPECT_TRUE(close(d_dwpe.to_host(), dwpe, kFp32FromBf16Tol, dwpe0)) << "dwpe";
}

TEST_F(CudaBf16, LayernormMatchesCpu) {
  std::mt19937 rng(33);
  for (const auto& [N, C] : std::vector<std::pair<int, int>>{{7, 24}, {65, 768}}) {
    SCOPED_TRACE("N=" + std::to_string(N) + " C=" + std::to_string(C));
    const auto inp = random16(size_t(N) * C, rng, -2.0f, 3.0f);
    const auto w = random_vec(C, rng, 0.5f, 1.5f), b = random_vec(C, rng);
    std::vector<float> out(inp.size()), mean(N), rstd(N);
    cpu::layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), w.data(), b.data(), N, C);
    Bf16Buffer d_inp = up(inp), d_out = poisoned16(out.size());
    fc::DeviceBuffer d_w(w), d_b(b), d_mean = poisoned(N), d_rstd = poisoned(N);
    fc::layernorm_forward(d_out.data(), d_mean.data(), d_rstd.data(), d_inp.data(), d_w.data(), d_b.data(), N, C);
    EXPECT_TRUE(close(down(d_out), out, kBf16Tol)) << "out";
    EXPECT_TRUE(close(d_mean.to_host(), mean, kFp32FromBf16Tol)) << "mean";
    EXPECT_TRUE(close(d_rstd.to_host(), rstd, kFp32FromBf16Tol)) << "rstd";

    const auto dout = random16(inp.size(), rng), dinp0 = random16(inp.size(), rng);
    auto dinp = dinp0;
    std::vector<float> dw(C, 0.1f), db(C, -0.2f);
    const auto dw0 = dw, db0 = db;
    cpu::layernorm_backward(dinp.data(), dw.data(), db.data(), dout.data(), inp.data(), w.data(), mean.data(),
                            rstd.data(), N, C);
    Bf16Buffer d_dinp = up(dinp0), d_dout = up(dout);
    fc::DeviceBuffer d_dw(dw0), d_db(db0);
    fc::layernorm_backward(d_dinp.data(), d_dw.data(), d_db.data(), d_dout.data(), d_inp.data(), d_w.data(),
                           d_mean.data(), d_rstd.data(), N, C);
    EXPECT_TRUE(close(down(d_dinp), dinp, kBf16Tol, dinp0)) << "dinp";
    EXPECT_TRUE(close(d_dw.to_host(), dw, kFp32FromBf16Tol, dw0)) << "dweight";
    EXPECT_TRUE(close(d_db.to_host(), db, kFp32FromBf16Tol, db0)) << "dbias";
  }
}

TEST_F(CudaBf16, MatmulMatchesCpu) {
  // fp32 weights are rounded to bf16 on the device; the CPU gets them pre-rounded, so both multiply
  // the same values.
  std::mt19937 rng(34);
  for (const auto& [N, C, OC] : std::vector<std::tuple<int, int, int>>{{5, 8, 3}, {64, 96, 288}, {130, 768, 64}}) {
    SCOPED_TRACE("N=" + std::to_string(N) + " C=" + std::to_string(C) + " OC=" + std::to_string(OC));
    const auto inp = random16(size_t(N) * C, rng), w = random16(size_t(OC) * C, rng), b = random_vec(OC, rng);
    std::vector<float> out(size_t(N) * OC);
    cpu::matmul_forward(out.data(), inp.data(), w.data(), b.data(), N, C, OC);
    Bf16Buffer d_inp = up(inp), d_out = poisoned16(out.size());
    fc::DeviceBuffer d_w(w), d_b(b);
    fc::matmul_forward(d_out.data(), d_inp.data(), d_w.data(), d_b.data(), N, C, OC);
    EXPECT_TRUE(close(down(d_out), out, kBf16Tol)) << "forward";
    fc::matmul_forward(d_out.data(), d_inp.data(), d_w.data(), nullptr, N, C, OC);  // no bias
    cpu::matmul_forward(out.data(), inp.data(), w.data(), nullptr, N, C, OC);
    EXPECT_TRUE(close(down(d_out), out, kBf16Tol)) << "forward without bias";

    const auto dout = random16(out.size(), rng), dinp0 = random16(inp.size(), rng);
    const auto dw0 = random_vec(w.size(), rng), db0 = random_vec(OC, rng);
    auto dinp = dinp0, dw = dw0, db = db0;
    cpu::matmul_backward(dinp.data(), dw.data(), db.data(), dout.data(), inp.data(), w.data(), N, C, OC);
    Bf16Buffer d_dinp = up(dinp0), d_dout = up(dout);
    fc::DeviceBuffer d_dw(dw0), d_db(db0);
    fc::matmul_backward(d_dinp.data(), d_dw.data(), d_db.data(), d_dout.data(), d_inp.data(), d_w.data(), N, C, OC);
    EXPECT_TRUE(close(down(d_dinp), dinp, kBf16Tol, dinp0)) << "dinp";
    EXPECT_TRUE(close(d_dw.to_host(), dw, kFp32FromBf16Tol, dw0)) << "dweight";
    EXPECT_TRUE(close(d_db.to_host(), db, kFp32FromBf16Tol, db0)) << "dbias";
  }
}

TEST_F(CudaBf16, GemmWithEveryTransposeMatchesCpu) {
  // cuda::gemm's four layouts, bf16 and fp32 C, against sgemm on the same (rounded) values.
  std::mt19937 rng(35);
  const int M = 37, N = 20, K = 70;
  for (const bool ta : {false, true}) {
    for (const bool tb : {false, true}) {
      SCOPED_TRACE(std::string("trans_a=") + (ta ? "1" : "0") + " trans_b=" + (tb ? "1" : "0"));
      const auto A = random16(size_t(M) * K, rng), Bm = random16(size_t(K) * N, rng), C0 = random16(size_t(M) * N, rng);
      std::vector<float> want = C0;  // alpha op(A) op(B) + beta C, plainly
      for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
          double s = 0;
          for (int k = 0; k < K; k++)
            s += double(ta ? A[size_t(k) * M + i] : A[size_t(i) * K + k]) *
                 double(tb ? Bm[size_t(j) * K + k] : Bm[size_t(k) * N + j]);
          want[size_t(i) * N + j] = float(0.5 * s + 2.0 * C0[size_t(i) * N + j]);
        }
      Bf16Buffer dA = up(A), dB = up(Bm), dC16 = up(C0);
      fc::DeviceBuffer dC32(C0);
      fc::gemm(ta, tb, M, N, K, 0.5f, dA.data(), dB.data(), 2.0f, dC16.data());
      fc::gemm(ta, tb, M, N, K, 0.5f, dA.data(), dB.data(), 2.0f, dC32.data());
      EXPECT_TRUE(close(down(dC16), want, kBf16Tol)) << "bf16 C";
      EXPECT_TRUE(close(dC32.to_host(), want, kFp32FromBf16Tol)) << "fp32 C";
    }
  }
}

TEST_F(CudaBf16, SoftmaxCrossentropyAndTokenHeadMatchCpu) {
  std::mt19937 rng(36);
  for (const auto& [N, V, Vp] : std::vector<std::tuple<int, int, int>>{{14, 50, 64}, {4, 50257, 50304}}) {
    SCOPED_TRACE("N=" + std::to_string(N) + " V=" + std::to_string(V));
    const auto logits = random16(size_t(N) * Vp, rng, -8.0f, 8.0f);
    const auto targets = random_ints(N, rng, 0, V - 1);
    std::vector<float> probs(logits.size()), losses(N), dlogits(logits.size());
    cpu::softmax_crossentropy_forward(probs.data(), losses.data(), logits.data(), targets.data(), N, V, Vp);
    Bf16Buffer d_logits = up(logits);
    fc::DeviceBuffer d_probs = poisoned(probs.size()), d_losses = poisoned(N);
    fc::IntDeviceBuffer d_targets(targets);
    fc::softmax_crossentropy_forward(d_probs.data(), d_losses.data(), d_logits.data(), d_targets.data(), N, V, Vp);
    EXPECT_TRUE(close(d_probs.to_host(), probs, kFp32FromBf16Tol)) << "probs (fp32)";
    EXPECT_TRUE(close(d_losses.to_host(), losses, kFp32FromBf16Tol)) << "losses";

    // The backward (fp32 probabilities in, bf16 gradient out) on the CPU's probabilities.
    d_probs.upload(probs.data(), probs.size());
    cpu::softmax_crossentropy_backward(dlogits.data(), probs.data(), targets.data(), 1.0f / N, N, V, Vp);
    Bf16Buffer d_dlogits = poisoned16(dlogits.size());
    fc::softmax_crossentropy_backward(d_dlogits.data(), d_probs.data(), d_targets.data(), 1.0f / N, N, V, Vp);
    EXPECT_TRUE(close(down(d_dlogits), dlogits, kBf16Tol)) << "dlogits";

    // The RL/SFT token head on the same logits, at temperature 0.7, some rows of weight 0.
    const float inv_temp = 1.0f / 0.7f;
    auto weight = random_vec(N, rng);
    weight[0] = 0.0f;
    std::vector<float> logp(N), entropy(N);
    cpu::token_logprob_forward(logp.data(), entropy.data(), logits.data(), targets.data(), N, V, Vp, inv_temp);
    fc::DeviceBuffer d_logp = poisoned(N), d_entropy = poisoned(N), d_weight(weight);
    fc::token_logprob_forward(d_logp.data(), d_entropy.data(), d_logits.data(), d_targets.data(), N, V, Vp, inv_temp);
    EXPECT_TRUE(close(d_logp.to_host(), logp, kFp32FromBf16Tol)) << "logp";
    EXPECT_TRUE(close(d_entropy.to_host(), entropy, kFp32FromBf16Tol)) << "entropy";
    cpu::token_logprob_backward(dlogits.data(), logits.data(), targets.data(), weight.data(), N, V, Vp, inv_temp);
    d_dlogits = poisoned16(dlogits.size());
    fc::token_logprob_backward(d_dlogits.data(), d_logits.data(), d_targets.data(), d_weight.data(), N, V, Vp,
                               inv_temp);
    EXPECT_TRUE(close(down(d_dlogits), dlogits, kBf16Tol)) << "token head dlogits";
  }
}

TEST_F(CudaBf16, AttentionMatchesCpu) {
  std::mt19937 rng(37);
  for (const auto& [B, T, C, NH] : std::vector<std::tuple<int, int, int, int>>{{2, 7, 24, 3}, {3, 64, 128, 4}}) {
    SCOPED_TRACE("B=" + std::to_string(B) + " T=" + std::to_string(T) + " C=" + std::to_string(C));
    const auto qkv = random16(size_t(B) * T * 3 * C, rng, -2.0f, 2.0f);
    std::vector<float> out(size_t(B) * T * C), att(size_t(B) * NH * T * T);
    cpu::attention_forward(out.data(), att.data(), qkv.data(), B, T, C, NH);
    Bf16Buffer d_qkv = up(qkv), d_out = poisoned16(out.size()), d_att = poisoned16(att.size());
    fc::attention_forward(d_out.data(), d_att.data(), d_qkv.data(), B, T, C, NH);
    EXPECT_TRUE(close(down(d_att), att, kAttTol)) << "att";
    // out = att V per head, from the device's own (bf16) att: the value GEMM's rounding alone.
    const std::vector<float> att16 = down(d_att);
    const int hs = C / NH;
    for (int b = 0; b < B; b++)
      for (int h = 0; h < NH; h++)
        for (int t = 0; t < T; t++)
          for (int i = 0; i < hs; i++) {
            double s = 0;
            for (int t2 = 0; t2 < T; t2++)
              s += double(att16[((size_t(b) * NH + h) * T + t) * T + t2]) *
                   qkv[(size_t(b) * T + t2) * 3 * C + 2 * C + size_t(h) * hs + i];
            out[(size_t(b) * T + t) * C + size_t(h) * hs + i] = float(s);
          }
    EXPECT_TRUE(close(down(d_out), out, kBf16Tol)) << "out";

    // The backward from the device's own att (bf16), the CPU on the same values.
    const auto dout = random16(out.size(), rng), dqkv0 = random16(qkv.size(), rng);
    auto dqkv = dqkv0;
    cpu::attention_backward(dqkv.data(), dout.data(), qkv.data(), att16.data(), B, T, C, NH);
    Bf16Buffer d_dqkv = up(dqkv0), d_dout = up(dout);
    fc::attention_backward(d_dqkv.data(), d_dout.data(), d_qkv.data(), d_att.data(), B, T, C, NH);
    EXPECT_TRUE(close(down(d_dqkv), dqkv, kDqkvTol, dqkv0)) << "dqkv";
  }
}

}  // namespace
