// Evolution strategies on the device: the keyed noise, EGGROLL's low-rank perturbed linear layer
// (factors stored or regenerated in the kernel), OpenAI-ES's full-rank anchor and the one-GEMM
// updates. model/perturb.hpp is the CPU reference and holds the semantics; this file only says how.
//
// The perturbed layer is a correction kernel followed by the shared GEMM with beta = 1:
//   pass 1 (one block per antithetic pair of rows):  y_b = bias + s c A_p (B_p^T x_b) + s sigma eps_p
//                                                    (c = sigma / sqrt r)
//   pass 2 (cuBLAS):                                 y  += x W^T
// Pass 1 reads x and each pair's factors once and writes y once; the GEMM is compute-bound and reads y
// in its epilogue at no measurable cost, so EGGROLL's price over inference is pass 1 alone. For
// d = 8192, N = 1024, r = 1 in bf16 that is 50 MB (16.6 us measured on an H200, 3.0 TB/s) against a
// 137 GFLOP GEMM (~175 us): 92% of inference (bench/cuda/NOTES.md).
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/kernels.hpp"

namespace frugal::cuda {

namespace {

constexpr int kBlock = 256;
constexpr int kMaxGridY = 65535;  // gridDim.y's hardware limit: launches over more rows or pairs split
constexpr int kWarps = kBlock / 32;
constexpr int kVec = 8;         // elements per vector access: 2 float4 or 1 uint4 of bf16 (16 bytes)

// ---- element access, float and bf16 alike (arithmetic is always fp32) ----
__device__ inline float to_f(float v) { return v; }
__device__ inline float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T>
__device__ inline T from_f(float v);
template <>
__device__ inline float from_f<float>(float v) { return v; }
template <>
__device__ inline __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// 8 consecutive elements, 16-byte aligned (the host checks alignment before choosing this path).
__device__ inline void load8(const float* p, float v[8]) {
  const float4 a = *reinterpret_cast<const float4*>(p), b = *reinterpret_cast<const float4*>(p + 4);
  v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}
__device__ inline void load8(const __nv_bfloat16* p, float v[8]) {
  const uint4 u = *reinterpret_cast<const uint4*>(p);
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
  for (int i = 0; i < 4; i++) {
    const float2 f = __bfloat1622float2(h[i]);
    v[2 * i] = f.x, v[2 * i + 1] = f.y;
  }
}
__device__ inline void store8(float* p, const float v[8]) {
  *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
  *reinterpret_cast<float4*>(p + 4) = make_float4(v[4], v[5], v[6], v[7]);
}
__device__ inline void store8(__nv_bfloat16* p, const float v[8]) {
  uint4 u;
  __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&u);
  for (int i = 0; i < 4; i++) h[i] = __floats2bfloat162_rn(v[2 * i], v[2 * i + 1]);
  *reinterpret_cast<uint4*>(p) = u;
}

// Sums v[0..K) over the block; every thread gets the K totals. Fixed tree: deterministic.
template <int K>
__device__ inline void block_sum(float v[K]) {
  __shared__ float part[kWarps][K];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int k = 0; k < K; k++)
    for (int off = 16; off > 0; off /= 2) v[k] += __shfl_xor_sync(0xffffffffu, v[k], off);
  if (lane == 0)
    for (int k = 0; k < K; k++) part[warp][k] = v[k];
  __syncthreads();
  for (int k = 0; k < K; k++) {
    float s = 0.0f;
    for (int w = 0; w < kWarps; w++) s += part[w][k];
    v[k] = s;
  }
  __syncthreads();  // part is reused by the next call
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// ---- noise generation ----------------------------------------------------------------------------

__global__ void keyed_normals_kernel(float* out, NoiseCounter c, uint32_t pair, int64_t n) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (4 * j >= n) return;
  float z[4];
  noise_block(c, pair, static_cast<uint32_t>(j), z);
  for (int t = 0; t < 4 && 4 * j + t < n; t++) out[4 * j + t] = z[t];
}

