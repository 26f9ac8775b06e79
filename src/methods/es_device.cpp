#include "methods/es_device.hpp"

#include "core/error.hpp"
#include "harness/placement.hpp"
#ifdef FRUGAL_HAVE_CUDA
#include "kernels/cuda/kernels.hpp"
#endif

namespace frugal {

#ifdef FRUGAL_HAVE_CUDA

namespace {

// What both perturbations keep on the device: the policy's parameters of this epoch, and the
// batch's rows, members, outputs and update directions, grown on demand.
class DeviceEsBuffers {
 public:
  void set_params(std::span<const float> params) {
    if (params_.size() != params.size()) params_ = cuda::DeviceBuffer(params.size());
    params_.upload(params.data(), params.size());
  }
  const float* params() const { return params_.data(); }
  // Uploads x (batch x in) and, on the first layer, the batch's members.
  void rows_up(int layer, const float* x, int batch, int in, const int32_t* member) {
    x_.grow(size_t(batch) * in);
    x_.upload(x, size_t(batch) * in);
    if (layer == 0) {
      member_.grow(size_t(batch));
      member_.upload(member, size_t(batch));
    }
  }
  const float* x() const { return x_.data(); }
  const int32_t* member() const { return member_.data(); }
  float* y(size_t n) { return y_.grow(n); }
  void y_down(float* y, size_t n) const { y_.download(y, n); }
  float* g(size_t n) { return g_.grow(n); }
  void g_down(float* g, size_t n) const { g_.download(g, n); }

 private:
  cuda::DeviceBuffer params_, x_, y_, g_;
  cuda::IntDeviceBuffer member_;
};

// EGGROLL: factors Bt, At and the bias noise per layer, from the keys of methods/eggroll.cpp.
class LowRankPerturbationCuda final : public EsPerturbation {
 public:
  LowRankPerturbationCuda(int rank, float sigma) : rank_(rank), sigma_(sigma) {}

  void generate(const MlpView& mlp, uint64_t seed, uint32_t epoch_key, int pairs) override {
    layers_.resize(size_t(mlp.layers()));
    for (int l = 0; l < mlp.layers(); l++) {
      Layer& L = layers_[size_t(l)];
      const int rows = mlp.sizes[size_t(l) + 1], cols = mlp.sizes[size_t(l)];
      L.view = cuda::LowRankView<float>{nullptr, nullptr, 0, pairs, rank_, rows, cols};
      L.Bt = cuda::DeviceBuffer(size_t(pairs) * rank_ * cols);
      L.At = cuda::DeviceBuffer(size_t(pairs) * rank_ * rows);
      L.bias_eps = cuda::DeviceBuffer(size_t(pairs) * rows);
      L.view.Bt = L.Bt.data(), L.view.At = L.At.data();
      cuda::lowrank_generate(L.Bt.data(), L.At.data(), NoiseKey{seed, 0, uint32_t(l), epoch_key}, 0, pairs, rows,
                             cols, rank_);
      cuda::vector_noise_generate(L.bias_eps.data(), NoiseKey{seed, 1, uint32_t(l), epoch_key}, 0, pairs, rows);
    }
  }
  void set_params(std::span<const float> params) override { buf_.set_params(params); }
  void forward(int l, const MlpView& mlp, const float*, const float* x, int batch, const int32_t* member,
               float* y) override {
    const Layer& L = layers_[size_t(l)];
    const size_t n = size_t(batch) * L.view.rows;
    buf_.rows_up(l, x, batch, L.view.cols, member);
    cuda::lowrank_linear_forward(buf_.y(n), buf_.x(), batch, buf_.params() + mlp.w_off[size_t(l)],
                                 buf_.params() + mlp.b_off[size_t(l)], buf_.member(), L.view, L.bias_eps.data(),
                                 sigma_);
    buf_.y_down(y, n);
  }
  void update(int l, const MlpView&, const float* fitness, int members, float* gw, float* gb) override {
    const Layer& L = layers_[size_t(l)];
    const size_t nw = size_t(L.view.rows) * L.view.cols;
    cuda::lowrank_update(buf_.g(nw), L.view, fitness, members, sigma_);
    buf_.g_down(gw, nw);
    cuda::vector_noise_update(buf_.g(size_t(L.view.rows)), L.bias_eps.data(), L.view.pairs, L.view.rows, fitness,
                              members, sigma_);
    buf_.g_down(gb, size_t(L.view.rows));
  }

