#pragma once
// Element-wise ops: GELU (tanh approximation, as GPT-2) and the residual add.
#include <cstddef>

namespace frugal::cpu {
void gelu_forward(float* out, const float* inp, size_t n);
// dinp += gelu'(inp) * dout
void gelu_backward(float* dinp, const float* inp, const float* dout, size_t n);
// out = a + b
void residual_forward(float* out, const float* a, const float* b, size_t n);
// da += dout; db += dout
void residual_backward(float* da, float* db, const float* dout, size_t n);
}  // namespace frugal::cpu
