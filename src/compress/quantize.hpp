#pragma once
// SparseLoCo's 2-bit quantiser (spec: methods.md section 7, step 6), one per tensor over the
// selected values v[0..n):
//   mu = mean(v)                     (accumulated in double, sent as fp32)
//   c  = v - mu
//   s  = 6 * std(c) / 4              std with the n - 1 divisor, as the reference (torch .std());
//                                    s = 1 when n < 2 or s is 0 / not finite, as the reference does
//   code = clamp(round(c / s + 2), 0, 3)    round half to even (torch.round)
//   L[b] = mean of c over the values with code b (double accumulation, sent as fp32);
//          an empty bin gets L[b] = 0 (relative to mu): it is sent but no code refers to it
//   value = L[code] + mu             computed in fp32, identically by sender and receivers
// Statistics are summed over fixed blocks of 4096 values (partials combined in block order), so
// the result does not depend on the OpenMP thread count.
#include <cstdint>

namespace frugal::compress {

struct Quant2 {
  float mu = 0;                       // mean of the selected values
  float levels[4] = {0, 0, 0, 0};     // L[b], relative to mu
  float scale = 1;                    // s (local diagnostics only; not sent, not needed to decode)
};

// v[n] -> codes[n] (0..3) and, when deq is non-null, deq[n] = dequantised values. n may be 0.
Quant2 quantize2(const float* v, int64_t n, uint8_t* codes, float* deq);

inline float dequantize2(const Quant2& q, uint8_t code) { return q.levels[code & 3] + q.mu; }

}  // namespace frugal::compress
