#pragma once
// CUDA kernels, host-callable. Plain C++ on purpose: g++-compiled code (tests, benches, the
// framework) includes this without seeing any CUDA syntax; the .cu files hold the device code.
//
// Same signatures and row-major semantics as kernels/cpu/, which is the reference these are tested
// against. All float pointers passed to the kernels are DEVICE pointers (e.g. DeviceBuffer::data()).
// The training kernels also take bf16 activations (model.dtype = bf16, llm.c's scheme): an overload
// with bf16 in place of every activation and activation-gradient pointer, computing in fp32 and
// rounding each stored value once; weights, their gradients, LayerNorm statistics and losses stay
// fp32, and so do the cross-entropy's probabilities. Those overloads agree with the CPU kernel to
// bf16 rounding (unit roundoff 2^-8; ~1e-2 relative), not bit for bit.
// Work goes to the legacy default stream, so calls are ordered with each other and with
// DeviceBuffer's copies; use synchronize() before timing on the host.
// Every failing CUDA/cuBLAS call throws frugal::Error naming the call and the CUDA error string.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "model/perturb.hpp"  // NoiseKey: the ES kernels regenerate the CPU's keyed noise

namespace frugal::cuda {

// bfloat16 storage (the bits of __nv_bfloat16) so that g++-compiled code can hold and convert it.
struct bf16 {
  uint16_t bits;
};
// Round to nearest even, as __float2bfloat16_rn does (NaN stays NaN).
inline bf16 to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{static_cast<uint16_t>((u >> 16) | 0x40u)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16{static_cast<uint16_t>(u >> 16)};
}
inline float from_bf16(bf16 h) {
  const uint32_t u = static_cast<uint32_t>(h.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// True iff the CUDA runtime reports at least one usable device. Never throws: a missing driver or
// CUDA_VISIBLE_DEVICES="" just means false (tests use it to GTEST_SKIP).
bool device_available() noexcept;

// Waits for all work queued on the current device (cudaDeviceSynchronize).
void synchronize();
// n floats from a device pointer (anywhere inside a buffer) to host memory; blocks until done.
void copy_to_host(float* host, const float* device, size_t n);

// The devices this process sees (CUDA_VISIBLE_DEVICES applied): 0 when none or no driver; never throws.
int device_count() noexcept;
// What the trace records of the device a rank computes on.
struct DeviceProperties {
  int index = -1;                         // in this process's numbering (after CUDA_VISIBLE_DEVICES)
  std::string name;                       // e.g. "NVIDIA H200"
  std::string pci_bus_id;                 // e.g. "0000:19:00.0": which physical GPU, whatever the numbering
  int driver_version = 0, runtime_version = 0;  // CUDA versions as 1000 major + 10 minor (13000 = 13.0)
  size_t memory_bytes = 0;
};
// Makes device `index` current for the calling thread (cudaSetDevice) and returns its properties.
DeviceProperties use_device(int index);

// Owns n elements of T in device memory (cudaMalloc); move-only. Contents start uninitialised.
// Defined in device.cu and instantiated there for float, int (token ids, targets), uint8_t (update
// masks), bf16 and uint16_t (in-chunk indices) only: the header stays free of CUDA syntax.
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
  // Scratch and staging buffers reused across calls of varying sizes: at least n elements, reallocated
  // (contents lost) only when the buffer is smaller, so size() may exceed what a caller uses.
  T* grow(size_t n);
  T* grow_and_upload(const std::vector<T>& host);  // grow(host.size()), then host -> first elements

 private:
  T* ptr_ = nullptr;
  size_t n_ = 0;
};

extern template class DeviceArray<float>;
extern template class DeviceArray<int>;
extern template class DeviceArray<uint8_t>;
extern template class DeviceArray<bf16>;
extern template class DeviceArray<uint16_t>;

// out[i] = in[i] rounded to nearest-even bf16, n device elements.
void convert(bf16* out, const float* in, size_t n);

using DeviceBuffer = DeviceArray<float>;
using IntDeviceBuffer = DeviceArray<int>;
using ByteDeviceBuffer = DeviceArray<uint8_t>;

// out (N,OC) = inp (N,C) . weight (OC,C)^T + bias (OC); bias may be null. cuBLAS, plain FP32 math
// (no TF32), so results agree with the CPU kernel to FP32 rounding.
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C, int OC);
// The same in bf16 (cuBLAS tensor cores, fp32 accumulation, output rounded to bf16 once).
void matmul_forward(bf16* out, const bf16* inp, const bf16* weight, const bf16* bias, int N, int C, int OC);
// bf16 activations, fp32 weight and bias: the weight is rounded to bf16 per call (per-thread scratch).
void matmul_forward(bf16* out, const bf16* inp, const float* weight, const float* bias, int N, int C, int OC);

// The precision of the calling thread's FP32 GEMMs (model.dtype on a GPU):
//   fp32  plain FP32 (the default): the CPU's results to FP32 rounding
//   tf32  TF32 tensor cores: inputs rounded to 10-bit mantissas, fp32 accumulation (~1e-3 relative)
//   bf16  the training passes run on bf16 activations (the bf16 overloads, device/gpt2_device); the
//         fp32 matmul_forward/backward that remain (the KV-cached decoder) round their operands per
//         call into per-thread scratch for the bf16 tensor cores, fp32 accumulation, fp32 outputs
//         (~1e-2 relative); the other fp32 GEMMs (sgemm_*) in TF32. Master weights and optimiser
//         state stay fp32.
enum class MatmulPrecision { fp32, tf32, bf16 };
void set_matmul_precision(MatmulPrecision p);
MatmulPrecision matmul_precision();
// set_matmul_precision(on ? tf32 : fp32).
void set_tf32(bool on);

// C (M,N) = alpha A (M,K) . B (N,K)^T + beta C, all row-major (mirrors frugal::cpu::sgemm_nt).
void sgemm_nt(int M, int N, int K, float alpha, const float* A, const float* B, float beta, float* C);
// C (M,N) = alpha A (M,K) . B (K,N) + beta C, and C (M,N) = alpha A^T . B + beta C with A (K,M),
// B (K,N): cpu::sgemm_nn and cpu::sgemm_tn (the LoRA adapters' products).
void sgemm_nn(int M, int N, int K, float alpha, const float* A, const float* B, float beta, float* C);
void sgemm_tn(int M, int N, int K, float alpha, const float* A, const float* B, float beta, float* C);
// The same in bf16: bf16 operands and C, fp32 accumulation (tensor cores), C rounded once. K > 0.
void gemm_nt(int M, int N, int K, float alpha, const bf16* A, const bf16* B, float beta, bf16* C);
// Row-major C (M,N) = alpha op(A) op(B) + beta C, op(A) (M,K) and op(B) (K,N), op = transpose where
// asked: bf16 operands, fp32 accumulation, C bf16 (rounded once) or fp32. K > 0.
void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const bf16* A, const bf16* B, float beta,
          bf16* C);