// Normal q of pair p's (cols + rows) x rank block goes to B (row < cols) or A, transposed.
__global__ void lowrank_generate_kernel(float* Bt, float* At, NoiseCounter c, int first_pair, int rows, int cols,
                                        int rank, int64_t blocks_per_pair) {
  const int p = blockIdx.y;
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= blocks_per_pair) return;
  float z[4];
  noise_block(c, static_cast<uint32_t>(first_pair + p), static_cast<uint32_t>(j), z);
  const int64_t total = int64_t(cols + rows) * rank;
  for (int t = 0; t < 4; t++) {
    const int64_t q = 4 * j + t;
    if (q >= total) break;
    const int64_t row = q / rank;
    const int k = static_cast<int>(q % rank);
    if (row < cols) Bt[(int64_t(p) * rank + k) * cols + row] = z[t];
    else At[(int64_t(p) * rank + k) * rows + (row - cols)] = z[t];
  }
}

__global__ void vector_noise_kernel(float* eps, NoiseCounter c, int first_pair, int len, int64_t blocks_per_pair) {
  const int p = blockIdx.y;
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= blocks_per_pair) return;
  float z[4];
  noise_block(c, static_cast<uint32_t>(first_pair + p), static_cast<uint32_t>(j), z);
  for (int t = 0; t < 4 && 4 * j + t < len; t++) eps[int64_t(p) * len + 4 * j + t] = z[t];
}

// ---- EGGROLL pass 1 -------------------------------------------------------------------------------
// One block per two consecutive rows. When they are the two members of one antithetic pair (the usual
// layout: member b = b) they share B_p and A_p, so the block reads (or generates) the factors once for
// both rows: half the factor traffic, half the Philox work. Otherwise it does one row, then the other.

// What a block needs to know about each of its NR rows.
template <typename T, int NR>
struct RowSet {
  const T* x[NR];
  T* y[NR];
  float sign[NR];
};

// base_j of row r: bias_j + s sigma eps_j (the first rank group), or y_j so far (later groups).
template <typename T, bool Vec>
__device__ inline void load_base(float out[], const T* bias, const T* eps, float s_sigma, const T* y, bool first,
                                 int j) {
  constexpr int W = Vec ? kVec : 1;
  float tmp[kVec];
  for (int e = 0; e < W; e++) out[e] = 0.0f;
  if (!first) {
    if (Vec) load8(y + j, out);
    else out[0] = to_f(y[j]);
    return;
  }
  if (bias) {
    if (Vec) load8(bias + j, out);
    else out[0] = to_f(bias[j]);
  }
  if (eps) {
    if (Vec) load8(eps + j, tmp);
    else tmp[0] = to_f(eps[j]);
    for (int e = 0; e < W; e++) out[e] += s_sigma * tmp[e];
  }
}

// Stored factors, ranks in groups of KG (KG = the rank rounded up to 1, 2, 4 or 8): one pass over x
// for a group's dot products, one pass over y for its axpys. W elements per access (8: 16 bytes).
template <typename T, bool Vec, int KG, int NR>
__device__ void correct_rows(const RowSet<T, NR>& rs, const T* Bt, const T* At, const T* bias, const T* eps, int rank,
                             int cols, int rows, float scale, float sigma) {
  constexpr int W = Vec ? kVec : 1;
  for (int k0 = 0; k0 < rank; k0 += KG) {
    const int kn = min(KG, rank - k0);
    const T* bt = Bt + int64_t(k0) * cols;
    const T* at = At + int64_t(k0) * rows;
    float u[NR * KG] = {};
    for (int i = threadIdx.x * W; i < cols; i += blockDim.x * W) {
      float bv[KG][kVec], xv[kVec];
#pragma unroll
      for (int k = 0; k < KG; k++) {
        if (k < kn) {
          if (Vec) load8(bt + int64_t(k) * cols + i, bv[k]);
          else bv[k][0] = to_f(bt[int64_t(k) * cols + i]);
        }
      }
#pragma unroll
      for (int r = 0; r < NR; r++) {
        if (Vec) load8(rs.x[r] + i, xv);
        else xv[0] = to_f(rs.x[r][i]);
#pragma unroll
        for (int k = 0; k < KG; k++)
          if (k < kn)
#pragma unroll
            for (int e = 0; e < W; e++) u[r * KG + k] += xv[e] * bv[k][e];
      }
    }
    block_sum<NR * KG>(u);
#pragma unroll
    for (int r = 0; r < NR; r++)
#pragma unroll
      for (int k = 0; k < KG; k++) u[r * KG + k] *= rs.sign[r] * scale;
    for (int j = threadIdx.x * W; j < rows; j += blockDim.x * W) {
      float av[KG][kVec];
#pragma unroll
      for (int k = 0; k < KG; k++) {
        if (k < kn) {
          if (Vec) load8(at + int64_t(k) * rows + j, av[k]);
          else av[k][0] = to_f(at[int64_t(k) * rows + j]);
        }
      }
#pragma unroll
      for (int r = 0; r < NR; r++) {
        float out[kVec];
        load_base<T, Vec>(out, bias, eps, rs.sign[r] * sigma, rs.y[r], k0 == 0, j);
#pragma unroll
        for (int e = 0; e < W; e++)
#pragma unroll
          for (int k = 0; k < KG; k++)
            if (k < kn) out[e] += u[r * KG + k] * av[k][e];
        if (Vec) store8(rs.y[r] + j, out);
        else rs.y[r][j] = from_f<T>(out[0]);
      }
    }
  }
}

