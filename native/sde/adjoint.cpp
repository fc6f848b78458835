#include "sde/adjoint.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "sde/buffered.h"
#include "sde/errors.h"

namespace sde {

namespace {

void check_grad_ys(const at::Tensor& grad_ys, const std::vector<double>& ts, const at::Tensor& y0) {
  std::vector<int64_t> expected{static_cast<int64_t>(ts.size())};
  for (int64_t s : y0.sizes()) expected.push_back(s);
  if (grad_ys.sizes().vec() != expected) throw invalid_argument("Expected gradYs of shape [len(ts), ...y0.shape]");
}

std::vector<at::Tensor> fill_undefined(const std::vector<at::Tensor>& grads, const std::vector<at::Tensor>& like) {
  std::vector<at::Tensor> out(grads.size());
  for (size_t i = 0; i < grads.size(); ++i) out[i] = grads[i].defined() ? grads[i] : at::zeros_like(like[i]);
  return out;
}

// The backward system on z = [y, a, a_theta] flattened:
//   increment = ( F, -a . dF/dy, -a . dF/dtheta ),  F = f dt + g dW
// with f the Stratonovich drift (Ito drift + correction for Ito SDEs), in signed time. `step` runs
// the method's increment_stages on the parts y and a apart (each elementwise op on one part: on the
// joint state each op would span two of ATen's grains and open an OpenMP region, and every stage
// would cat and split it); no evaluation reads a_theta, so to it go the evaluations' parameter
// VJPs with the stages' weights b, those of weight 0 not computed.
class AdjointSystem {
 public:
  AdjointSystem(SDE& sde, std::vector<int64_t> y_shape, std::vector<at::Tensor> params, SolveStats& stats)
      : sde_(sde), y_shape_(std::move(y_shape)), params_(std::move(params)), stats_(stats) {
    ny_ = 1;
    for (int64_t s : y_shape_) ny_ *= s;
    n_theta_ = 0;
    for (const at::Tensor& p : params_) n_theta_ += p.numel();
  }

  at::Tensor pack(const at::Tensor& y, const at::Tensor& a, const std::vector<at::Tensor>& a_params) const {
    std::vector<at::Tensor> parts{y.reshape({-1}), a.reshape({-1})};
    for (const at::Tensor& p : a_params) parts.push_back(p.reshape({-1}));
    return at::cat(parts);
  }
  at::Tensor y_of(const at::Tensor& z) const { return z.narrow(0, 0, ny_).view(y_shape_); }
  at::Tensor a_of(const at::Tensor& z) const { return z.narrow(0, ny_, ny_).view(y_shape_); }
  std::vector<at::Tensor> a_params_of(const at::Tensor& z) const {
    std::vector<at::Tensor> out;
    int64_t offset = 2 * ny_;
    for (const at::Tensor& p : params_) {
      out.push_back(z.narrow(0, offset, p.numel()).view(p.sizes()));
      offset += p.numel();
    }
    return out;
  }

  // One step of `method` on the whole state [y, a, a_theta].
  at::Tensor step(Method method, double ta, double tb, const at::Tensor& z, const at::Tensor& dW) {
    const double dt = tb - ta;
    const at::Tensor y = y_of(z), a = a_of(z);
    at::Tensor out = fresh_like(z);
    at::Tensor y_out = y_of(out), a_out = a_of(out);
    at::Tensor theta_out = out.narrow(0, 2 * ny_, n_theta_);
    theta_out.copy_(z.narrow(0, 2 * ny_, n_theta_));
    bool first = true;             // the first weighted evaluation writes (y, a) + its increments into out
    std::vector<at::Tensor> F, G;  // each evaluation's increments of y (F) and of a (-G, G = a . dF/dy)
    for (const IncrementStage& stage : increment_stages(method)) {
      at::Tensor y_k = y, a_k = a;
      for (size_t j = 0; j < stage.a.size(); ++j) {
        if (stage.a[j] == 0.0) continue;
        at::Tensor y_next = fresh_like(y), a_next = fresh_like(a);
        y_k = at::add_out(y_next, y_k, F[j], stage.a[j]);
        a_k = at::sub_out(a_next, a_k, G[j], stage.a[j]);
      }
      const SDE::VjpTerm term{stage.drift ? std::optional<double>(dt) : std::nullopt, stage.noise ? dW : at::Tensor(),
                              a_k};
      const SDE::Vjp vjp = sde_.stratonovich_vjp(ta + stage.c * dt, y_k, {term}, stage.b != 0.0);
      stats_.nfe += (stage.drift ? 1 : 0) + (stage.noise ? 1 : 0);
      F.push_back(vjp.F[0].view(y.sizes()));
      G.push_back(vjp.grad_y.view(a.sizes()));
      if (stage.b == 0.0) continue;
      add_param_vjps(vjp, stage.b, theta_out);
      if (first) {
        at::add_out(y_out, y, F.back(), stage.b);
        at::sub_out(a_out, a, G.back(), stage.b);
        first = false;
      } else {
        y_out.add_(F.back(), stage.b);
        a_out.sub_(G.back(), stage.b);
      }
    }
    return out;
  }

