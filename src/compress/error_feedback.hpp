#pragma once
// SparseLoCo's compressor with error feedback, for one tensor (spec: methods.md section 7, steps 3-7):
//   e <- beta e + g                             (g = theta_global - theta_replica, the pseudo-gradient;
//                                                the outer lr is applied to the aggregate, not here)
//   keep per chunk the k = chunk_k(len, top_k) largest |e|
//   quantise the kept values, 2 bits, one quantiser per tensor (optional)
//   e <- e - sent                               (sent = the dequantised sparse tensor)
// so the buffer absorbs both the sparsification and the quantisation error, and
//   e_new + densify(sent) == beta e_old + g     (exactly up to one fp32 rounding per kept entry).
// The receiver-side values in `out.values` are bit-identical to what e was reduced by.
#include <cstdint>

#include "compress/chunking.hpp"
#include "compress/sparse.hpp"

namespace frugal::compress {

struct EfOptions {
  float beta = 0.95f;     // error-feedback decay
  int64_t top_k = 128;    // kept per 4096 elements (3.125 % density at 128)
  bool quantize = true;   // 2-bit values; false sends fp32 values (ablation)
};

// e[numel], g[numel] with the layout's shape; out receives the sparse tensor to send.
// Parallel over chunks (OpenMP); the result does not depend on the thread count.
void ef_compress(float* e, const float* g, const ChunkLayout& layout, const EfOptions& opt, SparseTensor& out);

}  // namespace frugal::compress
