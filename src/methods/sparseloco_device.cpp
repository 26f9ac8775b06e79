#include "methods/sparseloco_device.hpp"

#include "core/error.hpp"
#include "harness/placement.hpp"
#ifdef FRUGAL_HAVE_CUDA
#include "kernels/cuda/kernels.hpp"
#endif

namespace frugal {

#ifdef FRUGAL_HAVE_CUDA

struct SparseLocoDevice {
  cuda::DeviceBuffer global, error, pseudo_grad, values;
  cuda::DeviceArray<uint16_t> idx;
};

void SparseLocoDeviceDeleter::operator()(SparseLocoDevice* d) const { delete d; }

SparseLocoDevicePtr sparseloco_device_create(const std::vector<float>& global, const std::vector<float>& error) {
  FRUGAL_CHECK(global.size() == error.size(), "internal: SparseLoCo's error buffer and parameters differ in size");
  SparseLocoDevicePtr d(new SparseLocoDevice);
  d->global = cuda::DeviceBuffer(global);
  d->error = cuda::DeviceBuffer(error);
  d->pseudo_grad = cuda::DeviceBuffer(global.size());
  return d;
}

void sparseloco_device_compress(SparseLocoDevice& d, LmDevice& worker, const std::vector<compress::CompressBlock>& blocks,
                                const compress::EfOptions& opt, std::vector<compress::SparseTensor>& sent) {
  const std::span<float> params = lm_device_params(worker);
  FRUGAL_CHECK(params.size() == d.global.size(), "internal: SparseLoCo's worker and global parameters differ in size");
  cuda::subtract(d.pseudo_grad.data(), d.global.data(), params.data(), params.size());
  for (size_t b = 0; b < blocks.size(); b++) {
    const compress::ChunkLayout& l = blocks[b].layout;
    const cuda::ChunkGeometry geom{l.rows, l.cols, l.c1, l.c2, l.vector};
    float* e = d.error.data() + blocks[b].offset;
    compress::sparse_reset(sent[b], l, opt.top_k);
    const size_t nnz = sent[b].idx.size();
    FRUGAL_CHECK(int64_t(nnz) == cuda::chunk_topk_nnz(geom, opt.top_k), "internal: device and host top-k sizes differ");
    d.idx.grow(nnz), d.values.grow(nnz);
    cuda::ef_update(e, d.pseudo_grad.data() + blocks[b].offset, opt.beta, size_t(l.numel()));
    cuda::chunk_topk_abs(e, geom, opt.top_k, d.idx.data(), d.values.data());
    d.idx.download(sent[b].idx.data(), nnz);
    d.values.download(sent[b].values.data(), nnz);
    if (opt.quantize) {  // the host's quantiser; the dequantised values are what e loses
      compress::quantize_values(sent[b]);
      d.values.upload(sent[b].values.data(), nnz);
    }
    cuda::chunk_scatter_sub(e, geom, opt.top_k, d.idx.data(), d.values.data());
  }
}

void sparseloco_device_adopt_global(SparseLocoDevice& d, LmDevice& worker, const std::vector<float>& global) {
  d.global.upload(global.data(), global.size());
  const std::span<float> params = lm_device_params(worker);
  cuda::copy(params.data(), d.global.data(), params.size());
}

void sparseloco_device_error_to_host(const SparseLocoDevice& d, std::vector<float>& error) {
  d.error.download(error.data(), error.size());
}

void sparseloco_device_restore(SparseLocoDevice& d, const std::vector<float>& global, const std::vector<float>& error) {
  d.global.upload(global.data(), global.size());
  d.error.upload(error.data(), error.size());
}

#else  // a build without CUDA: placement refuses run.device = "cuda" first; these say it again

struct SparseLocoDevice {};
void SparseLocoDeviceDeleter::operator()(SparseLocoDevice* d) const { delete d; }
SparseLocoDevicePtr sparseloco_device_create(const std::vector<float>&, const std::vector<float>&) { fail_without_cuda(); }
void sparseloco_device_compress(SparseLocoDevice&, LmDevice&, const std::vector<compress::CompressBlock>&,
                                const compress::EfOptions&, std::vector<compress::SparseTensor>&) {
  fail_without_cuda();
}
void sparseloco_device_adopt_global(SparseLocoDevice&, LmDevice&, const std::vector<float>&) { fail_without_cuda(); }
void sparseloco_device_error_to_host(const SparseLocoDevice&, std::vector<float>&) { fail_without_cuda(); }
void sparseloco_device_restore(SparseLocoDevice&, const std::vector<float>&, const std::vector<float>&) { fail_without_cuda(); }

#endif

}  // namespace frugal
