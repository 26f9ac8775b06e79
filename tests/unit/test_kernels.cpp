// CPU kernels against plain reference loops.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/blas.hpp"
#include "core/rng.hpp"
#include "kernels/cpu/attention.hpp"
#include "kernels/cpu/layernorm.hpp"
#include "kernels/cpu/matmul.hpp"
#include "kernels/cpu/pointwise.hpp"

using namespace frugal;

namespace {
std::vector<float> randn(size_t n, uint64_t seed) {
  Rng r(seed, 50u, 0u);
  std::vector<float> v(n);
  for (auto& x : v) x = r.normal();
  return v;
}
}  // namespace

TEST(Kernels, MatmulForwardAndBackwardMatchPlainLoops) {
  const int N = 7, C = 13, OC = 11;
  auto inp = randn(N * C, 1), w = randn(OC * C, 2), bias = randn(OC, 3), dout = randn(N * OC, 4);
  std::vector<float> out(N * OC);
  cpu::matmul_forward(out.data(), inp.data(), w.data(), bias.data(), N, C, OC);
  std::vector<float> dinp(N * C, 0.5f), dw(OC * C, 0.25f), db(OC, 1.0f);  // += semantics
  cpu::matmul_backward(dinp.data(), dw.data(), db.data(), dout.data(), inp.data(), w.data(), N, C, OC);
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OC; o++) {
      double s = bias[o];
      for (int c = 0; c < C; c++) s += double(inp[n * C + c]) * w[o * C + c];
      EXPECT_NEAR(out[n * OC + o], s, 1e-4);
    }
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++) {
      double s = 0.5;
      for (int o = 0; o < OC; o++) s += double(dout[n * OC + o]) * w[o * C + c];
      EXPECT_NEAR(dinp[n * C + c], s, 1e-4);
    }
  for (int o = 0; o < OC; o++) {
    double sb = 1.0;
    for (int n = 0; n < N; n++) sb += dout[n * OC + o];
    EXPECT_NEAR(db[o], sb, 1e-4);
    for (int c = 0; c < C; c++) {
      double s = 0.25;
      for (int n = 0; n < N; n++) s += double(dout[n * OC + o]) * inp[n * C + c];
      EXPECT_NEAR(dw[o * C + c], s, 1e-4);
    }
  }
}

TEST(Kernels, LayernormForwardMatchesDefinition) {
  const int N = 5, C = 9;
  auto x = randn(N * C, 5), w = randn(C, 6), b = randn(C, 7);
  std::vector<float> out(N * C), mean(N), rstd(N);
  cpu::layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C);
  for (int n = 0; n < N; n++) {
    double m = 0, v = 0;
    for (int c = 0; c < C; c++) m += x[n * C + c];
    m /= C;
    for (int c = 0; c < C; c++) v += (x[n * C + c] - m) * (x[n * C + c] - m);
    v /= C;
    EXPECT_NEAR(mean[n], m, 1e-5);
    EXPECT_NEAR(rstd[n], 1 / std::sqrt(v + 1e-5), 1e-4);
    for (int c = 0; c < C; c++) EXPECT_NEAR(out[n * C + c], (x[n * C + c] - m) / std::sqrt(v + 1e-5) * w[c] + b[c], 1e-4);
  }
}

TEST(Kernels, CausalAttentionMatchesSoftmaxDefinition) {
  const int B = 2, T = 5, C = 8, NH = 2, hs = C / NH;
  auto qkv = randn(B * T * 3 * C, 8);
  std::vector<float> out(B * T * C), att(B * NH * T * T);
  cpu::attention_forward(out.data(), att.data(), qkv.data(), B, T, C, NH);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++)
      for (int t = 0; t < T; t++) {
        std::vector<double> s(t + 1);
        double mx = -1e30, z = 0;
        for (int t2 = 0; t2 <= t; t2++) {
          double d = 0;
          for (int i = 0; i < hs; i++) d += double(qkv[(b * T + t) * 3 * C + h * hs + i]) * qkv[(b * T + t2) * 3 * C + C + h * hs + i];
          s[t2] = d / std::sqrt(double(hs));
          mx = std::max(mx, s[t2]);
        }
        for (auto& x : s) z += (x = std::exp(x - mx));
        for (int i = 0; i < hs; i++) {
          double o = 0;
          for (int t2 = 0; t2 <= t; t2++) o += s[t2] / z * qkv[(b * T + t2) * 3 * C + 2 * C + h * hs + i];
          EXPECT_NEAR(out[(b * T + t) * C + h * hs + i], o, 1e-5);
        }
        for (int t2 = t + 1; t2 < T; t2++) EXPECT_EQ(att[((b * NH + h) * T + t) * T + t2], 0.0f);  // causal
      }
}

