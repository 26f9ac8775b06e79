#pragma once
// Causal multi-head self-attention (softmax(q k^T / sqrt(hs)) v), heads of size hs = C / NH.
#include <cstdint>

namespace frugal::cpu {
// qkv (B,T,3C) holds q | k | v; out (B,T,C); att (B,NH,T,T) keeps the softmax for the backward.
void attention_forward(float* out, float* att, const float* qkv, int B, int T, int C, int NH);
// dqkv (B,T,3C) += gradient given dout (B,T,C) and the saved att.
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* att, int B, int T, int C,
                        int NH);
// FLOPs of the forward for one sequence, counting only the causal (t2 <= t) products it computes:
// q.k and att.v each 2 hs per (t, t2) pair per head -> 2 * 2 * C * T(T+1)/2.
inline int64_t attention_forward_flops(int64_t T, int64_t C) { return 2 * C * T * (T + 1); }
}  // namespace frugal::cpu
