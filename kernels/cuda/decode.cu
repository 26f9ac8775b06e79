// The KV-cached decoder's own kernels (model/decode.cpp's loops): token + position embeddings of
// arbitrary rows, each row's key and value into its cache slot, and each row's causal attention over
// its slot's cached positions. One warp per (row, head) for the attention, its scores in a per-call
// device scratch; the dot products and the weighted sums run in the CPU's order (sequential over t2
// and channels, unfused), the softmax denominator is a warp sum: the outputs differ from the CPU's by
// expf and that sum's order.
#include <cmath>
#include <cstddef>

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/kernels.hpp"
#include "kernels/cuda/warp.cuh"

namespace frugal::cuda {

namespace {

constexpr int kBlock = 256;
using detail::kWarp;

__device__ inline size_t first_index() { return static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ inline size_t grid_stride() { return static_cast<size_t>(gridDim.x) * blockDim.x; }


__global__ void embed_rows_kernel(float* x, const float* wte, const float* wpe, const int* token, const int* pos,
                                  size_t C, size_t n) {
  for (size_t k = first_index(); k < n; k += grid_stride()) {
    const size_t i = k / C, j = k % C;
    x[k] = __fadd_rn(wte[size_t(token[i]) * C + j], wpe[size_t(pos[i]) * C + j]);
  }
}

__global__ void kv_write_kernel(float* kc, float* vc, const float* qkv, const int* slot, const int* pos, size_t C,
                                size_t max_len, size_t n) {
  for (size_t k = first_index(); k < n; k += grid_stride()) {
    const size_t i = k / C, j = k % C;
    const size_t at = (size_t(slot[i]) * max_len + size_t(pos[i])) * C + j;
    kc[at] = qkv[i * 3 * C + C + j];
    vc[at] = qkv[i * 3 * C + 2 * C + j];
  }
}

// Warp w = i * NH + h: row i's head h over its slot's positions [0, pos_i]. scores: (R NH, max_len).
__global__ void cached_attention_kernel(float* out, float* scores, const float* qkv, const float* kc, const float* vc,
                                        const int* slot, const int* pos, int R, int C, int NH, int max_len,
                                        float scale) {
  const size_t w = static_cast<size_t>(blockIdx.x) * (blockDim.x / kWarp) + threadIdx.x / kWarp;
  if (w >= static_cast<size_t>(R) * NH) return;  // warp-uniform
  const int lane = threadIdx.x % kWarp;
  const int i = static_cast<int>(w / NH), h = static_cast<int>(w % NH), hs = C / NH, p = pos[i];
  const size_t base = size_t(slot[i]) * max_len * C;
  const float* q = qkv + size_t(i) * 3 * C + h * hs;
  float* a = scores + w * max_len;
  for (int t2 = lane; t2 <= p; t2 += kWarp) {  // each lane its own keys, as warp_softmax_exp expects
    const float* k = kc + base + size_t(t2) * C + h * hs;
    float dot = 0.0f;
    for (int j = 0; j < hs; j++) dot = __fadd_rn(dot, __fmul_rn(q[j], k[j]));
    a[t2] = __fmul_rn(dot, scale);
  }
  const float inv = detail::warp_softmax_exp(a, p + 1);
  __syncwarp();  // the lanes now read each other's weights
  float* o = out + size_t(i) * C + h * hs;
  for (int j = lane; j < hs; j += kWarp) {
    float acc = 0.0f;
    for (int t2 = 0; t2 <= p; t2++)
      acc = __fadd_rn(acc, __fmul_rn(__fmul_rn(a[t2], inv), vc[base + size_t(t2) * C + h * hs + j]));
    o[j] = acc;
  }
}

}  // namespace

void embed_rows(float* x, const float* wte, const float* wpe, const int* token, const int* pos, int R, int C) {
  FRUGAL_CHECK(R >= 0 && C > 0, "cuda::embed_rows: bad shape R=", R, " C=", C);
  const size_t n = size_t(R) * C;
  if (n == 0) return;
  embed_rows_kernel<<<detail::grid_for(n, kBlock), kBlock>>>(x, wte, wpe, token, pos, size_t(C), n);
  FRUGAL_CUDA_CHECK_LAUNCH("embed_rows_kernel");
}

void kv_write(float* kc, float* vc, const float* qkv, const int* slot, const int* pos, int R, int C, int max_len) {
  FRUGAL_CHECK(R >= 0 && C > 0 && max_len > 0, "cuda::kv_write: bad shape R=", R, " C=", C, " max_len=", max_len);
  const size_t n = size_t(R) * C;
  if (n == 0) return;
  kv_write_kernel<<<detail::grid_for(n, kBlock), kBlock>>>(kc, vc, qkv, slot, pos, size_t(C), size_t(max_len), n);
  FRUGAL_CUDA_CHECK_LAUNCH("kv_write_kernel");
}

void cached_attention(float* out, const float* qkv, const float* kc, const float* vc, const int* slot, const int* pos,
                      int R, int C, int NH, int max_len) {
  FRUGAL_CHECK(R >= 0 && C > 0 && NH > 0 && C % NH == 0 && max_len > 0, "cuda::cached_attention: bad shape R=", R,
               " C=", C, " NH=", NH, " max_len=", max_len);
  const size_t warps = size_t(R) * NH;
  if (warps == 0) return;
  float* scores = static_cast<float*>(detail::scratch(warps * max_len * sizeof(float)));
  const float scale = 1.0f / std::sqrt(static_cast<float>(C / NH));  // the CPU's expression
  const int per_block = kBlock / kWarp;
  const int grid = static_cast<int>((warps + per_block - 1) / per_block);
  cached_attention_kernel<<<grid, kBlock>>>(out, scores, qkv, kc, vc, slot, pos, R, C, NH, max_len, scale);
  FRUGAL_CUDA_CHECK_LAUNCH("cached_attention_kernel");
}

}  // namespace frugal::cuda
