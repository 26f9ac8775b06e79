#include "kernels/cpu/layernorm.hpp"

#include <cmath>
#include <cstddef>

#include "kernels/cpu/profile.hpp"

namespace frugal::cpu {

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int N, int C) {
  const KernelTimer timer(Kernel::layernorm);
  const float eps = 1e-5f;
#pragma omp parallel for schedule(static)
  for (int i = 0; i < N; i++) {
    const float* x = inp + static_cast<size_t>(i) * C;
    float m = 0.0f;
    for (int c = 0; c < C; c++) m += x[c];
    m /= C;
    float v = 0.0f;
    for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
    v /= C;
    const float s = 1.0f / std::sqrt(v + eps);
    float* o = out + static_cast<size_t>(i) * C;
    for (int c = 0; c < C; c++) o[c] = (x[c] - m) * s * weight[c] + bias[c];
    mean[i] = m;
    rstd[i] = s;
  }
}

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int N, int C) {
  const KernelTimer timer(Kernel::layernorm);
  // Pass 1, rows in parallel: dinp. Pass 2, channels in parallel: dweight, dbias (no races, and the
  // sum order is fixed, so results do not depend on the thread count).
#pragma omp parallel for schedule(static)
  for (int i = 0; i < N; i++) {
    const float* x = inp + static_cast<size_t>(i) * C;
    const float* d = dout + static_cast<size_t>(i) * C;
    float* dx = dinp + static_cast<size_t>(i) * C;
    const float m = mean[i], s = rstd[i];
    float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
    for (int c = 0; c < C; c++) {
      const float norm = (x[c] - m) * s;
      const float dnorm = weight[c] * d[c];
      dnorm_mean += dnorm;
      dnorm_norm_mean += dnorm * norm;
    }
    dnorm_mean /= C;
    dnorm_norm_mean /= C;
    for (int c = 0; c < C; c++) {
      const float norm = (x[c] - m) * s;
      const float dnorm = weight[c] * d[c];
      dx[c] += (dnorm - dnorm_mean - norm * dnorm_norm_mean) * s;
    }
  }
#pragma omp parallel for schedule(static)
  for (int c = 0; c < C; c++) {
    float dw = 0.0f, db = 0.0f;
    for (int i = 0; i < N; i++) {
      const float d = dout[static_cast<size_t>(i) * C + c];
      db += d;
      dw += (inp[static_cast<size_t>(i) * C + c] - mean[i]) * rstd[i] * d;
    }
    dweight[c] += dw;
    dbias[c] += db;
  }
}

}  // namespace frugal::cpu
