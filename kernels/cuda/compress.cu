// SparseLoCo's error feedback and per-chunk top-k on the device (compress/error_feedback.cpp and
// compress/topk.cpp are the reference): the same selection, bit for bit. A chunk holds at most
// 64 x 64 = 4096 elements, so one 1024-thread block sorts all of a chunk's (|x| bits, index) keys in
// shared memory (bitonic, descending: the largest magnitude first, and at equal magnitude the lower
// index, its key carrying 0xFFFF - index), marks the first k, and writes them in index order
// (a block-wide prefix sum over the marks).
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/kernels.hpp"

namespace frugal::cuda {

namespace {

constexpr int kBlock = 256;
constexpr int kSortThreads = 1024;
constexpr int kMaxChunkLen = 4096;
constexpr int64_t kTopKReference = 4096;

// compress::ChunkLayout's arithmetic (chunking.hpp), for one chunk.
struct Chunk {
  int64_t len, cols_w, first;  // elements, contiguous run per tile row, the chunk's first element
  __host__ __device__ Chunk(const ChunkGeometry& g, int64_t c) {
    const int64_t n_chunks = g.vector ? (g.cols + g.c2 - 1) / g.c2 : (g.rows / g.c1) * (g.cols / g.c2);
    len = (g.vector && c == n_chunks - 1) ? g.cols - c * g.c2 : g.c1 * g.c2;
    cols_w = g.vector ? len : g.c2;
    if (g.vector) {
      first = c * g.c2;
    } else {
      const int64_t tx = g.cols / g.c2, ty = c / tx, x = c % tx;
      first = ty * g.c1 * g.cols + x * g.c2;
    }
  }
  // Flat offset of in-chunk element j (row-major inside the tile).
  __host__ __device__ int64_t element(const ChunkGeometry& g, int64_t j) const {
    return first + (j / cols_w) * g.cols + j % cols_w;
  }
};

__host__ __device__ inline int64_t n_chunks_of(const ChunkGeometry& g) {
  return g.vector ? (g.cols + g.c2 - 1) / g.c2 : (g.rows / g.c1) * (g.cols / g.c2);
}
// compress::chunk_k: round(len top_k / 4096), halves away from zero, clamped to [1, len].
__host__ __device__ inline int64_t chunk_k(int64_t len, int64_t top_k) {
  const int64_t k = (2 * len * top_k + kTopKReference) / (2 * kTopKReference);
  return k < 1 ? 1 : (k > len ? len : k);
}

__global__ void ef_update_kernel(float* e, const float* g, float beta, size_t n) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    e[i] = __fadd_rn(__fmul_rn(beta, e[i]), g[i]);
}

__global__ void __launch_bounds__(kSortThreads)
    chunk_topk_kernel(const float* x, ChunkGeometry g, int64_t top_k, uint16_t* idx, float* values) {
  __shared__ unsigned long long keys[kMaxChunkLen];
  __shared__ unsigned char chosen[kMaxChunkLen];
  __shared__ int warp_sums[kSortThreads / 32];
  const int64_t c = blockIdx.x;
  const Chunk ch(g, c);
  const int len = static_cast<int>(ch.len);
  int P = 1;
  while (P < len) P <<= 1;
  const int tid = threadIdx.x;
  for (int j = tid; j < P; j += blockDim.x) {
    unsigned long long key = 0;  // padding: below every real key
    if (j < len) {
      const unsigned mag = __float_as_uint(x[ch.element(g, j)]) & 0x7fffffffu;
      key = (static_cast<unsigned long long>(mag) << 32) | (0xFFFFu - static_cast<unsigned>(j));
    }
    keys[j] = key;
  }
  __syncthreads();
  // Bitonic sort, descending overall.
  for (int k = 2; k <= P; k <<= 1) {
    for (int jj = k >> 1; jj > 0; jj >>= 1) {
      for (int i = tid; i < P; i += blockDim.x) {
        const int ixj = i ^ jj;
        if (ixj > i) {
          const unsigned long long a = keys[i], b = keys[ixj];
          if ((i & k) == 0 ? a < b : a > b) keys[i] = b, keys[ixj] = a;
        }
      }
      __syncthreads();
    }
  }
  const int64_t kc = chunk_k(ch.len, top_k);
  for (int j = tid; j < len; j += blockDim.x) chosen[j] = 0;
  __syncthreads();
  for (int t = tid; t < kc; t += blockDim.x) chosen[0xFFFFu - static_cast<unsigned>(keys[t] & 0xFFFFu)] = 1;
  __syncthreads();
  // Compaction in index order: thread t owns elements [4t, 4t + 4); a block-wide scan of the counts.
  const int base = tid * 4;
  int count = 0;
  for (int q = 0; q < 4; q++) count += (base + q < len) ? chosen[base + q] : 0;
  const int lane = tid & 31, warp = tid >> 5;
  int v = count;
  for (int o = 1; o < 32; o <<= 1) {
    const int n = __shfl_up_sync(0xffffffffu, v, o);
    if (lane >= o) v += n;
  }
  if (lane == 31) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    int w = warp_sums[lane];
    for (int o = 1; o < 32; o <<= 1) {
      const int n = __shfl_up_sync(0xffffffffu, w, o);
      if (lane >= o) w += n;
    }
    warp_sums[lane] = w;  // inclusive over warps
  }
  __syncthreads();
  int pos = v - count + (warp > 0 ? warp_sums[warp - 1] : 0);
  const int64_t off = c * chunk_k(g.c1 * g.c2, top_k);
  for (int q = 0; q < 4; q++) {
    const int j = base + q;
    if (j < len && chosen[j]) {
      idx[off + pos] = static_cast<uint16_t>(j);
      values[off + pos] = x[ch.element(g, j)];
      pos++;
    }
  }
}