 private:
  struct Layer {
    cuda::DeviceBuffer Bt, At, bias_eps;
    cuda::LowRankView<float> view;
  };
  int rank_;
  float sigma_;
  std::vector<Layer> layers_;
  DeviceEsBuffers buf_;
};

// OpenAI-ES: a full (rows x cols) Gaussian per pair and layer, and the bias noise; the forward forms
// each member's W + s sigma E_p on the fly (kernels/cuda), never stored.
class FullRankPerturbationCuda final : public EsPerturbation {
 public:
  explicit FullRankPerturbationCuda(float sigma) : sigma_(sigma) {}

  void generate(const MlpView& mlp, uint64_t seed, uint32_t epoch_key, int pairs) override {
    layers_.resize(size_t(mlp.layers()));
    pairs_ = pairs;
    for (int l = 0; l < mlp.layers(); l++) {
      Layer& L = layers_[size_t(l)];
      L.rows = mlp.sizes[size_t(l) + 1], L.cols = mlp.sizes[size_t(l)];
      const size_t per_pair = size_t(L.rows) * L.cols;
      L.E = cuda::DeviceBuffer(size_t(pairs) * per_pair);
      L.bias_eps = cuda::DeviceBuffer(size_t(pairs) * L.rows);
      const NoiseKey key{seed, 0, uint32_t(l), epoch_key};  // as model/perturb.cpp's fullrank_generate
      for (int p = 0; p < pairs; p++) cuda::keyed_normals(L.E.data() + size_t(p) * per_pair, key, uint32_t(p), int64_t(per_pair));
      cuda::vector_noise_generate(L.bias_eps.data(), NoiseKey{seed, 1, uint32_t(l), epoch_key}, 0, pairs, L.rows);
    }
  }
  void set_params(std::span<const float> params) override { buf_.set_params(params); }
  void forward(int l, const MlpView& mlp, const float*, const float* x, int batch, const int32_t* member,
               float* y) override {
    const Layer& L = layers_[size_t(l)];
    const size_t n = size_t(batch) * L.rows;
    buf_.rows_up(l, x, batch, L.cols, member);
    cuda::fullrank_linear_forward(buf_.y(n), buf_.x(), batch, buf_.params() + mlp.w_off[size_t(l)],
                                  buf_.params() + mlp.b_off[size_t(l)], buf_.member(), L.E.data(), 0, L.rows, L.cols,
                                  L.bias_eps.data(), sigma_);
    buf_.y_down(y, n);
  }
  void update(int l, const MlpView&, const float* fitness, int members, float* gw, float* gb) override {
    const Layer& L = layers_[size_t(l)];
    // G = (1/N) sum_p (f_2p - f_2p+1) sigma E_p: the vector update over the flattened matrices.
    const size_t nw = size_t(L.rows) * L.cols;
    cuda::vector_noise_update(buf_.g(nw), L.E.data(), pairs_, int(nw), fitness, members, sigma_);
    buf_.g_down(gw, nw);
    cuda::vector_noise_update(buf_.g(size_t(L.rows)), L.bias_eps.data(), pairs_, L.rows, fitness, members, sigma_);
    buf_.g_down(gb, size_t(L.rows));
  }

 private:
  struct Layer {
    cuda::DeviceBuffer E, bias_eps;
    int rows = 0, cols = 0;
  };
  float sigma_;
  int pairs_ = 0;
  std::vector<Layer> layers_;
  DeviceEsBuffers buf_;
};

}  // namespace

std::unique_ptr<EsPerturbation> make_lowrank_perturbation_cuda(int rank, float sigma) {
  return std::make_unique<LowRankPerturbationCuda>(rank, sigma);
}
std::unique_ptr<EsPerturbation> make_fullrank_perturbation_cuda(float sigma) {
  return std::make_unique<FullRankPerturbationCuda>(sigma);
}

#else  // a build without CUDA: placement refuses run.device = "cuda" first; these say it again

std::unique_ptr<EsPerturbation> make_lowrank_perturbation_cuda(int, float) { fail_without_cuda(); }
std::unique_ptr<EsPerturbation> make_fullrank_perturbation_cuda(float) { fail_without_cuda(); }

#endif

}  // namespace frugal
