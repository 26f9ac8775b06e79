// CUDA kernels against their CPU references (kernels/cpu/ is the ground truth). Plain C++ (g++):
// only the host header kernels/cuda/kernels.hpp is visible here. Without a GPU every comparison
// test skips; the no-device test instead checks that CUDA failures surface as frugal::Error.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <random>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "kernels/cpu/layernorm.hpp"
#include "kernels/cpu/matmul.hpp"
#include "kernels/cuda/kernels.hpp"

namespace {

namespace fc = frugal::cuda;

std::vector<float> random_vec(size_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

class CudaKernels : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fc::device_available()) GTEST_SKIP() << "no CUDA device visible (cudaGetDeviceCount found none): skipping";
  }
};

struct GemmShape {
  int M, N, K;
};

// Shapes straddle the 32/64/128 tile sizes on purpose (odd, prime, one-off) plus a GPT-2-like one.
const std::vector<GemmShape> kShapes = {{1, 1, 1},     {3, 5, 7},       {33, 65, 31},  {64, 128, 96},
                                        {127, 257, 129}, {1, 1000, 513}, {256, 768, 2304}};

// Row-major A (M,K), B (N,K): per-element scale sum_k |a_ik| |b_jk| (+ |bias_j|) bounds the
// magnitude of the terms summed, so error / scale is a sum-order-independent relative error.
double gemm_rel_error(const std::vector<float>& got, const std::vector<float>& want, const std::vector<float>& A,
                      const std::vector<float>& B, const float* bias, int M, int N, int K) {
  double worst = 0.0;
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double scale = bias ? std::fabs(bias[j]) : 0.0;
      for (int k = 0; k < K; k++)
        scale += std::fabs(double(A[size_t(i) * K + k])) * std::fabs(double(B[size_t(j) * K + k]));
      const double err = std::fabs(double(got[size_t(i) * N + j]) - double(want[size_t(i) * N + j]));
      worst = std::max(worst, scale > 0.0 ? err / scale : err);
    }
  return worst;
}

// After a reduced-precision test: the largest shape's matmul is back at FP32 accuracy (1e-5).
void expect_fp32_matmul(std::mt19937& rng, const char* what) {
  const auto& s = kShapes.back();
  const auto A = random_vec(size_t(s.M) * s.K, rng), B = random_vec(size_t(s.N) * s.K, rng);
  std::vector<float> want(size_t(s.M) * s.N);
  frugal::cpu::matmul_forward(want.data(), A.data(), B.data(), nullptr, s.M, s.K, s.N);
  fc::DeviceBuffer dA(A), dB(B), dC(want.size());
  fc::matmul_forward(dC.data(), dA.data(), dB.data(), nullptr, s.M, s.K, s.N);
  EXPECT_LE(gemm_rel_error(dC.to_host(), want, A, B, nullptr, s.M, s.N, s.K), 1e-5) << what;
}

TEST(CudaDevice, AvailabilityQueryNeverThrows) {
  bool available = false;
  EXPECT_NO_THROW(available = fc::device_available());
  EXPECT_EQ(available, fc::device_available());  // stable across calls
}

TEST(CudaDevice, FailuresWithoutDeviceAreFrugalErrors) {
  if (fc::device_available()) GTEST_SKIP() << "a CUDA device is present: the no-device error path cannot be hit";
  try {
    fc::DeviceBuffer buf(16);
    FAIL() << "cudaMalloc without a device should have thrown";
  } catch (const frugal::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cudaMalloc"), std::string::npos) << e.what();
  }
}

TEST_F(CudaKernels, DeviceBufferRoundTripAndMove) {
  std::mt19937 rng(1);
  const auto host = random_vec(1000, rng);
  fc::DeviceBuffer a(host);
  EXPECT_EQ(a.size(), host.size());
  EXPECT_EQ(a.to_host(), host);  // bit-exact copy

  fc::DeviceBuffer b(std::move(a));
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(b.to_host(), host);

  b.zero();
  for (float x : b.to_host()) ASSERT_EQ(x, 0.0f);
  EXPECT_THROW(b.upload(host.data(), host.size() + 1), frugal::Error);
}