template <typename T, int NR>
__device__ inline RowSet<T, NR> row_set(const T* x, T* y, const int32_t* member, int b, int cols, int rows) {
  RowSet<T, NR> rs;
  for (int r = 0; r < NR; r++) {
    rs.x[r] = x + int64_t(b + r) * cols;
    rs.y[r] = y + int64_t(b + r) * rows;
    rs.sign[r] = member[b + r] % 2 == 0 ? 1.0f : -1.0f;
  }
  return rs;
}

// Rows b and b + 1 when they share a pair, else b alone: calls fn(row_set, first row).
template <typename T, typename Fn>
__device__ inline void for_row_groups(const T* x, T* y, const int32_t* member, int batch, int cols, int rows, Fn&& fn) {
  const int b = 2 * blockIdx.x;
  if (b + 1 < batch && member[b] / 2 == member[b + 1] / 2) {
    fn(row_set<T, 2>(x, y, member, b, cols, rows), b);
  } else {
    fn(row_set<T, 1>(x, y, member, b, cols, rows), b);
    if (b + 1 < batch) fn(row_set<T, 1>(x, y, member, b + 1, cols, rows), b + 1);
  }
}

template <typename T, bool Vec, int KG>
__global__ void lowrank_correction_kernel(T* y, const T* x, const T* Bt, const T* At, const int32_t* member,
                                          const T* bias, const T* bias_noise, int batch, int first_pair, int rank,
                                          int cols, int rows, float scale, float sigma) {
  for_row_groups(x, y, member, batch, cols, rows, [&](const auto& rs, int b) {
    const int p = member[b] / 2 - first_pair;
    const T* eps = bias_noise ? bias_noise + int64_t(p) * rows : nullptr;
    correct_rows<T, Vec, KG>(rs, Bt + int64_t(p) * rank * cols, At + int64_t(p) * rank * rows, bias, eps, rank, cols,
                             rows, scale, sigma);
  });
}

// ---- EGGROLL pass 1, noise regenerated in the kernel ---------------------------------------------
// Pair p's normals: q = row * R + k, rows 0..cols-1 are B, rows cols.. are A (the CPU's layout).
// With cols * R a multiple of 4, each Philox block holds G = max(1, 4/R) whole rows (R <= 4) or a
// quarter of one row's R normals (R = 8), so a thread generates whole rows and never a block twice.
__device__ inline float pick4(const float e[4], int i) { return i == 0 ? e[0] : i == 1 ? e[1] : i == 2 ? e[2] : e[3]; }