void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const bf16* A, const bf16* B, float beta,
          float* C);
// n device floats rounded to bf16 into the calling thread's scratch slot (kMatmulScratchSlots <= slot
// < kBf16ScratchSlots: the lower slots are the matmul kernels'), valid until that slot's next use.
constexpr int kMatmulScratchSlots = 3, kBf16ScratchSlots = 5;
bf16* to_bf16_scratch(int slot, const float* src, size_t n);

// LayerNorm over the last dimension, eps = 1e-5: out (N,C), mean (N), rstd (N) from inp (N,C),
// weight (C), bias (C). One warp per row.
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int N, int C);
void layernorm_forward(bf16* out, float* mean, float* rstd, const bf16* inp, const float* weight, const float* bias,
                       int N, int C);

// ---- Training kernels: CUDA twins of kernels/cpu/ (same shapes, same += / overwrite rules). ----
// "deterministic" below means bit-identical results run to run on the same GPU; where the sum
// order also equals the CPU's, the results are bit-identical to the CPU kernel too (noted).

// out (B,T,C) = wte[inp[b,t]] (V,C) + wpe[t] (maxT,C); inp (B,T) device token ids. Bit-identical to CPU.
void encoder_forward(float* out, const int* inp, const float* wte, const float* wpe, int B, int T, int C);
void encoder_forward(bf16* out, const int* inp, const float* wte, const float* wpe, int B, int T, int C);
// dwte, dwpe += scatter of dout (B,T,C). Deterministic without atomics, and each (token, channel)
// sum runs in the CPU's (b,t) order, so bit-identical to the CPU kernel.
void encoder_backward(float* dwte, float* dwpe, const float* dout, const int* inp, int B, int T, int C);
void encoder_backward(float* dwte, float* dwpe, const bf16* dout, const int* inp, int B, int T, int C);