TEST_F(CudaKernels, MatmulForwardMatchesCpu) {
  std::mt19937 rng(42);
  for (const auto& s : kShapes) {
    for (bool with_bias : {false, true}) {
      const int N = s.M, OC = s.N, C = s.K;
      SCOPED_TRACE("N=" + std::to_string(N) + " C=" + std::to_string(C) + " OC=" + std::to_string(OC) +
                   (with_bias ? " bias" : " no bias"));
      const auto inp = random_vec(size_t(N) * C, rng);
      const auto weight = random_vec(size_t(OC) * C, rng);
      const auto bias = random_vec(size_t(OC), rng);
      const float* bias_h = with_bias ? bias.data() : nullptr;

      std::vector<float> want(size_t(N) * OC);
      frugal::cpu::matmul_forward(want.data(), inp.data(), weight.data(), bias_h, N, C, OC);

      fc::DeviceBuffer d_inp(inp), d_weight(weight), d_bias(bias), d_out(size_t(N) * OC);
      // Garbage in out: without bias the kernel must overwrite it (beta = 0), not accumulate.
      d_out.upload(std::vector<float>(size_t(N) * OC, 1e30f).data(), size_t(N) * OC);
      fc::matmul_forward(d_out.data(), d_inp.data(), d_weight.data(), with_bias ? d_bias.data() : nullptr, N, C, OC);
      const auto got = d_out.to_host();

      EXPECT_LE(gemm_rel_error(got, want, inp, weight, bias_h, N, OC, C), 1e-5);
    }
  }
}

// TF32: inputs rounded to 10 mantissa bits (2^-11 relative each), fp32 accumulation: per term about
// 1e-3 of its size at worst. Plain FP32 returns afterwards (and is re-checked to have returned).
TEST_F(CudaKernels, MatmulForwardTf32WithinItsRounding) {
  std::mt19937 rng(43);
  fc::set_tf32(true);
  double worst = 0.0;
  for (const auto& s : kShapes) {
    const int N = s.M, OC = s.N, C = s.K;
    const auto inp = random_vec(size_t(N) * C, rng), weight = random_vec(size_t(OC) * C, rng);
    const auto bias = random_vec(size_t(OC), rng);
    std::vector<float> want(size_t(N) * OC);
    frugal::cpu::matmul_forward(want.data(), inp.data(), weight.data(), bias.data(), N, C, OC);
    fc::DeviceBuffer d_inp(inp), d_weight(weight), d_bias(bias), d_out(std::vector<float>(size_t(N) * OC, 1e30f));
    fc::matmul_forward(d_out.data(), d_inp.data(), d_weight.data(), d_bias.data(), N, C, OC);
    const double err = gemm_rel_error(d_out.to_host(), want, inp, weight, bias.data(), N, OC, C);
    EXPECT_LE(err, 2e-3) << "N=" << N << " C=" << C << " OC=" << OC;
    worst = std::max(worst, err);
  }
  EXPECT_GT(worst, 1e-6) << "TF32 asked for, but every product came out at FP32 accuracy";
  fc::set_tf32(false);
  expect_fp32_matmul(rng, "FP32 after set_tf32(false)");
}

