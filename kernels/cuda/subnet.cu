// EST's weight slices (model/subnet.cpp's gather and scatter): rows or columns of a row-major
// matrix picked by a device index list, scaled, and their gradients added back. The listed rows and
// columns are distinct, so the scatters need no atomics. Each element is one multiply (and one add),
// unfused like the CPU build's (-ffp-contract=off): bit-identical to the CPU loops.
#include <cstddef>

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/kernels.hpp"

namespace frugal::cuda {

namespace {

constexpr int kBlock = 256;

__device__ inline size_t first_index() { return static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ inline size_t grid_stride() { return static_cast<size_t>(gridDim.x) * blockDim.x; }

__global__ void gather_rows_kernel(float* dst, const float* src, const int* rows, size_t row_len, size_t n,
                                   float scale) {
  for (size_t k = first_index(); k < n; k += grid_stride()) {
    const size_t j = k / row_len, i = k % row_len;
    dst[k] = __fmul_rn(scale, src[static_cast<size_t>(rows[j]) * row_len + i]);
  }
}

__global__ void gather_columns_kernel(float* dst, const float* src, const int* cols, size_t src_cols, size_t n_cols,
                                      size_t n, float scale) {
  for (size_t k = first_index(); k < n; k += grid_stride()) {
    const size_t o = k / n_cols, j = k % n_cols;
    dst[k] = __fmul_rn(scale, src[o * src_cols + static_cast<size_t>(cols[j])]);
  }
}

__global__ void scatter_add_rows_kernel(float* dst, const float* src, const int* rows, size_t row_len, size_t n,
                                        float scale) {
  for (size_t k = first_index(); k < n; k += grid_stride()) {
    const size_t j = k / row_len, i = k % row_len;
    float& d = dst[static_cast<size_t>(rows[j]) * row_len + i];
    d = __fadd_rn(d, __fmul_rn(scale, src[k]));
  }
}

__global__ void scatter_add_columns_kernel(float* dst, const float* src, const int* cols, size_t dst_cols,
                                           size_t n_cols, size_t n, float scale) {
  for (size_t k = first_index(); k < n; k += grid_stride()) {
    const size_t o = k / n_cols, j = k % n_cols;
    float& d = dst[o * dst_cols + static_cast<size_t>(cols[j])];
    d = __fadd_rn(d, __fmul_rn(scale, src[k]));
  }
}

void check(const char* name, int n_rows, int width) {
  FRUGAL_CHECK(n_rows >= 0 && width >= 0, name, ": bad shape ", n_rows, " x ", width);
}

}  // namespace

void gather_rows(float* dst, const float* src, const int* rows, int n_rows, int row_len, float scale) {
  check("cuda::gather_rows", n_rows, row_len);
  const size_t n = size_t(n_rows) * size_t(row_len);
  if (n == 0) return;
  gather_rows_kernel<<<detail::grid_for(n, kBlock), kBlock>>>(dst, src, rows, size_t(row_len), n, scale);
  FRUGAL_CUDA_CHECK_LAUNCH("gather_rows_kernel");
}

void gather_columns(float* dst, const float* src, const int* cols, int n_rows, int src_cols, int n_cols,
                    float scale) {
  check("cuda::gather_columns", n_rows, n_cols);
  const size_t n = size_t(n_rows) * size_t(n_cols);
  if (n == 0) return;
  gather_columns_kernel<<<detail::grid_for(n, kBlock), kBlock>>>(dst, src, cols, size_t(src_cols), size_t(n_cols), n,
                                                                 scale);
  FRUGAL_CUDA_CHECK_LAUNCH("gather_columns_kernel");
}

void scatter_add_rows(float* dst, const float* src, const int* rows, int n_rows, int row_len, float scale) {
  check("cuda::scatter_add_rows", n_rows, row_len);
  const size_t n = size_t(n_rows) * size_t(row_len);
  if (n == 0) return;
  scatter_add_rows_kernel<<<detail::grid_for(n, kBlock), kBlock>>>(dst, src, rows, size_t(row_len), n, scale);
  FRUGAL_CUDA_CHECK_LAUNCH("scatter_add_rows_kernel");
}

void scatter_add_columns(float* dst, const float* src, const int* cols, int n_rows, int dst_cols, int n_cols,
                         float scale) {
  check("cuda::scatter_add_columns", n_rows, n_cols);
  const size_t n = size_t(n_rows) * size_t(n_cols);
  if (n == 0) return;
  scatter_add_columns_kernel<<<detail::grid_for(n, kBlock), kBlock>>>(dst, src, cols, size_t(dst_cols),
                                                                      size_t(n_cols), n, scale);
  FRUGAL_CUDA_CHECK_LAUNCH("scatter_add_columns_kernel");
}

}  // namespace frugal::cuda