template <typename T, int R, int NR>
__device__ void correct_rows_keyed(const RowSet<T, NR>& rs, uint32_t pair, const NoiseCounter& c, const T* bias,
                                   const NoiseCounter& bias_c, bool bias_noise, int cols, int rows, float scale,
                                   float sigma) {
  constexpr int G = R >= 4 ? 1 : 4 / R;   // rows per step
  constexpr int NB = R >= 4 ? R / 4 : 1;  // Philox blocks per step
  float u[NR * R] = {};
  const int b_steps = (cols + G - 1) / G;
  for (int g = threadIdx.x; g < b_steps; g += blockDim.x) {
    float z[4 * NB];
#pragma unroll
    for (int nb = 0; nb < NB; nb++) noise_block(c, pair, static_cast<uint32_t>(g * NB + nb), z + 4 * nb);
#pragma unroll
    for (int i = 0; i < G; i++) {
      const int row = g * G + i;
      if (row < cols)
#pragma unroll
        for (int r = 0; r < NR; r++) {
          const float xi = to_f(rs.x[r][row]);
#pragma unroll
          for (int k = 0; k < R; k++) u[r * R + k] += xi * z[i * R + k];
        }
    }
  }
  block_sum<NR * R>(u);
#pragma unroll
  for (int r = 0; r < NR; r++)
#pragma unroll
    for (int k = 0; k < R; k++) u[r * R + k] *= rs.sign[r] * scale;

  const uint32_t a_first_block = static_cast<uint32_t>(int64_t(cols) * R / 4);
  const int a_steps = (rows + G - 1) / G;
  for (int g = threadIdx.x; g < a_steps; g += blockDim.x) {
    float z[4 * NB];
#pragma unroll
    for (int nb = 0; nb < NB; nb++) noise_block(c, pair, a_first_block + static_cast<uint32_t>(g * NB + nb), z + 4 * nb);
    float e[4] = {};
    if (bias_noise) noise_block(bias_c, pair, static_cast<uint32_t>(g * G / 4), e);
#pragma unroll
    for (int i = 0; i < G; i++) {
      const int row = g * G + i;
      if (row >= rows) break;
      const float b = bias ? to_f(bias[row]) : 0.0f;
      const float eps = bias_noise ? pick4(e, row % 4) : 0.0f;
#pragma unroll
      for (int r = 0; r < NR; r++) {
        float acc = b + rs.sign[r] * sigma * eps;
#pragma unroll
        for (int k = 0; k < R; k++) acc += u[r * R + k] * z[i * R + k];
        rs.y[r][row] = from_f<T>(acc);
      }
    }
  }
}

// At most 80 registers, so three blocks fit an SM: the kernel is bound by FP64 Box-Muller, and more
// resident warps hide its latency.
template <typename T, int R>
__global__ void __launch_bounds__(kBlock, 3) lowrank_correction_keyed_kernel(T* y, const T* x, const int32_t* member, int batch, NoiseCounter c,
                                                const T* bias, NoiseCounter bias_c, bool bias_noise, int cols,
                                                int rows, float scale, float sigma) {
  for_row_groups(x, y, member, batch, cols, rows, [&](const auto& rs, int b) {
    correct_rows_keyed<T, R>(rs, static_cast<uint32_t>(member[b] / 2), c, bias, bias_c, bias_noise, cols, rows, scale,
                             sigma);
  });
}

// ---- OpenAI-ES: y_b = (W + s sigma E_p) x_b + bias + s sigma eps_p, one warp per output ----------
template <typename T, bool Vec>
__global__ void fullrank_forward_kernel(T* y, const T* x, const T* w, const T* bias, const int32_t* member,
                                        const T* E, const T* bias_noise, int first_pair, int rows, int cols,
                                        float sigma) {
  const int b = blockIdx.y;
  const int j = blockIdx.x * kWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (j >= rows) return;
  const int mem = member[b];
  const int64_t p = mem / 2 - first_pair;
  const float c = (mem % 2 == 0 ? 1.0f : -1.0f) * sigma;
  const T* wj = w + int64_t(j) * cols;
  const T* ej = E + (p * rows + j) * cols;
  const T* xb = x + int64_t(b) * cols;
  float acc = 0.0f;
  if (Vec) {
    for (int i = lane * kVec; i < cols; i += 32 * kVec) {
      float wv[kVec], ev[kVec], xv[kVec];
      load8(wj + i, wv);
      load8(ej + i, ev);
      load8(xb + i, xv);
      for (int e = 0; e < kVec; e++) acc += (wv[e] + c * ev[e]) * xv[e];
    }
  } else {
    for (int i = lane; i < cols; i += 32) acc += (to_f(wj[i]) + c * to_f(ej[i])) * to_f(xb[i]);
  }
  for (int off = 16; off > 0; off /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, off);
  if (lane == 0) {
    if (bias) acc += to_f(bias[j]);
    if (bias_noise) acc += c * to_f(bias_noise[p * rows + j]);
    y[int64_t(b) * rows + j] = from_f<T>(acc);
  }
}

