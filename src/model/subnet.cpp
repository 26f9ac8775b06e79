#include "model/subnet.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.hpp"

namespace frugal {

int subnet_count(double rate, int n) { return std::clamp(static_cast<int>(std::lround(rate * n)), 1, n); }

namespace {

// k distinct values of [0, n), uniform over all k-subsets (partial Fisher-Yates), sorted ascending
// so gathered slices keep the model's order.
std::vector<int> sample_subset(int n, int k, Rng& rng) {
  std::vector<int> all(static_cast<size_t>(n));
  std::iota(all.begin(), all.end(), 0);
  for (int i = 0; i < k; i++) std::swap(all[i], all[i + static_cast<int>(rng.below(static_cast<uint32_t>(n - i)))]);
  all.resize(static_cast<size_t>(k));
  std::sort(all.begin(), all.end());
  return all;
}

std::vector<int> iota_vec(int n) {
  std::vector<int> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

void zero(std::vector<float>& v) {
  float* p = v.data();
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < v.size(); i++) p[i] = 0.0f;
}

}  // namespace

BlockSlicePlan subnet_block_plan(const GPT2Subnet& subnet, const GPT2Config& c, int l, bool with_indices) {
  const int hs = c.channels / c.num_heads, M = 4 * c.channels;
  const std::vector<int>& heads = subnet.heads[size_t(l)];
  const std::vector<int>& units = subnet.units[size_t(l)];
  BlockSlicePlan plan;
  plan.heads = static_cast<int>(heads.size()), plan.CH = plan.heads * hs, plan.M = static_cast<int>(units.size());
  plan.attn = plan.heads < c.num_heads;
  plan.mlp = plan.M < M;
  if (plan.attn) plan.attn_scale = static_cast<float>(double(c.num_heads) / double(plan.heads));
  if (plan.mlp) plan.mlp_scale = static_cast<float>(double(M) / double(plan.M));
  if (with_indices && plan.attn) {
    for (int part = 0; part < 3; part++)
      for (int h : heads)
        for (int i = 0; i < hs; i++) plan.qkv_rows.push_back(part * c.channels + h * hs + i);
    for (int h : heads)
      for (int i = 0; i < hs; i++) plan.head_cols.push_back(h * hs + i);
  }
  if (with_indices && plan.mlp) plan.units = units;
  return plan;
}

namespace {

// Copies block l's kept heads (q, k, v rows; W_O columns x 1/p_H) and kept units (W_fc rows, b_fc;
// W_proj columns x 1/p_M) into contiguous slices. A module with everything kept is not sliced.
void gather_block(GPT2& model, const GPT2Subnet& subnet, GPT2BlockSlices& s, int l) {
  const GPT2Config& c = model.config;
  const size_t C = c.channels, hs = C / size_t(c.num_heads), M = 4 * C, lC = size_t(l) * C;
  const std::vector<int>& heads = subnet.heads[size_t(l)];
  const std::vector<int>& units = subnet.units[size_t(l)];
  const GPT2Tensors p = gpt2_views(model.layout, model.params.data());
  const BlockSlicePlan plan = subnet_block_plan(subnet, c, l, /*with_indices=*/false);
  s.attn = plan.attn, s.mlp = plan.mlp;
  if (s.attn) {
    const size_t k = heads.size(), CH = k * hs;
    s.attn_scale = plan.attn_scale;
    s.qkvw.resize(3 * CH * C), s.qkvb.resize(3 * CH), s.attprojw.resize(C * CH);
    s.dqkvw.resize(s.qkvw.size()), s.dqkvb.resize(s.qkvb.size()), s.dattprojw.resize(s.attprojw.size());
    const float* qkvw = p.qkvw + lC * 3 * C;
    const float* qkvb = p.qkvb + lC * 3;
    const float* attprojw = p.attprojw + lC * C;
#pragma omp parallel for collapse(2) schedule(static)
    for (size_t part = 0; part < 3; part++)  // q | k | v, each the kept heads in order
      for (size_t j = 0; j < k; j++) {
        const size_t from = part * C + size_t(heads[j]) * hs, to = part * CH + j * hs;
        std::copy_n(qkvw + from * C, hs * C, s.qkvw.data() + to * C);
        std::copy_n(qkvb + from, hs, s.qkvb.data() + to);
      }
#pragma omp parallel for schedule(static)
    for (size_t o = 0; o < C; o++)
      for (size_t j = 0; j < k; j++)
        for (size_t i = 0; i < hs; i++)
          s.attprojw[o * CH + j * hs + i] = s.attn_scale * attprojw[o * C + size_t(heads[j]) * hs + i];
  }
  if (s.mlp) {
    const size_t k = units.size();
    s.mlp_scale = plan.mlp_scale;
    s.fcw.resize(k * C), s.fcb.resize(k), s.fcprojw.resize(C * k);
    s.dfcw.resize(s.fcw.size()), s.dfcb.resize(s.fcb.size()), s.dfcprojw.resize(s.fcprojw.size());
    const float* fcw = p.fcw + lC * 4 * C;
    const float* fcb = p.fcb + lC * 4;
    const float* fcprojw = p.fcprojw + lC * 4 * C;
#pragma omp parallel for schedule(static)
    for (size_t j = 0; j < k; j++) std::copy_n(fcw + size_t(units[j]) * C, C, s.fcw.data() + j * C);
    for (size_t j = 0; j < k; j++) s.fcb[j] = fcb[units[j]];
#pragma omp parallel for schedule(static)
    for (size_t o = 0; o < C; o++)
      for (size_t j = 0; j < k; j++) s.fcprojw[o * k + j] = s.mlp_scale * fcprojw[o * M + size_t(units[j])];
  }
}

// Adds block l's slice gradients into the model's gradients (the scaled slices' chain rule: the
// gradient of W_O[:, h] is 1/p_H times that of its slice).
void scatter_block_grads(GPT2& model, const GPT2Subnet& subnet, const GPT2BlockSlices& s, int l) {
  const GPT2Config& c = model.config;
  const size_t C = c.channels, hs = C / size_t(c.num_heads), M = 4 * C, lC = size_t(l) * C;
  const std::vector<int>& heads = subnet.heads[size_t(l)];
  const std::vector<int>& units = subnet.units[size_t(l)];
  const GPT2Tensors d = gpt2_views(model.layout, model.grads.data());
  if (s.attn) {
    const size_t k = heads.size(), CH = k * hs;
    float* dqkvw = d.qkvw + lC * 3 * C;
    float* dqkvb = d.qkvb + lC * 3;
    float* dattprojw = d.attprojw + lC * C;
#pragma omp parallel for collapse(2) schedule(static)  // distinct heads: disjoint rows
    for (size_t part = 0; part < 3; part++)
      for (size_t j = 0; j < k; j++) {
        const size_t to = part * C + size_t(heads[j]) * hs, from = part * CH + j * hs;
        for (size_t i = 0; i < hs * C; i++) dqkvw[to * C + i] += s.dqkvw[from * C + i];
        for (size_t i = 0; i < hs; i++) dqkvb[to + i] += s.dqkvb[from + i];
      }
#pragma omp parallel for schedule(static)
    for (size_t o = 0; o < C; o++)
      for (size_t j = 0; j < k; j++)
        for (size_t i = 0; i < hs; i++)
          dattprojw[o * C + size_t(heads[j]) * hs + i] += s.attn_scale * s.dattprojw[o * CH + j * hs + i];
  }
  if (s.mlp) {
    const size_t k = units.size();
    float* dfcw = d.fcw + lC * 4 * C;
    float* dfcb = d.fcb + lC * 4;
    float* dfcprojw = d.fcprojw + lC * 4 * C;
#pragma omp parallel for schedule(static)
    for (size_t j = 0; j < k; j++)
      for (size_t i = 0; i < C; i++) dfcw[size_t(units[j]) * C + i] += s.dfcw[j * C + i];
    for (size_t j = 0; j < k; j++) dfcb[units[j]] += s.dfcb[j];
#pragma omp parallel for schedule(static)
    for (size_t o = 0; o < C; o++)
      for (size_t j = 0; j < k; j++) dfcprojw[o * M + size_t(units[j])] += s.mlp_scale * s.dfcprojw[o * k + j];
  }
}

}  // namespace

void SubnetSlices::set(const GPT2Subnet& subnet, const GPT2Config& c) {
  const size_t L = size_t(c.num_layers);
  FRUGAL_CHECK(subnet.layer_on.size() == L && subnet.heads.size() == L && subnet.units.size() == L,
               "internal: subnetwork for ", subnet.layer_on.size(), " blocks on a ", L, "-block model");
  subnet_ = subnet;
  blocks_.resize(L);
}

GPT2BlockWeights SubnetSlices::weights(GPT2& model, int l) {
  const GPT2Config& c = model.config;
  GPT2BlockWeights w = gpt2_block_weights(model, l);
  GPT2BlockSlices& s = blocks_[size_t(l)];
  if (s.attn) {
    w.heads = static_cast<int>(subnet_.heads[size_t(l)].size());
    w.CH = w.heads * (c.channels / c.num_heads);
    w.qkvw = s.qkvw.data(), w.qkvb = s.qkvb.data(), w.attprojw = s.attprojw.data();
    w.dqkvw = s.dqkvw.data(), w.dqkvb = s.dqkvb.data(), w.dattprojw = s.dattprojw.data();
  }
  if (s.mlp) {
    w.M = static_cast<int>(subnet_.units[size_t(l)].size());
    w.fcw = s.fcw.data(), w.fcb = s.fcb.data(), w.fcprojw = s.fcprojw.data();
    w.dfcw = s.dfcw.data(), w.dfcb = s.dfcb.data(), w.dfcprojw = s.dfcprojw.data();
  }
  return w;
}

GPT2BlockWeights SubnetSlices::forward_weights(GPT2& model, int l) {
  gather_block(model, subnet_, blocks_[size_t(l)], l);
  return weights(model, l);
}

GPT2BlockWeights SubnetSlices::backward_weights(GPT2& model, int l) {
  GPT2BlockSlices& s = blocks_[size_t(l)];
  for (auto* v : {&s.dqkvw, &s.dqkvb, &s.dattprojw, &s.dfcw, &s.dfcb, &s.dfcprojw}) zero(*v);
  return weights(model, l);
}

void SubnetSlices::backward_done(GPT2& model, int l) { scatter_block_grads(model, subnet_, blocks_[size_t(l)], l); }

double subnet_forward_flops(const GPT2Config& c, int B, int T, const GPT2Subnet& s) {
  if (s.layer_on.empty()) return gpt2_forward_flops(c, B, T);
  const int64_t hs = c.channels / c.num_heads;
  double flops = gpt2_head_flops(c, B, T);
  for (int l = 0; l < c.num_layers; l++)
    if (s.layer_on[size_t(l)])
      flops += gpt2_block_flops(c, B, T, int64_t(s.heads[size_t(l)].size()) * hs, int64_t(s.units[size_t(l)].size()));
  return flops;
}

GPT2Subnet subnet_full(const GPT2Config& c) {
  GPT2Subnet s;
  s.layer_on.assign(static_cast<size_t>(c.num_layers), 1);
  s.heads.assign(static_cast<size_t>(c.num_layers), iota_vec(c.num_heads));
  s.units.assign(static_cast<size_t>(c.num_layers), iota_vec(4 * c.channels));
  return s;
}

GPT2Subnet subnet_sample(const GPT2Config& c, const SubnetRates& rates, bool share_across_layers, Rng& rng) {
  const int L = c.num_layers, NH = c.num_heads, M = 4 * c.channels;
  GPT2Subnet s;
  s.layer_on.assign(static_cast<size_t>(L), 0);
  s.heads.assign(static_cast<size_t>(L), {});
  s.units.assign(static_cast<size_t>(L), {});
  for (int l : sample_subset(L, subnet_count(rates.layers, L), rng)) s.layer_on[static_cast<size_t>(l)] = 1;
  const int kh = subnet_count(rates.heads, NH), km = subnet_count(rates.mlp, M);
  std::vector<int> shared_heads, shared_units;
  if (share_across_layers) shared_heads = sample_subset(NH, kh, rng), shared_units = sample_subset(M, km, rng);
  for (int l = 0; l < L; l++) {
    if (!s.layer_on[static_cast<size_t>(l)]) continue;
    s.heads[static_cast<size_t>(l)] = share_across_layers ? shared_heads : sample_subset(NH, kh, rng);
    s.units[static_cast<size_t>(l)] = share_across_layers ? shared_units : sample_subset(M, km, rng);
  }
  return s;
}

bool subnet_is_full(const GPT2Subnet& s, const GPT2Config& c) {
  for (int l = 0; l < c.num_layers; l++) {
    const size_t i = static_cast<size_t>(l);
    if (!s.layer_on[i] || static_cast<int>(s.heads[i].size()) != c.num_heads ||
        static_cast<int>(s.units[i].size()) != 4 * c.channels)
      return false;
  }
  return true;
}

double subnet_layer_fraction(const GPT2Subnet& s) {
  return static_cast<double>(std::count(s.layer_on.begin(), s.layer_on.end(), 1)) / static_cast<double>(s.layer_on.size());
}

double subnet_head_fraction(const GPT2Subnet& s, const GPT2Config& c) {
  size_t kept = 0;
  for (const auto& h : s.heads) kept += h.size();
  return static_cast<double>(kept) / (double(c.num_layers) * c.num_heads);
}

double subnet_unit_fraction(const GPT2Subnet& s, const GPT2Config& c) {
  size_t kept = 0;
  for (const auto& u : s.units) kept += u.size();
  return static_cast<double>(kept) / (double(c.num_layers) * 4 * c.channels);
}

void subnet_param_mask(const GPT2Subnet& s, const GPT2Config& c, const ParamLayout& layout, std::vector<uint8_t>& mask) {
  const size_t C = static_cast<size_t>(c.channels), hs = C / static_cast<size_t>(c.num_heads), M = 4 * C;
  mask.assign(layout.total, 0);
  const auto offset = [&](const char* name) { return layout.get(name).offset; };
  struct {
    size_t wte, wpe, lnfw, lnfb, ln1w, ln1b, ln2w, ln2b, attprojb, fcprojb, qkvw, qkvb, attprojw, fcw, fcb, fcprojw;
  } p = {offset("wte"),  offset("wpe"),      offset("lnfw"),    offset("lnfb"), offset("ln1w"),
         offset("ln1b"), offset("ln2w"),     offset("ln2b"),    offset("attprojb"), offset("fcprojb"),
         offset("qkvw"), offset("qkvb"),     offset("attprojw"), offset("fcw"),  offset("fcb"), offset("fcprojw")};
  const auto on = [&](size_t at, size_t n) { std::fill_n(mask.begin() + static_cast<ptrdiff_t>(at), n, 1); };
  on(p.wte, size_t(c.padded_vocab_size) * C), on(p.wpe, size_t(c.max_seq_len) * C), on(p.lnfw, C), on(p.lnfb, C);
  for (size_t l = 0; l < s.layer_on.size(); l++) {
    if (!s.layer_on[l]) continue;
    on(p.ln1w + l * C, C), on(p.ln1b + l * C, C), on(p.ln2w + l * C, C), on(p.ln2b + l * C, C);
    on(p.attprojb + l * C, C), on(p.fcprojb + l * C, C);
    for (int h : s.heads[l])
      for (size_t part = 0; part < 3; part++) {  // q, k, v rows of this head
        const size_t row = part * C + size_t(h) * hs;
        on(p.qkvw + (l * 3 * C + row) * C, hs * C), on(p.qkvb + l * 3 * C + row, hs);
      }
    for (int u : s.units[l]) on(p.fcw + (l * M + size_t(u)) * C, C), on(p.fcb + l * M + size_t(u), 1);
    // Columns: W_O's of the kept heads and W_proj's of the kept units, row by row (rows in parallel).
#pragma omp parallel for schedule(static)
    for (size_t o = 0; o < C; o++) {
      for (int h : s.heads[l]) on(p.attprojw + (l * C + o) * C + size_t(h) * hs, hs);
      uint8_t* row = mask.data() + p.fcprojw + (l * C + o) * M;
      for (int u : s.units[l]) row[u] = 1;
    }
  }
}

}  // namespace frugal
