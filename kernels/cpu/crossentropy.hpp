#pragma once
// Softmax + cross-entropy over the first V of Vp (padded) logits, fused like llm.c.
namespace frugal::cpu {
// probs (N,Vp) = softmax(logits) over [0, V), 0 in the padding; losses (N) = -log probs[target].
void softmax_crossentropy_forward(float* probs, float* losses, const float* logits, const int* targets, int N,
                                  int V, int Vp);
// dlogits (N,Vp) = (probs - onehot(target)) * dloss, padding gets 0 (overwrites, does not add).
void softmax_crossentropy_backward(float* dlogits, const float* probs, const int* targets, float dloss, int N,
                                   int V, int Vp);
}  // namespace frugal::cpu
