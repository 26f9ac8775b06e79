#pragma once
// A trajectory: a model's weights at checkpoints along an RL run (GRPO-LoRA with the adapters
// merged in), with the eval accuracy at each - what the extrapolators (NExt, AlphaRL, RL-Extra,
// RELEX) read. On disk one HDF5 file (schema: src/trace/SCHEMA.md, "Trajectory files"): one dataset
// per tensor with a leading checkpoint axis, e.g. h0.qkvw (K, 3C, C), plus step (K) and
// eval_accuracy (K). Per-layer tensors are split by layer (h<l>.<name>), so every dataset is one
// weight matrix (2-D per checkpoint) or one vector (1-D), the unit the extrapolators work on.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "model/gpt2.hpp"

namespace frugal {

// One tensor of the model as the trajectory names it, and where it lies in the flat parameters.
struct NamedTensor {
  std::string name;            // wte, wpe, h<l>.qkvw, ..., lnfw, lnfb
  std::vector<int64_t> shape;  // (rows, cols) for a matrix, (n) for a vector
  size_t offset = 0, numel = 0;
  bool is_norm = false;        // a LayerNorm gain or bias (RL-Extra copies these from the last checkpoint)
  bool is_matrix() const { return shape.size() == 2; }
};
std::vector<NamedTensor> gpt2_named_tensors(const GPT2Config& config);

struct TrajectoryTensor {
  NamedTensor spec;
  std::vector<float> data;  // checkpoints x numel, row-major
  const float* at(int checkpoint) const { return data.data() + size_t(checkpoint) * spec.numel; }
};

struct Trajectory {
  std::string path;
  GPT2Config model;
  std::vector<int64_t> steps;    // RL step of each checkpoint; steps[0] = the start, W_0
  std::vector<double> accuracy;  // eval accuracy of each checkpoint
  std::vector<TrajectoryTensor> tensors;
  int checkpoints() const { return static_cast<int>(steps.size()); }
};

// The weights of checkpoint i, flat in gpt2_layout order.
std::vector<float> trajectory_params(const Trajectory& t, int checkpoint);

// Writes checkpoint `index` (the model's weights after `step` RL steps, and its eval accuracy):
// index 0 creates the file (replacing one there); index i > 0 opens it and writes row i, dropping
// any rows after i (a resumed run rewrites what it redoes). The file is closed after each write, so
// a killed run leaves a readable trajectory of the checkpoints written so far.
void write_trajectory_checkpoint(const std::string& path, int index, int64_t step, double accuracy, const GPT2& model);

// The checkpoints with step <= last_step (all by default). Errors name the file and the problem: not
// a trajectory, a missing tensor, a tensor whose shape is not the model's.
Trajectory read_trajectory(const std::string& path, int64_t last_step = std::numeric_limits<int64_t>::max());

}  // namespace frugal
