// Causal multi-head self-attention as llm.c's fp32 path does it: the score and value products are
// cuBLAS strided-batched GEMMs over (batch, head), the softmax and its backward are one warp per
// (b, h, t) row. The GEMMs compute the full T x T score matrix (twice the causal FLOPs, at tensor-
// core speed under TF32); the softmax masks what lies above the diagonal, so att keeps the CPU's
// layout with exact zeros there, and the backward's products read those zeros instead of
// branching. Deterministic: cuBLAS' GEMMs and fixed warp reductions, no atomics. qkv, out, att and
// their gradients are float or bf16 (kernels/cuda/storage.cuh; bf16: the GEMMs on bf16 tensor cores
// with fp32 accumulation, the softmax in fp32 between bf16 loads and stores).
//
// Shapes: qkv (B,T,3C) with q | k | v in each row, heads of size hs = C / NH at offset h * hs;
// out/dout (B,T,C); att (B,NH,T,T) row (b,h,t) = softmax over t2 <= t, zeros for t2 > t.
// Head (b, h) of each tensor is a strided row-major matrix: Q_bh = qkv + b T 3C + h hs with leading
// dimension 3C (K at + C, V at + 2C), att_bh = att + (b NH + h) T T with T, out_bh = out + b T C + h hs
// with C. Neither b nor h alone has one stride across both, so the GEMMs batch over the larger of B
// and NH and loop over the other.
#include <cmath>
#include <cstddef>
#include <type_traits>

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/kernels.hpp"
#include "kernels/cuda/storage.cuh"
#include "kernels/cuda/warp.cuh"

