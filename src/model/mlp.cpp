#include "model/mlp.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "kernels/cpu/matmul.hpp"

// LAPACK (OpenBLAS carries it) for the QR of orthogonal initialisation; Fortran calling convention.
extern "C" {
void dgeqrf_(const int* m, const int* n, double* a, const int* lda, double* tau, double* work, const int* lwork, int* info);
void dorgqr_(const int* m, const int* n, const int* k, double* a, const int* lda, const double* tau, double* work,
             const int* lwork, int* info);
}

namespace frugal {

Activation activation_from(const std::string& name) {
  if (name == "tanh") return Activation::tanh;
  if (name == "relu") return Activation::relu;
  fail("unknown activation '", name, "' (expected tanh or relu)");
}

int MlpView::widest() const { return *std::max_element(sizes.begin(), sizes.end()); }

MlpView mlp_add(ParamLayout& layout, const std::string& name, std::vector<int> sizes, Activation act) {
  FRUGAL_CHECK(sizes.size() >= 2, "MLP '", name, "' needs at least an input and an output size");
  for (int s : sizes) FRUGAL_CHECK(s > 0, "MLP '", name, "' has a layer of size ", s);
  MlpView v;
  v.sizes = std::move(sizes);
  v.act = act;
  for (int l = 0; l < v.layers(); l++) {
    v.w_off.push_back(layout.add(name + ".w" + std::to_string(l), {v.sizes[l + 1], v.sizes[l]}).offset);
    v.b_off.push_back(layout.add(name + ".b" + std::to_string(l), {v.sizes[l + 1]}).offset);
  }
  return v;
}

void orthogonal_fill(float* w, int rows, int cols, float gain, Rng& rng) {
  // torch.nn.init.orthogonal_: Gaussian (rows x cols); QR of the tall orientation; Q *= sign(diag R).
  const bool wide = rows < cols;
  const int m = wide ? cols : rows, n = wide ? rows : cols;  // m >= n
  std::vector<double> a(size_t(m) * n);  // column-major m x n for LAPACK
  std::vector<double> g(size_t(rows) * cols);
  for (auto& x : g) x = rng.normal();
  for (int i = 0; i < rows; i++)
    for (int j = 0; j < cols; j++) {
      const double x = g[size_t(i) * cols + j];
      if (wide) a[size_t(i) * m + j] = x;  // transposed: element (j, i) of the m x n matrix
      else a[size_t(j) * m + i] = x;
    }
  std::vector<double> tau(n);
  int info = 0, lwork = -1;
  double query = 0;
  dgeqrf_(&m, &n, a.data(), &m, tau.data(), &query, &lwork, &info);
  lwork = std::max(1, static_cast<int>(query));
  std::vector<double> work(lwork);
  dgeqrf_(&m, &n, a.data(), &m, tau.data(), work.data(), &lwork, &info);
  FRUGAL_CHECK(info == 0, "orthogonal init: dgeqrf failed (info ", info, ")");
  std::vector<double> sign(n);
  for (int j = 0; j < n; j++) sign[j] = a[size_t(j) * m + j] < 0 ? -1.0 : 1.0;
  dorgqr_(&m, &n, &n, a.data(), &m, tau.data(), work.data(), &lwork, &info);
  FRUGAL_CHECK(info == 0, "orthogonal init: dorgqr failed (info ", info, ")");
  for (int i = 0; i < rows; i++)
    for (int j = 0; j < cols; j++) {
      const double q = wide ? a[size_t(i) * m + j] * sign[i] : a[size_t(j) * m + i] * sign[j];
      w[size_t(i) * cols + j] = static_cast<float>(gain * q);
    }
}

void mlp_init_orthogonal(const MlpView& mlp, float* params, float hidden_gain, float out_gain, Rng& rng) {
  for (int l = 0; l < mlp.layers(); l++) {
    const float gain = l + 1 == mlp.layers() ? out_gain : hidden_gain;
    orthogonal_fill(params + mlp.w_off[l], mlp.sizes[l + 1], mlp.sizes[l], gain, rng);
    std::fill_n(params + mlp.b_off[l], mlp.sizes[l + 1], 0.0f);
  }
}

void MlpActs::resize(const MlpView& mlp, int batch) {
  acts.resize(mlp.layers());
  for (int l = 0; l < mlp.layers(); l++) acts[l].resize(size_t(batch) * mlp.sizes[l + 1]);
}

void linear_forward(const float* x, const float* w, const float* b, int batch, int in, int out, float* y) {
  cpu::matmul_forward(y, x, w, b, batch, in, out);
}

void activate(Activation act, float* y, size_t n) {
  if (act == Activation::tanh) {
    for (size_t i = 0; i < n; i++) y[i] = std::tanh(y[i]);
  } else {
    for (size_t i = 0; i < n; i++) y[i] = std::max(y[i], 0.0f);
  }
}

const float* mlp_forward(const MlpView& mlp, const float* params, const float* x, int batch, MlpActs& acts) {
  acts.resize(mlp, batch);
  const float* in = x;
  for (int l = 0; l < mlp.layers(); l++) {
    float* y = acts.acts[l].data();
    linear_forward(in, params + mlp.w_off[l], params + mlp.b_off[l], batch, mlp.sizes[l], mlp.sizes[l + 1], y);
    if (l + 1 < mlp.layers()) activate(mlp.act, y, size_t(batch) * mlp.sizes[l + 1]);
    in = y;
  }
  return acts.out();
}

void mlp_backward(const MlpView& mlp, const float* params, const float* x, const MlpActs& acts, const float* dout,
                  int batch, float* grads, std::vector<float>& scratch, float* dx) {
  // scratch holds two gradient buffers of the widest layer: d(output of layer l) and d(its input).
  const size_t width = size_t(batch) * mlp.widest();
  scratch.assign(2 * width, 0.0f);
  float* dy = scratch.data();
  float* dprev = scratch.data() + width;
  std::copy_n(dout, size_t(batch) * mlp.out(), dy);
  for (int l = mlp.layers() - 1; l >= 0; l--) {
    const int in = mlp.sizes[l], out = mlp.sizes[l + 1];
    const size_t n = size_t(batch) * out;
    if (l + 1 < mlp.layers()) {  // through the activation: acts[l] is post-activation
      const float* a = acts.acts[l].data();
      if (mlp.act == Activation::tanh) {
        for (size_t i = 0; i < n; i++) dy[i] *= 1.0f - a[i] * a[i];
      } else {
        for (size_t i = 0; i < n; i++) dy[i] = a[i] > 0 ? dy[i] : 0.0f;
      }
    }
    const float* input = l == 0 ? x : acts.acts[l - 1].data();
    float* din = l == 0 ? dx : dprev;
    if (din) std::fill_n(din, size_t(batch) * in, 0.0f);
    cpu::matmul_backward(din, grads + mlp.w_off[l], grads + mlp.b_off[l], dy, input, params + mlp.w_off[l], batch, in,
                         out);
    if (l > 0) std::swap(dy, dprev);
  }
}

}  // namespace frugal