// S (P r x rows) = c_p A_p^T rows: the scaled left factor of the update GEMM.
__global__ void scale_factors_kernel(float* S, const float* At, const float* coef, int64_t per_pair, int64_t total) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    S[i] = coef[i / per_pair] * At[i];
}

// ---- host side -------------------------------------------------------------------------------------

template <typename T>
struct Native;  // the device type behind a host-visible element type
template <>
struct Native<float> {
  using type = float;
};
template <>
struct Native<bf16> {
  using type = __nv_bfloat16;
};
template <typename T>
using native_t = typename Native<T>::type;
template <typename T>
auto* dev(T* p) {
  return reinterpret_cast<native_t<std::remove_const_t<T>>*>(p);
}
template <typename T>
const auto* dev(const T* p) {
  return reinterpret_cast<const native_t<T>*>(p);
}

template <typename T>
void check_view(const LowRankView<T>& f, int batch) {
  FRUGAL_CHECK(batch >= 0 && f.rows > 0 && f.cols > 0 && f.rank > 0 && f.pairs >= 0,
               "cuda::lowrank_linear_forward: bad shape batch=", batch, " rows=", f.rows, " cols=", f.cols,
               " rank=", f.rank);
}

template <typename T>
void lowrank_correction(T* y, const T* x, int batch, const T* bias, const int32_t* member, const LowRankView<T>& f,
                        const T* bias_noise, float sigma) {
  check_view(f, batch);
  if (batch == 0) return;
  const float scale = sigma / std::sqrt(static_cast<float>(f.rank));
  const bool vec = f.cols % kVec == 0 && f.rows % kVec == 0 && aligned16(x) && aligned16(y) && aligned16(f.Bt) &&
                   aligned16(f.At) && (!bias || aligned16(bias)) && (!bias_noise || aligned16(bias_noise));
  using D = native_t<T>;
  const int blocks = (batch + 1) / 2;
  auto launch = [&](auto kernel) {
    kernel<<<blocks, kBlock>>>(dev(y), dev(x), dev(f.Bt), dev(f.At), member, dev(bias), dev(bias_noise), batch,
                               f.first_pair, f.rank, f.cols, f.rows, scale, sigma);
  };
  const int kg = f.rank <= 1 ? 1 : f.rank <= 2 ? 2 : f.rank <= 4 ? 4 : 8;
  if (vec) {
    switch (kg) {
      case 1: launch(lowrank_correction_kernel<D, true, 1>); break;
      case 2: launch(lowrank_correction_kernel<D, true, 2>); break;
      case 4: launch(lowrank_correction_kernel<D, true, 4>); break;
      default: launch(lowrank_correction_kernel<D, true, 8>); break;
    }
  } else {
    switch (kg) {
      case 1: launch(lowrank_correction_kernel<D, false, 1>); break;
      case 2: launch(lowrank_correction_kernel<D, false, 2>); break;
      case 4: launch(lowrank_correction_kernel<D, false, 4>); break;
      default: launch(lowrank_correction_kernel<D, false, 8>); break;
    }
  }
  FRUGAL_CUDA_CHECK_LAUNCH("lowrank_correction_kernel");
}

// y (batch, rows) += x (batch, cols) W^T: the shared GEMM onto pass 1's output.
void gemm_accumulate(float* y, const float* x, const float* w, int batch, int cols, int rows) {
  sgemm_nt(batch, rows, cols, 1.0f, x, w, 1.0f, y);
}
void gemm_accumulate(bf16* y, const bf16* x, const bf16* w, int batch, int cols, int rows) {
  gemm_nt(batch, rows, cols, 1.0f, x, w, 1.0f, y);
}