namespace frugal::cuda {

namespace {

using detail::dev;
using detail::kWarp;
using detail::load;
using detail::store;
using detail::warp_sum;
constexpr int kBlock = 256;  // 8 warps = 8 rows per block

// Row r = (b NH + h) T + t of att: softmax of the scaled scores the GEMM wrote, in place, over
// t2 <= t; exact zeros above the diagonal.
template <typename Act>
__global__ void causal_softmax_kernel(Act* att, size_t rows, int T) {
  const size_t r = static_cast<size_t>(blockIdx.x) * (blockDim.x / kWarp) + threadIdx.x / kWarp;
  if (r >= rows) return;  // warp-uniform
  const int lane = threadIdx.x % kWarp, t = static_cast<int>(r % T);
  Act* a = att + r * T;
  const float inv = detail::warp_softmax_exp(a, t + 1);
  for (int t2 = lane; t2 < T; t2 += kWarp) a[t2] = store<Act>(t2 <= t ? load(a[t2]) * inv : 0.0f);
}

// The softmax backward of row r, in place over datt: dpre[t2] = a[t2] (datt[t2] - sum_t2' a datt)
// for t2 <= t, exact zeros above the diagonal (the GEMMs after it read the whole row).
template <typename Act>
__global__ void causal_softmax_backward_kernel(Act* datt, const Act* att, size_t rows, int T) {
  const size_t r = static_cast<size_t>(blockIdx.x) * (blockDim.x / kWarp) + threadIdx.x / kWarp;
  if (r >= rows) return;  // warp-uniform
  const int lane = threadIdx.x % kWarp, t = static_cast<int>(r % T);
  Act* d = datt + r * T;
  const Act* a = att + r * T;
  float part = 0.0f;
  for (int t2 = lane; t2 <= t; t2 += kWarp) part += load(a[t2]) * load(d[t2]);
  const float dot = warp_sum(part);
  for (int t2 = lane; t2 < T; t2 += kWarp) d[t2] = store<Act>(t2 <= t ? load(a[t2]) * (load(d[t2]) - dot) : 0.0f);
}

// Element offsets of head (b, h) in one tensor: b * per_b + h * per_h.
struct HeadStrides {
  long long per_b, per_h;
};

// For every head (b, h): row-major C_bh (M,N) = alpha op(A_bh) op(B_bh) + beta C_bh, op = transpose
// where asked, each operand at its head's offset with its leading dimension. cuBLAS sees the
// column-major transposes, C^T = op(B)^T op(A)^T: operands swapped, transpose flags kept. fp32
// through cublasSgemmStridedBatched (the handle's math mode: FP32 or TF32), bf16 through the Ex
// call with fp32 accumulation.
template <typename Act>
void gemm_per_head(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const Act* A, int lda,
                   HeadStrides sa, const Act* Bm, int ldb, HeadStrides sb, float beta, Act* Cm, int ldc,
                   HeadStrides sc, int B, int NH) {
  const bool batch_over_b = B >= NH;
  const int loops = batch_over_b ? NH : B, count = batch_over_b ? B : NH;
  const auto offset = [&](HeadStrides s, int i) { return batch_over_b ? i * s.per_h : i * s.per_b; };
  const auto stride = [&](HeadStrides s) { return batch_over_b ? s.per_b : s.per_h; };
  const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  for (int i = 0; i < loops; i++) {
    if constexpr (std::is_same_v<Act, float>) {
      FRUGAL_CUBLAS_CHECK(cublasSgemmStridedBatched(detail::cublas_handle(), op_b, op_a, N, M, K, &alpha,
                                                    Bm + offset(sb, i), ldb, stride(sb), A + offset(sa, i), lda,
                                                    stride(sa), &beta, Cm + offset(sc, i), ldc, stride(sc), count));
    } else {
      FRUGAL_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
          detail::cublas_handle(), op_b, op_a, N, M, K, &alpha, Bm + offset(sb, i), CUDA_R_16BF, ldb, stride(sb),
          A + offset(sa, i), CUDA_R_16BF, lda, stride(sa), &beta, Cm + offset(sc, i), CUDA_R_16BF, ldc, stride(sc),
          count, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
  }
}

void check_shape(const char* name, int B, int T, int C, int NH) {
  FRUGAL_CHECK(B >= 0 && T >= 0 && C > 0 && NH > 0 && C % NH == 0, name, ": bad shape B=", B, " T=", T, " C=", C,
               " NH=", NH);
}

int grid_for_rows(size_t rows) {
  const size_t per_block = kBlock / kWarp;
  return static_cast<int>((rows + per_block - 1) / per_block);
}

// The three layouts of the header comment.
struct Layouts {
  HeadStrides qkv, att, out;
};
Layouts layouts(int T, int C, int NH) {
  const long long hs = C / NH, TT = static_cast<long long>(T) * T;
  return {{static_cast<long long>(T) * 3 * C, hs}, {NH * TT, TT}, {static_cast<long long>(T) * C, hs}};
}

template <typename Act>
void attention_forward_on(Act* out, Act* att, const Act* qkv, int B, int T, int C, int NH) {
  check_shape("cuda::attention_forward", B, T, C, NH);
  const size_t rows = static_cast<size_t>(B) * NH * T;
  if (rows == 0) return;
  const int hs = C / NH;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));  // the CPU's expression
  const Layouts L = layouts(T, C, NH);
  // scores_bh (T,T) = scale Q_bh K_bh^T
  gemm_per_head(false, true, T, T, hs, scale, qkv, 3 * C, L.qkv, qkv + C, 3 * C, L.qkv, 0.0f, att, T, L.att, B, NH);
  causal_softmax_kernel<<<grid_for_rows(rows), kBlock>>>(att, rows, T);
  FRUGAL_CUDA_CHECK_LAUNCH("causal_softmax_kernel");
  // out_bh (T,hs) = att_bh V_bh
  gemm_per_head(false, false, T, hs, T, 1.0f, att, T, L.att, qkv + 2 * C, 3 * C, L.qkv, 0.0f, out, C, L.out, B, NH);
}

template <typename Act>
void attention_backward_on(Act* dqkv, const Act* dout, const Act* qkv, const Act* att, int B, int T, int C, int NH) {
  check_shape("cuda::attention_backward", B, T, C, NH);
  const size_t rows = static_cast<size_t>(B) * NH * T;
  if (rows == 0) return;
  const int hs = C / NH;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
  const Layouts L = layouts(T, C, NH);
  Act* dpre = static_cast<Act*>(detail::scratch(rows * T * sizeof(Act)));
  // datt_bh (T,T) = dout_bh V_bh^T, then the softmax backward turns it into dpre in place.
  gemm_per_head(false, true, T, T, hs, 1.0f, dout, C, L.out, qkv + 2 * C, 3 * C, L.qkv, 0.0f, dpre, T, L.att, B, NH);
  causal_softmax_backward_kernel<<<grid_for_rows(rows), kBlock>>>(dpre, att, rows, T);
  FRUGAL_CUDA_CHECK_LAUNCH("causal_softmax_backward_kernel");
  // dq += scale dpre K;  dk += scale dpre^T Q;  dv += att^T dout
  gemm_per_head(false, false, T, hs, T, scale, dpre, T, L.att, qkv + C, 3 * C, L.qkv, 1.0f, dqkv, 3 * C, L.qkv, B, NH);
  gemm_per_head(true, false, T, hs, T, scale, dpre, T, L.att, qkv, 3 * C, L.qkv, 1.0f, dqkv + C, 3 * C, L.qkv, B, NH);
  gemm_per_head(true, false, T, hs, T, 1.0f, att, T, L.att, dout, C, L.out, 1.0f, dqkv + 2 * C, 3 * C, L.qkv, B, NH);
}

}  // namespace

void attention_forward(float* out, float* att, const float* qkv, int B, int T, int C, int NH) {
  attention_forward_on(out, att, qkv, B, T, C, NH);
}
void attention_forward(bf16* out, bf16* att, const bf16* qkv, int B, int T, int C, int NH) {
  attention_forward_on(dev(out), dev(att), dev(qkv), B, T, C, NH);
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* att, int B, int T, int C,
                        int NH) {
  attention_backward_on(dqkv, dout, qkv, att, B, T, C, NH);
}
void attention_backward(bf16* dqkv, const bf16* dout, const bf16* qkv, const bf16* att, int B, int T, int C, int NH) {
  attention_backward_on(dev(dqkv), dev(dout), dev(qkv), dev(att), B, T, C, NH);
}

}  // namespace frugal::cuda
