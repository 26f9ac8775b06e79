// Linear layer and sgemm through cuBLAS. cuBLAS is column-major; a row-major (R,S) matrix is the
// same memory as a column-major (S,R) one, i.e. its transpose. So the row-major product
// C = A B^T becomes, in cuBLAS' eyes, C^T = B A^T: swap the operands and transpose B.
// The backward's dbias is a column sum: a fixed-order block reduction, not atomics (deterministic).
#include <cuda_bf16.h>

#include <cstddef>

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/kernels.hpp"
#include "kernels/cuda/storage.cuh"

namespace frugal::cuda {

namespace detail {

namespace {
// Owns one cuBLAS handle per thread. Destroyed at thread exit, which for the main thread runs
// before the CUDA runtime's own atexit teardown.
struct HandleHolder {
  cublasHandle_t handle = nullptr;
  ~HandleHolder() {
    if (handle) cublasDestroy(handle);  // status ignored: nothing to do about it at exit
  }
};
}  // namespace

cublasHandle_t cublas_handle() {
  thread_local HandleHolder holder;
  if (!holder.handle) {
    cublasHandle_t h = nullptr;
    FRUGAL_CUBLAS_CHECK(cublasCreate(&h));
    holder.handle = h;
    // Default math = no TF32 tensor-op down-conversion for FP32 GEMMs (unlike
    // CUBLAS_TF32_TENSOR_OP_MATH), so the CUDA and CPU kernels agree to FP32 rounding.
    FRUGAL_CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
    // Host-side alpha/beta, legacy default stream (cublasCreate's defaults, set explicitly).
    FRUGAL_CUBLAS_CHECK(cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST));
    FRUGAL_CUBLAS_CHECK(cublasSetStream(h, nullptr));
  }
  return holder.handle;
}

}  // namespace detail

namespace {
thread_local MatmulPrecision g_precision = MatmulPrecision::fp32;

// Per-thread bf16 buffers for GEMM operands rounded on the fly (fp32 weights under bf16), grown on
// demand: slots 0-2 are the matmul kernels' own, the rest to_bf16_scratch's callers' (LoRA).
bf16* bf16_operand(int which, const float* src, size_t n) {
  thread_local DeviceArray<bf16> buffers[kBf16ScratchSlots];
  bf16* out = buffers[which].grow(n);
  convert(out, src, n);
  return out;
}
}  // namespace

void set_matmul_precision(MatmulPrecision p) {
  // TF32 math for the FP32 GEMMs under tf32, and under bf16 for those that stay FP32 (the sgemm_*
  // of the fp32-activation code: the decoder's LoRA adapters).
  FRUGAL_CUBLAS_CHECK(cublasSetMathMode(detail::cublas_handle(),
                                        p == MatmulPrecision::fp32 ? CUBLAS_DEFAULT_MATH : CUBLAS_TF32_TENSOR_OP_MATH));
  g_precision = p;
}

MatmulPrecision matmul_precision() { return g_precision; }

void set_tf32(bool on) { set_matmul_precision(on ? MatmulPrecision::tf32 : MatmulPrecision::fp32); }

namespace {

using detail::dev;
using detail::load;
using detail::store;

// out (N,OC) row-major: every row = bias (OC). Grid-stride so any N*OC fits a bounded grid.
template <typename TO, typename TB>
__global__ void broadcast_rows_kernel(TO* out, const TB* bias, size_t N, size_t OC) {
  const size_t total = N * OC;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    out[i] = store<TO>(load(bias[i % OC]));
  }
}


// dbias (OC) += column sums of dout (N,OC). Block (32, kRowLanes): x picks the column (coalesced row
// reads), y strides the rows; the y == 0 threads add the kRowLanes partials in y order.
constexpr int kWarp = 32;
constexpr int kRowLanes = 32;
template <typename Act>
__global__ void column_sum_add_kernel(float* dbias, const Act* dout, int N, int OC) {
  __shared__ float part[kRowLanes][kWarp + 1];  // +1: no bank conflicts on the column read below
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int o = blockIdx.x * kWarp + tx;
  float s = 0.0f;
  if (o < OC)
    for (int i = ty; i < N; i += kRowLanes) s += load(dout[static_cast<size_t>(i) * OC + o]);
  part[ty][tx] = s;
  __syncthreads();
  if (ty == 0 && o < OC) {
    float total = 0.0f;
    for (int y = 0; y < kRowLanes; y++) total += part[y][tx];
    dbias[o] += total;
  }
}