// The attention kernels against the plain per-position loops they replaced, bit for bit: every
// q.k and v.dout dot is summed in head-dimension order from 0.0f, whatever the vectorisation.
namespace {
void attention_forward_plain(float* out, float* att, const float* qkv, int B, int T, int C, int NH) {
  const int hs = C / NH;
  const float scale = 1.0f / std::sqrt(float(hs));
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      for (int h = 0; h < NH; h++) {
        const float* q = qkv + (size_t(b) * T + t) * 3 * C + h * hs;
        float* a = att + ((size_t(b) * NH + h) * T + t) * T;
        float maxval = -1e30f;
        for (int t2 = 0; t2 <= t; t2++) {
          const float* k = qkv + (size_t(b) * T + t2) * 3 * C + C + h * hs;
          float dot = 0.0f;
          for (int i = 0; i < hs; i++) dot += q[i] * k[i];
          a[t2] = dot * scale;
          maxval = std::max(maxval, a[t2]);
        }
        float sum = 0.0f;
        for (int t2 = 0; t2 <= t; t2++) sum += (a[t2] = std::exp(a[t2] - maxval));
        for (int t2 = 0; t2 < T; t2++) a[t2] = t2 <= t ? a[t2] * (1.0f / sum) : 0.0f;
        float* o = out + (size_t(b) * T + t) * C + h * hs;
        for (int i = 0; i < hs; i++) o[i] = 0.0f;
        for (int t2 = 0; t2 <= t; t2++)
          for (int i = 0; i < hs; i++) o[i] += a[t2] * qkv[(size_t(b) * T + t2) * 3 * C + 2 * C + h * hs + i];
      }
}
void attention_backward_plain(float* dqkv, const float* dout, const float* qkv, const float* att, int B, int T, int C,
                              int NH) {
  const int hs = C / NH;
  const float scale = 1.0f / std::sqrt(float(hs));
  std::vector<float> datt(T), dpre(T);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++)
      for (int t = 0; t < T; t++) {
        const float* a = att + ((size_t(b) * NH + h) * T + t) * T;
        const float* d = dout + (size_t(b) * T + t) * C + h * hs;
        const float* q = qkv + (size_t(b) * T + t) * 3 * C + h * hs;
        float* dq = dqkv + (size_t(b) * T + t) * 3 * C + h * hs;
        for (int t2 = 0; t2 <= t; t2++) {
          const float* v = qkv + (size_t(b) * T + t2) * 3 * C + 2 * C + h * hs;
          float* dv = dqkv + (size_t(b) * T + t2) * 3 * C + 2 * C + h * hs;
          float s = 0.0f;
          for (int i = 0; i < hs; i++) {
            s += v[i] * d[i];
            dv[i] += a[t2] * d[i];
          }
          datt[t2] = s;
        }
        float dot = 0.0f;
        for (int t2 = 0; t2 <= t; t2++) dot += a[t2] * datt[t2];
        for (int t3 = 0; t3 <= t; t3++) dpre[t3] = a[t3] * (datt[t3] - dot);
        for (int t2 = 0; t2 <= t; t2++) {
          const float* k = qkv + (size_t(b) * T + t2) * 3 * C + C + h * hs;
          float* dk = dqkv + (size_t(b) * T + t2) * 3 * C + C + h * hs;
          const float g = dpre[t2] * scale;
          for (int i = 0; i < hs; i++) {
            dq[i] += k[i] * g;
            dk[i] += q[i] * g;
          }
        }
      }
}
}  // namespace

TEST(Kernels, AttentionEqualsThePlainLoopsBitForBit) {
  struct Shape {
    int B, T, C, NH;
  };
  for (const Shape& s : {Shape{2, 5, 8, 2}, Shape{3, 37, 48, 4}, Shape{1, 64, 128, 2}, Shape{2, 17, 36, 3}}) {
    const size_t n3 = size_t(s.B) * s.T * 3 * s.C, n = size_t(s.B) * s.T * s.C, na = size_t(s.B) * s.NH * s.T * s.T;
    const auto qkv = randn(n3, 21), dout = randn(n, 22), dqkv0 = randn(n3, 23);
    std::vector<float> out(n, -7.0f), att(na, -7.0f), out_ref(n), att_ref(na);  // poisoned: every element written
    cpu::attention_forward(out.data(), att.data(), qkv.data(), s.B, s.T, s.C, s.NH);
    attention_forward_plain(out_ref.data(), att_ref.data(), qkv.data(), s.B, s.T, s.C, s.NH);
    ASSERT_EQ(out, out_ref) << "T " << s.T << " C " << s.C;
    ASSERT_EQ(att, att_ref) << "T " << s.T << " C " << s.C;
    std::vector<float> dqkv = dqkv0, dqkv_ref = dqkv0;  // the backward accumulates
    cpu::attention_backward(dqkv.data(), dout.data(), qkv.data(), att.data(), s.B, s.T, s.C, s.NH);
    attention_backward_plain(dqkv_ref.data(), dout.data(), qkv.data(), att.data(), s.B, s.T, s.C, s.NH);
    ASSERT_EQ(dqkv, dqkv_ref) << "T " << s.T << " C " << s.C;
  }
}

