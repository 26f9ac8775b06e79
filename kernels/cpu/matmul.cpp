#include "kernels/cpu/matmul.hpp"

#include <cblas.h>

#include <cstddef>

#include "kernels/cpu/flop_counter.hpp"
#include "kernels/cpu/profile.hpp"

namespace frugal::cpu {

void sgemm_nt(int M, int N, int K, float alpha, const float* A, const float* B, float beta, float* C) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, alpha, A, K, B, K, beta, C, N);
  count_flops(2 * int64_t{M} * N * K);
}

void sgemm_nn(int M, int N, int K, float alpha, const float* A, const float* B, float beta, float* C) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, alpha, A, K, B, N, beta, C, N);
  count_flops(2 * int64_t{M} * N * K);
}

void sgemm_tn(int M, int N, int K, float alpha, const float* A, const float* B, float beta, float* C) {
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, N, K, alpha, A, M, B, N, beta, C, N);
  count_flops(2 * int64_t{M} * N * K);
}

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C, int OC) {
  const KernelTimer timer(Kernel::matmul_forward);
  float beta = 0.0f;
  if (bias) {  // seed out with the bias so the GEMM adds onto it (beta = 1): no second pass
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++)
      for (int o = 0; o < OC; o++) out[static_cast<size_t>(i) * OC + o] = bias[o];
    beta = 1.0f;
  }
  sgemm_nt(N, OC, C, 1.0f, inp, weight, beta, out);
}

void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int N, int C, int OC) {
  const KernelTimer timer(Kernel::matmul_backward);
  // dinp (N,C) += dout (N,OC) . W (OC,C)   (skipped when the caller needs no input gradient)
  if (dinp) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C);
    count_flops(2 * int64_t{N} * C * OC);
  }
  // dW (OC,C) += dout^T (OC,N) . inp (N,C)
  if (dweight) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
    count_flops(2 * int64_t{OC} * C * N);
  }
  if (dbias) {
#pragma omp parallel for schedule(static)
    for (int o = 0; o < OC; o++) {
      float s = 0.0f;
      for (int i = 0; i < N; i++) s += dout[static_cast<size_t>(i) * OC + o];
      dbias[o] += s;
    }
  }
}

}  // namespace frugal::cpu
