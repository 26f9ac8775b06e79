#include "kernels/cpu/attention.hpp"

#include <cmath>
#include <cstddef>
#include <vector>

#include "kernels/cpu/flop_counter.hpp"
#include "kernels/cpu/profile.hpp"

namespace frugal::cpu {

namespace {

// Every dot product over the head dimension (q.k in the forward, v.dout in the backward) is summed
// in i order from 0.0f: that order is the kernel's arithmetic. Written per t2 it is a chain of
// dependent additions; with the keys (values) of one (b, h) transposed to [hs][T], the dots of all
// positions t2 advance together, one vector lane per t2, each lane still in i order: same bits,
// vectorised. The transposes are [B][NH][hs][T]: a few hundred kB per layer call, kept per calling
// thread (callers may run in parallel) and reused, so a step allocates nothing.
std::vector<float>& transposed_buffer(size_t n) {
  thread_local std::vector<float> buf;
  if (buf.size() < n) buf.resize(n);
  return buf;
}

// out[b][h][i][t] = qkv[b][t][part * C + h * hs + i]: part 1 = keys, 2 = values.
void transpose_heads(float* out, const float* qkv, int part, int B, int T, int C, int NH) {
  const int hs = C / NH;
  const size_t C3 = 3 * static_cast<size_t>(C);
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++) {
      float* o = out + (static_cast<size_t>(b) * NH + h) * hs * T;
      for (int t = 0; t < T; t++) {
        const float* x = qkv + (static_cast<size_t>(b) * T + t) * C3 + size_t(part) * C + h * hs;
        for (int i = 0; i < hs; i++) o[static_cast<size_t>(i) * T + t] = x[i];
      }
    }
}

// dot[t2] = sum_i x[i] * yT[i][t2] for t2 < n, each summed in i order from 0.0f.
inline void dots_in_order(float* __restrict dot, const float* __restrict x, const float* __restrict yT, int hs, int T,
                          int n) {
  for (int t2 = 0; t2 < n; t2++) dot[t2] = 0.0f;
  for (int i = 0; i < hs; i++) {
    const float xi = x[i];
    const float* __restrict y = yT + static_cast<size_t>(i) * T;
#pragma omp simd
    for (int t2 = 0; t2 < n; t2++) dot[t2] += xi * y[t2];
  }
}

}  // namespace

void attention_forward(float* out, float* att, const float* qkv, int B, int T, int C, int NH) {
  const KernelTimer timer(Kernel::attention_forward);
  const int hs = C / NH;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
  const size_t C3 = 3 * static_cast<size_t>(C);
  float* kT = transposed_buffer(static_cast<size_t>(B) * T * C).data();
  transpose_heads(kT, qkv, 1, B, T, C, NH);
  int64_t macs = 0;  // multiply-adds of q.k and att.v, counted per causal row
#pragma omp parallel for collapse(3) schedule(static) reduction(+ : macs)
  for (int b = 0; b < B; b++) {
    for (int t = 0; t < T; t++) {
      for (int h = 0; h < NH; h++) {
        macs += 2 * int64_t{t + 1} * hs;
        const float* q = qkv + (static_cast<size_t>(b) * T + t) * C3 + h * hs;
        float* a = att + ((static_cast<size_t>(b) * NH + h) * T + t) * T;
        dots_in_order(a, q, kT + (static_cast<size_t>(b) * NH + h) * hs * T, hs, T, t + 1);
        float maxval = -1e30f;
        for (int t2 = 0; t2 <= t; t2++) {
          a[t2] *= scale;
          if (a[t2] > maxval) maxval = a[t2];
        }
        float sum = 0.0f;
        for (int t2 = 0; t2 <= t; t2++) {
          a[t2] = std::exp(a[t2] - maxval);
          sum += a[t2];
        }
        const float inv = 1.0f / sum;
        for (int t2 = 0; t2 < T; t2++) a[t2] = t2 <= t ? a[t2] * inv : 0.0f;
        float* o = out + (static_cast<size_t>(b) * T + t) * C + h * hs;
        for (int i = 0; i < hs; i++) o[i] = 0.0f;
        for (int t2 = 0; t2 <= t; t2++) {
          const float* v = qkv + (static_cast<size_t>(b) * T + t2) * C3 + 2 * C + h * hs;
          for (int i = 0; i < hs; i++) o[i] += a[t2] * v[i];
        }
      }
    }
  }
  count_flops(2 * macs);
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* att, int B, int T, int C,
                        int NH) {
  const KernelTimer timer(Kernel::attention_backward);
  const int hs = C / NH;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
  const size_t C3 = 3 * static_cast<size_t>(C);
  float* vT = transposed_buffer(static_cast<size_t>(B) * T * C).data();
  transpose_heads(vT, qkv, 2, B, T, C, NH);
  // One (b, h) pair per task: dk and dv of position t2 receive contributions from every t >= t2,
  // all inside the same (b, h), so tasks never write the same memory.
  int64_t macs = 0;  // v.d, dv, dq and dk multiply-adds, counted per causal row: twice the forward's
#pragma omp parallel
  {
    std::vector<float> datt(T), dpre(T);
#pragma omp for collapse(2) schedule(static) reduction(+ : macs)
    for (int b = 0; b < B; b++) {
      for (int h = 0; h < NH; h++) {
        for (int t = 0; t < T; t++) {
          macs += 4 * int64_t{t + 1} * hs;
          const float* a = att + ((static_cast<size_t>(b) * NH + h) * T + t) * T;
          const float* d = dout + (static_cast<size_t>(b) * T + t) * C + h * hs;
          const float* q = qkv + (static_cast<size_t>(b) * T + t) * C3 + h * hs;
          float* dq = dqkv + (static_cast<size_t>(b) * T + t) * C3 + h * hs;
          // out = sum_t2 a[t2] v[t2]: datt[t2] = v[t2].d, dv[t2] += a[t2] d
          dots_in_order(datt.data(), d, vT + (static_cast<size_t>(b) * NH + h) * hs * T, hs, T, t + 1);
          for (int t2 = 0; t2 <= t; t2++) {
            float* dv = dqkv + (static_cast<size_t>(b) * T + t2) * C3 + 2 * C + h * hs;
            for (int i = 0; i < hs; i++) dv[i] += a[t2] * d[i];
          }
          // softmax: dpre[t3] = a[t3] (datt[t3] - sum_t2 a[t2] datt[t2])
          float dot = 0.0f;
          for (int t2 = 0; t2 <= t; t2++) dot += a[t2] * datt[t2];
          for (int t3 = 0; t3 <= t; t3++) dpre[t3] = a[t3] * (datt[t3] - dot);
          // pre = scale q.k
          for (int t2 = 0; t2 <= t; t2++) {
            const float* k = qkv + (static_cast<size_t>(b) * T + t2) * C3 + C + h * hs;
            float* dk = dqkv + (static_cast<size_t>(b) * T + t2) * C3 + C + h * hs;
            const float g = dpre[t2] * scale;
            for (int i = 0; i < hs; i++) {
              dq[i] += k[i] * g;
              dk[i] += q[i] * g;
            }
          }
        }
      }
    }
  }
  count_flops(2 * macs);
}

}  // namespace frugal::cpu
