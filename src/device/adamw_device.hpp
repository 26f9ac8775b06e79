#pragma once
// AdamW with its moments in device memory: optim/adamw.hpp's update (same per-tensor weight decay,
// same bias correction) through cuda::adamw_update, which is bit-identical to the CPU loop.
#include <span>

#include "kernels/cuda/kernels.hpp"
#include "optim/adamw.hpp"

namespace frugal {

struct AdamWDevice {
  AdamW host;  // config, per-tensor spans and decay flags, step count; its m and v stay empty
  cuda::DeviceBuffer m, v;
};

// The host optimiser's state (moments and step count) on the device.
AdamWDevice adamw_to_device(const AdamW& host);
// One update of the device buffers params and grads (layout.total floats each), learning rate lr;
// with keep (layout.total device bytes) only where keep[i] == 1, the step count advancing for all
// (adamw_step's update_mask).
void adamw_step(AdamWDevice& opt, float* params, const float* grads, float lr, const uint8_t* keep = nullptr);

}  // namespace frugal
