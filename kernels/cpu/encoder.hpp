#pragma once
// Token + position embedding.
namespace frugal::cpu {
// out (B,T,C) = wte[inp[b,t]] (V,C) + wpe[t] (maxT,C)
void encoder_forward(float* out, const int* inp, const float* wte, const float* wpe, int B, int T, int C);
// dwte, dwpe += scatter of dout (B,T,C); deterministic (parallel over channels, fixed token order)
void encoder_backward(float* dwte, float* dwpe, const float* dout, const int* inp, int B, int T, int C);
}  // namespace frugal::cpu
