#include "bnn/optimizer.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>

#include "sde/cpu_dispatch.h"
#include "sde/errors.h"

namespace bnn {

namespace {

// Sum of squares in double, lane-wise partial sums (vectorises, fixed order).
template <typename T>
SDEBNN_INLINE double sum_squares_impl(const T* g, int64_t n) {
  constexpr int kLanes = 8;
  double acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) acc[j] += static_cast<double>(g[i + j]) * static_cast<double>(g[i + j]);
  }
  double s = 0;
  for (; i < n; ++i) s += static_cast<double>(g[i]) * static_cast<double>(g[i]);
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  return s;
}

// Clipping and Adam on one tensor, element by element in T as ATen's ops compute them
// (m.mul_(b1).add_(g, 1 - b1); v.mul_(b2).addcmul_(g, g, 1 - b2);
// p.addcdiv_(m, sqrt(v) / sqrt(bc2) + eps, -lr / bc1)); `coef` 1 means no clipping.
template <typename T>
SDEBNN_INLINE void adam_impl(T* __restrict p, T* __restrict g, T* __restrict m, T* __restrict v, int64_t n, double coef,
                             double b1, double b2, double sqrt_bc2, double eps, double step_size) {
  const T c = static_cast<T>(coef), B1 = static_cast<T>(b1), A1 = static_cast<T>(1 - b1), B2 = static_cast<T>(b2),
          A2 = static_cast<T>(1 - b2), S2 = static_cast<T>(sqrt_bc2), E = static_cast<T>(eps),
          lr = static_cast<T>(step_size);
  if (coef != 1.0) {
    for (int64_t i = 0; i < n; ++i) g[i] = g[i] * c;  // the clipped gradient, as grad.mul_(coef)
  }
  for (int64_t i = 0; i < n; ++i) {
    m[i] = m[i] * B1 + A1 * g[i];
    v[i] = v[i] * B2 + A2 * g[i] * g[i];
    p[i] = p[i] + lr * (m[i] / (std::sqrt(v[i]) / S2 + E));  // vectorises: -fno-math-errno
  }
}

SDEBNN_CPU_CLONES double sum_squares(const float* g, int64_t n) { return sum_squares_impl(g, n); }
SDEBNN_CPU_CLONES double sum_squares(const double* g, int64_t n) { return sum_squares_impl(g, n); }
SDEBNN_CPU_CLONES void adam(float* p, float* g, float* m, float* v, int64_t n, double coef, double b1, double b2,
                            double sqrt_bc2, double eps, double step_size) {
  adam_impl(p, g, m, v, n, coef, b1, b2, sqrt_bc2, eps, step_size);
}
SDEBNN_CPU_CLONES void adam(double* p, double* g, double* m, double* v, int64_t n, double coef, double b1, double b2,
                            double sqrt_bc2, double eps, double step_size) {
  adam_impl(p, g, m, v, n, coef, b1, b2, sqrt_bc2, eps, step_size);
}

[[noreturn]] void not_finite() {
  throw sde::EngineError("ERR_NUMERICAL", "the gradient is not finite; parameters unchanged");
}

}  // namespace

Optimizer::Optimizer(const NamedTensors& params, const AdamConfig& config) : params_(params), config_(config) {
  for (const auto& [name, p] : params_) {
    m_.emplace_back(name, at::zeros_like(p).detach());
    v_.emplace_back(name, at::zeros_like(p).detach());
    if (config.ema > 0) ema_.emplace_back(name, p.detach().clone());
  }
}

NamedTensors Optimizer::state() const {
  NamedTensors s;
  for (const auto& [name, m] : m_) s.emplace_back("adam.exp_avg." + name, m);
  for (const auto& [name, v] : v_) s.emplace_back("adam.exp_avg_sq." + name, v);
  for (const auto& [name, e] : ema_) s.emplace_back("ema." + name, e);
  return s;
}

