// Analytic test problems with known solutions, for convergence tests and benchmarks.
#pragma once
#include <memory>

#include "sde/sde.h"

namespace sde {

// Geometric Brownian motion, per component i:
//   diagonal: dY_i = mu_i Y_i dt + sigma_i Y_i dW_i
//   scalar:   dY_i = mu_i Y_i dt + sigma_i Y_i dW          (one W)
//   general:  dY_i = mu_i Y_i dt + Y_i sum_j sigma_ij dW_j (sigma [d, m]; commutative noise)
// in Ito or Stratonovich form. The exact solution on a Brownian path is
//   Y_t = Y_0 exp(a_i t + sum_j sigma_ij W_j(t)),  a_i = mu_i - 1/2 sum_j sigma_ij^2 (Ito) or mu_i.
class GeometricBrownianMotion : public SDE {
 public:
  // mu [d]; sigma [d] (diagonal, scalar) or [d, m] (general).
  GeometricBrownianMotion(at::Tensor mu, at::Tensor sigma, NoiseType noise, SdeType type);
  at::Tensor drift(double t, const at::Tensor& y) override;
  at::Tensor diffusion(double t, const at::Tensor& y) override;
  at::Tensor gdg_prod(double t, const at::Tensor& y, const at::Tensor& v) override;
  std::vector<int64_t> brownian_shape(const at::Tensor& y0) const override;
  void check_state(const at::Tensor& y0) const override;
  // mu and sigma are learnable, so gradients can be checked against the exact solution's.
  std::vector<at::Tensor> parameters() const override { return {mu_, sigma_}; }
  // Y_t from Y_0 and W(t) - W(0) shaped like the Brownian motion.
  at::Tensor exact(const at::Tensor& y0, double t, const at::Tensor& w) const;

 private:
  at::Tensor mu_, sigma_;
};

// Ornstein-Uhlenbeck process dX = theta (mu - X) dt + sigma dW (additive noise, per component).
// Mean and variance at t are known in closed form.
class OrnsteinUhlenbeck : public SDE {
 public:
  OrnsteinUhlenbeck(double theta, double mu, double sigma, SdeType type);
  at::Tensor drift(double t, const at::Tensor& y) override;
  at::Tensor diffusion(double t, const at::Tensor& y) override;

 private:
  double theta_, mu_, sigma_;
};

// Linear SDE with additive noise dX = (A X + c) dt + b dW, A [d, d], c [d], b [d].
class LinearAdditive : public SDE {
 public:
  LinearAdditive(at::Tensor A, at::Tensor c, at::Tensor b, SdeType type);
  at::Tensor drift(double t, const at::Tensor& y) override;
  at::Tensor diffusion(double t, const at::Tensor& y) override;
  void check_state(const at::Tensor& y0) const override;

 private:
  at::Tensor A_, c_, b_;
};

}  // namespace sde
