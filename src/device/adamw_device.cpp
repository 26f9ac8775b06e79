#include "device/adamw_device.hpp"

#include "core/error.hpp"

namespace frugal {

AdamWDevice adamw_to_device(const AdamW& host) {
  AdamWDevice d;
  d.host.config = host.config;  // everything but the moments, which live on the device only
  d.host.decay = host.decay;
  d.host.tensors = host.tensors;
  d.host.t = host.t;
  d.m = cuda::DeviceBuffer(host.m);
  d.v = cuda::DeviceBuffer(host.v);
  return d;
}

void adamw_step(AdamWDevice& opt, float* params, const float* grads, float lr, const uint8_t* keep) {
  AdamW& h = opt.host;
  h.t++;
  const AdamWConfig& c = h.config;
  for (size_t k = 0; k < h.tensors.size(); k++) {
    const AdamW::Span& t = h.tensors[k];
    FRUGAL_CHECK(t.offset + t.numel <= opt.m.size(), "internal: AdamW tensor outside the device moments");
    cuda::adamw_update(params + t.offset, grads + t.offset, opt.m.data() + t.offset, opt.v.data() + t.offset, t.numel,
                       lr, c.beta1, c.beta2, c.eps, h.decay[k] ? c.weight_decay : 0.0f, h.t,
                       keep ? keep + t.offset : nullptr);
  }
}

}  // namespace frugal
