// SparseLoCo's compressor on the device against compress/ on the CPU, bit for bit: the error-feedback
// update and the per-chunk top-k (kernels/cuda/compress.cu) on matrices and ragged vectors, with ties
// (values drawn from a small set) and without; and the whole outer-step compression of a model's
// blocks with the host quantiser (methods/sparseloco_device.hpp) against ef_compress: the same
// indices, values, codes and error buffer. Skipped without a GPU.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "compress/chunking.hpp"
#include "compress/error_feedback.hpp"
#include "compress/sparse.hpp"
#include "kernels/cuda/kernels.hpp"
#include "methods/sparseloco_device.hpp"
#include "model/gpt2.hpp"
#include "optim/adamw.hpp"

namespace {

using namespace frugal;
using namespace frugal::compress;

class CudaCompress : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda::device_available()) GTEST_SKIP() << "no CUDA device visible: skipping";
  }
};

std::vector<float> random_values(size_t n, std::mt19937& rng, bool ties) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const float pool[] = {0.0f, -0.0f, 0.5f, -0.5f, 1.0f, -1.0f, 2.0f};
  std::uniform_int_distribution<int> pick(0, 6);
  std::vector<float> v(n);
  for (float& x : v) x = ties ? pool[pick(rng)] : dist(rng);
  return v;
}

TEST_F(CudaCompress, EfUpdateAndTopkBitIdenticalToCpu) {
  std::mt19937 rng(41);
  const std::vector<ChunkLayout> layouts = {matrix_layout(96, 130), matrix_layout(3, 768), matrix_layout(128, 64),
                                            vector_layout(100), vector_layout(64), vector_layout(4099)};
  for (const ChunkLayout& l : layouts) {
    for (const int64_t top_k : {int64_t{1}, int64_t{128}, int64_t{4096}}) {
      for (const bool ties : {false, true}) {
        SCOPED_TRACE("rows=" + std::to_string(l.rows) + " cols=" + std::to_string(l.cols) + " top_k=" +
                     std::to_string(top_k) + (ties ? " ties" : ""));
        const size_t n = size_t(l.numel());
        auto e = random_values(n, rng, ties);
        const auto g = random_values(n, rng, ties);
        EfOptions opt;
        opt.beta = 0.9f, opt.top_k = top_k, opt.quantize = false;
        cuda::DeviceBuffer d_e(e), d_g(g);
        SparseTensor want;
        ef_compress(e.data(), g.data(), l, opt, want);  // e is now the CPU's error after the step

        const cuda::ChunkGeometry geom{l.rows, l.cols, l.c1, l.c2, l.vector};
        const int64_t nnz = cuda::chunk_topk_nnz(geom, top_k);
        ASSERT_EQ(size_t(nnz), want.idx.size());
        cuda::DeviceArray<uint16_t> d_idx(static_cast<size_t>(nnz));
        cuda::DeviceBuffer d_values(static_cast<size_t>(nnz));
        cuda::ef_update(d_e.data(), d_g.data(), opt.beta, n);
        cuda::chunk_topk_abs(d_e.data(), geom, top_k, d_idx.data(), d_values.data());
        EXPECT_EQ(d_idx.to_host(), want.idx);
        const auto values = d_values.to_host();
        ASSERT_EQ(values.size(), want.values.size());
        for (size_t t = 0; t < values.size(); t++)
          ASSERT_EQ(std::memcmp(&values[t], &want.values[t], 4), 0) << "value " << t;
        cuda::chunk_scatter_sub(d_e.data(), geom, top_k, d_idx.data(), d_values.data());
        const auto got_e = d_e.to_host();
        for (size_t i = 0; i < n; i++) ASSERT_EQ(std::memcmp(&got_e[i], &e[i], 4), 0) << "error buffer at " << i;
      }
    }
  }
}

TEST_F(CudaCompress, OuterStepCompressionMatchesTheCpu) {
  GPT2Config c;
  c.max_seq_len = 32, c.vocab_size = 90, c.padded_vocab_size = 128, c.num_layers = 2, c.num_heads = 4, c.channels = 64;
  GPT2 worker = gpt2_create(c);
  gpt2_init_weights(worker, 3);
  std::mt19937 rng(43);
  std::vector<float> global = worker.params, error = random_values(worker.params.size(), rng, false);
  for (float& p : global) p += 0.01f * std::normal_distribution<float>(0.0f, 1.0f)(rng);
  const std::vector<CompressBlock> blocks = blocks_for(worker.layout);
  EfOptions opt;
  opt.beta = 0.95f, opt.top_k = 128, opt.quantize = true;

  LmDevicePtr dev = lm_device_create(worker, adamw_create(AdamWConfig{}, worker.layout));
  SparseLocoDevicePtr sd = sparseloco_device_create(global, error);
  std::vector<SparseTensor> got(blocks.size()), want(blocks.size());
  sparseloco_device_compress(*sd, *dev, blocks, opt, got);

  std::vector<float> g(global.size());
  for (size_t i = 0; i < g.size(); i++) g[i] = global[i] - worker.params[i];
  for (size_t b = 0; b < blocks.size(); b++)
    ef_compress(error.data() + blocks[b].offset, g.data() + blocks[b].offset, blocks[b].layout, opt, want[b]);
  for (size_t b = 0; b < blocks.size(); b++) {
    EXPECT_EQ(got[b].idx, want[b].idx) << "block " << b;
    EXPECT_EQ(got[b].codes, want[b].codes) << "block " << b;
    ASSERT_EQ(got[b].values.size(), want[b].values.size());
    EXPECT_EQ(std::memcmp(got[b].values.data(), want[b].values.data(), 4 * want[b].values.size()), 0) << "block " << b;
  }
  std::vector<float> got_error(error.size());
  sparseloco_device_error_to_host(*sd, got_error);
  EXPECT_EQ(std::memcmp(got_error.data(), error.data(), 4 * error.size()), 0) << "error buffers differ";
}

}  // namespace