// Seeds out (N,OC) with the bias rows, so that the GEMM can accumulate onto them (beta = 1): one
// write pass instead of a read-modify-write pass after the GEMM. out and bias float or bf16.
template <typename TO, typename TB>
void broadcast_rows(TO* out, const TB* bias, int N, int OC) {
  const size_t total = static_cast<size_t>(N) * OC;
  broadcast_rows_kernel<<<detail::grid_for(total, 256), 256>>>(dev(out), dev(bias), static_cast<size_t>(N),
                                                               static_cast<size_t>(OC));
  FRUGAL_CUDA_CHECK_LAUNCH("broadcast_rows_kernel");
}

template <typename Act>
void column_sum_add(float* dbias, const Act* dout, int N, int OC) {
  column_sum_add_kernel<<<(OC + kWarp - 1) / kWarp, dim3(kWarp, kRowLanes)>>>(dbias, dev(dout), N, OC);
  FRUGAL_CUDA_CHECK_LAUNCH("column_sum_add_kernel");
}

// Row-major C (M,N) = alpha op(A) op(B) + beta C with op(A) (M,K), op(B) (K,N), through cublasGemmEx
// with fp32 accumulation; A and B bf16 (tensor cores), C bf16 (rounded once) or fp32. cuBLAS sees
// the column-major transposes, C^T = op(B)^T op(A)^T: operands swapped, transpose flags kept; a
// row-major X is stored as column-major X^T, with leading dimension its row length.
template <typename TC>
void gemm_bf16_rowmajor(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const bf16* A, const bf16* B,
                        float beta, TC* C) {
  FRUGAL_CHECK(M >= 0 && N >= 0 && K > 0, "cuda::gemm (bf16): bad shape M=", M, " N=", N, " K=", K);
  if (M == 0 || N == 0) return;
  const int lda = trans_a ? M : K, ldb = trans_b ? K : N;
  FRUGAL_CUBLAS_CHECK(cublasGemmEx(detail::cublas_handle(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                   trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B, CUDA_R_16BF, ldb, A,
                                   CUDA_R_16BF, lda, &beta, C, detail::blas_type<TC>(), N, CUBLAS_COMPUTE_32F,
                                   CUBLAS_GEMM_DEFAULT));
}

}  // namespace

void sgemm_nt(int M, int N, int K, float alpha, const float* A, const float* B, float beta, float* C) {
  FRUGAL_CHECK(M >= 0 && N >= 0 && K >= 0, "cuda::sgemm_nt: negative shape M=", M, " N=", N, " K=", K);
  if (M == 0 || N == 0) return;
  // Row-major C (M,N) = A (M,K) . B (N,K)^T  <=>  column-major C^T (N,M) = B (N,K) . A^T (K,M):
  // B's memory is column-major (K,N), so op(B) = T gives (N,K); A's memory is column-major (K,M) = A^T,
  // used as is. Leading dimensions: K for both inputs, N for C. max(1, K) keeps cuBLAS' lda >= 1
  // check happy when K == 0 (then the call just scales C by beta, as the CPU BLAS does).
  const int ld = std::max(1, K);
  FRUGAL_CUBLAS_CHECK(cublasSgemm(detail::cublas_handle(), CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, B, ld, A, ld,
                                  &beta, C, N));
}