template <typename T>
void keyed_forward_impl(T* y, const T* x, int batch, const T* w, const T* bias, const int32_t* member,
                        const NoiseKey& key, int rank, int rows, int cols, const NoiseKey* bias_key, float sigma) {
  FRUGAL_CHECK(rank == 1 || rank == 2 || rank == 4 || rank == 8,
               "cuda::lowrank_linear_forward_keyed: rank ", rank, " unsupported (1, 2, 4 or 8)");
  FRUGAL_CHECK(rows > 0 && cols > 0 && batch >= 0 && int64_t(cols) * rank % 4 == 0,
               "cuda::lowrank_linear_forward_keyed: cols * rank must be a multiple of 4 (cols=", cols,
               ", rank=", rank, ")");
  const NoiseCounter c = noise_counter(key);
  const NoiseCounter bc = bias_key ? noise_counter(*bias_key) : NoiseCounter{};
  if (batch == 0) return;
  const float scale = sigma / std::sqrt(static_cast<float>(rank));
  using D = native_t<T>;
  auto launch = [&](auto kernel) {
    kernel<<<(batch + 1) / 2, kBlock>>>(dev(y), dev(x), member, batch, c, dev(bias), bc, bias_key != nullptr, cols,
                                        rows, scale, sigma);
    FRUGAL_CUDA_CHECK_LAUNCH("lowrank_correction_keyed_kernel");
  };
  switch (rank) {
    case 1: launch(lowrank_correction_keyed_kernel<D, 1>); break;
    case 2: launch(lowrank_correction_keyed_kernel<D, 2>); break;
    case 4: launch(lowrank_correction_keyed_kernel<D, 4>); break;
    default: launch(lowrank_correction_keyed_kernel<D, 8>); break;
  }
  gemm_accumulate(y, x, w, batch, cols, rows);
}

template <typename T>
void fullrank_forward_impl(T* y, const T* x, int batch, const T* w, const T* bias, const int32_t* member, const T* E,
                           int first_pair, int rows, int cols, const T* bias_noise, float sigma) {
  FRUGAL_CHECK(batch >= 0 && rows > 0 && cols > 0, "cuda::fullrank_linear_forward: bad shape batch=", batch,
               " rows=", rows, " cols=", cols);
  if (batch == 0) return;
  const bool vec = cols % kVec == 0 && aligned16(x) && aligned16(w) && aligned16(E);
  using D = native_t<T>;
  auto kernel = vec ? fullrank_forward_kernel<D, true> : fullrank_forward_kernel<D, false>;
  // Rows of the batch on grid.y, in launches of at most kMaxGridY (the hardware's limit on y).
  for (int b0 = 0; b0 < batch; b0 += kMaxGridY) {
    const int nb = std::min(kMaxGridY, batch - b0);
    kernel<<<dim3((rows + kWarps - 1) / kWarps, nb), kBlock>>>(dev(y) + int64_t(b0) * rows, dev(x) + int64_t(b0) * cols,
                                                               dev(w), dev(bias), member + b0, dev(E), dev(bias_noise),
                                                               first_pair, rows, cols, sigma);
    FRUGAL_CUDA_CHECK_LAUNCH("fullrank_forward_kernel");
  }
}

template <typename T>
__global__ void tanh_kernel(T* x, size_t n) {
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    x[i] = from_f<T>(tanhf(to_f(x[i])));
}

int grid_for(size_t n) { return detail::grid_for(n, kBlock); }

}  // namespace

void keyed_normals(float* out, const NoiseKey& key, uint32_t pair, int64_t n) {
  FRUGAL_CHECK(n >= 0, "cuda::keyed_normals: negative n");
  const NoiseCounter c = noise_counter(key);
  if (n == 0) return;
  const int64_t blocks = (n + 3) / 4;
  keyed_normals_kernel<<<static_cast<unsigned>((blocks + kBlock - 1) / kBlock), kBlock>>>(out, c, pair, n);
  FRUGAL_CUDA_CHECK_LAUNCH("keyed_normals_kernel");
}

