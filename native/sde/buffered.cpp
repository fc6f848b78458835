#include "sde/buffered.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <stdexcept>
#include <string>

#include "sde/errors.h"

namespace sde {

namespace {

template <typename T>
bool all_finite(const T* x, int64_t n) {
  T acc = 0;  // x - x is 0 for finite x and NaN otherwise
  for (int64_t i = 0; i < n; ++i) acc += x[i] - x[i];
  return acc == 0;
}

template <typename T>
class Solve final : public BufferedSolve {
 public:
  Solve(std::unique_ptr<BufferedSystem<T>> system, BrownianMotion& bm, BufferedMode mode, std::vector<double> ts,
        const StepOptions& options, const StepOptions& adjoint_options, BufferPool& pool)
      : system_(std::move(system)),
        bm_(bm),
        mode_(mode),
        ts_(std::move(ts)),
        pool_(pool),
        n_(system_->state_size()),
        m_(system_->noise_size()) {
    const bool adjoint = mode == BufferedMode::Adjoint;
    int64_t adjoint_steps = 0;
    for (size_t k = 1; k < ts_.size(); ++k) {
      steps_ += fixed_steps(ts_[k - 1], ts_[k], options.dt);
      if (adjoint) adjoint_steps += fixed_steps(ts_[k - 1], ts_[k], adjoint_options.dt);
    }
    check_step_limit(static_cast<double>(steps_), options);
    if (adjoint) check_step_limit(static_cast<double>(adjoint_steps), adjoint_options);
    for (size_t k = 1; k < ts_.size(); ++k) {
      grids_.push_back(fixed_grid(ts_[k - 1], ts_[k], options.dt));
      if (adjoint) adjoint_grids_.push_back(fixed_grid(ts_[k - 1], ts_[k], adjoint_options.dt));
    }
  }

  at::Tensor solve(const at::Tensor& y0, const StepProgress& progress) override {
    at::NoGradGuard no_grad;
    options_ = y0.options();
    const bool backprop = mode_ == BufferedMode::Backprop;
    system_->prepare(backprop ? steps_ : 1);
    const int64_t outputs = static_cast<int64_t>(ts_.size());
    ys_ = at::empty({outputs, n_}, options_);
    ys_[0].copy_(y0.reshape({-1}));
    F_ = pool_.get({n_}, options_);
    dW_ = pool_.get({backprop ? steps_ : 1, m_}, options_);
    int64_t step = 0;
    for (int64_t k = 1; k < outputs; ++k) {
      T* z = ys_.data_ptr<T>() + k * n_;
      std::copy_n(z - n_, n_, z);
      const std::vector<double>& grid = grids_[static_cast<size_t>(k - 1)];
      for (size_t i = 0; i + 1 < grid.size(); ++i, ++step) {
        const int64_t slot = backprop ? step : 0;
        const T* dW = brownian(grid[i], grid[i + 1], slot);
        system_->increment(slot, grid[i], grid[i + 1] - grid[i], z, dW, F_.data_ptr<T>(), backprop);
        const T* F = F_.data_ptr<T>();
        for (int64_t j = 0; j < n_; ++j) z[j] += F[j];
        forward_stats.nfe += 2;  // drift and noise, as the engine counts them
        ++forward_stats.steps_accepted;
        if (progress) progress(grid[i + 1], forward_stats);
      }
      if (!all_finite(z, n_)) {
        throw EngineError("ERR_NUMERICAL", "the solution became non-finite by t=" + std::to_string(ts_[k]) +
                                               "; reduce dt, use adaptive steps or regularise the dynamics");
      }
    }
    solved_ = true;
    if (mode_ == BufferedMode::Adjoint) restarts_ = ys_.clone();  // the caller owns ys_
    return ys_;
  }

  std::pair<at::Tensor, std::vector<at::Tensor>> gradients(const at::Tensor& grad_ys,
                                                           const StepProgress& progress) override {
    if (!solved_ || mode_ == BufferedMode::Forward)
      throw std::logic_error("BufferedSolve: gradients before a gradient-mode solve");
    at::NoGradGuard no_grad;
    const at::Tensor g = grad_ys.to(options_).reshape({static_cast<int64_t>(ts_.size()), n_}).contiguous();
    at::Tensor a = g[static_cast<int64_t>(ts_.size()) - 1].clone();
    return mode_ == BufferedMode::Backprop ? backprop(a, g) : adjoint(a, g, progress);
  }

 private:
  // dW of [ta, tb] into row `row` of the noise buffer.
  const T* brownian(double ta, double tb, int64_t row) {
    bm_.increment_into(ta, tb, dW_[row].view(bm_.shape()));
    return dW_.data_ptr<T>() + row * m_;
  }