// dinp (N,C), dweight (C), dbias (C) += gradients given dout (N,C) and the saved mean/rstd (N).
// Deterministic (fixed reduction trees, no atomics).
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int N, int C);
void layernorm_backward(bf16* dinp, float* dweight, float* dbias, const bf16* dout, const bf16* inp,
                        const float* weight, const float* mean, const float* rstd, int N, int C);

// GELU, tanh approximation (GPT-2): out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
void gelu_forward(float* out, const float* inp, size_t n);
void gelu_forward(bf16* out, const bf16* inp, size_t n);
// dinp += gelu'(inp) * dout
void gelu_backward(float* dinp, const float* inp, const float* dout, size_t n);
void gelu_backward(bf16* dinp, const bf16* inp, const bf16* dout, size_t n);
// out = a + b (bit-identical to CPU)
void residual_forward(float* out, const float* a, const float* b, size_t n);
void residual_forward(bf16* out, const bf16* a, const bf16* b, size_t n);
// da += dout; db += dout (bit-identical to CPU)
void residual_backward(float* da, float* db, const float* dout, size_t n);
void residual_backward(bf16* da, bf16* db, const bf16* dout, size_t n);
// dst += src, n elements (bit-identical to CPU)
void accumulate(float* dst, const float* src, size_t n);
void accumulate(bf16* dst, const bf16* src, size_t n);
// dst = src, n device elements (a device-to-device copy)
void copy(float* dst, const float* src, size_t n);
void copy(bf16* dst, const bf16* src, size_t n);
// out = a - b, n elements (bit-identical to CPU)
void subtract(float* out, const float* a, const float* b, size_t n);
// x *= s, n elements (bit-identical to CPU: one float multiply each)
void scale(float* x, float s, size_t n);

// dinp (N,C) += dout . W;  dweight (OC,C) += dout^T . inp;  dbias (OC) += colsum(dout). Any of the
// three may be null (skipped). cuBLAS with plain FP32 math; dbias by a fixed-order column reduction.
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int N, int C, int OC);
// bf16 activations: dinp, dout, inp bf16 (dinp rounded once); weight, dweight, dbias fp32.
void matmul_backward(bf16* dinp, float* dweight, float* dbias, const bf16* dout, const bf16* inp, const float* weight,
                     int N, int C, int OC);

// probs (N,Vp) = softmax(logits (N,Vp)) over [0, V), 0 in the padding; losses (N) = -log probs[target].
// targets (N) are device ints. One block per row; the exp sum accumulates in double as on the CPU.
void softmax_crossentropy_forward(float* probs, float* losses, const float* logits, const int* targets, int N,
                                  int V, int Vp);
void softmax_crossentropy_forward(float* probs, float* losses, const bf16* logits, const int* targets, int N, int V,
                                  int Vp);
// dlogits (N,Vp) = (probs - onehot(target)) * dloss, padding 0 (overwrites). Bit-identical to CPU.
void softmax_crossentropy_backward(float* dlogits, const float* probs, const int* targets, float dloss, int N,
                                   int V, int Vp);
void softmax_crossentropy_backward(bf16* dlogits, const float* probs, const int* targets, float dloss, int N, int V,
                                   int Vp);

// Log-probabilities of the targets under softmax(logits (N,Vp) inv_temp) over [0, V): logp (N), and
// the entropies (N) when entropy is non-null (cpu::token_logprob_forward). One block per row, the
// exp sums in double as on the CPU.
void token_logprob_forward(float* logp, float* entropy, const float* logits, const int* targets, int N, int V, int Vp,
                           float inv_temp);
void token_logprob_forward(float* logp, float* entropy, const bf16* logits, const int* targets, int N, int V, int Vp,
                           float inv_temp);
// dlogits (N,Vp) = weight[n] inv_temp (onehot(target) - softmax): the gradient of sum_n weight[n]
// logp_n (overwrites; padding and rows of weight 0 get 0). weight (N) is a device array.
void token_logprob_backward(float* dlogits, const float* logits, const int* targets, const float* weight, int N, int V,
                            int Vp, float inv_temp);
void token_logprob_backward(bf16* dlogits, const bf16* logits, const int* targets, const float* weight, int N, int V,
                            int Vp, float inv_temp);

// Causal self-attention, heads of size C/NH: qkv (B,T,3C) = q | k | v; out (B,T,C); att (B,NH,T,T)
// keeps the softmax for the backward, zeros above the diagonal (the CPU layout). The score and value
// products are cuBLAS strided-batched GEMMs (TF32 under set_tf32), the softmax one warp per
// (b, h, t) row; no atomics: deterministic.
void attention_forward(float* out, float* att, const float* qkv, int B, int T, int C, int NH);
void attention_forward(bf16* out, bf16* att, const bf16* qkv, int B, int T, int C, int NH);
// dqkv (B,T,3C) += gradient given dout (B,T,C) and the saved att. Uses a (B,NH,T,T) device scratch
// (grown on demand, kept per thread) for the pre-softmax gradient. Deterministic.
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* att, int B, int T, int C,
                        int NH);
