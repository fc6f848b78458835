// The grid source of brownian.h: increments of a fixed-step grid, one row each, drawn by the caller.
#include <ATen/ATen.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "sde/brownian.h"
#include "sde/errors.h"

namespace sde {
namespace {

class GridBrownian final : public BrownianMotion {
 public:
  GridBrownian(const BrownianIntervalOptions& o, const at::Tensor& steps)
      : t0_(o.t0), t1_(o.t1), shape_(o.shape), options_(o.options), steps_(steps) {
    std::vector<int64_t> expected{steps.dim() > 0 ? steps.size(0) : 0};
    expected.insert(expected.end(), shape_.begin(), shape_.end());
    if (steps.dim() < 1 || steps.size(0) < 1 || steps.sizes().vec() != expected || !(t1_ > t0_)) {
      throw invalid_argument("grid Brownian motion: expected increments of shape [steps, ...shape] over t0 < t1");
    }
    n_ = steps.size(0);
    h_ = (t1_ - t0_) / static_cast<double>(n_);
  }

  at::Tensor increment(double s, double t) override { return steps_[row(s, t)]; }
  std::pair<at::Tensor, at::Tensor> increment_and_levy_area(double, double) override {
    throw invalid_argument("the grid Brownian motion has no Levy area (method 'srk' needs the Brownian interval)");
  }
  bool has_levy_area() const override { return false; }
  double t0() const override { return t0_; }
  double t1() const override { return t1_; }
  const std::vector<int64_t>& shape() const override { return shape_; }
  const c10::TensorOptions& options() const override { return options_; }

 private:
  // The row of the grid step [s, t]; the grid of fixed_grid(t0, t1, h) has these points up to rounding.
  int64_t row(double s, double t) const {
    const double k = std::round((s - t0_) / h_);
    const double tol = 1e-9 * h_;
    if (!(k >= 0 && k < static_cast<double>(n_)) || std::abs(s - (t0_ + k * h_)) > tol ||
        std::abs(t - (t0_ + (k + 1) * h_)) > tol) {
      throw std::logic_error("grid Brownian motion: [" + std::to_string(s) + ", " + std::to_string(t) +
                             "] is not a step of its grid of " + std::to_string(n_) + " steps");
    }
    return static_cast<int64_t>(k);
  }

  double t0_, t1_, h_;
  int64_t n_;
  std::vector<int64_t> shape_;
  c10::TensorOptions options_;
  at::Tensor steps_;
};

}  // namespace

std::unique_ptr<BrownianMotion> make_grid_brownian(const BrownianIntervalOptions& options, const at::Tensor& steps) {
  return std::make_unique<GridBrownian>(options, steps);
}

}  // namespace sde
