#include "device/subnet_device.hpp"

#include "core/error.hpp"
#include "model/gpt2_pass.hpp"

namespace frugal {

void SubnetSlicesDevice::set(const GPT2Subnet& subnet, const GPT2Config& c) {
  const size_t L = size_t(c.num_layers);
  FRUGAL_CHECK(subnet.layer_on.size() == L && subnet.heads.size() == L && subnet.units.size() == L,
               "internal: subnetwork for ", subnet.layer_on.size(), " blocks on a ", L, "-block model");
  subnet_ = subnet;
  blocks_.resize(L);
  const size_t C = size_t(c.channels);
  for (int l = 0; l < c.num_layers; l++) {
    Block& b = blocks_[size_t(l)];
    b.plan = BlockSlicePlan{};
    if (!subnet.layer_on[size_t(l)]) continue;  // a skipped block: runs(l) is false, nothing gathered
    b.plan = subnet_block_plan(subnet, c, l);
    if (b.plan.attn) {
      const size_t CH = size_t(b.plan.CH);
      b.qkv_rows.grow_and_upload(b.plan.qkv_rows), b.head_cols.grow_and_upload(b.plan.head_cols);
      b.qkvw.grow(3 * CH * C), b.qkvb.grow(3 * CH), b.attprojw.grow(C * CH);
      b.dqkvw.grow(3 * CH * C), b.dqkvb.grow(3 * CH), b.dattprojw.grow(C * CH);
    }
    if (b.plan.mlp) {
      const size_t M = size_t(b.plan.M);
      b.units.grow_and_upload(b.plan.units);
      b.fcw.grow(M * C), b.fcb.grow(M), b.fcprojw.grow(C * M);
      b.dfcw.grow(M * C), b.dfcb.grow(M), b.dfcprojw.grow(C * M);
    }
  }
}

GPT2BlockWeights SubnetSlicesDevice::weights(GPT2Device& model, int l) {
  GPT2BlockWeights w = gpt2_pass::block_weights(model, l);
  Block& b = blocks_[size_t(l)];
  if (b.plan.attn) {
    w.heads = b.plan.heads, w.CH = b.plan.CH;
    w.qkvw = b.qkvw.data(), w.qkvb = b.qkvb.data(), w.attprojw = b.attprojw.data();
    w.dqkvw = b.dqkvw.data(), w.dqkvb = b.dqkvb.data(), w.dattprojw = b.dattprojw.data();
  }
  if (b.plan.mlp) {
    w.M = b.plan.M;
    w.fcw = b.fcw.data(), w.fcb = b.fcb.data(), w.fcprojw = b.fcprojw.data();
    w.dfcw = b.dfcw.data(), w.dfcb = b.dfcb.data(), w.dfcprojw = b.dfcprojw.data();
  }
  return w;
}

GPT2BlockWeights SubnetSlicesDevice::forward_weights(GPT2Device& model, int l) {
  const GPT2Config& c = model.config;
  const int C = c.channels, M = 4 * C;
  const GPT2BlockWeights full = gpt2_pass::block_weights(model, l);
  Block& b = blocks_[size_t(l)];
  if (b.plan.attn) {
    const int CH = b.plan.CH;
    cuda::gather_rows(b.qkvw.data(), full.qkvw, b.qkv_rows.data(), 3 * CH, C, 1.0f);
    cuda::gather_rows(b.qkvb.data(), full.qkvb, b.qkv_rows.data(), 3 * CH, 1, 1.0f);
    cuda::gather_columns(b.attprojw.data(), full.attprojw, b.head_cols.data(), C, C, CH, b.plan.attn_scale);
  }
  if (b.plan.mlp) {
    const int k = b.plan.M;
    cuda::gather_rows(b.fcw.data(), full.fcw, b.units.data(), k, C, 1.0f);
    cuda::gather_rows(b.fcb.data(), full.fcb, b.units.data(), k, 1, 1.0f);
    cuda::gather_columns(b.fcprojw.data(), full.fcprojw, b.units.data(), C, M, k, b.plan.mlp_scale);
  }
  return weights(model, l);
}

GPT2BlockWeights SubnetSlicesDevice::backward_weights(GPT2Device& model, int l) {
  Block& b = blocks_[size_t(l)];
  for (auto* v : {&b.dqkvw, &b.dqkvb, &b.dattprojw, &b.dfcw, &b.dfcb, &b.dfcprojw})
    if (v->size()) v->zero();
  return weights(model, l);
}

void SubnetSlicesDevice::backward_done(GPT2Device& model, int l) {
  const GPT2Config& c = model.config;
  const int C = c.channels, M = 4 * C;
  const GPT2BlockWeights full = gpt2_pass::block_weights(model, l);
  Block& b = blocks_[size_t(l)];
  if (b.plan.attn) {
    const int CH = b.plan.CH;
    cuda::scatter_add_rows(full.dqkvw, b.dqkvw.data(), b.qkv_rows.data(), 3 * CH, C, 1.0f);
    cuda::scatter_add_rows(full.dqkvb, b.dqkvb.data(), b.qkv_rows.data(), 3 * CH, 1, 1.0f);
    cuda::scatter_add_columns(full.dattprojw, b.dattprojw.data(), b.head_cols.data(), C, C, CH, b.plan.attn_scale);
  }
  if (b.plan.mlp) {
    const int k = b.plan.M;
    cuda::scatter_add_rows(full.dfcw, b.dfcw.data(), b.units.data(), k, C, 1.0f);
    cuda::scatter_add_rows(full.dfcb, b.dfcb.data(), b.units.data(), k, 1, 1.0f);
    cuda::scatter_add_columns(full.dfcprojw, b.dfcprojw.data(), b.units.data(), C, M, k, b.plan.mlp_scale);
  }
}

}  // namespace frugal
