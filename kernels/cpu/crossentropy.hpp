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

namespace frugal::cpu {
// Per-token log-probabilities for losses that weight tokens differently (SFT on answer tokens,
// policy gradients): logp (N) = log softmax(logits / T)[target] over [0, V) with inv_temp = 1/T;
// entropy (N) of the same distribution (skipped when null).
void token_logprob_forward(float* logp, float* entropy, const float* logits, const int* targets, int N, int V, int Vp,
                           float inv_temp);
// dlogits (N,Vp) = weight[n] * d logp_n / d logits = weight[n] inv_temp (onehot(target) - softmax): the
// gradient of sum_n weight[n] logp_n. Overwrites; padding and rows of weight 0 get 0.
void token_logprob_backward(float* dlogits, const float* logits, const int* targets, const float* weight, int N, int V,
                            int Vp, float inv_temp);
}  // namespace frugal::cpu
