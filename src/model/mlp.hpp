#pragma once
// MLP policies and value functions, llm.c style: each layer is a forward/backward pair of plain
// functions; the weights live in a flat parameter buffer (core/params.hpp) at offsets recorded in
// an MlpView, so an agent with an actor, a critic and a log-std vector is one buffer that Adam,
// the gradient all-reduce and the checkpoint see as one array.
//
// Shapes: layer l maps sizes[l] -> sizes[l+1]; weight "<name>.w<l>" is (out, in) row-major (the
// PyTorch nn.Linear layout), bias "<name>.b<l>" is (out). Hidden layers apply the activation; the
// last layer is linear (logits, action mean or value).
#include <cstddef>
#include <string>
#include <vector>

#include "core/params.hpp"
#include "core/rng.hpp"

namespace frugal {

enum class Activation { tanh, relu };
Activation activation_from(const std::string& name);  // "tanh" | "relu"

struct MlpView {
  std::vector<int> sizes;  // [in, hidden..., out]
  Activation act = Activation::tanh;
  std::vector<size_t> w_off, b_off;  // per layer, into the flat buffer
  int layers() const { return static_cast<int>(sizes.size()) - 1; }
  int in() const { return sizes.front(); }
  int out() const { return sizes.back(); }
  int widest() const;
};

// Appends the MLP's tensors to `layout` (weights are matrices, biases vectors) and returns the view.
MlpView mlp_add(ParamLayout& layout, const std::string& name, std::vector<int> sizes, Activation act);

// CleanRL's layer_init: orthogonal weights with `gain` (torch.nn.init.orthogonal_: QR of a Gaussian
// matrix with the signs of R's diagonal folded in), zero bias. Hidden layers get hidden_gain, the
// last layer out_gain.
void mlp_init_orthogonal(const MlpView& mlp, float* params, float hidden_gain, float out_gain, Rng& rng);
// Orthogonal (rows x cols) matrix times gain, drawn from rng (exposed for tests).
void orthogonal_fill(float* w, int rows, int cols, float gain, Rng& rng);

// Activations kept for the backward pass: acts[l] is layer l's output (B x sizes[l+1]), post
// activation for hidden layers, the linear output for the last.
struct MlpActs {
  std::vector<std::vector<float>> acts;
  void resize(const MlpView& mlp, int batch);
  const float* out() const { return acts.back().data(); }
};

// x (B, in) -> acts; returns acts.out() (B, out).
const float* mlp_forward(const MlpView& mlp, const float* params, const float* x, int batch, MlpActs& acts);
// Given dout (B, out) = dLoss/d(output), ACCUMULATES dLoss/dparams into grads (same layout as the
// params). `scratch` is resized as needed. dx (B, in) is written when non-null.
void mlp_backward(const MlpView& mlp, const float* params, const float* x, const MlpActs& acts, const float* dout,
                  int batch, float* grads, std::vector<float>& scratch, float* dx = nullptr);

// One dense layer, y = x W^T + b, and the activation: the pieces the ES methods reuse.
void linear_forward(const float* x, const float* w, const float* b, int batch, int in, int out, float* y);
void activate(Activation act, float* y, size_t n);

}  // namespace frugal
