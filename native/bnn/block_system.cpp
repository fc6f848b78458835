#include "bnn/block_system.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>

#include "sde/dense.h"
#include "sde/mlp.h"

namespace bnn {

namespace {

template <typename T>
class BlockSystem final : public sde::BufferedSystem<T> {
  using Mlp = sde::MlpKernel<T>;

 public:
  BlockSystem(const BlockSDE& sde, sde::BufferPool& pool)
      : sde_(sde),
        pool_(pool),
        L_(sde.layout()),
        sigma_(sde.sigma()),
        estimator_(sde.estimator()),
        options_(at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value)),
        static_(sde.static_weights()),
        wd_dyn_(sde.dynamics().w_dim()) {
    for (const at::Tensor& p : sde.parameters()) params_.push_back(p.detach().contiguous());
    if (!static_) weights_ = Mlp::weights(params_);
  }

  int64_t state_size() const override { return L_.size(); }
  int64_t noise_size() const override { return L_.w_dim; }

  void prepare(int64_t slots) override {
    dyn_ = sde_.dynamics().kernel(L_.batch, slots, pool_, T());
    work_ = pool_.get({2 * L_.nh + 5 * L_.w_dim}, options_);
    if (static_) return;
    hyper_ = std::make_unique<Mlp>(sde_.hypernet().shape(), 1, slots, pool_, options_);
    G_ = pool_.get({slots, L_.w_dim}, options_);
  }

  void begin_gradients(int64_t steps, bool stored) override {
    rows_.clear();
    inputs_.clear();
    if (static_) return;
    const sde::MlpShape& shape = sde_.hypernet().shape();
    for (int64_t j = 0; j < shape.layers(); ++j) {
      rows_.push_back(pool_.get({steps, shape.sizes[j + 1]}, options_));
      // backprop: the stored slots' inputs are the bank's; the adjoint copies each step's
      inputs_.push_back(stored ? hyper_->inputs(j) : pool_.get({steps, hyper_->input_size(j)}, options_));
    }
  }

  // F = (f_h dt, (g - w) dt + sigma dW, 1/2 |g / sigma|^2 dt (, g . dW / sigma)) at (t, z).
  void increment(int64_t slot, double t, double dt, const T* z, const T* dW, T* F, bool store) override {
    if (static_) {
      // w is constant over the solve: the first evaluation's copy serves every VJP
      if (slot == 0) std::memcpy(static_w(), z + L_.nh, sizeof(T) * L_.w_dim);
      dyn_->forward(slot, t, z, z + L_.nh + sde_.slice_at(t), F, store);
      finish_static_increment(dt, F);
      return;
    }
    const T* g = hyper(slot, t, z + L_.nh);
    dyn_->forward(slot, t, z, z + L_.nh, F, store);
    finish_increment(dt, z, dW, g, F);
  }

  void vjp(int64_t slot, int64_t step, double t, double dt, const T* dW, T* a) override {
    const T* w = static_ ? static_w() + sde_.slice_at(t) : hyper_->input(slot, 0);  // [w, t]
    T* v = work_.data_ptr<T>();
    T* dh = v + L_.nh;
    for (int64_t i = 0; i < L_.nh; ++i) v[i] = static_cast<T>(dt) * a[i];
    T* dw_dyn = dh + L_.nh + 2 * L_.w_dim;
    dyn_->vjp(slot, t, w, v, dh, dw_dyn);
    if (static_) return finish_static_vjp(t, a);
    finish_vjp(slot, step, t, dt, dW, G_.data_ptr<T>() + slot * L_.w_dim, a);
  }

  void increment_vjp(int64_t step, double t, double dt, const T* z, const T* dW, T* F, T* a) override {
    T* v = work_.data_ptr<T>();
    T* dh = v + L_.nh;
    T* dw_dyn = dh + L_.nh + 2 * L_.w_dim;
    for (int64_t i = 0; i < L_.nh; ++i) v[i] = static_cast<T>(dt) * a[i];
    if (static_) {
      dyn_->forward_vjp(t, z, z + L_.nh + sde_.slice_at(t), v, F, dh, dw_dyn);
      finish_static_increment(dt, F);
      return finish_static_vjp(t, a);
    }
    const T* g = hyper(0, t, z + L_.nh);
    dyn_->forward_vjp(t, z, z + L_.nh, v, F, dh, dw_dyn);
    finish_increment(dt, z, dW, g, F);
    finish_vjp(0, step, t, dt, dW, g, a);
    const sde::MlpShape& shape = sde_.hypernet().shape();
    for (int64_t j = 0; j < shape.layers(); ++j) {
      const int64_t in = hyper_->input_size(j);
      std::memcpy(inputs_[j].data_ptr<T>() + step * in, hyper_->input(0, j), sizeof(T) * in);
    }
  }

  std::vector<at::Tensor> parameter_gradients() override {
    std::vector<at::Tensor> grads;
    for (size_t j = 0; j < rows_.size(); ++j) {
      auto [dW, db] = bank_product(rows_[j], inputs_[j]);
      grads.push_back(dW);
      grads.push_back(db);
    }
    return grads;
  }

 private:
  // g at (w, t) into the slot's row of G_.
  const T* hyper(int64_t slot, double t, const T* w) {
    T* g = G_.data_ptr<T>() + slot * L_.w_dim;
    hyper_->forward(weights_, slot, t, w, g);
    return g;
  }

  // Static weights: w's copy in the work buffer's last w_dim entries (unused by the VJPs).
  T* static_w() { return work_.data_ptr<T>() + 2 * L_.nh + 4 * L_.w_dim; }

