// The neural SDE as a system of the buffered solver (buffered.h): the drift MLP by sde::MlpKernel
// (BLAS for the large products), the scaled-tanh or constant diffusion by its own loops.
#include <ATen/ATen.h>

#include <algorithm>

#include "sde/neural.h"
#include "sde/neural_kernels.h"

namespace sde {

namespace {

template <typename T>
class NeuralSystem final : public BufferedSystem<T> {
  using Mlp = MlpKernel<T>;

 public:
  NeuralSystem(const NeuralSDE& sde, int64_t batch, BufferPool& pool)
      : sde_(sde),
        pool_(pool),
        batch_(batch),
        d_(sde.spec().d),
        n_(batch * sde.spec().d),
        scaled_(sde.spec().diffusion_kind == DiffusionKind::ScaledTanh),
        offset_(sde.spec().diffusion_offset),
        options_(at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value)) {
    for (const at::Tensor& p : sde.drift_net().params) params_.push_back(p.detach().contiguous());
    weights_ = Mlp::weights(params_);
    for (size_t j = 0; j < params_.size(); j += 2) {  // the weights stay fixed through a solve: transposed once
      const at::Tensor& W = params_[j];
      const int64_t in = sde.drift_net().shape.sizes[j / 2];
      transposed_.push_back(W.narrow(1, 0, in).t().contiguous());
      weights_.Wt.push_back(transposed_.back().data_ptr<T>());
    }
    s_ = sde.diffusion_s().detach().contiguous();
    if (scaled_) S_ = at::sigmoid(s_);
  }

  int64_t state_size() const override { return n_; }
  int64_t noise_size() const override { return n_; }

  void prepare(int64_t slots) override {
    drift_ = std::make_unique<Mlp>(sde_.drift_net().shape, batch_, slots, pool_, options_);
    f_ = pool_.get({n_}, options_);
    T_ = pool_.get({n_}, options_);
    A_ = pool_.get({n_}, options_);
    gy_ = pool_.get({n_}, options_);
  }

  void begin_gradients(int64_t, bool) override {
    grads_.clear();
    for (const at::Tensor& p : params_) grads_.push_back(at::zeros_like(p));
    grad_s_ = at::zeros_like(s_);
    drift_grads_.mode = Mlp::Grads::Mode::Add;
    drift_grads_.W.clear();
    drift_grads_.b.clear();
    for (size_t j = 0; j + 1 < grads_.size(); j += 2) {
      drift_grads_.W.push_back(grads_[j].data_ptr<T>());
      drift_grads_.b.push_back((grads_[j + 1]).data_ptr<T>());
    }
  }

  // F = f dt + g dW with g = sigmoid(s) tanh(z) + offset (scaled_tanh) or s (constant).
  void increment(int64_t slot, double t, double dt, const T* z, const T* dW, T* F, bool) override {
    T* f = f_.data_ptr<T>();
    drift_->forward(weights_, slot, t, z, f);
    if (scaled_) {
      T* tz = T_.data_ptr<T>();
      activate_cpu(Activation::Tanh, n_, z, tz, nullptr);
      scaled_tanh_forward_cpu(F, f, tz, S_.data_ptr<T>(), dW, {batch_, d_, dt, offset_}, true, false);
      return;
    }
    const T h = static_cast<T>(dt);
    const T* s = s_.data_ptr<T>();
    for (int64_t b = 0; b < batch_; ++b) {
      for (int64_t i = 0; i < d_; ++i) F[b * d_ + i] = h * f[b * d_ + i] + s[i] * dW[b * d_ + i];
    }
  }

  // a += a . dF/dz: the drift's VJP for A = a dt, and the diffusion's a dW dg/dz; the parameters'
  // parts added to grads_ and grad_s_.
  void vjp(int64_t slot, int64_t, double t, double dt, const T* dW, T* a) override {
    const T* z = drift_->input(slot, 0);
    T* A = A_.data_ptr<T>();
    T* gy = gy_.data_ptr<T>();
    std::fill(A, A + n_, T(0));
    std::fill(gy, gy + n_, T(0));
    if (scaled_) {
      T* tz = T_.data_ptr<T>();
      activate_cpu(Activation::Tanh, n_, z, tz, nullptr);
      scaled_tanh_backward_cpu(a, tz, S_.data_ptr<T>(), dW, A, gy, grad_s_.data_ptr<T>(), {batch_, d_, dt, offset_},
                               true, false);
    } else {
      const T h = static_cast<T>(dt);
      T* gs = grad_s_.data_ptr<T>();
      for (int64_t b = 0; b < batch_; ++b) {
        for (int64_t i = 0; i < d_; ++i) {
          A[b * d_ + i] = h * a[b * d_ + i];
          gs[i] += a[b * d_ + i] * dW[b * d_ + i];
        }
      }
    }
    T* dz = f_.data_ptr<T>();
    drift_->vjp(weights_, slot, t, A, dz, drift_grads_);
    for (int64_t i = 0; i < n_; ++i) a[i] += dz[i] + gy[i];
  }

  void increment_vjp(int64_t step, double t, double dt, const T* z, const T* dW, T* F, T* a) override {
    increment(0, t, dt, z, dW, F, true);
    vjp(0, step, t, dt, dW, a);
  }

  std::vector<at::Tensor> parameter_gradients() override {
    std::vector<at::Tensor> out = grads_;
    out.push_back(scaled_ ? grad_s_ * (S_ * (1 - S_)) : grad_s_);  // through S = sigmoid(s)
    return out;
  }

 private:
  const NeuralSDE& sde_;
  BufferPool& pool_;
  int64_t batch_, d_, n_;
  bool scaled_;
  double offset_;
  at::TensorOptions options_;
  std::vector<at::Tensor> params_, transposed_, grads_;
  typename Mlp::Weights weights_;
  typename Mlp::Grads drift_grads_;
  at::Tensor s_, S_, grad_s_, f_, T_, A_, gy_;
  std::unique_ptr<Mlp> drift_;
};

}  // namespace

std::unique_ptr<BufferedSolve> NeuralSDE::buffered_solve(const at::Tensor& y0, BrownianMotion& bm, BufferedMode mode,
                                                         const std::vector<double>& ts, const StepOptions& options,
                                                         const StepOptions& adjoint_options) {
  const int64_t batch = y0.size(0);
  BufferPool& pool = shared_solver_pool();
  if (y0.scalar_type() == at::kDouble) {
    return make_buffered_solve<double>(std::make_unique<NeuralSystem<double>>(*this, batch, pool), bm, mode, ts,
                                       options, adjoint_options, pool);
  }
  return make_buffered_solve<float>(std::make_unique<NeuralSystem<float>>(*this, batch, pool), bm, mode, ts, options,
                                    adjoint_options, pool);
}

}  // namespace sde
