#include "kernels/cpu/encoder.hpp"

#include <cstddef>

#include "kernels/cpu/profile.hpp"

namespace frugal::cpu {

void encoder_forward(float* out, const int* inp, const float* wte, const float* wpe, int B, int T, int C) {
  const KernelTimer timer(Kernel::encoder);
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++) {
    for (int t = 0; t < T; t++) {
      float* o = out + (static_cast<size_t>(b) * T + t) * C;
      const float* w = wte + static_cast<size_t>(inp[b * T + t]) * C;
      const float* p = wpe + static_cast<size_t>(t) * C;
      for (int c = 0; c < C; c++) o[c] = w[c] + p[c];
    }
  }
}

void encoder_backward(float* dwte, float* dwpe, const float* dout, const int* inp, int B, int T, int C) {
  const KernelTimer timer(Kernel::encoder);
  // Tokens repeat, so rows of dwte collide: split the work over channels instead of tokens.
#pragma omp parallel for schedule(static)
  for (int c = 0; c < C; c++) {
    for (int b = 0; b < B; b++) {
      for (int t = 0; t < T; t++) {
        const float d = dout[(static_cast<size_t>(b) * T + t) * C + c];
        dwte[static_cast<size_t>(inp[b * T + t]) * C + c] += d;
        dwpe[static_cast<size_t>(t) * C + c] += d;
      }
    }
  }
}

}  // namespace frugal::cpu
