// Causal multi-head self-attention, direct kernels (no cuBLAS): one warp per (b, h, t) query row.
// This first version favours matching the CPU kernel (same att layout, same per-lane summation order
// for the dot products, no atomics: deterministic) over speed; a fused flash-style kernel can
// replace it later behind the same signature.
//
// Shapes: qkv (B,T,3C) with q | k | v in each row, heads of size hs = C / NH at offset h * hs;
// out/dout (B,T,C); att (B,NH,T,T) row (b,h,t) = softmax over t2 <= t, zeros for t2 > t.
#include <cmath>
#include <cstddef>

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/kernels.hpp"

namespace frugal::cuda {

namespace {

constexpr int kWarp = 32;
constexpr int kBlock = 256;  // 8 warps = 8 rows per block
constexpr unsigned kFull = 0xffffffffu;

__device__ inline float warp_sum(float v) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(kFull, v, offset);
  return v;
}
__device__ inline float warp_max(float v) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(kFull, v, offset));
  return v;
}

// Splits the warp's row index r = (b * NH + h) * T + t (also the att row index).
struct Row {
  int b, h, t;
};
__device__ inline Row split_row(size_t r, int T, int NH) {
  return {static_cast<int>(r / (static_cast<size_t>(T) * NH)), static_cast<int>((r / T) % NH),
          static_cast<int>(r % T)};
}

// x . y over n floats, sequential and unfused (like the CPU loop, so the same rounding).
__device__ inline float dot_rn(const float* x, const float* y, int n) {
  float s = 0.0f;
  for (int i = 0; i < n; i++) s = __fadd_rn(s, __fmul_rn(x[i], y[i]));
  return s;
}

__global__ void attention_forward_kernel(float* out, float* att, const float* qkv, int B, int T, int C, int NH,
                                         float scale) {
  const size_t r = static_cast<size_t>(blockIdx.x) * (blockDim.x / kWarp) + threadIdx.x / kWarp;
  if (r >= static_cast<size_t>(B) * NH * T) return;  // warp-uniform
  const int lane = threadIdx.x % kWarp;
  const auto [b, h, t] = split_row(r, T, NH);
  const int hs = C / NH;
  const size_t C3 = 3 * static_cast<size_t>(C);
  const float* base = qkv + static_cast<size_t>(b) * T * C3;  // sequence b
  const float* q = base + static_cast<size_t>(t) * C3 + h * hs;
  float* a = att + r * T;

  // Scores for the lane's keys t2 = lane, lane + 32, ... <= t, written straight into the att row.
  float m = -1e30f;
  for (int t2 = lane; t2 <= t; t2 += kWarp) {
    const float s = __fmul_rn(dot_rn(q, base + static_cast<size_t>(t2) * C3 + C + h * hs, hs), scale);
    a[t2] = s;
    m = fmaxf(m, s);
  }
  const float maxval = warp_max(m);
  float sum = 0.0f;
  for (int t2 = lane; t2 <= t; t2 += kWarp) {
    const float e = expf(a[t2] - maxval);
    a[t2] = e;
    sum += e;
  }
  const float inv = 1.0f / warp_sum(sum);
  for (int t2 = lane; t2 < T; t2 += kWarp) a[t2] = t2 <= t ? a[t2] * inv : 0.0f;
  __syncwarp();  // the lanes now read each other's att entries

  // out[i] = sum_t2 a[t2] v[t2][i], lanes over the head's channels, t2 ascending as on the CPU.
  float* o = out + (static_cast<size_t>(b) * T + t) * C + h * hs;
  for (int i = lane; i < hs; i += kWarp) {
    float acc = 0.0f;
    for (int t2 = 0; t2 <= t; t2++)
      acc = __fadd_rn(acc, __fmul_rn(a[t2], base[static_cast<size_t>(t2) * C3 + 2 * C + h * hs + i]));
    o[i] = acc;
  }
}

