#include "sde/problems.h"

#include <ATen/ATen.h>

#include "sde/errors.h"

namespace sde {

namespace {
void expect_width(const at::Tensor& y0, int64_t d, const char* what) {
  if (y0.dim() != 2 || y0.size(1) != d) {
    throw invalid_argument(std::string("Expected y0 of shape [batch, ") + std::to_string(d) + "] for " + what);
  }
}
}  // namespace

GeometricBrownianMotion::GeometricBrownianMotion(at::Tensor mu, at::Tensor sigma, NoiseType noise, SdeType type)
    : SDE(noise, type),
      mu_(mu.detach().clone().requires_grad_(true)),
      sigma_(sigma.detach().clone().requires_grad_(true)) {
  if (noise == NoiseType::Additive)
    throw invalid_argument("geometric Brownian motion has multiplicative noise, not additive");
  if (mu_.dim() != 1) throw invalid_argument("Expected mu of shape [d]");
  const bool general = noise == NoiseType::General;
  if (sigma_.dim() != (general ? 2 : 1) || sigma_.size(0) != mu_.size(0)) {
    throw invalid_argument(general ? "Expected sigma of shape [d, m] for general noise"
                                   : "Expected sigma of shape [d]");
  }
}

at::Tensor GeometricBrownianMotion::drift(double, const at::Tensor& y) { return mu_ * y; }

at::Tensor GeometricBrownianMotion::diffusion(double, const at::Tensor& y) {
  switch (noise_type()) {
    case NoiseType::Scalar: return (sigma_ * y).unsqueeze(-1);
    case NoiseType::General: return sigma_.unsqueeze(0) * y.unsqueeze(-1);
    default: return sigma_ * y;
  }
}

// d(sigma y)/dy = sigma, so the Milstein term is sigma^2 y v (diagonal and scalar alike).
at::Tensor GeometricBrownianMotion::gdg_prod(double, const at::Tensor& y, const at::Tensor& v) {
  if (noise_type() == NoiseType::General) return SDE::gdg_prod(0.0, y, v);
  return sigma_ * sigma_ * y * v;
}

std::vector<int64_t> GeometricBrownianMotion::brownian_shape(const at::Tensor& y0) const {
  if (noise_type() == NoiseType::General) return {y0.size(0), sigma_.size(1)};
  return SDE::brownian_shape(y0);
}

void GeometricBrownianMotion::check_state(const at::Tensor& y0) const {
  expect_width(y0, mu_.size(0), "this geometric Brownian motion");
}

at::Tensor GeometricBrownianMotion::exact(const at::Tensor& y0, double t, const at::Tensor& w) const {
  at::Tensor sigma2 = noise_type() == NoiseType::General ? (sigma_ * sigma_).sum(-1) : sigma_ * sigma_;
  at::Tensor a = sde_type() == SdeType::Ito ? mu_ - 0.5 * sigma2 : mu_;
  at::Tensor noise;
  switch (noise_type()) {
    case NoiseType::Scalar: noise = sigma_ * w; break;                  // w [B, 1]
    case NoiseType::General: noise = at::matmul(w, sigma_.t()); break;  // w [B, m]
    default: noise = sigma_ * w;
  }
  return y0 * at::exp(a * t + noise);
}

OrnsteinUhlenbeck::OrnsteinUhlenbeck(double theta, double mu, double sigma, SdeType type)
    : SDE(NoiseType::Additive, type), theta_(theta), mu_(mu), sigma_(sigma) {}

at::Tensor OrnsteinUhlenbeck::drift(double, const at::Tensor& y) { return theta_ * (mu_ - y); }
at::Tensor OrnsteinUhlenbeck::diffusion(double, const at::Tensor& y) { return at::full_like(y, sigma_); }

LinearAdditive::LinearAdditive(at::Tensor A, at::Tensor c, at::Tensor b, SdeType type)
    : SDE(NoiseType::Additive, type), A_(std::move(A)), c_(std::move(c)), b_(std::move(b)) {
  if (A_.dim() != 2 || A_.size(0) != A_.size(1) || c_.dim() != 1 || c_.size(0) != A_.size(0) || b_.dim() != 1 ||
      b_.size(0) != A_.size(0)) {
    throw invalid_argument("Expected A [d, d], c [d] and b [d] for the linear SDE");
  }
}

at::Tensor LinearAdditive::drift(double, const at::Tensor& y) { return at::matmul(y, A_.t()) + c_; }
at::Tensor LinearAdditive::diffusion(double, const at::Tensor& y) { return b_.expand_as(y); }
void LinearAdditive::check_state(const at::Tensor& y0) const { expect_width(y0, A_.size(0), "this linear SDE"); }

}  // namespace sde