void sgemm_nn(int M, int N, int K, float alpha, const float* A, const float* B, float beta, float* C) {
  FRUGAL_CHECK(M >= 0 && N >= 0 && K >= 0, "cuda::sgemm_nn: negative shape M=", M, " N=", N, " K=", K);
  if (M == 0 || N == 0) return;
  // Row-major C (M,N) = A (M,K) . B (K,N)  <=>  column-major C^T (N,M) = B^T (N,K) . A^T (K,M): B's
  // memory is column-major (N,K) = B^T and A's (K,M) = A^T, both used as they lie.
  FRUGAL_CUBLAS_CHECK(cublasSgemm(detail::cublas_handle(), CUBLAS_OP_N, CUBLAS_OP_N, N, M, K, &alpha, B, std::max(1, N),
                                  A, std::max(1, K), &beta, C, N));
}

void sgemm_tn(int M, int N, int K, float alpha, const float* A, const float* B, float beta, float* C) {
  FRUGAL_CHECK(M >= 0 && N >= 0 && K >= 0, "cuda::sgemm_tn: negative shape M=", M, " N=", N, " K=", K);
  if (M == 0 || N == 0) return;
  // Row-major C (M,N) = A^T . B with A (K,M), B (K,N)  <=>  column-major C^T (N,M) = B^T (N,K) . A (K,M):
  // B's memory is column-major (N,K) = B^T, as is; A's is column-major (M,K) = A^T, transposed.
  FRUGAL_CUBLAS_CHECK(cublasSgemm(detail::cublas_handle(), CUBLAS_OP_N, CUBLAS_OP_T, N, M, K, &alpha, B, std::max(1, N),
                                  A, std::max(1, M), &beta, C, N));
}

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C, int OC) {
  FRUGAL_CHECK(N >= 0 && C >= 0 && OC >= 0, "cuda::matmul_forward: negative shape N=", N, " C=", C, " OC=", OC);
  if (N == 0 || OC == 0) return;
  float beta = 0.0f;
  if (bias) {
    // Seed out with the bias and let the GEMM accumulate onto it (beta = 1), as the CPU kernel does:
    // one cheap write pass instead of a read-modify-write pass after the GEMM.
    broadcast_rows(out, bias, N, OC);
    beta = 1.0f;
  }
  if (g_precision == MatmulPrecision::bf16 && C > 0) {
    // The same product on bf16 operands (rounded here), fp32 accumulation and output.
    gemm_bf16_rowmajor(false, true, N, OC, C, 1.0f, bf16_operand(1, inp, size_t(N) * C),
                       bf16_operand(0, weight, size_t(OC) * C), beta, out);
    return;
  }
  // out (N,OC) = inp (N,C) . weight (OC,C)^T + beta out
  sgemm_nt(N, OC, C, 1.0f, inp, weight, beta, out);
}

void gemm_nt(int M, int N, int K, float alpha, const bf16* A, const bf16* B, float beta, bf16* C) {
  gemm_bf16_rowmajor(false, true, M, N, K, alpha, A, B, beta, C);
}

void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const bf16* A, const bf16* B, float beta,
          bf16* C) {
  gemm_bf16_rowmajor(trans_a, trans_b, M, N, K, alpha, A, B, beta, C);
}
void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const bf16* A, const bf16* B, float beta,
          float* C) {
  gemm_bf16_rowmajor(trans_a, trans_b, M, N, K, alpha, A, B, beta, C);
}

bf16* to_bf16_scratch(int slot, const float* src, size_t n) {
  FRUGAL_CHECK(slot >= kMatmulScratchSlots && slot < kBf16ScratchSlots, "internal: cuda::to_bf16_scratch slot ", slot);
  return bf16_operand(slot, src, n);
}

void matmul_forward(bf16* out, const bf16* inp, const bf16* weight, const bf16* bias, int N, int C, int OC) {
  FRUGAL_CHECK(N >= 0 && C > 0 && OC >= 0, "cuda::matmul_forward (bf16): bad shape N=", N, " C=", C, " OC=", OC);
  if (N == 0 || OC == 0) return;
  if (bias) broadcast_rows(out, bias, N, OC);
  gemm_nt(N, OC, C, 1.0f, inp, weight, bias ? 1.0f : 0.0f, out);
}

