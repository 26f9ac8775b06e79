#include "device/lora_device.hpp"

#include "model/gpt2_pass.hpp"

namespace frugal {

LoraDevice::LoraDevice(const LoraAdapters& host) : params(host.params), grads(host.layout().total), host_(&host) {
  grads.zero();
}

GPT2BlockWeights LoraDevice::weights(GPT2Device& model, int l) {
  GPT2BlockWeights w = gpt2_pass::block_weights(model, l);
  w.dqkvw = w.dattprojw = w.dfcw = w.dfcprojw = nullptr;  // the base is frozen
  for (int s = 0; s < 4; s++) w.lora[s] = host_->matrix(l, s, params.data(), grads.data());
  return w;
}

}  // namespace frugal
