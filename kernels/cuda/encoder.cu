// Token + position embedding, forward and backward.
//
// The backward is a scatter-add: tokens repeat, so rows of dwte collide. Instead of atomics (whose
// order, hence rounding, changes run to run) every (token, channel) sum is owned by one thread that
// walks the positions in (b, t) order, exactly the CPU kernel's order: the result is deterministic
// and bit-identical to the CPU's. The activations (out, dout) are float or bf16 (kernels/cuda/storage.cuh);
// the embeddings and their gradients fp32.
#include <algorithm>
#include <cstddef>

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/kernels.hpp"
#include "kernels/cuda/storage.cuh"

namespace frugal::cuda {

namespace {

using detail::dev;
using detail::load;
using detail::store;
constexpr int kBlock = 256;
// dwte: threads are split over kBuckets token classes (token % kBuckets) on top of the channels, so
// C = 768 channels still give 768 * 32 threads; each thread skips the positions of other classes.
constexpr int kBuckets = 32;

int grid_for(size_t n) { return detail::grid_for(n, kBlock); }

// out (B,T,C) = wte[inp] + wpe[t]; one thread per output element (grid-stride).
template <typename Act>
__global__ void encoder_forward_kernel(Act* out, const int* inp, const float* wte, const float* wpe, int T,
                                       int C, size_t total) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const size_t bt = i / C;
    const int c = static_cast<int>(i % C);
    const int t = static_cast<int>(bt % T);
    out[i] = store<Act>(wte[static_cast<size_t>(inp[bt]) * C + c] + wpe[static_cast<size_t>(t) * C + c]);
  }
}

// dwpe (T,C) += sum over b of dout (B,T,C); one thread per (t, c), b ascending as on the CPU.
template <typename Act>
__global__ void encoder_backward_wpe_kernel(float* dwpe, const Act* dout, int B, size_t TC) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t j = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < TC; j += stride) {
    float acc = dwpe[j];
    for (int b = 0; b < B; b++) acc += load(dout[static_cast<size_t>(b) * TC + j]);
    dwpe[j] = acc;
  }
}

// dwte (V,C) += dout rows scattered by token. Thread (c, bucket): every position whose token falls in
// its bucket, in (b, t) order. The bucket is per block (blockIdx.y), so the branch is warp-uniform,
// and consecutive threads touch consecutive channels (coalesced).
template <typename Act>
__global__ void encoder_backward_wte_kernel(float* dwte, const Act* dout, const int* inp, int BT, int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  const int bucket = static_cast<int>(blockIdx.y);
  for (int pos = 0; pos < BT; pos++) {
    const int tok = inp[pos];  // same address for the whole warp: one broadcast load
    if (tok % kBuckets != bucket) continue;
    dwte[static_cast<size_t>(tok) * C + c] += load(dout[static_cast<size_t>(pos) * C + c]);
  }
}

template <typename Act>
void encoder_forward_on(Act* out, const int* inp, const float* wte, const float* wpe, int B, int T, int C) {
  FRUGAL_CHECK(B >= 0 && T >= 0 && C >= 0, "cuda::encoder_forward: negative shape B=", B, " T=", T, " C=", C);
  const size_t total = static_cast<size_t>(B) * T * C;
  if (total == 0) return;
  encoder_forward_kernel<<<grid_for(total), kBlock>>>(dev(out), inp, wte, wpe, T, C, total);
  FRUGAL_CUDA_CHECK_LAUNCH("encoder_forward_kernel");
}

template <typename Act>
void encoder_backward_on(float* dwte, float* dwpe, const Act* dout, const int* inp, int B, int T, int C) {
  FRUGAL_CHECK(B >= 0 && T >= 0 && C >= 0, "cuda::encoder_backward: negative shape B=", B, " T=", T, " C=", C);
  if (static_cast<size_t>(B) * T * C == 0) return;
  const size_t TC = static_cast<size_t>(T) * C;
  encoder_backward_wpe_kernel<<<grid_for(TC), kBlock>>>(dwpe, dev(dout), B, TC);
  FRUGAL_CUDA_CHECK_LAUNCH("encoder_backward_wpe_kernel");
  const dim3 grid((C + kBlock - 1) / kBlock, kBuckets);
  encoder_backward_wte_kernel<<<grid, kBlock>>>(dwte, dev(dout), inp, B * T, C);
  FRUGAL_CUDA_CHECK_LAUNCH("encoder_backward_wte_kernel");
}

}  // namespace

void encoder_forward(float* out, const int* inp, const float* wte, const float* wpe, int B, int T, int C) {
  encoder_forward_on(out, inp, wte, wpe, B, T, C);
}
void encoder_forward(bf16* out, const int* inp, const float* wte, const float* wpe, int B, int T, int C) {
  encoder_forward_on(out, inp, wte, wpe, B, T, C);
}

void encoder_backward(float* dwte, float* dwpe, const float* dout, const int* inp, int B, int T, int C) {
  encoder_backward_on(dwte, dwpe, dout, inp, B, T, C);
}
void encoder_backward(float* dwte, float* dwpe, const bf16* dout, const int* inp, int B, int T, int C) {
  encoder_backward_on(dwte, dwpe, dout, inp, B, T, C);
}

}  // namespace frugal::cuda