 private:
  // theta (the flat a_theta layout) -= weight * the evaluation's parameter VJPs.
  void add_param_vjps(const SDE::Vjp& vjp, double weight, at::Tensor& theta) const {
    int64_t offset = 0;
    for (size_t j = 0; j < vjp.grad_params.size(); ++j) {
      const at::Tensor& g = vjp.grad_params[j];
      if (g.defined()) theta.narrow(0, offset, g.numel()).add_(g.reshape({-1}), -weight);
      offset += params_[j].numel();
    }
  }

  SDE& sde_;
  std::vector<int64_t> y_shape_;
  std::vector<at::Tensor> params_;
  SolveStats& stats_;
  int64_t ny_, n_theta_;
};

// Exact adjoint of reversible Heun (Kidger et al. 2021). A forward step from (y_a, y_hat_a) is
//   F_a = F(ta, y_hat_a),  y_hat_b = 2 y_a - y_hat_a + F_a,  y_b = y_a + (F_a + F_b) / 2,
// with F_b = F(tb, y_hat_b) and F(t, x) = f(t, x) dt + g(t, x) dW. From the solver's final state
// [y, y_hat, f(y_hat)] each step is reconstructed backwards algebraically
// (y_hat_a = 2 y_b - y_hat_b - F_b, y_a = y_b - (F_a + F_b) / 2), and the cotangents (u, v) of
// (y_b, y_hat_b) go back through it:
//   v_b = v + u/2 . dF_b/dy_hat_b,  u <- u + 2 v_b,  v <- (v_b + u/2) . dF_a/dy_hat_a - v_b.
// y_hat_a is also the next step's y_hat_b, so its two VJPs (F_a of this step with cotangent
// v_b + u/2, and F_b of the step before with u_next / 2) are one evaluation with two terms.
void reversible_heun_backward(SDE& sde, const at::Tensor& final_state, const std::vector<double>& ts,
                              BrownianMotion& bm, double dt_step, const at::Tensor& grad_ys,
                              const std::vector<at::Tensor>& params, GradientResult& result,
                              const StepProgress& progress) {
  std::vector<at::Tensor>& a_params = result.grad_params;
  SolveStats& stats = result.backward;
  const auto accumulate = [&](const std::vector<at::Tensor>& grads) {
    for (size_t j = 0; j < params.size(); ++j) {
      if (grads[j].defined()) a_params[j] += grads[j];
    }
  };
  // The steps from the last to the first, and the output interval each belongs to.
  struct Step {
    double ta, tb;
    size_t k;  // the step lies in [ts[k - 1], ts[k]]
  };
  std::vector<Step> steps;
  for (size_t k = ts.size() - 1; k > 0; --k) {
    const std::vector<double> grid = fixed_grid(ts[k - 1], ts[k], dt_step);
    for (size_t i = grid.size() - 1; i > 0; --i) steps.push_back({grid[i - 1], grid[i], k});
  }

  at::Tensor y = final_state[0], y_hat = final_state[1];
  at::Tensor u = grad_ys[static_cast<int64_t>(ts.size()) - 1].clone();
  at::Tensor dW = bm.increment(steps[0].ta, steps[0].tb);
  const SDE::Vjp last = sde.stratonovich_vjp(steps[0].tb, y_hat, {{steps[0].tb - steps[0].ta, dW, 0.5 * u}}, true);
  stats.nfe += 2;
  accumulate(last.grad_params);
  at::Tensor F_b = last.F[0], v_b = last.grad_y;  // v = 0 at the end
  // Each step's new tensors are the pool's (fresh_like), written by the out= ops: the same
  // arithmetic as y_hat_a = 2 y - y_hat - F_b and the rest, without fresh memory per step.
  for (size_t n = 0; n < steps.size(); ++n) {
    const Step& step = steps[n];
    at::Tensor y_hat_a = fresh_like(y), u_next = fresh_like(u), cotangent = fresh_like(u);
    at::mul_out(y_hat_a, y, 2).sub_(y_hat).sub_(F_b);
    at::add_out(u_next, u, v_b, 2);
    const bool interval_ends = n + 1 == steps.size() || steps[n + 1].k != step.k;
    if (interval_ends) u_next.add_(grad_ys[static_cast<int64_t>(step.k) - 1]);
    std::vector<SDE::VjpTerm> terms{{step.tb - step.ta, dW, at::add_out(cotangent, v_b, u, 0.5)}};
    if (n + 1 < steps.size()) {
      at::Tensor half_u_next = fresh_like(u);
      terms.push_back({steps[n + 1].tb - steps[n + 1].ta, bm.increment(steps[n + 1].ta, steps[n + 1].tb),
                       at::mul_out(half_u_next, u_next, 0.5)});
    }
    const SDE::Vjp at_a = sde.stratonovich_vjp(step.ta, y_hat_a, terms, true);
    stats.nfe += 2 * static_cast<int64_t>(terms.size());
    accumulate(at_a.grad_params);
    at::Tensor F_sum = fresh_like(y), y_a = fresh_like(y), v_a = fresh_like(u);
    at::add_out(F_sum, at_a.F[0], F_b);
    y = at::sub_out(y_a, y, F_sum, 0.5);
    y_hat = y_hat_a;
    u = u_next;
    v_b = at::sub_out(v_a, at_a.grad_y, v_b);  // after the last step: v at ts[0]
    if (terms.size() > 1) {
      F_b = at_a.F[1];
      dW = terms[1].dW;
    }
    ++stats.steps_accepted;
    if (progress) progress(step.ta, stats);
  }
  result.grad_y0 = u + v_b;  // y_hat starts equal to y
}

// The buffered route's backprop or adjoint: one solve, then its reverse sweep.
GradientResult buffered_gradients(SDE& sde, const at::Tensor& y0, const std::vector<double>& ts, BrownianMotion& bm,
                                  BufferedMode mode, const StepOptions& options, const StepOptions& adjoint_options,
                                  const at::Tensor& grad_ys, const StepProgress& progress) {
  const std::unique_ptr<BufferedSolve> solve = sde.buffered_solve(y0, bm, mode, ts, options, adjoint_options);
  GradientResult result;
  result.ys = solve->solve(y0).view(grad_ys.sizes());
  auto [grad_y0, grad_params] = solve->gradients(grad_ys, progress);
  result.grad_y0 = grad_y0.view(y0.sizes());
  result.grad_params = std::move(grad_params);
  result.forward = solve->forward_stats;
  if (mode == BufferedMode::Adjoint) result.backward = solve->backward_stats;  // backprop's stay zero, as autograd's
  result.route = Route::Buffered;
  return result;
}

}  // namespace

void check_adjoint_method(Method method, Method adjoint_method, const SDE& sde) {
  const MethodInfo& info = method_info(adjoint_method);
  const auto& noises = info.adjoint_noise_types;
  const bool solves = std::find(noises.begin(), noises.end(), sde.noise_type()) != noises.end();
  if (solves && info.adjoint_needs_same_method && method != adjoint_method) {
    throw invalid_argument(std::string("adjointMethod '") + to_string(adjoint_method) + "' needs method '" +
                           to_string(adjoint_method) + "' (its exact adjoint)");
  }
  if (solves) return;
  std::vector<std::string> usable;
  for (const MethodInfo& m : method_table()) {
    const auto& n = m.adjoint_noise_types;
    if (std::find(n.begin(), n.end(), sde.noise_type()) == n.end()) continue;
    if (!m.adjoint_needs_same_method || m.method == method)
      usable.push_back(std::string("'") + to_string(m.method) + "'");
  }
  std::string list;
  for (size_t i = 0; i < usable.size(); ++i) list += (i == 0 ? "" : i + 1 == usable.size() ? " or " : ", ") + usable[i];
  throw invalid_argument(std::string("adjointMethod '") + to_string(adjoint_method) +
                         "' cannot solve the adjoint of a " + to_string(sde.noise_type()) + "-noise SDE; use " + list);
}

GradientResult backprop_gradients(SDE& sde, const at::Tensor& y0, const std::vector<double>& ts, BrownianMotion& bm,
                                  const StepOptions& options, const at::Tensor& grad_ys) {
  check_grad_ys(grad_ys, ts, y0);
  const Route route = select_route(sde.route_offer(), sde.noise_type(), Purpose::Backprop, options, options,
                                   y0.device(), y0.scalar_type());
  if (route == Route::Buffered) {
    check_solve(sde, y0, ts, bm, options);
    return buffered_gradients(sde, y0, ts, bm, BufferedMode::Backprop, options, options, grad_ys, {});
  }
  at::AutoGradMode enable(true);
  at::Tensor y0_leaf = y0.detach().requires_grad_(true);
  Solution solution = sdeint(sde, y0_leaf, ts, bm, options);
  std::vector<at::Tensor> inputs{y0_leaf};
  const std::vector<at::Tensor> params = sde.parameters();
  inputs.insert(inputs.end(), params.begin(), params.end());
  std::vector<at::Tensor> grads = fill_undefined(
      torch::autograd::grad({solution.ys}, inputs, {grad_ys}, false, false, /*allow_unused=*/true), inputs);
  GradientResult result;
  result.ys = solution.ys.detach();
  result.forward = solution.stats;
  result.grad_y0 = grads[0];
  result.grad_params.assign(grads.begin() + 1, grads.end());
  result.route = route;
  return result;
}

GradientResult adjoint_gradients(SDE& sde, const at::Tensor& y0, const std::vector<double>& ts, BrownianMotion& bm,
                                 const StepOptions& options, const StepOptions& adjoint_options,
                                 const at::Tensor& grad_ys, const StepProgress& progress) {
  check_grad_ys(grad_ys, ts, y0);
  check_adjoint_method(options.method, adjoint_options.method, sde);
  if (!(adjoint_options.dt > 0)) throw invalid_argument("Expected positive number for adjointDt");
  const Route route = select_route(sde.route_offer(), sde.noise_type(), Purpose::Adjoint, options, adjoint_options,
                                   y0.device(), y0.scalar_type());
  if (route == Route::Buffered) {
    check_solve(sde, y0, ts, bm, options);
    return buffered_gradients(sde, y0, ts, bm, BufferedMode::Adjoint, options, adjoint_options, grad_ys, progress);
  }
  GradientResult result;
  result.route = route;
  at::NoGradGuard no_grad;
  const Solution forward = sdeint(sde, y0, ts, bm, options);
  result.ys = forward.ys;
  result.forward = forward.stats;
  const std::vector<at::Tensor> params = sde.parameters();
  for (const at::Tensor& p : params) result.grad_params.push_back(at::zeros_like(p));
  if (options.method == Method::ReversibleHeun && adjoint_options.method == Method::ReversibleHeun) {
    reversible_heun_backward(sde, forward.final_state, ts, bm, options.dt, grad_ys, params, result, progress);
    return result;
  }
  AdjointSystem system(sde, y0.sizes().vec(), params, result.backward);
  const StepFn step = [&](double ta, double tb, const at::Tensor& z) {
    return system.step(adjoint_options.method, ta, tb, z, brownian_increment(bm, ta, tb));
  };
  at::Tensor a = grad_ys[static_cast<int64_t>(ts.size()) - 1];
  std::vector<at::Tensor> a_params = result.grad_params;
  double h = adjoint_options.dt;
  for (size_t k = ts.size() - 1; k > 0; --k) {
    // Restart each interval from the stored forward state: less reconstruction error.
    at::Tensor z = system.pack(forward.ys[static_cast<int64_t>(k)], a, a_params);
    z = integrate_interval(step, z, ts[k], ts[k - 1], adjoint_options, result.backward, h, progress);
    a = system.a_of(z) + grad_ys[static_cast<int64_t>(k) - 1];
    a_params = system.a_params_of(z);
  }
  result.grad_y0 = a.clone();
  for (at::Tensor& g : a_params) g = g.clone();
  result.grad_params = a_params;
  return result;
}

}  // namespace sde