// bf16 matmuls (model.dtype = bf16): operands rounded to 8 mantissa bits (2^-8 relative each), fp32
// accumulation: per term ~4e-3 of its size at worst, so 1e-2 of the summed magnitudes. Forward with
// bias, and the backward's dinp and dweight (accumulated into fp32), against the CPU; then FP32 again.
TEST_F(CudaKernels, MatmulBf16WithinItsRounding) {
  std::mt19937 rng(44);
  struct Fp32Again {  // even when an assertion returns early: later tests on this thread expect fp32
    ~Fp32Again() { fc::set_matmul_precision(fc::MatmulPrecision::fp32); }
  } restore;
  fc::set_matmul_precision(fc::MatmulPrecision::bf16);
  EXPECT_EQ(fc::matmul_precision(), fc::MatmulPrecision::bf16);
  double worst = 0.0;
  for (const auto& s : kShapes) {
    const int N = s.M, OC = s.N, C = s.K;
    SCOPED_TRACE("N=" + std::to_string(N) + " C=" + std::to_string(C) + " OC=" + std::to_string(OC));
    const auto inp = random_vec(size_t(N) * C, rng), weight = random_vec(size_t(OC) * C, rng);
    const auto bias = random_vec(size_t(OC), rng), dout = random_vec(size_t(N) * OC, rng);
    std::vector<float> want(size_t(N) * OC);
    frugal::cpu::matmul_forward(want.data(), inp.data(), weight.data(), bias.data(), N, C, OC);
    fc::DeviceBuffer d_inp(inp), d_weight(weight), d_bias(bias), d_out(std::vector<float>(size_t(N) * OC, 1e30f));
    fc::matmul_forward(d_out.data(), d_inp.data(), d_weight.data(), d_bias.data(), N, C, OC);
    const double err = gemm_rel_error(d_out.to_host(), want, inp, weight, bias.data(), N, OC, C);
    EXPECT_LE(err, 1e-2) << "forward";
    worst = std::max(worst, err);

    // Backward from zero gradients: dinp (N,C) = dout W, dW (OC,C) = dout^T inp. The error of each
    // is measured like the forward's, on the transposed operands.
    std::vector<float> dinp(size_t(N) * C, 0.0f), dw(size_t(OC) * C, 0.0f), db(size_t(OC), 0.0f);
    frugal::cpu::matmul_backward(dinp.data(), dw.data(), db.data(), dout.data(), inp.data(), weight.data(), N, C, OC);
    fc::DeviceBuffer d_dout(dout), d_dinp(std::vector<float>(dinp.size(), 0.0f)), d_dw(std::vector<float>(dw.size(), 0.0f)),
        d_db(std::vector<float>(db.size(), 0.0f));
    fc::matmul_backward(d_dinp.data(), d_dw.data(), d_db.data(), d_dout.data(), d_inp.data(), d_weight.data(), N, C, OC);
    std::vector<float> wT(size_t(C) * OC), doutT(size_t(OC) * N), inpT(size_t(C) * N);
    for (int o = 0; o < OC; o++)
      for (int c = 0; c < C; c++) wT[size_t(c) * OC + o] = weight[size_t(o) * C + c];
    for (int n = 0; n < N; n++) {
      for (int o = 0; o < OC; o++) doutT[size_t(o) * N + n] = dout[size_t(n) * OC + o];
      for (int c = 0; c < C; c++) inpT[size_t(c) * N + n] = inp[size_t(n) * C + c];
    }
    EXPECT_LE(gemm_rel_error(d_dinp.to_host(), dinp, dout, wT, nullptr, N, C, OC), 1e-2) << "dinp";
    EXPECT_LE(gemm_rel_error(d_dw.to_host(), dw, doutT, inpT, nullptr, OC, C, N), 1e-2) << "dweight";
    EXPECT_LE(gemm_rel_error(d_db.to_host(), db, std::vector<float>(size_t(OC) * N, 1.0f), doutT, nullptr, 1, OC, N),
              1e-5)
        << "dbias stays an fp32 sum";
  }
  EXPECT_GT(worst, 1e-5) << "bf16 asked for, but every product came out at FP32 accuracy";
  fc::set_matmul_precision(fc::MatmulPrecision::fp32);
  expect_fp32_matmul(rng, "FP32 after bf16");
}

TEST_F(CudaKernels, SgemmNtAlphaBetaMatchesCpu) {
  std::mt19937 rng(7);
  const float alpha = 0.75f, beta = -1.5f;
  for (const auto& s : kShapes) {
    SCOPED_TRACE("M=" + std::to_string(s.M) + " N=" + std::to_string(s.N) + " K=" + std::to_string(s.K));
    const auto A = random_vec(size_t(s.M) * s.K, rng);
    const auto B = random_vec(size_t(s.N) * s.K, rng);
    const auto C0 = random_vec(size_t(s.M) * s.N, rng);

    auto want = C0;
    frugal::cpu::sgemm_nt(s.M, s.N, s.K, alpha, A.data(), B.data(), beta, want.data());

    fc::DeviceBuffer dA(A), dB(B), dC(C0);
    fc::sgemm_nt(s.M, s.N, s.K, alpha, dA.data(), dB.data(), beta, dC.data());
    const auto got = dC.to_host();

    // Scale per element: |alpha| sum |a||b| + |beta c0|.
    double worst = 0.0;
    for (int i = 0; i < s.M; i++)
      for (int j = 0; j < s.N; j++) {
        double scale = std::fabs(double(beta) * C0[size_t(i) * s.N + j]);
        for (int k = 0; k < s.K; k++)
          scale += std::fabs(double(alpha) * A[size_t(i) * s.K + k] * B[size_t(j) * s.K + k]);
        const double err = std::fabs(double(got[size_t(i) * s.N + j]) - want[size_t(i) * s.N + j]);
        worst = std::max(worst, err / scale);
      }
    EXPECT_LE(worst, 1e-5);
  }
}