  // Static weights: F = (f_h dt, 0).
  void finish_static_increment(double dt, T* F) const {
    const T h = static_cast<T>(dt);
    for (int64_t i = 0; i < L_.nh; ++i) F[i] *= h;
    std::fill_n(F + L_.nh, L_.w_dim, T(0));
  }

  // Static weights: a += a . dF/dz with the dynamics' VJP (of v = dt a_h) in work_, its dw to the
  // slice used at t; w's drift is 0.
  void finish_static_vjp(double t, T* a) {
    const T* dh = work_.data_ptr<T>() + L_.nh;
    const T* dw_dyn = dh + L_.nh + 2 * L_.w_dim;
    for (int64_t i = 0; i < L_.nh; ++i) a[i] += dh[i];
    T* a_w = a + L_.nh + sde_.slice_at(t);
    for (int64_t i = 0; i < wd_dyn_; ++i) a_w[i] += dw_dyn[i];
  }

  // F's entries from f_h (already in F's h part), g and dW.
  void finish_increment(double dt, const T* z, const T* dW, const T* g, T* F) const {
    const int64_t nh = L_.nh, wd = L_.w_dim;
    const T h = static_cast<T>(dt), s = static_cast<T>(sigma_);
    for (int64_t i = 0; i < nh; ++i) F[i] *= h;
    const T* w = z + nh;
    for (int64_t i = 0; i < wd; ++i) F[nh + i] = h * (g[i] - w[i]) + s * dW[i];
    F[nh + wd] = h * (sde::dense::dot(wd, g, g) * static_cast<T>(0.5 / (sigma_ * sigma_)));
    if (L_.tail == 2) F[nh + wd + 1] = sde::dense::dot(wd, g, dW) / s;
  }

  // With the dynamics' VJP in work_ (dh, dw_dyn): the hypernetwork's, banked at `step`, and
  // a += a . dF/dz. The cotangents of g: dt (g - w) and dt |g|^2 / (2 sigma^2), plus u . dB's
  // (fmc: to the parameters and w; stl: to w only).
  void finish_vjp(int64_t slot, int64_t step, double t, double dt, const T* dW, const T* g, T* a) {
    const int64_t nh = L_.nh, wd = L_.w_dim;
    T* v = work_.data_ptr<T>();
    T* dh = v + nh;
    T* vp = dh + nh;
    T* vx = vp + wd;
    T* dw_dyn = vx + wd;
    T* dw_hyp = dw_dyn + wd;
    T* dw_x = dw_hyp + wd;
    const T h = static_cast<T>(dt), s = static_cast<T>(sigma_);
    T* a_w = a + nh;
    const T c_kl = a[nh + wd] / (s * s);
    const T c_db = L_.tail == 2 ? a[nh + wd + 1] / s : T(0);
    for (int64_t i = 0; i < wd; ++i) vp[i] = h * a_w[i] + (h * c_kl) * g[i];
    if (estimator_ == Estimator::Fmc) {
      for (int64_t i = 0; i < wd; ++i) vp[i] += c_db * dW[i];
    }
    typename Mlp::Grads bank;
    bank.mode = Mlp::Grads::Mode::Rows;
    for (size_t j = 0; j < rows_.size(); ++j) bank.rows.push_back(rows_[j].data_ptr<T>() + step * rows_[j].size(1));
    hyper_->vjp(weights_, slot, t, vp, dw_hyp, bank);
    if (estimator_ == Estimator::Stl) {
      for (int64_t i = 0; i < wd; ++i) vx[i] = c_db * dW[i];
      hyper_->vjp(weights_, slot, t, vx, dw_x, typename Mlp::Grads());
      for (int64_t i = 0; i < wd; ++i) dw_hyp[i] += dw_x[i];
    }
    for (int64_t i = 0; i < nh; ++i) a[i] += dh[i];
    for (int64_t i = 0; i < wd; ++i) a_w[i] += (dw_dyn[i] + dw_hyp[i]) - h * a_w[i];
  }

  const BlockSDE& sde_;
  sde::BufferPool& pool_;
  BlockLayout L_;
  double sigma_;
  Estimator estimator_;
  at::TensorOptions options_;
  bool static_;     // no hypernetwork: dw = 0, no noise, no KL (block_sde.h)
  int64_t wd_dyn_;  // the dynamics' weights: all of w, or one slice of a resnet's
  std::vector<at::Tensor> params_;
  typename Mlp::Weights weights_;
  std::unique_ptr<Mlp> hyper_;
  std::unique_ptr<DynamicsKernel<T>> dyn_;
  at::Tensor G_, work_;
  std::vector<at::Tensor> rows_, inputs_;
};

}  // namespace

std::unique_ptr<sde::BufferedSolve> make_block_solve(const BlockSDE& sde, sde::BrownianMotion& bm,
                                                     sde::BufferedMode mode, const sde::StepOptions& options,
                                                     const sde::StepOptions& adjoint_options, sde::BufferPool& pool) {
  if (sde.options().dtype().toScalarType() == c10::kDouble) {
    return sde::make_buffered_solve<double>(std::make_unique<BlockSystem<double>>(sde, pool), bm, mode, {0.0, 1.0},
                                            options, adjoint_options, pool);
  }
  return sde::make_buffered_solve<float>(std::make_unique<BlockSystem<float>>(sde, pool), bm, mode, {0.0, 1.0}, options,
                                         adjoint_options, pool);
}

}  // namespace bnn