void lowrank_generate(float* Bt, float* At, const NoiseKey& key, int first_pair, int pairs, int rows, int cols,
                      int rank) {
  FRUGAL_CHECK(pairs >= 0 && rows > 0 && cols > 0 && rank > 0, "cuda::lowrank_generate: bad shape pairs=", pairs,
               " rows=", rows, " cols=", cols, " rank=", rank);
  const NoiseCounter c = noise_counter(key);
  if (pairs == 0) return;
  const int64_t blocks = (int64_t(cols + rows) * rank + 3) / 4;
  for (int p0 = 0; p0 < pairs; p0 += kMaxGridY) {  // pairs on grid.y, at most kMaxGridY per launch
    const int np = std::min(kMaxGridY, pairs - p0);
    lowrank_generate_kernel<<<dim3(static_cast<unsigned>((blocks + kBlock - 1) / kBlock), np), kBlock>>>(
        Bt + int64_t(p0) * rank * cols, At + int64_t(p0) * rank * rows, c, first_pair + p0, rows, cols, rank, blocks);
    FRUGAL_CUDA_CHECK_LAUNCH("lowrank_generate_kernel");
  }
}

void vector_noise_generate(float* eps, const NoiseKey& key, int first_pair, int pairs, int len) {
  FRUGAL_CHECK(pairs >= 0 && len > 0, "cuda::vector_noise_generate: bad shape pairs=", pairs, " len=", len);
  const NoiseCounter c = noise_counter(key);
  if (pairs == 0) return;
  const int64_t blocks = (int64_t(len) + 3) / 4;
  for (int p0 = 0; p0 < pairs; p0 += kMaxGridY) {  // pairs on grid.y, at most kMaxGridY per launch
    const int np = std::min(kMaxGridY, pairs - p0);
    vector_noise_kernel<<<dim3(static_cast<unsigned>((blocks + kBlock - 1) / kBlock), np), kBlock>>>(
        eps + int64_t(p0) * len, c, first_pair + p0, len, blocks);
    FRUGAL_CUDA_CHECK_LAUNCH("vector_noise_kernel");
  }
}

void lowrank_linear_correction(float* y, const float* x, int batch, const float* bias, const int32_t* member,
                               const LowRankView<float>& f, const float* bias_noise, float sigma) {
  lowrank_correction(y, x, batch, bias, member, f, bias_noise, sigma);
}
void lowrank_linear_correction(bf16* y, const bf16* x, int batch, const bf16* bias, const int32_t* member,
                               const LowRankView<bf16>& f, const bf16* bias_noise, float sigma) {
  lowrank_correction(y, x, batch, bias, member, f, bias_noise, sigma);
}

void lowrank_linear_forward(float* y, const float* x, int batch, const float* w, const float* bias,
                            const int32_t* member, const LowRankView<float>& f, const float* bias_noise, float sigma) {
  lowrank_correction(y, x, batch, bias, member, f, bias_noise, sigma);
  if (batch > 0) gemm_accumulate(y, x, w, batch, f.cols, f.rows);
}
void lowrank_linear_forward(bf16* y, const bf16* x, int batch, const bf16* w, const bf16* bias,
                            const int32_t* member, const LowRankView<bf16>& f, const bf16* bias_noise, float sigma) {
  lowrank_correction(y, x, batch, bias, member, f, bias_noise, sigma);
  if (batch > 0) gemm_accumulate(y, x, w, batch, f.cols, f.rows);
}

void lowrank_linear_forward_keyed(float* y, const float* x, int batch, const float* w, const float* bias,
                                  const int32_t* member, const NoiseKey& key, int rank, int rows, int cols,
                                  const NoiseKey* bias_key, float sigma) {
  keyed_forward_impl(y, x, batch, w, bias, member, key, rank, rows, cols, bias_key, sigma);
}
void lowrank_linear_forward_keyed(bf16* y, const bf16* x, int batch, const bf16* w, const bf16* bias,
                                  const int32_t* member, const NoiseKey& key, int rank, int rows, int cols,
                                  const NoiseKey* bias_key, float sigma) {
  keyed_forward_impl(y, x, batch, w, bias, member, key, rank, rows, cols, bias_key, sigma);
}

