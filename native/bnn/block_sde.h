// One SDE-BNN block as an augmented SDE on a flat 1-D state
//     y = [h (batch x hidden), w (w_dim), kl, (kl_dB)]
//     dh     = f_h(t, h; w) dt
//     dw     = (-w + g) dt + sigma dB            g = g_phi([w, t]), B of shape [w_dim]
//     dkl    = 0.5 ||g / sigma||^2 dt
//     dkl_dB = u . dB,  u = g / sigma            (fmc; stl: u with phi under stop-gradient)
// One weight path per solve, shared by the whole minibatch. Noise enters w additively, so with
// the ckl estimator the SDE has additive noise (Ito = Stratonovich); the u . dB term makes it
// general noise, whose Ito-Stratonovich correction is -1/2 sigma tr(du/dw) = -1/2 tr(dg/dw).
// Without a hypernetwork the block has static weights (the baselines of config.model):
//     y = [h, w],  dh = f_h(t, h; w(t)) dt,  dw = 0,  no noise and no KL
// an ODE that the same solvers take on a zero Brownian path; w's gradient is that of y(0)'s w.
// w(t) is w, or with L layers (a resnet) the slice w_k, k = round(t L), of w = [w_0, ..., w_{L-1}]:
// Euler's L steps of 1/L are then the residual layers h <- h + f_h(k/L, h; w_k) / L.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "bnn/config.h"
#include "bnn/dynamics.h"
#include "bnn/hypernet.h"
#include "sde/routes.h"
#include "sde/sde.h"

namespace bnn {

// "[2, 3]": shapes in error messages.
std::string shape_string(at::IntArrayRef shape);

struct BlockLayout {
  int64_t batch = 0;
  int64_t nh = 0;     // numel of h in the dynamics' state layout
  int64_t w_dim = 0;  // all of w (a resnet's layers together)
  int64_t tail = 1;   // kl (and kl_dB); 0 for static weights
  int64_t size() const { return nh + w_dim + tail; }
};

class BlockSDE : public sde::SDE {
 public:
  // `hyper_params` are the hypernetwork's leaf tensors (gradients are taken with respect to them);
  // a null hypernetwork (and no hyper_params): static weights in `layers` slices, sigma and
  // estimator unused.
  // `route`: Fused for hand-written VJPs in one autograd node per evaluation, Autograd for plain
  // autograd (the buffered route steps the block through block_system.h instead).
  BlockSDE(std::shared_ptr<const Dynamics> dynamics, std::shared_ptr<const Hypernet> hypernet,
           std::vector<at::Tensor> hyper_params, double sigma, Estimator estimator, sde::SdeType type, int64_t batch,
           sde::Route route, const at::TensorOptions& options, int64_t layers = 1);

  const BlockLayout& layout() const { return layout_; }
  // The state's dtype and device.
  const at::TensorOptions& options() const { return options_; }
  bool static_weights() const { return hypernet_ == nullptr; }
  // Static weights: the slice of w the dynamics use at t (0 without layers), as an offset into w.
  int64_t slice_at(double t) const;
  // y0 from h [batch, ...] and w_0; h [batch, ...] (a view where possible) from a state.
  at::Tensor pack(const at::Tensor& h, const at::Tensor& w0) const;
  at::Tensor h_of(const at::Tensor& y) const;
  at::Tensor w_of(const at::Tensor& y) const;
  at::Tensor kl_of(const at::Tensor& y) const;  // kl (+ kl_dB): a 0-dim tensor

  at::Tensor drift(double t, const at::Tensor& y) override;
  at::Tensor diffusion(double t, const at::Tensor& y) override;
  at::Tensor diffusion_prod(double t, const at::Tensor& y, const at::Tensor& dW) override;
  at::Tensor ito_correction(double t, const at::Tensor& y) override;
  std::vector<int64_t> brownian_shape(const at::Tensor& y0) const override;
  std::vector<at::Tensor> parameters() const override { return params_; }
  void check_state(const at::Tensor& y0) const override;

  // ---- used by the fused autograd node ----
  struct Eval {
    // drift undefined when dynamics were skipped; g_sg only under stl; g empty for static weights
    at::Tensor drift, g, g_sg;
  };
  // Plain ATen evaluation; `reference` uses the dynamics' autograd reference (no caches).
  Eval evaluate_raw(double t, const at::Tensor& y, const std::vector<at::Tensor>& params, bool with_dynamics,
                    Cache* hyper_cache, Cache* dyn_cache, bool reference = false) const;
  // Backprop route: hypernetwork weight gradients are banked (flushed by the caller after backward).
  void set_bank(std::shared_ptr<GradBank> bank) { bank_ = std::move(bank); }
  const Dynamics& dynamics() const { return *dynamics_; }
  const Hypernet& hypernet() const { return *hypernet_; }
  const std::shared_ptr<const Dynamics>& dynamics_ptr() const { return dynamics_; }
  const std::shared_ptr<const Hypernet>& hypernet_ptr() const { return hypernet_; }
  const std::shared_ptr<GradBank>& bank_ptr() const { return bank_; }
  double sigma() const { return sigma_; }
  Estimator estimator() const { return estimator_; }

 private:
  Eval evaluate(double t, const at::Tensor& y, bool with_dynamics);
  at::Tensor correction(double t, const at::Tensor& w);  // -1/2 tr(dg/dw), stop-gradient on phi under stl

  std::shared_ptr<const Dynamics> dynamics_;
  std::shared_ptr<const Hypernet> hypernet_;
  std::vector<at::Tensor> params_;
  double sigma_;
  Estimator estimator_;
  bool fused_;
  BlockLayout layout_;
  at::TensorOptions options_;
  int64_t layers_;
  std::shared_ptr<GradBank> bank_;

  // The last evaluation, reused by diffusion_prod at the same (t, y) (the solvers evaluate the
  // drift and the noise term at the same point). Holding y keeps its identity unique.
  struct Last {
    at::Tensor y;
    uint32_t version = 0;
    double t = 0;
    bool grad_mode = false;
    at::Tensor g, g_sg;
  } last_;
};

}  // namespace bnn