TEST_F(CudaKernels, SgemmNtDegenerateShapes) {
  // K == 0: C = beta C (no products), as CPU BLAS does; M or N == 0: a no-op.
  std::vector<float> C0 = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f};
  fc::DeviceBuffer dA(1), dB(1), dC(C0);
  fc::sgemm_nt(2, 3, 0, 1.0f, dA.data(), dB.data(), 0.5f, dC.data());
  const auto got = dC.to_host();
  for (size_t i = 0; i < C0.size(); i++) EXPECT_FLOAT_EQ(got[i], 0.5f * C0[i]);
  EXPECT_NO_THROW(fc::sgemm_nt(0, 3, 4, 1.0f, dA.data(), dB.data(), 0.0f, dC.data()));
  EXPECT_THROW(fc::sgemm_nt(-1, 3, 4, 1.0f, dA.data(), dB.data(), 0.0f, dC.data()), frugal::Error);
}

TEST_F(CudaKernels, SgemmNnAndTnMatchCpu) {
  // The LoRA adapters' products: C = alpha A B + beta C (A (M,K), B (K,N)) and C = alpha A^T B + beta C
  // (A (K,M), B (K,N)), odd shapes and a thin rank-8 one, against cpu::sgemm_nn / sgemm_tn.
  std::mt19937 rng(31);
  struct Shape {
    int M, N, K;
  };
  for (const Shape s : {Shape{5, 7, 3}, Shape{33, 8, 70}, Shape{8, 96, 130}, Shape{1, 1, 1}}) {
    SCOPED_TRACE("M=" + std::to_string(s.M) + " N=" + std::to_string(s.N) + " K=" + std::to_string(s.K));
    const float alpha = 0.75f, beta = 0.5f;
    const auto A = random_vec(size_t(s.M) * s.K, rng), B = random_vec(size_t(s.K) * s.N, rng);
    const auto C0 = random_vec(size_t(s.M) * s.N, rng);
    for (const bool transposed : {false, true}) {
      auto want = C0;
      if (transposed) frugal::cpu::sgemm_tn(s.M, s.N, s.K, alpha, A.data(), B.data(), beta, want.data());
      else frugal::cpu::sgemm_nn(s.M, s.N, s.K, alpha, A.data(), B.data(), beta, want.data());
      fc::DeviceBuffer dA(A), dB(B), dC(C0);
      if (transposed) fc::sgemm_tn(s.M, s.N, s.K, alpha, dA.data(), dB.data(), beta, dC.data());
      else fc::sgemm_nn(s.M, s.N, s.K, alpha, dA.data(), dB.data(), beta, dC.data());
      const auto got = dC.to_host();
      // Scale per element: |alpha| sum |a||b| + |beta c0|, with A read as (M,K) or as (K,M).
      double worst = 0.0;
      for (int i = 0; i < s.M; i++)
        for (int j = 0; j < s.N; j++) {
          double scale = std::fabs(double(beta) * C0[size_t(i) * s.N + j]);
          for (int k = 0; k < s.K; k++) {
            const float a = transposed ? A[size_t(k) * s.M + i] : A[size_t(i) * s.K + k];
            scale += std::fabs(double(alpha) * a * B[size_t(k) * s.N + j]);
          }
          worst = std::max(worst, std::fabs(double(got[size_t(i) * s.N + j]) - want[size_t(i) * s.N + j]) / scale);
        }
      EXPECT_LE(worst, 1e-5) << (transposed ? "sgemm_tn" : "sgemm_nn");
    }
  }
}