void attention_backward(bf16* dqkv, const bf16* dout, const bf16* qkv, const bf16* att, int B, int T, int C, int NH);

// EST's weight slices (model/subnet.cpp), index lists on the device, listed rows / columns distinct:
//   gather_rows          dst (n_rows, row_len) = scale src[rows[j], :]
//   gather_columns       dst (n_rows, n_cols)[o, j] = scale src[o, cols[j]]      (src: src_cols columns)
//   scatter_add_rows     dst[rows[j], :] += scale src[j, :]
//   scatter_add_columns  dst[o, cols[j]] += scale src[o, j]                      (dst: dst_cols columns)
// One unfused multiply (and add) per element: bit-identical to the CPU's loops.
void gather_rows(float* dst, const float* src, const int* rows, int n_rows, int row_len, float scale);
void gather_columns(float* dst, const float* src, const int* cols, int n_rows, int src_cols, int n_cols, float scale);
void scatter_add_rows(float* dst, const float* src, const int* rows, int n_rows, int row_len, float scale);
void scatter_add_columns(float* dst, const float* src, const int* cols, int n_rows, int dst_cols, int n_cols,
                         float scale);

// The KV-cached decoder (model/decode.cpp's loops), rows given by device int arrays:
//   embed_rows        x (R,C) = wte[token[i]] + wpe[pos[i]]                          (bit-identical)
//   kv_write          key and value of row i (from qkv (R,3C)) into the (slots, max_len, C) caches
//                     at (slot[i], pos[i])                                           (bit-identical)
//   cached_attention  out (R,C): row i's causal attention over its slot's positions [0, pos[i]],
//                     per head; the CPU's sum order (one warp per row and head), expf the difference
void embed_rows(float* x, const float* wte, const float* wpe, const int* token, const int* pos, int R, int C);
void kv_write(float* kc, float* vc, const float* qkv, const int* slot, const int* pos, int R, int C, int max_len);
void cached_attention(float* out, const float* qkv, const float* kc, const float* vc, const int* slot, const int* pos,
                      int R, int C, int NH, int max_len);

// SparseLoCo's compressor on the device (compress/error_feedback.hpp's ef_compress, steps 3-5 and 7;
// the 2-bit quantiser's statistics stay on the host). A tensor's chunk geometry as
// compress::ChunkLayout (c1 x c2 tiles of a matrix, or segments of c2 of a vector):
struct ChunkGeometry {
  int64_t rows = 1, cols = 0, c1 = 1, c2 = 0;
  bool vector = false;
};
// e = beta e + g over n elements (one unfused multiply and add: bit-identical to the CPU).
void ef_update(float* e, const float* g, float beta, size_t n);
// Per chunk of x: the k = chunk_k(len, top_k) largest |x| (fp32 bit patterns with the sign cleared,
// ties to the lower in-chunk index), their in-chunk indices ascending into idx and their values into
// values, chunk c's entries from c * chunk_k(c1 c2, top_k): compress::select_topk's selection and
// layout, bit for bit. One block per chunk (a bitonic sort of (|x|, index) keys in shared memory).
void chunk_topk_abs(const float* x, const ChunkGeometry& g, int64_t top_k, uint16_t* idx, float* values);
// e[element of entry t] -= values[t] for every entry of such a selection (error feedback's step 7).
void chunk_scatter_sub(float* e, const ChunkGeometry& g, int64_t top_k, const uint16_t* idx, const float* values);
// Entries of such a selection over the whole tensor (compress::sparse_nnz).
int64_t chunk_topk_nnz(const ChunkGeometry& g, int64_t top_k);

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

// tanh in place over n elements (the ES policies' activation), float and bf16.
void tanh_forward(float* x, size_t n);
void tanh_forward(bf16* x, size_t n);

// ---- Evolution strategies (model/perturb.hpp's CPU functions, same layouts and semantics) ------
// Noise: bit-identical to the CPU's (both call frugal::noise_block).
void keyed_normals(float* out, const NoiseKey& key, uint32_t pair, int64_t n);
// Bt [pairs][rank][cols], At [pairs][rank][rows], unscaled, as frugal::lowrank_generate.
void lowrank_generate(float* Bt, float* At, const NoiseKey& key, int first_pair, int pairs, int rows, int cols,
                      int rank);
