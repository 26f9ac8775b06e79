#include "kernels/cpu/profile.hpp"

namespace frugal::cpu {

const char* kernel_name(Kernel k) {
  static const char* const names[int(Kernel::count)] = {
      "encoder", "layernorm", "matmul forward", "matmul backward", "attention forward", "attention backward",
      "gelu", "residual", "softmax + cross-entropy", "zero gradients"};
  return names[int(k)];
}

KernelProfile& kernel_profile() {
  static KernelProfile profile;
  return profile;
}

}  // namespace frugal::cpu