TEST_F(CudaKernels, LayernormForwardMatchesCpu) {
  std::mt19937 rng(3);
  struct LnShape {
    int N, C;
  };
  // C below, at and above the warp width, non-multiples of 32, GPT-2 small and XL widths; N not a
  // multiple of the 8 rows a block handles.
  const std::vector<LnShape> shapes = {{1, 1}, {5, 3}, {9, 32}, {33, 37}, {7, 768}, {64, 1600}, {1025, 129}};
  for (const auto& s : shapes) {
    SCOPED_TRACE("N=" + std::to_string(s.N) + " C=" + std::to_string(s.C));
    // Offset inputs (mean ~0.5, not 0) so the mean subtraction is actually exercised.
    const auto inp = random_vec(size_t(s.N) * s.C, rng, -1.5f, 2.5f);
    const auto weight = random_vec(size_t(s.C), rng, 0.5f, 1.5f);
    const auto bias = random_vec(size_t(s.C), rng, -0.5f, 0.5f);

    std::vector<float> out(size_t(s.N) * s.C), mean(s.N), rstd(s.N);
    frugal::cpu::layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), weight.data(), bias.data(),
                                   s.N, s.C);

    fc::DeviceBuffer d_inp(inp), d_w(weight), d_b(bias), d_out(out.size()), d_mean(mean.size()),
        d_rstd(rstd.size());
    fc::layernorm_forward(d_out.data(), d_mean.data(), d_rstd.data(), d_inp.data(), d_w.data(), d_b.data(), s.N,
                          s.C);
    const auto g_out = d_out.to_host(), g_mean = d_mean.to_host(), g_rstd = d_rstd.to_host();

    for (int i = 0; i < s.N; i++) {
      // mean: relative to the row's mean |x| (the mean itself can be near 0, the terms are not).
      double abs_mean = 0.0;
      for (int c = 0; c < s.C; c++) abs_mean += std::fabs(inp[size_t(i) * s.C + c]);
      abs_mean /= s.C;
      ASSERT_LE(std::fabs(double(g_mean[i]) - mean[i]), 1e-5 * abs_mean + 1e-30) << "mean row " << i;
      ASSERT_LE(std::fabs(double(g_rstd[i]) - rstd[i]), 1e-5 * std::fabs(rstd[i])) << "rstd row " << i;
      for (int c = 0; c < s.C; c++) {
        const size_t k = size_t(i) * s.C + c;
        // out = norm * w + b with |norm| ~ 1: relative 1e-5 with a floor of 1e-5 for outputs near 0.
        ASSERT_LE(std::fabs(double(g_out[k]) - out[k]), 1e-5 * std::max(1.0, std::fabs(double(out[k]))))
            << "out row " << i << " col " << c;
      }
    }
  }
}

TEST_F(CudaKernels, LayernormConstantRowGivesBias) {
  // Zero variance: rstd = 1/sqrt(eps), normalised value exactly 0, so out == bias.
  const int N = 3, C = 50;
  std::vector<float> inp(size_t(N) * C, 2.0f), weight(C, 1.3f), bias(C);
  for (int c = 0; c < C; c++) bias[c] = 0.01f * c;
  fc::DeviceBuffer d_inp(inp), d_w(weight), d_b(bias), d_out(inp.size()), d_mean(N), d_rstd(N);
  fc::layernorm_forward(d_out.data(), d_mean.data(), d_rstd.data(), d_inp.data(), d_w.data(), d_b.data(), N, C);
  const auto out = d_out.to_host(), mean = d_mean.to_host(), rstd = d_rstd.to_host();
  for (int i = 0; i < N; i++) {
    EXPECT_FLOAT_EQ(mean[i], 2.0f);
    EXPECT_NEAR(rstd[i], 1.0f / std::sqrt(1e-5f), 1e-2);
    for (int c = 0; c < C; c++) EXPECT_EQ(out[size_t(i) * C + c], bias[c]);
  }
}

}  // namespace
