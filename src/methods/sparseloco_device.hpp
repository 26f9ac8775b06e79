#pragma once
// SparseLoCo's outer step with the worker on a GPU (methods/sparseloco.cpp): the pseudo-gradient,
// the error feedback and the per-chunk top-k run there (kernels/cuda/compress.cu: ef_compress's
// selection bit for bit); only the kept entries come down (3% of the tensor at top_k 128, as
// indices and values), the 2-bit quantiser's statistics and codes are computed on the host by the
// CPU's own function, the dequantised values go back up for the error buffer's e -= sent, and the
// exchange and aggregation stay the CPU's. The global parameters live on both sides: the host's are
// the reference (checkpoints, the outer update), the device's the base of the next pseudo-gradient.
// In a build without CUDA every call fails with a clear message.
#include <memory>
#include <vector>

#include "compress/chunking.hpp"
#include "compress/error_feedback.hpp"
#include "compress/sparse.hpp"
#include "methods/lm_device.hpp"

namespace frugal {

struct SparseLocoDevice;  // defined in sparseloco_device.cpp (CUDA builds)
struct SparseLocoDeviceDeleter {
  void operator()(SparseLocoDevice* d) const;
};
using SparseLocoDevicePtr = std::unique_ptr<SparseLocoDevice, SparseLocoDeviceDeleter>;

// The global parameters and the error buffer on the device.
SparseLocoDevicePtr sparseloco_device_create(const std::vector<float>& global, const std::vector<float>& error);
// Steps 1-5 and 7 for every block: g = global - worker, e = beta e + g, top-k, quantise (host), e -= sent.
void sparseloco_device_compress(SparseLocoDevice& d, LmDevice& worker, const std::vector<compress::CompressBlock>& blocks,
                                const compress::EfOptions& opt, std::vector<compress::SparseTensor>& sent);
// The new global parameters (host) up; the worker restarts from them (a device-to-device copy).
void sparseloco_device_adopt_global(SparseLocoDevice& d, LmDevice& worker, const std::vector<float>& global);
// Resume: the global parameters and the error buffer up (the worker keeps its own, restored
// separately); and the error buffer down for a checkpoint.
void sparseloco_device_restore(SparseLocoDevice& d, const std::vector<float>& global, const std::vector<float>& error);
void sparseloco_device_error_to_host(const SparseLocoDevice& d, std::vector<float>& error);

}  // namespace frugal