  static void add(T* a, const T* b, int64_t n) {
    for (int64_t j = 0; j < n; ++j) a[j] += b[j];
  }

  // The exact reverse sweep of the stored steps; dL/dy at each output time joins on the way.
  std::pair<at::Tensor, std::vector<at::Tensor>> backprop(at::Tensor a, const at::Tensor& g) {
    system_->begin_gradients(steps_, true);
    T* ap = a.data_ptr<T>();
    int64_t step = steps_ - 1;
    for (int64_t k = static_cast<int64_t>(grids_.size()); k >= 1; --k) {
      const std::vector<double>& grid = grids_[static_cast<size_t>(k - 1)];
      for (size_t i = grid.size() - 1; i > 0; --i, --step) {
        system_->vjp(step, step, grid[i - 1], grid[i] - grid[i - 1], dW_.data_ptr<T>() + step * m_, ap);
        ++backward_stats.steps_accepted;
      }
      add(ap, g.data_ptr<T>() + (k - 1) * n_, n_);
    }
    return {a, system_->parameter_gradients()};
  }

  // The stochastic adjoint: Euler on the backward system from each output time's stored state
  // back to the one before (restarting there: less reconstruction error), on the same path.
  std::pair<at::Tensor, std::vector<at::Tensor>> adjoint(at::Tensor a, const at::Tensor& g,
                                                         const StepProgress& progress) {
    int64_t total = 0;
    for (const auto& grid : adjoint_grids_) total += static_cast<int64_t>(grid.size()) - 1;
    system_->begin_gradients(total, false);
    T* ap = a.data_ptr<T>();
    const at::Tensor z_buffer = pool_.get({n_}, options_);
    T* z = z_buffer.data_ptr<T>();
    T* F = F_.data_ptr<T>();
    int64_t step = total - 1;
    for (int64_t k = static_cast<int64_t>(adjoint_grids_.size()); k >= 1; --k) {
      std::copy_n(restarts_.data_ptr<T>() + k * n_, n_, z);
      const std::vector<double>& grid = adjoint_grids_[static_cast<size_t>(k - 1)];
      for (size_t i = grid.size() - 1; i > 0; --i, --step) {
        const T* dW = brownian(grid[i - 1], grid[i], 0);
        system_->increment_vjp(step, grid[i], grid[i] - grid[i - 1], z, dW, F, ap);
        for (int64_t j = 0; j < n_; ++j) z[j] -= F[j];
        backward_stats.nfe += 2;
        ++backward_stats.steps_accepted;
        if (progress) progress(grid[i - 1], backward_stats);
      }
      add(ap, g.data_ptr<T>() + (k - 1) * n_, n_);
    }
    return {a, system_->parameter_gradients()};
  }

  std::unique_ptr<BufferedSystem<T>> system_;
  BrownianMotion& bm_;
  BufferedMode mode_;
  std::vector<double> ts_;
  BufferPool& pool_;
  int64_t n_, m_, steps_ = 0;
  std::vector<std::vector<double>> grids_, adjoint_grids_;
  at::TensorOptions options_;
  at::Tensor ys_, restarts_, F_, dW_;
  bool solved_ = false;
};

}  // namespace

BufferPool& shared_solver_pool() {
  static BufferPool pool(int64_t(1) << 30);
  return pool;
}

at::Tensor fresh_like(const at::Tensor& x) {
  return x.is_cpu() ? shared_solver_pool().get(x.sizes(), x.options())
                    : at::empty_like(x, at::MemoryFormat::Contiguous);
}

template <typename T>
std::unique_ptr<BufferedSolve> make_buffered_solve(std::unique_ptr<BufferedSystem<T>> system, BrownianMotion& bm,
                                                   BufferedMode mode, std::vector<double> ts,
                                                   const StepOptions& options, const StepOptions& adjoint_options,
                                                   BufferPool& pool) {
  return std::make_unique<Solve<T>>(std::move(system), bm, mode, std::move(ts), options, adjoint_options, pool);
}

template std::unique_ptr<BufferedSolve> make_buffered_solve<float>(std::unique_ptr<BufferedSystem<float>>,
                                                                   BrownianMotion&, BufferedMode, std::vector<double>,
                                                                   const StepOptions&, const StepOptions&, BufferPool&);
template std::unique_ptr<BufferedSolve> make_buffered_solve<double>(std::unique_ptr<BufferedSystem<double>>,
                                                                    BrownianMotion&, BufferedMode, std::vector<double>,
                                                                    const StepOptions&, const StepOptions&,
                                                                    BufferPool&);

}  // namespace sde