__global__ void chunk_scatter_sub_kernel(float* e, ChunkGeometry g, int64_t top_k, const uint16_t* idx,
                                         const float* values, int64_t nnz) {
  const int64_t k_full = chunk_k(g.c1 * g.c2, top_k), last = n_chunks_of(g) - 1;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < nnz; t += stride) {
    const int64_t c = t / k_full < last ? t / k_full : last;
    float& d = e[Chunk(g, c).element(g, idx[t])];
    d = __fsub_rn(d, values[t]);
  }
}

void check_geometry(const char* name, const ChunkGeometry& g, int64_t top_k) {
  FRUGAL_CHECK(g.rows >= 1 && g.cols >= 1 && g.c1 >= 1 && g.c2 >= 1 && g.c1 * g.c2 <= kMaxChunkLen &&
                   (g.vector ? g.rows == 1 && g.c1 == 1 : g.rows % g.c1 == 0 && g.cols % g.c2 == 0) && top_k >= 1,
               name, ": bad chunk geometry rows=", g.rows, " cols=", g.cols, " c1=", g.c1, " c2=", g.c2,
               " top_k=", top_k);
}

}  // namespace

int64_t chunk_topk_nnz(const ChunkGeometry& g, int64_t top_k) {
  const int64_t n = n_chunks_of(g);
  return (n - 1) * chunk_k(g.c1 * g.c2, top_k) + chunk_k(Chunk(g, n - 1).len, top_k);
}

void ef_update(float* e, const float* g, float beta, size_t n) {
  if (n == 0) return;
  ef_update_kernel<<<detail::grid_for(n, kBlock), kBlock>>>(e, g, beta, n);
  FRUGAL_CUDA_CHECK_LAUNCH("ef_update_kernel");
}

void chunk_topk_abs(const float* x, const ChunkGeometry& g, int64_t top_k, uint16_t* idx, float* values) {
  check_geometry("cuda::chunk_topk_abs", g, top_k);
  chunk_topk_kernel<<<static_cast<unsigned>(n_chunks_of(g)), kSortThreads>>>(x, g, top_k, idx, values);
  FRUGAL_CUDA_CHECK_LAUNCH("chunk_topk_kernel");
}

void chunk_scatter_sub(float* e, const ChunkGeometry& g, int64_t top_k, const uint16_t* idx, const float* values) {
  check_geometry("cuda::chunk_scatter_sub", g, top_k);
  const int64_t nnz = chunk_topk_nnz(g, top_k);
  chunk_scatter_sub_kernel<<<detail::grid_for(size_t(nnz), kBlock), kBlock>>>(e, g, top_k, idx, values, nnz);
  FRUGAL_CUDA_CHECK_LAUNCH("chunk_scatter_sub_kernel");
}

}  // namespace frugal::cuda
