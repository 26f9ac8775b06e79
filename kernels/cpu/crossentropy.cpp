#include "kernels/cpu/crossentropy.hpp"

#include <cmath>
#include <cstddef>

namespace frugal::cpu {

void softmax_crossentropy_forward(float* probs, float* losses, const float* logits, const int* targets, int N,
                                  int V, int Vp) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < N; i++) {
    const float* l = logits + static_cast<size_t>(i) * Vp;
    float* p = probs + static_cast<size_t>(i) * Vp;
    float maxval = -1e30f;
    for (int v = 0; v < V; v++) maxval = l[v] > maxval ? l[v] : maxval;
    double sum = 0.0;  // double: V can be 50k terms
    for (int v = 0; v < V; v++) {
      p[v] = std::exp(l[v] - maxval);
      sum += p[v];
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (int v = 0; v < V; v++) p[v] *= inv;
    for (int v = V; v < Vp; v++) p[v] = 0.0f;
    // log-sum-exp form keeps the loss exact even when the target's probability underflows
    losses[i] = static_cast<float>(std::log(sum) + maxval - l[targets[i]]);
  }
}

void softmax_crossentropy_backward(float* dlogits, const float* probs, const int* targets, float dloss, int N,
                                   int V, int Vp) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < N; i++) {
    const float* p = probs + static_cast<size_t>(i) * Vp;
    float* d = dlogits + static_cast<size_t>(i) * Vp;
    for (int v = 0; v < V; v++) d[v] = p[v] * dloss;
    d[targets[i]] -= dloss;
    for (int v = V; v < Vp; v++) d[v] = 0.0f;
  }
}

}  // namespace frugal::cpu
