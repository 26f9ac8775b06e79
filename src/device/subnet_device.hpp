#pragma once
// EST's subnetworks on the GPU: model/subnet.hpp's SubnetSlices as the device model's block hook.
// The forward gathers each running block's kept heads and units into contiguous device slices
// (kernels/cuda gather_rows / gather_columns, index lists from subnet_block_plan, W_O and W_proj
// pre-scaled by 1/p), the backward adds the slices' gradients back (scatter_add_*): the same
// arithmetic as the CPU's, element for element.
#include <vector>

#include "device/gpt2_device.hpp"
#include "model/subnet.hpp"

namespace frugal {

class SubnetSlicesDevice final : public BlockHook<GPT2Device> {
 public:
  // This step's subnetwork: its index lists go up to the device.
  void set(const GPT2Subnet& subnet, const GPT2Config& c);
  bool runs(int l) const override { return subnet_.layer_on[size_t(l)] != 0; }
  GPT2BlockWeights forward_weights(GPT2Device& model, int l) override;
  GPT2BlockWeights backward_weights(GPT2Device& model, int l) override;
  void backward_done(GPT2Device& model, int l) override;

 private:
  struct Block {
    BlockSlicePlan plan;  // flags, scales and counts (its index lists live on the device below)
    cuda::IntDeviceBuffer qkv_rows, head_cols, units;
    cuda::DeviceBuffer qkvw, qkvb, attprojw, fcw, fcb, fcprojw;
    cuda::DeviceBuffer dqkvw, dqkvb, dattprojw, dfcw, dfcb, dfcprojw;
  };
  GPT2BlockWeights weights(GPT2Device& model, int l);
  GPT2Subnet subnet_;
  std::vector<Block> blocks_;  // (L)
};

}  // namespace frugal