// GELU (tanh approximation) against its formula in double with the exact tanh: a dense sweep of
// [-12, 12] (tanh saturates beyond the kernel's clamp at |u| = 9) plus large, tiny and NaN inputs.
// The kernel's own tanh is accurate to ~1.5e-7 absolute. Measured worst cases: forward 1.6e-7,
// backward 1.8e-6 (its 1 - tanh^2 times x-polynomials amplifies tanh's error; glibc's tanhf: 8e-7).
TEST(Kernels, GeluForwardAndBackwardMatchTheFormulaInDouble) {
  std::vector<float> x;
  for (int i = 0; i <= 240000; i++) x.push_back(-12.0f + 1e-4f * float(i));
  for (float v : {1e-30f, -1e-30f, 0.0f, 30.0f, -30.0f, 1e4f, -1e4f}) x.push_back(v);
  const size_t n = x.size();
  std::vector<float> y(n), dout(n), dinp(n, 0.25f);
  for (size_t i = 0; i < n; i++) dout[i] = 1.0f + 0.5f * std::sin(float(i));
  cpu::gelu_forward(y.data(), x.data(), n);
  cpu::gelu_backward(dinp.data(), x.data(), dout.data(), n);
  const double k = std::sqrt(2.0 / M_PI);
  double worst_y = 0, worst_d = 0;
  for (size_t i = 0; i < n; i++) {
    const double v = x[i], u = k * (v + 0.044715 * v * v * v), th = std::tanh(u);
    const double want_y = 0.5 * v * (1 + th);
    const double grad = 0.5 * (1 + th) + 0.5 * v * (1 - th * th) * k * (1 + 3 * 0.044715 * v * v);
    const double want_d = 0.25 + grad * dout[i];
    worst_y = std::max(worst_y, std::fabs(y[i] - want_y) / std::max(1.0, std::fabs(want_y)));
    worst_d = std::max(worst_d, std::fabs(dinp[i] - want_d) / std::max(1.0, std::fabs(want_d)));
  }
  EXPECT_LE(worst_y, 4e-7);
  EXPECT_LE(worst_d, 3e-6);
  const float nan = std::nanf("");
  float out = 0, d = 0;
  cpu::gelu_forward(&out, &nan, 1);
  cpu::gelu_backward(&d, &nan, &dout[0], 1);
  EXPECT_TRUE(std::isnan(out) && std::isnan(d)) << "NaN in, NaN out: a diverged run must not look finite";
}

// Every frugal program runs OpenBLAS kernels that fit the CPU (core/blas.hpp): on a CPU with
// AVX-512 an AVX-512 core, with AVX2 + FMA at least an AVX2 one - whatever OpenBLAS's own CPU
// table said. Only a user's explicit OPENBLAS_CORETYPE (or FRUGAL_BLAS_CORE=keep) may differ.
TEST(Kernels, BlasKernelsFitTheCpu) {
#if !defined(__x86_64__)
  GTEST_SKIP() << "the check is x86-64's";
#else
  const char* frugal_choice = std::getenv("FRUGAL_BLAS_CORE");
  if (frugal_choice && std::string(frugal_choice) == "keep") GTEST_SKIP() << "FRUGAL_BLAS_CORE=keep";
  if (std::getenv("OPENBLAS_CORETYPE") && !frugal_choice) GTEST_SKIP() << "OPENBLAS_CORETYPE set by the user";
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("avx512cd");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const std::string core = blas_core();
  const bool core_avx512 = core == "SkylakeX" || core == "Cooperlake" || core == "SapphireRapids";
  if (avx512) {
    EXPECT_TRUE(core_avx512) << "CPU has AVX-512, OpenBLAS runs " << core;
  } else if (avx2) {
    EXPECT_TRUE(core_avx512 || core == "Haswell" || core == "Zen") << "CPU has AVX2, OpenBLAS runs " << core;
  } else {
    GTEST_SKIP() << "CPU below AVX2: OpenBLAS's own choice (" << core << ") stands";
  }
#endif
}