// Backward, pass 1 (one warp per query row (b,h,t)):
//   datt[t2] = v[t2] . dout[t];  dpre[t2] = a[t2] (datt[t2] - sum_t2' a[t2'] datt[t2'])   (t2 <= t)
//   dq[t] += scale sum_t2 dpre[t2] k[t2]
// dpre (B,NH,T,T) goes to scratch for pass 2; entries above the diagonal are never written or read.
__global__ void attention_backward_rows_kernel(float* dqkv, float* dpre, const float* dout, const float* qkv,
                                               const float* att, int B, int T, int C, int NH, float scale) {
  const size_t r = static_cast<size_t>(blockIdx.x) * (blockDim.x / kWarp) + threadIdx.x / kWarp;
  if (r >= static_cast<size_t>(B) * NH * T) return;  // warp-uniform
  const int lane = threadIdx.x % kWarp;
  const auto [b, h, t] = split_row(r, T, NH);
  const int hs = C / NH;
  const size_t C3 = 3 * static_cast<size_t>(C);
  const float* base = qkv + static_cast<size_t>(b) * T * C3;
  const float* a = att + r * T;
  const float* d = dout + (static_cast<size_t>(b) * T + t) * C + h * hs;
  float* dp = dpre + r * T;

  float part = 0.0f;
  for (int t2 = lane; t2 <= t; t2 += kWarp) {
    const float datt = dot_rn(base + static_cast<size_t>(t2) * C3 + 2 * C + h * hs, d, hs);
    dp[t2] = datt;
    part += a[t2] * datt;
  }
  const float dot = warp_sum(part);
  for (int t2 = lane; t2 <= t; t2 += kWarp) dp[t2] = a[t2] * (dp[t2] - dot);
  __syncwarp();  // the lanes now read each other's dpre entries

  float* dq = dqkv + (static_cast<size_t>(b) * T + t) * C3 + h * hs;
  for (int i = lane; i < hs; i += kWarp) {
    float acc = 0.0f;
    for (int t2 = 0; t2 <= t; t2++) acc += base[static_cast<size_t>(t2) * C3 + C + h * hs + i] * (dp[t2] * scale);
    dq[i] += acc;
  }
}

// Backward, pass 2 (one warp per key/value position (b,h,t2)), reading dpre by column:
//   dk[t2] += scale sum_{t >= t2} dpre[t][t2] q[t];   dv[t2] += sum_{t >= t2} a[t][t2] dout[t]
// Each warp owns its dk/dv slices, so no atomics.
__global__ void attention_backward_cols_kernel(float* dqkv, const float* dpre, const float* dout, const float* qkv,
                                               const float* att, int B, int T, int C, int NH, float scale) {
  const size_t r = static_cast<size_t>(blockIdx.x) * (blockDim.x / kWarp) + threadIdx.x / kWarp;
  if (r >= static_cast<size_t>(B) * NH * T) return;  // warp-uniform
  const int lane = threadIdx.x % kWarp;
  const auto [b, h, t2] = split_row(r, T, NH);
  const int hs = C / NH;
  const size_t C3 = 3 * static_cast<size_t>(C);
  const float* base = qkv + static_cast<size_t>(b) * T * C3;
  const size_t head_rows = (static_cast<size_t>(b) * NH + h) * T;  // att/dpre row of (b, h, t = 0)
  float* dk = dqkv + (static_cast<size_t>(b) * T + t2) * C3 + C + h * hs;
  float* dv = dk + C;
  for (int i = lane; i < hs; i += kWarp) {
    float acc_k = 0.0f, acc_v = 0.0f;
    for (int t = t2; t < T; t++) {
      const size_t cell = (head_rows + t) * T + t2;  // same address across the warp: broadcast
      acc_k += base[static_cast<size_t>(t) * C3 + h * hs + i] * (dpre[cell] * scale);
      acc_v += att[cell] * dout[(static_cast<size_t>(b) * T + t) * C + h * hs + i];
    }
    dk[i] += acc_k;
    dv[i] += acc_v;
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

}  // namespace

void attention_forward(float* out, float* att, const float* qkv, int B, int T, int C, int NH) {
  check_shape("cuda::attention_forward", B, T, C, NH);
  const size_t rows = static_cast<size_t>(B) * NH * T;
  if (rows == 0) return;
  const float scale = 1.0f / std::sqrt(static_cast<float>(C / NH));  // the CPU's expression
  attention_forward_kernel<<<grid_for_rows(rows), kBlock>>>(out, att, qkv, B, T, C, NH, scale);
  FRUGAL_CUDA_CHECK_LAUNCH("attention_forward_kernel");
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* att, int B, int T, int C,
                        int NH) {
  check_shape("cuda::attention_backward", B, T, C, NH);
  const size_t rows = static_cast<size_t>(B) * NH * T;
  if (rows == 0) return;
  const float scale = 1.0f / std::sqrt(static_cast<float>(C / NH));
  float* dpre = static_cast<float*>(detail::scratch(rows * T * sizeof(float)));
  attention_backward_rows_kernel<<<grid_for_rows(rows), kBlock>>>(dqkv, dpre, dout, qkv, att, B, T, C, NH, scale);
  FRUGAL_CUDA_CHECK_LAUNCH("attention_backward_rows_kernel");
  attention_backward_cols_kernel<<<grid_for_rows(rows), kBlock>>>(dqkv, dpre, dout, qkv, att, B, T, C, NH, scale);
  FRUGAL_CUDA_CHECK_LAUNCH("attention_backward_cols_kernel");
}

}  // namespace frugal::cuda