void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int N, int C, int OC) {
  FRUGAL_CHECK(N >= 0 && C >= 0 && OC >= 0, "cuda::matmul_backward: negative shape N=", N, " C=", C, " OC=", OC);
  const float one = 1.0f;
  if (g_precision == MatmulPrecision::bf16 && N > 0 && C > 0 && OC > 0 && (dinp || dweight)) {
    // The two products below on bf16 operands (rounded here), fp32 accumulation into the fp32
    // gradients; dbias stays an fp32 column sum.
    const bf16* d = bf16_operand(0, dout, size_t(N) * OC);
    // dinp (N,C) += dout (N,OC) W (OC,C);  dW (OC,C) += dout^T inp (N,C)
    if (dinp) gemm_bf16_rowmajor(false, false, N, C, OC, 1.0f, d, bf16_operand(1, weight, size_t(OC) * C), 1.0f, dinp);
    if (dweight) gemm_bf16_rowmajor(true, false, OC, C, N, 1.0f, d, bf16_operand(2, inp, size_t(N) * C), 1.0f, dweight);
    dinp = dweight = nullptr;  // done: only dbias below
  }
  // The handle is fetched per GEMM, not up front, so empty shapes never touch the device.
  // Row-major X (R,S) is column-major X^T (S,R), so each row-major product is issued transposed.
  // dinp (N,C) += dout (N,OC) . W (OC,C)  <=>  dinp^T (C,N) += W^T (C,OC) . dout^T (OC,N); W's memory is
  // column-major (C,OC) and dout's (OC,N): both used as they lie (op N). K = OC == 0 leaves dinp as is.
  if (dinp && N > 0 && C > 0 && OC > 0)
    FRUGAL_CUBLAS_CHECK(cublasSgemm(detail::cublas_handle(), CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, &one, weight, C, dout,
                                    OC, &one, dinp, C));
  // dW (OC,C) += dout^T (OC,N) . inp (N,C)  <=>  dW^T (C,OC) += inp^T (C,N) . dout (N,OC); inp's memory is
  // column-major (C,N), used as is; dout's is column-major (OC,N), transposed to (N,OC).
  if (dweight && N > 0 && C > 0 && OC > 0)
    FRUGAL_CUBLAS_CHECK(cublasSgemm(detail::cublas_handle(), CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, &one, inp, C, dout,
                                    OC, &one, dweight, C));
  if (dbias && N > 0 && OC > 0) column_sum_add(dbias, dout, N, OC);
}

// bf16 activations (model.dtype = bf16): the fp32 weight is rounded per call into scratch (a pass over
// it, small beside the GEMM), the products run on bf16 tensor cores with fp32 accumulation.
void matmul_forward(bf16* out, const bf16* inp, const float* weight, const float* bias, int N, int C, int OC) {
  FRUGAL_CHECK(N >= 0 && C > 0 && OC >= 0, "cuda::matmul_forward (bf16): bad shape N=", N, " C=", C, " OC=", OC);
  if (N == 0 || OC == 0) return;
  if (bias) broadcast_rows(out, bias, N, OC);
  gemm_bf16_rowmajor(false, true, N, OC, C, 1.0f, inp, bf16_operand(0, weight, size_t(OC) * C), bias ? 1.0f : 0.0f,
                     out);
}

void matmul_backward(bf16* dinp, float* dweight, float* dbias, const bf16* dout, const bf16* inp, const float* weight,
                     int N, int C, int OC) {
  FRUGAL_CHECK(N >= 0 && C >= 0 && OC >= 0, "cuda::matmul_backward (bf16): negative shape N=", N, " C=", C, " OC=", OC);
  if (N == 0 || C == 0 || OC == 0) return;
  // dinp (N,C) += dout (N,OC) W (OC,C), rounded to bf16;  dW (OC,C) += dout^T inp (N,C) in fp32
  if (dinp) gemm_bf16_rowmajor(false, false, N, C, OC, 1.0f, dout, bf16_operand(0, weight, size_t(OC) * C), 1.0f, dinp);
  if (dweight) gemm_bf16_rowmajor(true, false, OC, C, N, 1.0f, dout, inp, 1.0f, dweight);
  if (dbias) column_sum_add(dbias, dout, N, OC);
}

}  // namespace frugal::cuda
