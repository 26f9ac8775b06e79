#include "kernels/cpu/pointwise.hpp"

#include <bit>
#include <cmath>
#include <cstdint>

#include "kernels/cpu/profile.hpp"

namespace frugal::cpu {

namespace {
constexpr float kGeluScale = 0.7978845608028654f;  // sqrt(2 / pi)

// tanh for GELU, in plain float arithmetic the compiler vectorises (glibc's tanhf is a scalar call:
// it made GELU 16% of a GPT-2 small training step once the GEMMs ran on the right BLAS kernels).
//   tanh(u) = (e - 1) / (e + 1), e = exp(2u), u clamped to [-9, 9] (tanh rounds to +-1 beyond);
//   exp(x) = 2^n e^r, n = round(x / ln 2), r = x - n ln 2 (ln 2 in two parts, so r is exact to
//   ~1e-10), e^r by its Taylor series to r^7 (|r| <= 0.35: truncation < 6e-9 relative).
// Absolute error <= ~1.5e-7 against the exact tanh (tested), which is what GELU's 1 + tanh and
// 1 - tanh^2 see. Only +, -, *, / and exact bit operations: the same bits on every x86-64 build.
inline float gelu_tanh(float u) {
  const float x = 2.0f * (u < -9.0f ? -9.0f : (u > 9.0f ? 9.0f : u));  // NaN stays NaN
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding and subtracting it rounds to an integer
  const float t = x * 1.44269504088896341f + kRound;
  const float n = t - kRound;
  // n as an integer from t's low mantissa bits (no float -> int conversion: defined even for NaN).
  const int32_t ni = static_cast<int32_t>(std::bit_cast<uint32_t>(t) - std::bit_cast<uint32_t>(kRound));
  const float r = (x - n * 0.693145751953125f) - n * 1.42860676533018e-06f;
  const float p =
      1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720 + r * (1.0f / 5040)))))));
  const float e = p * std::bit_cast<float>(static_cast<uint32_t>(ni + 127) << 23);
  return (e - 1.0f) / (e + 1.0f);
}
}  // namespace

void gelu_forward(float* out, const float* inp, size_t n) {
  const KernelTimer timer(Kernel::gelu);
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) {
    const float x = inp[i];
    out[i] = 0.5f * x * (1.0f + gelu_tanh(kGeluScale * (x + 0.044715f * x * x * x)));
  }
}

void gelu_backward(float* dinp, const float* inp, const float* dout, size_t n) {
  const KernelTimer timer(Kernel::gelu);
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) {
    const float x = inp[i];
    const float u = kGeluScale * (x + 0.044715f * x * x * x);
    const float th = gelu_tanh(u);
    const float sech2 = 1.0f - th * th;
    const float grad = 0.5f * (1.0f + th) + 0.5f * x * sech2 * kGeluScale * (1.0f + 3.0f * 0.044715f * x * x);
    dinp[i] += grad * dout[i];
  }
}

void residual_forward(float* out, const float* a, const float* b, size_t n) {
  const KernelTimer timer(Kernel::residual);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void residual_backward(float* da, float* db, const float* dout, size_t n) {
  const KernelTimer timer(Kernel::residual);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) {
    da[i] += dout[i];
    db[i] += dout[i];
  }
}

}  // namespace frugal::cpu
