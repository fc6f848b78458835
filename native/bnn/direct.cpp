// The direct route of routes.h: an mlp SDE-BNN with the 'last' head, a Gaussian or Laplace
// likelihood of fixed scale and a point w_0, every block on the buffered solver, has its loss and
// gradients written by hand: no autograd graph anywhere in a training step.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>

#include "bnn/block_run.h"
#include "bnn/model.h"
#include "sde/errors.h"

namespace bnn {

namespace {

// The KL entries of a block state (kl and kl_dB), summed in double.
template <typename T>
double kl_sum(const at::Tensor& y1, const BlockLayout& L) {
  const T* p = y1.data_ptr<T>() + L.nh + L.w_dim;
  double s = 0;
  for (int64_t j = 0; j < L.tail; ++j) s += static_cast<double>(p[j]);
  return s;
}

// The Gaussian or Laplace NLL of the head out[i, k] = h[i, d - outputs + k] (h [batch, d] row-major)
// as nll() computes it (the mean over the batch of the sum over outputs), in double; with `grad`
// ([batch * d], zero elsewhere), its gradient times `coef` is added at the head's coordinates:
// Gaussian (out - y) / s^2 / batch, Laplace sign(out - y) / b / batch (sign(0) = 0, as abs's).
template <typename T>
double head_nll(Likelihood lik, double scale, const T* h, int64_t batch, int64_t d, int64_t outputs, const T* y,
                double coef, T* grad) {
  const double log_s = std::log(scale);
  const double half_log_2pi = 0.5 * std::log(2 * 3.14159265358979323846);
  double sum = 0;
  for (int64_t i = 0; i < batch; ++i) {
    for (int64_t k = 0; k < outputs; ++k) {
      const int64_t at = i * d + d - outputs + k;
      const double o = static_cast<double>(h[at]), t = static_cast<double>(y[i * outputs + k]);
      if (lik == Likelihood::Gaussian) {
        const double r = (t - o) / scale;
        sum += 0.5 * r * r + log_s + half_log_2pi;
        if (grad) grad[at] += static_cast<T>(coef * (o - t) / (scale * scale * batch));
      } else {
        sum += std::fabs(t - o) / scale + log_s + std::log(2.0);
        if (grad) grad[at] += static_cast<T>(coef * ((o > t) - (o < t)) / (scale * batch));
      }
    }
  }
  return sum / static_cast<double>(batch);
}

}  // namespace

LossResult BnnModel::direct(const at::Tensor& xin, const at::Tensor& target, at::Generator& gen, double beta,
                            Objective objective, bool check_finite) {
  at::NoGradGuard no_grad;
  const BnnConfig& c = config_;
  const bool is_double = options_.dtype().toScalarType() == at::kDouble;
  const int64_t batch = xin.size(0);
  at::Tensor h = xin;
  if (c.aug > 0) h = at::cat({h, at::zeros({batch, c.aug}, h.options())}, 1);
  std::vector<std::shared_ptr<BlockRun>> runs;
  LossResult r;
  r.t_end = 1e300;
  at::Tensor y1;
  for (auto& block : blocks_) {
    Block& b = *block;
    const uint64_t seed = draw_seed(gen);  // as forward(): one seed per block, nothing else drawn
    const auto run = start_run(c, sde::Route::Buffered, true, b.dynamics, b.hypernet, b.hyper_params, batch, seed,
                               options_, b.pool, false);
    y1 = run->solve_buffered(run->sde->pack(h, b.mu.detach()));
    h = run->sde->h_of(y1);
    const BlockLayout& L = run->sde->layout();
    r.kl += is_double ? kl_sum<double>(y1, L) : kl_sum<float>(y1, L);
    r.nfe += run->forward.nfe;
    r.steps += run->forward.steps_accepted;
    r.t_end = std::min(r.t_end, run->t_end);
    runs.push_back(run);
  }
  const int64_t d = h.size(1);
  const bool kl_only = objective == Objective::Kl;
  const double c_kl = kl_only ? 1.0 : beta / c.n_train;
  // dL/dy(1) of the last block: the head's coordinates and the KL entries
  const BlockLayout& last = runs.back()->sde->layout();
  at::Tensor g1 = at::zeros({last.size()}, options_);
  const at::Tensor y_head = target.contiguous();
  if (is_double) {
    r.nll = head_nll<double>(c.likelihood, c.scale, y1.data_ptr<double>(), batch, d, c.outputs,
                             y_head.data_ptr<double>(), kl_only ? 0.0 : 1.0, kl_only ? nullptr : g1.data_ptr<double>());
  } else {
    r.nll = head_nll<float>(c.likelihood, c.scale, y1.data_ptr<float>(), batch, d, c.outputs, y_head.data_ptr<float>(),
                            kl_only ? 0.0 : 1.0, kl_only ? nullptr : g1.data_ptr<float>());
  }
  r.loss = r.nll + r.kl * (beta / c.n_train);
  if (check_finite && !std::isfinite(r.loss)) {
    throw sde::EngineError("ERR_NUMERICAL", "the loss is not finite (nll " + std::to_string(r.nll) + ", kl " +
                                                std::to_string(r.kl) + "); parameters unchanged");
  }
  for (size_t i = runs.size(); i-- > 0;) {
    BlockRun& run = *runs[i];
    Block& b = *blocks_[i];
    const BlockLayout& L = run.sde->layout();
    g1.narrow(0, L.nh + L.w_dim, L.tail).fill_(c_kl);
    auto [grad_y0, grad_params] = run.buffered_gradients(g1);
    r.nfe_backward += run.backward.nfe;
    for (size_t j = 0; j < grad_params.size(); ++j) b.hyper_params[j].mutable_grad() = grad_params[j];
    b.mu.mutable_grad() = grad_y0.narrow(0, L.nh, L.w_dim);
    if (i > 0) {  // dL/dh(0) of this block is dL/dh(1) of the one before
      const BlockLayout& prev = runs[i - 1]->sde->layout();
      g1 = at::zeros({prev.size()}, options_);
      g1.narrow(0, 0, prev.nh).copy_(grad_y0.narrow(0, 0, L.nh));
    }
  }
  return r;
}

}  // namespace bnn
