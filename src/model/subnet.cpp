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

}  // namespace

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
