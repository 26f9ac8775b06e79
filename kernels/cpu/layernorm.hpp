#pragma once
// LayerNorm over the last dimension, eps = 1e-5 (GPT-2).
namespace frugal::cpu {
// out (N,C), mean (N), rstd (N) from inp (N,C), weight (C), bias (C); N = B*T rows.
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int N, int C);
// dinp (N,C), dweight (C), dbias (C) += gradients given dout (N,C) and the saved mean/rstd.
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int N, int C);
}  // namespace frugal::cpu
