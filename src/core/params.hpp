#pragma once
// The flat parameter store, llm.c style: every tensor of a model lives in one contiguous float
// buffer at a fixed offset, so optimisers, collectives, checkpoints and compressors see one array,
// while model code sees named views. Gradients, Adam moments and error-feedback buffers reuse the
// same layout.
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace frugal {

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;  // e.g. {L, 3C, C} for the stacked per-layer qkv weights
  size_t offset = 0;           // in floats, into the flat buffer
  size_t numel = 0;
  bool layer_stacked = false;  // shape[0] counts layers: each layer holds a tensor of shape[1:]
  // Rank of one layer's tensor (a stacked (L, C) bias is a vector, a stacked (L, 3C, C) a matrix).
  size_t layer_rank() const { return shape.size() - (layer_stacked ? 1 : 0); }
  // Matrices get weight decay, chunked compression and low-rank noise; vectors do not.
  bool is_matrix() const { return layer_rank() >= 2; }
};

struct ParamLayout {
  std::vector<TensorSpec> tensors;
  size_t total = 0;

  const TensorSpec& add(const std::string& name, std::vector<int64_t> shape, bool layer_stacked = false) {
    TensorSpec t;
    t.name = name;
    t.layer_stacked = layer_stacked;
    t.numel = std::accumulate(shape.begin(), shape.end(), size_t{1},
                              [](size_t a, int64_t b) { return a * static_cast<size_t>(b); });
    t.shape = std::move(shape);
    t.offset = total;
    total += t.numel;
    tensors.push_back(std::move(t));
    return tensors.back();
  }
  const TensorSpec& get(const std::string& name) const {
    for (const auto& t : tensors)
      if (t.name == name) return t;
    fail("no tensor named '", name, "' in the parameter layout");
  }
};

}  // namespace frugal