void fullrank_linear_forward(float* y, const float* x, int batch, const float* w, const float* bias,
                             const int32_t* member, const float* E, int first_pair, int rows, int cols,
                             const float* bias_noise, float sigma) {
  fullrank_forward_impl(y, x, batch, w, bias, member, E, first_pair, rows, cols, bias_noise, sigma);
}
void fullrank_linear_forward(bf16* y, const bf16* x, int batch, const bf16* w, const bf16* bias,
                             const int32_t* member, const bf16* E, int first_pair, int rows, int cols,
                             const bf16* bias_noise, float sigma) {
  fullrank_forward_impl(y, x, batch, w, bias, member, E, first_pair, rows, cols, bias_noise, sigma);
}

void lowrank_update(float* g, const LowRankView<float>& f, const float* fitness, int members, float sigma) {
  FRUGAL_CHECK(f.first_pair == 0 && 2 * f.pairs == members && f.rank > 0 && f.rows > 0 && f.cols > 0,
               "cuda::lowrank_update needs every pair's factors (pairs=", f.pairs, ", members=", members, ")");
  const int K = f.pairs * f.rank;
  const float scale = sigma / std::sqrt(static_cast<float>(f.rank)) / static_cast<float>(members);
  std::vector<float> coef(f.pairs);
  for (int p = 0; p < f.pairs; p++) coef[p] = scale * (fitness[2 * p] - fitness[2 * p + 1]);
  const int64_t s_elems = int64_t(K) * f.rows;
  float* S = static_cast<float*>(detail::scratch(sizeof(float) * (s_elems + f.pairs)));
  float* dcoef = S + s_elems;
  FRUGAL_CUDA_CHECK(cudaMemcpy(dcoef, coef.data(), sizeof(float) * f.pairs, cudaMemcpyHostToDevice));
  scale_factors_kernel<<<grid_for(s_elems), kBlock>>>(S, f.At, dcoef, int64_t(f.rank) * f.rows, s_elems);
  FRUGAL_CUDA_CHECK_LAUNCH("scale_factors_kernel");
  // Row-major G (rows x cols) = S^T (rows x K) . Bt (K x cols)  <=>  column-major G^T (cols x rows) =
  // Bt^T . S: Bt's memory is column-major (cols, K), as is; S's is column-major (rows, K), transposed.
  const float one = 1.0f, zero = 0.0f;
  FRUGAL_CUBLAS_CHECK(cublasSgemm(detail::cublas_handle(), CUBLAS_OP_N, CUBLAS_OP_T, f.cols, f.rows, K, &one, f.Bt,
                                  f.cols, S, f.rows, &zero, g, f.cols));
}

void vector_noise_update(float* g, const float* eps, int pairs, int len, const float* fitness, int members,
                         float sigma) {
  FRUGAL_CHECK(2 * pairs == members && len > 0 && pairs > 0,
               "cuda::vector_noise_update needs every pair's noise (pairs=", pairs, ", members=", members, ")");
  const float scale = sigma / static_cast<float>(members);
  std::vector<float> coef(pairs);
  for (int p = 0; p < pairs; p++) coef[p] = fitness[2 * p] - fitness[2 * p + 1];
  float* dcoef = static_cast<float*>(detail::scratch(sizeof(float) * pairs));
  FRUGAL_CUDA_CHECK(cudaMemcpy(dcoef, coef.data(), sizeof(float) * pairs, cudaMemcpyHostToDevice));
  // g (len) = scale eps^T c: eps row-major (pairs, len) is column-major (len, pairs), as is.
  const float zero = 0.0f;
  FRUGAL_CUBLAS_CHECK(
      cublasSgemv(detail::cublas_handle(), CUBLAS_OP_N, len, pairs, &scale, eps, len, dcoef, 1, &zero, g, 1));
}

void tanh_forward(float* x, size_t n) {
  if (n == 0) return;
  tanh_kernel<float><<<grid_for(n), kBlock>>>(x, n);
  FRUGAL_CUDA_CHECK_LAUNCH("tanh_kernel");
}
void tanh_forward(bf16* x, size_t n) {
  if (n == 0) return;
  tanh_kernel<__nv_bfloat16><<<grid_for(n), kBlock>>>(dev(x), n);
  FRUGAL_CUDA_CHECK_LAUNCH("tanh_kernel");
}

}  // namespace frugal::cuda
