#include "kernels/cpu/crossentropy.hpp"

#include <cmath>
#include <cstddef>

#include "kernels/cpu/profile.hpp"

namespace frugal::cpu {

void softmax_crossentropy_forward(float* probs, float* losses, const float* logits, const int* targets, int N,
                                  int V, int Vp) {
  const KernelTimer timer(Kernel::softmax_crossentropy);
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
  const KernelTimer timer(Kernel::softmax_crossentropy);
#pragma omp parallel for schedule(static)
  for (int i = 0; i < N; i++) {
    const float* p = probs + static_cast<size_t>(i) * Vp;
    float* d = dlogits + static_cast<size_t>(i) * Vp;
    for (int v = 0; v < V; v++) d[v] = p[v] * dloss;
    d[targets[i]] -= dloss;
    for (int v = V; v < Vp; v++) d[v] = 0.0f;
  }
}

namespace {
// max and sum of exp((l - max) * inv_temp) over [0, V) of one row.
void row_softmax_stats(const float* l, int V, float inv_temp, float* maxval, double* sum) {
  float m = -1e30f;
  for (int v = 0; v < V; v++) m = l[v] > m ? l[v] : m;
  double s = 0.0;
  for (int v = 0; v < V; v++) s += std::exp((l[v] - m) * inv_temp);
  *maxval = m, *sum = s;
}
}  // namespace

void token_logprob_forward(float* logp, float* entropy, const float* logits, const int* targets, int N, int V, int Vp,
                           float inv_temp) {
  const KernelTimer timer(Kernel::softmax_crossentropy);
#pragma omp parallel for schedule(static)
  for (int i = 0; i < N; i++) {
    const float* l = logits + static_cast<size_t>(i) * Vp;
    float m;
    double sum;
    row_softmax_stats(l, V, inv_temp, &m, &sum);
    const double log_sum = std::log(sum);
    logp[i] = static_cast<float>(double((l[targets[i]] - m) * inv_temp) - log_sum);
    if (entropy) {  // H = -sum p log p, log p = z - log_sum
      double h = 0.0;
      for (int v = 0; v < V; v++) {
        const double z = double((l[v] - m) * inv_temp) - log_sum;
        h -= std::exp(z) * z;
      }
      entropy[i] = static_cast<float>(h);
    }
  }
}

void token_logprob_backward(float* dlogits, const float* logits, const int* targets, const float* weight, int N, int V,
                            int Vp, float inv_temp) {
  const KernelTimer timer(Kernel::softmax_crossentropy);
#pragma omp parallel for schedule(static)
  for (int i = 0; i < N; i++) {
    const float* l = logits + static_cast<size_t>(i) * Vp;
    float* d = dlogits + static_cast<size_t>(i) * Vp;
    const float w = weight[i] * inv_temp;
    if (w == 0.0f) {
      for (int v = 0; v < Vp; v++) d[v] = 0.0f;
      continue;
    }
    float m;
    double sum;
    row_softmax_stats(l, V, inv_temp, &m, &sum);
    const float inv = static_cast<float>(1.0 / sum);
    for (int v = 0; v < V; v++) d[v] = -w * std::exp((l[v] - m) * inv_temp) * inv;
    d[targets[i]] += w;
    for (int v = V; v < Vp; v++) d[v] = 0.0f;
  }
}

}  // namespace frugal::cpu
