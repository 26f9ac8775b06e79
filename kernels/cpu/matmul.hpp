#pragma once
// Linear layer through BLAS: out = inp W^T + bias, W stored (OC, C) row-major as in PyTorch/llm.c.
#include <cstdint>

namespace frugal::cpu {
// out (N,OC) = inp (N,C) . weight(OC,C)^T + bias (OC); bias may be null.
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C, int OC);
// dinp (N,C) += dout . W;  dweight (OC,C) += dout^T . inp;  dbias (OC) += colsum(dout). Any of the three may be
// null (not wanted: a frozen weight skips its GEMM).
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int N, int C, int OC);
// FLOPs the forward issues (2 N C OC); the backward issues twice that.
inline int64_t matmul_forward_flops(int64_t N, int64_t C, int64_t OC) { return 2 * N * C * OC; }
// Plain C = alpha A B^T + beta C (row-major, A (M,K), B (N,K)): the one sgemm shape we need elsewhere.
void sgemm_nt(int M, int N, int K, float alpha, const float* A, const float* B, float beta, float* C);
// C = alpha A B + beta C (A (M,K), B (K,N)) and C = alpha A^T B + beta C (A (K,M), B (K,N)).
void sgemm_nn(int M, int N, int K, float alpha, const float* A, const float* B, float beta, float* C);
void sgemm_tn(int M, int N, int K, float alpha, const float* A, const float* B, float beta, float* C);
}  // namespace frugal::cpu
