#pragma once
// LoRA adapters on the GPU: model/lora.hpp's LoraAdapters as the device model's block hook, their
// parameters and gradients in device buffers of the same layout (the host object supplies the
// layout and the per-matrix views: LoraAdapters::matrix). The base stays frozen; the device kernels'
// block_linear_forward/backward (device/gpt2_device.cpp) add the adapter's two thin GEMMs.
#include "device/gpt2_device.hpp"
#include "model/lora.hpp"

namespace frugal {

class LoraDevice final : public BlockHook<GPT2Device> {
 public:
  // The adapters' current parameters on the device, gradients zero. `host` must outlive this.
  explicit LoraDevice(const LoraAdapters& host);
  cuda::DeviceBuffer params, grads;  // host.layout().total each

  bool runs(int) const override { return true; }
  GPT2BlockWeights forward_weights(GPT2Device& model, int l) override { return weights(model, l); }
  GPT2BlockWeights backward_weights(GPT2Device& model, int l) override { return weights(model, l); }
  void backward_done(GPT2Device&, int) override {}
  bool base_frozen() const override { return true; }

 private:
  GPT2BlockWeights weights(GPT2Device& model, int l);
  const LoraAdapters* host_;
};

}  // namespace frugal