// eps [pairs][len], as frugal::vector_noise_generate.
void vector_noise_generate(float* eps, const NoiseKey& key, int first_pair, int pairs, int len);

// A weight's low-rank factors on the device (layout of frugal::LowRankFactors), fp32 or bf16.
template <typename T>
struct LowRankView {
  const T* Bt = nullptr;  // [pairs][rank][cols]
  const T* At = nullptr;  // [pairs][rank][rows]
  int first_pair = 0, pairs = 0, rank = 0, rows = 0, cols = 0;
};

// EGGROLL's perturbed linear layer over a population (frugal::lowrank_linear_forward): row b of
// x (batch x cols) belongs to member[b] (device ints),
//   y_b = x_b W^T + bias + s (sigma / sqrt r) A_p (B_p^T x_b) + s sigma eps_p
// One kernel writes each row's correction (r dot products, r axpys, bias and its noise) into y, then
// ONE shared GEMM accumulates x W^T onto it (beta = 1): the perturbation costs a pass over x and the
// factors, and the GEMM's epilogue reads y for free. bias and bias_noise ([pairs][rows]) may be null.
void lowrank_linear_forward(float* y, const float* x, int batch, const float* w, const float* bias,
                            const int32_t* member, const LowRankView<float>& f, const float* bias_noise, float sigma);
void lowrank_linear_forward(bf16* y, const bf16* x, int batch, const bf16* w, const bf16* bias,
                            const int32_t* member, const LowRankView<bf16>& f, const bf16* bias_noise, float sigma);

// Pass 1 alone: y_b = bias + s (sigma / sqrt r) A_p (B_p^T x_b) + s sigma eps_p (no GEMM), for
// callers that fuse the GEMM themselves and for timing the pass on its own.
void lowrank_linear_correction(float* y, const float* x, int batch, const float* bias, const int32_t* member,
                               const LowRankView<float>& f, const float* bias_noise, float sigma);
void lowrank_linear_correction(bf16* y, const bf16* x, int batch, const bf16* bias, const int32_t* member,
                               const LowRankView<bf16>& f, const bf16* bias_noise, float sigma);

// The same with the noise regenerated inside the kernel from its keys (nothing stored): factors of
// (key, pair member/2) and, when bias_key is non-null, the bias noise of (*bias_key, pair). Equal to
// the stored-factor version on factors from lowrank_generate. Ranks 1, 2, 4 and 8, with
// cols * rank a multiple of 4 (the factors' Philox blocks then align with B and A).
void lowrank_linear_forward_keyed(float* y, const float* x, int batch, const float* w, const float* bias,
                                  const int32_t* member, const NoiseKey& key, int rank, int rows, int cols,
                                  const NoiseKey* bias_key, float sigma);
void lowrank_linear_forward_keyed(bf16* y, const bf16* x, int batch, const bf16* w, const bf16* bias,
                                  const int32_t* member, const NoiseKey& key, int rank, int rows, int cols,
                                  const NoiseKey* bias_key, float sigma);

// OpenAI-ES's naive forward (frugal::fullrank_linear_forward): per member, a matrix-vector product
// with W + s sigma E_p, E [pairs][rows][cols] from first_pair; the perturbed matrix is formed on the
// fly, never stored. bias and bias_noise may be null.
void fullrank_linear_forward(float* y, const float* x, int batch, const float* w, const float* bias,
                             const int32_t* member, const float* E, int first_pair, int rows, int cols,
                             const float* bias_noise, float sigma);
void fullrank_linear_forward(bf16* y, const bf16* x, int batch, const bf16* w, const bf16* bias,
                             const int32_t* member, const bf16* E, int first_pair, int rows, int cols,
                             const bf16* bias_noise, float sigma);

// ES update directions (frugal::lowrank_update, vector_noise_update), fitness on the host (members
// values, members = 2 pairs, every pair's noise present): g (rows x cols) = (1/N) sum_p (f_2p - f_2p+1)
// (sigma / sqrt r) A_p B_p^T as ONE GEMM over the stacked factors; g (len) likewise for a vector.
void lowrank_update(float* g, const LowRankView<float>& f, const float* fitness, int members, float sigma);
void vector_noise_update(float* g, const float* eps, int pairs, int len, const float* fitness, int members,
                         float sigma);

}  // namespace frugal::cuda
