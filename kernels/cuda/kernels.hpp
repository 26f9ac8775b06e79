#pragma once
// CUDA kernels, host-callable. Plain C++ on purpose: g++-compiled code (tests, benches, the
// framework) includes this without seeing any CUDA syntax; the .cu files hold the device code.
//
// Same signatures and row-major semantics as kernels/cpu/, which is the reference these are tested
// against. All float pointers passed to the kernels are DEVICE pointers (e.g. DeviceBuffer::data()).
// Work goes to the legacy default stream, so calls are ordered with each other and with
// DeviceBuffer's copies; use synchronize() before timing on the host.
// Every failing CUDA/cuBLAS call throws frugal::Error naming the call and the CUDA error string.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace frugal::cuda {

// True iff the CUDA runtime reports at least one usable device. Never throws: a missing driver or
// CUDA_VISIBLE_DEVICES="" just means false (tests use it to GTEST_SKIP).
bool device_available() noexcept;

// Waits for all work queued on the current device (cudaDeviceSynchronize).
void synchronize();

// Owns n elements of T in device memory (cudaMalloc); move-only. Contents start uninitialised.
// Defined in device.cu and instantiated there for float, int (token ids, targets) and uint8_t
// (update masks) only: the header stays free of CUDA syntax.
template <typename T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(size_t n);
  explicit DeviceArray(const std::vector<T>& host);  // allocate host.size() elements and upload
  ~DeviceArray();
  DeviceArray(DeviceArray&& other) noexcept;
  DeviceArray& operator=(DeviceArray&& other) noexcept;
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  T* data() { return ptr_; }
  const T* data() const { return ptr_; }
  size_t size() const { return n_; }

  void upload(const T* host, size_t n);    // host -> first n elements; n <= size()
  void download(T* host, size_t n) const;  // first n elements -> host; n <= size()
  std::vector<T> to_host() const;          // the whole buffer
  void zero();                             // cudaMemset to all-zero bits (0.0f / 0)

 private:
  T* ptr_ = nullptr;
  size_t n_ = 0;
};

extern template class DeviceArray<float>;
extern template class DeviceArray<int>;
extern template class DeviceArray<uint8_t>;

using DeviceBuffer = DeviceArray<float>;
using IntDeviceBuffer = DeviceArray<int>;
using ByteDeviceBuffer = DeviceArray<uint8_t>;

// out (N,OC) = inp (N,C) . weight (OC,C)^T + bias (OC); bias may be null. cuBLAS, plain FP32 math
// (no TF32), so results agree with the CPU kernel to FP32 rounding.
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C, int OC);

// C (M,N) = alpha A (M,K) . B (N,K)^T + beta C, all row-major (mirrors frugal::cpu::sgemm_nt).
void sgemm_nt(int M, int N, int K, float alpha, const float* A, const float* B, float beta, float* C);

// LayerNorm over the last dimension, eps = 1e-5: out (N,C), mean (N), rstd (N) from inp (N,C),
// weight (C), bias (C). One warp per row.
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int N, int C);

// ---- Training kernels: CUDA twins of kernels/cpu/ (same shapes, same += / overwrite rules). ----
// "deterministic" below means bit-identical results run to run on the same GPU; where the sum
// order also equals the CPU's, the results are bit-identical to the CPU kernel too (noted).

// out (B,T,C) = wte[inp[b,t]] (V,C) + wpe[t] (maxT,C); inp (B,T) device token ids. Bit-identical to CPU.
void encoder_forward(float* out, const int* inp, const float* wte, const float* wpe, int B, int T, int C);
// dwte, dwpe += scatter of dout (B,T,C). Deterministic without atomics, and each (token, channel)
// sum runs in the CPU's (b,t) order, so bit-identical to the CPU kernel.
void encoder_backward(float* dwte, float* dwpe, const float* dout, const int* inp, int B, int T, int C);

// dinp (N,C), dweight (C), dbias (C) += gradients given dout (N,C) and the saved mean/rstd (N).
// Deterministic (fixed reduction trees, no atomics).
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int N, int C);

// GELU, tanh approximation (GPT-2): out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
void gelu_forward(float* out, const float* inp, size_t n);
// dinp += gelu'(inp) * dout
void gelu_backward(float* dinp, const float* inp, const float* dout, size_t n);
// out = a + b (bit-identical to CPU)
void residual_forward(float* out, const float* a, const float* b, size_t n);
// da += dout; db += dout (bit-identical to CPU)
void residual_backward(float* da, float* db, const float* dout, size_t n);

// dinp (N,C) += dout . W;  dweight (OC,C) += dout^T . inp;  dbias (OC) += colsum(dout). Any of the
// three may be null (skipped). cuBLAS with plain FP32 math; dbias by a fixed-order column reduction.
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int N, int C, int OC);

// probs (N,Vp) = softmax(logits (N,Vp)) over [0, V), 0 in the padding; losses (N) = -log probs[target].
// targets (N) are device ints. One block per row; the exp sum accumulates in double as on the CPU.
void softmax_crossentropy_forward(float* probs, float* losses, const float* logits, const int* targets, int N,
                                  int V, int Vp);
// dlogits (N,Vp) = (probs - onehot(target)) * dloss, padding 0 (overwrites). Bit-identical to CPU.
void softmax_crossentropy_backward(float* dlogits, const float* probs, const int* targets, float dloss, int N,
                                   int V, int Vp);

// Causal self-attention, heads of size C/NH: qkv (B,T,3C) = q | k | v; out (B,T,C); att (B,NH,T,T)
// keeps the softmax for the backward, zeros above the diagonal (the CPU layout). One warp per
// (b, h, t) row, no atomics: deterministic.
void attention_forward(float* out, float* att, const float* qkv, int B, int T, int C, int NH);
// dqkv (B,T,3C) += gradient given dout (B,T,C) and the saved att. Uses a (B,NH,T,T) device scratch
// (grown on demand, kept per thread) for the pre-softmax gradient. Deterministic.
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* att, int B, int T, int C,
                        int NH);

// One AdamW step over n parameters of one tensor (frugal::adamw_step's per-tensor update):
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  p -= lr (m/bc1 / (sqrt(v/bc2) + eps) + wd p)
// with bc1 = 1 - b1^t, bc2 = 1 - b2^t computed on the host in float exactly as the CPU does; t is
// the step count AFTER incrementing (1 on the first step). weight_decay is the tensor's own (0 for
// vectors unless decay_vectors). keep (n device bytes) may be null; else only keep[i] == 1 update.
// No FMA contraction: bit-identical to the CPU kernel.
void adamw_update(float* params, const float* grads, float* m, float* v, size_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int64_t t, const uint8_t* keep = nullptr);

// L2 norm of grads (n floats), squares summed in double on the device (fixed grid and tree:
// deterministic, not the CPU's order), returned to the host (blocks until done). Mirrors frugal::global_norm.
double global_norm(const float* grads, size_t n);
// Mirrors frugal::clip_grad_norm: scales grads by max_norm / (norm + 1e-6) when norm > max_norm > 0.
// Returns the norm before scaling.
double clip_grad_norm(float* grads, size_t n, double max_norm);

}  // namespace frugal::cuda