at::Tensor Optimizer::gradient_norm() const {
  std::vector<at::Tensor> norms;
  for (const auto& [name, p] : params_) {
    if (p.grad().defined()) norms.push_back(p.grad().norm().to(at::kDouble));
  }
  return norms.empty() ? at::zeros({}, params_.front().second.options().dtype(at::kDouble)) : at::stack(norms).norm();
}

bool Optimizer::raw_cpu() const {
  const at::ScalarType dtype = params_.front().second.scalar_type();
  if (dtype != at::kFloat && dtype != at::kDouble) return false;
  for (size_t i = 0; i < params_.size(); ++i) {
    const at::Tensor& p = params_[i].second;
    const at::Tensor& g = p.grad();
    if (!g.defined()) continue;
    for (const at::Tensor* t : {&p, &g, &m_[i].second, &v_[i].second}) {
      if (!t->is_cpu() || t->scalar_type() != dtype || !t->is_contiguous() || t->numel() != p.numel()) return false;
    }
  }
  return true;
}

double Optimizer::step(double lr, std::optional<double> known_norm) {
  at::NoGradGuard no_grad;
  const double b1 = config_.beta1, b2 = config_.beta2;
  const double step = step_ + 1;
  const double bc1 = 1 - std::pow(b1, step), bc2 = 1 - std::pow(b2, step);
  double grad_norm = 0;
  if (raw_cpu() && !known_norm) {
    double sq = 0;
    for (const auto& [name, p] : params_) {
      const at::Tensor& g = p.grad();
      if (!g.defined()) continue;
      AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "sum_squares",
                                 [&] { sq += sum_squares(g.data_ptr<scalar_t>(), g.numel()); });
    }
    grad_norm = std::sqrt(sq);
    if (!std::isfinite(grad_norm)) not_finite();
    const double coef = config_.clip > 0 && grad_norm > config_.clip ? config_.clip / (grad_norm + 1e-6) : 1.0;
    for (size_t i = 0; i < params_.size(); ++i) {
      const at::Tensor& p = params_[i].second;
      const at::Tensor& g = p.grad();
      if (!g.defined()) continue;
      AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "adam", [&] {
        adam(p.data_ptr<scalar_t>(), g.data_ptr<scalar_t>(), m_[i].second.data_ptr<scalar_t>(),
             v_[i].second.data_ptr<scalar_t>(), p.numel(), coef, b1, b2, std::sqrt(bc2), config_.eps, -lr / bc1);
      });
      p.unsafeGetTensorImpl()->bump_version();  // an in-place write, as addcdiv_ would record
    }
  } else {
    grad_norm = known_norm ? *known_norm : gradient_norm().item<double>();
    if (!std::isfinite(grad_norm)) not_finite();
    if (config_.clip > 0 && grad_norm > config_.clip) {
      const double coef = config_.clip / (grad_norm + 1e-6);
      for (auto& [name, p] : params_) {
        if (p.grad().defined()) p.mutable_grad().mul_(coef);
      }
    }
    for (size_t i = 0; i < params_.size(); ++i) {
      at::Tensor p = params_[i].second;
      const at::Tensor g = p.grad();
      if (!g.defined()) continue;
      at::Tensor& m = m_[i].second;
      at::Tensor& v = v_[i].second;
      m.mul_(b1).add_(g, 1 - b1);
      v.mul_(b2).addcmul_(g, g, 1 - b2);
      const at::Tensor denom = (v.sqrt() / std::sqrt(bc2)).add_(config_.eps);
      p.detach().addcdiv_(m, denom, -lr / bc1);
    }
  }
  step_ = step;
  if (config_.ema > 0) {
    const double decay = std::min(config_.ema, (1 + step_) / (10 + step_));
    for (size_t i = 0; i < params_.size(); ++i) ema_[i].second.mul_(decay).add_(params_[i].second.detach(), 1 - decay);
  }
  return grad_norm;
}

}  // namespace bnn
