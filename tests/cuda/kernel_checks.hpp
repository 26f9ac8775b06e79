#pragma once
// What the CUDA kernel tests share: random inputs, NaN-poisoned outputs and the comparisons, with
// the conventions stated in test_cuda_training_kernels.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <random>
#include <vector>

#include "kernels/cuda/kernels.hpp"

namespace frugal::testing {

inline constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

inline std::vector<float> random_vec(size_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

inline std::vector<int> random_ints(size_t n, std::mt19937& rng, int lo, int hi) {  // [lo, hi]
  std::uniform_int_distribution<int> dist(lo, hi);
  std::vector<int> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// A device buffer of n NaNs: whatever the kernel does not write stays NaN and fails the comparison.
inline cuda::DeviceBuffer poisoned(size_t n) { return cuda::DeviceBuffer(std::vector<float>(n, kNaN)); }

inline ::testing::AssertionResult bit_equal(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " != " << want.size();
  for (size_t k = 0; k < got.size(); k++)
    if (!(got[k] == want[k]))
      return ::testing::AssertionFailure() << "element " << k << ": got " << got[k] << ", want " << want[k];
  return ::testing::AssertionSuccess();
}

// |got - want| <= rtol (|want| + typical) for every element, typical = mean |want - init| (the part the
// kernel computed; init empty: nothing accumulated into). NaN anywhere in got fails.
inline ::testing::AssertionResult close(const std::vector<float>& got, const std::vector<float>& want, double rtol,
                                 const std::vector<float>& init = {}) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " != " << want.size();
  double typical = 0.0;
  for (size_t k = 0; k < want.size(); k++)
    typical += std::fabs(double(want[k]) - (init.empty() ? 0.0 : double(init[k])));
  typical /= std::max<size_t>(1, want.size());
  double worst = 0.0;
  size_t worst_k = 0;
  for (size_t k = 0; k < got.size(); k++) {
    const double diff = std::fabs(double(got[k]) - double(want[k]));
    const double err = diff == 0.0 ? 0.0 : diff / (std::fabs(double(want[k])) + typical);  // 0/0: equal zeros
    if (!(err <= rtol))  // also catches NaN
      return ::testing::AssertionFailure() << "element " << k << ": got " << got[k] << ", want " << want[k]
                                           << " (normalised error " << err << " > " << rtol << ", typical "
                                           << typical << ")";
    if (err > worst) worst = err, worst_k = k;
  }
  return ::testing::AssertionSuccess() << "worst normalised error " << worst << " at " << worst_k;
}

}  // namespace frugal::testing
