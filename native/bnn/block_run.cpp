#include "bnn/block_run.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/custom_function.h>

#include "bnn/block_system.h"
#include "sde/adjoint.h"
#include "sde/owned.h"

namespace bnn {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// One block solved forward by the general solver without a graph; its backward is the engine's
// stochastic adjoint on the same Brownian path, started from dL/dy(1).
struct AdjointSolveFn : public torch::autograd::Function<AdjointSolveFn> {
  static at::Tensor forward(AutogradContext* ctx, std::shared_ptr<BlockRun> run, const at::Tensor& y0, at::TensorList) {
    BlockRun* r = run.get();
    sde::Solution s = sde::sdeint(*r->sde, y0, {0.0, 1.0}, *r->bm, r->options,
                                  [r](double t, const sde::SolveStats&) { r->t_end = t; });
    r->forward = s.stats;
    ctx->saved_data["run"] = sde::keep(std::move(run));
    ctx->save_for_backward({y0});
    return s.ys.select(0, 1).clone();
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto run = sde::kept<BlockRun>(ctx->saved_data["run"]);
    const at::Tensor y0 = ctx->get_saved_variables()[0];
    const at::Tensor g1 = grads[0].defined() ? grads[0] : at::zeros_like(y0);
    const at::Tensor grad_ys = at::stack({at::zeros_like(g1), g1});
    sde::GradientResult r =
        sde::adjoint_gradients(*run->sde, y0, {0.0, 1.0}, *run->bm, run->options, run->adjoint_options, grad_ys);
    run->backward = r.backward;
    run->backward.nfe += r.forward.nfe;  // the engine's adjoint solves forward once more
    variable_list out{at::Tensor(), r.grad_y0};
    out.insert(out.end(), r.grad_params.begin(), r.grad_params.end());
    return out;
  }
};

// One block solved by the buffered solver as a single autograd node: its backward is the solver's
// own reverse sweep (backprop or the stochastic adjoint, by the solve's mode).
struct BufferedSolveFn : public torch::autograd::Function<BufferedSolveFn> {
  static at::Tensor forward(AutogradContext* ctx, std::shared_ptr<BlockRun> run, const at::Tensor& y0, at::TensorList) {
    const at::Tensor y1 = run->solve_buffered(y0);
    ctx->saved_data["run"] = sde::keep(std::move(run));
    return y1;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto run = sde::kept<BlockRun>(ctx->saved_data["run"]);
    const at::Tensor g1 = grads[0].defined() ? grads[0] : at::zeros({run->sde->layout().size()}, run->sde->options());
    auto [grad_y0, grad_params] = run->buffered_gradients(g1);
    variable_list out{at::Tensor(), grad_y0};
    out.insert(out.end(), grad_params.begin(), grad_params.end());
    return out;
  }
};

}  // namespace

uint64_t draw_seed(at::Generator& gen) {
  std::lock_guard<std::mutex> lock(gen.mutex());
  return at::check_generator<at::CPUGeneratorImpl>(gen)->random64();
}

at::Tensor BlockRun::solve_buffered(const at::Tensor& y0) {
  const at::Tensor y1 = buffered->solve(y0)[1];
  forward = buffered->forward_stats;
  t_end = 1.0;
  return y1;
}

std::pair<at::Tensor, std::vector<at::Tensor>> BlockRun::buffered_gradients(const at::Tensor& g1) {
  const at::Tensor grad_ys = at::zeros({2, g1.numel()}, g1.options());
  grad_ys[1].copy_(g1);
  auto result = buffered->gradients(grad_ys);
  backward = buffered->backward_stats;
  return result;
}

std::shared_ptr<BlockRun> start_run(const BnnConfig& c, sde::Route route, bool gradients,
                                    const std::shared_ptr<Dynamics>& dynamics,
                                    const std::shared_ptr<Hypernet>& hypernet,
                                    const std::vector<at::Tensor>& hyper_params, int64_t batch, uint64_t seed,
                                    const at::TensorOptions& options, sde::BufferPool& pool, bool zero_noise,
                                    const at::Tensor& grid_noise) {
  auto run = std::make_shared<BlockRun>();
  run->route = route;
  const bool weight_sde = hypernet != nullptr;
  run->options.method = c.solver.method;
  run->options.dt = 1.0 / static_cast<double>(c.solver.steps);
  run->options.adaptive = c.solver.adaptive;
  run->options.rtol = c.solver.rtol;
  run->options.atol = c.solver.atol;
  run->options.dt_min = c.solver.dt_min;
  run->options.max_steps = c.solver.max_steps;
  run->options.max_steps_option = "config.solver.maxSteps";
  run->options.check_finite = false;
  run->adjoint_options = run->options;
  run->adjoint_options.method = c.solver.adjoint_method;
  run->adjoint_options.dt = 1.0 / static_cast<double>(c.solver.adjoint_steps);
  run->adjoint_options.adaptive = c.solver.adjoint_adaptive;
  run->sde = std::make_unique<BlockSDE>(dynamics, hypernet, hyper_params, c.sigma,
                                        weight_sde ? c.estimator : Estimator::Ckl, sde_type(c), batch,
                                        route == sde::Route::Autograd ? sde::Route::Autograd : sde::Route::Fused,
                                        options, weight_sde ? 1 : static_layers(c));
  sde::BrownianIntervalOptions bo;
  bo.t0 = 0.0;
  bo.t1 = 1.0;
  bo.shape = {run->sde->layout().w_dim};
  bo.options = options;
  bo.seed = seed;
  bo.dt_hint = run->options.dt;
  bo.levy_area = c.solver.method == sde::Method::Srk;
  run->bm = zero_noise || !weight_sde ? sde::make_zero_brownian(bo)
            : grid_noise.defined()    ? sde::make_grid_brownian(bo, grid_noise)
                                      : sde::make_brownian_interval(bo);
  const bool adjoint = c.solver.gradient == GradientRoute::Adjoint;
  run->adjoint = gradients && adjoint;
  if (route == sde::Route::Buffered) {
    const sde::BufferedMode mode = !gradients ? sde::BufferedMode::Forward
                                   : adjoint  ? sde::BufferedMode::Adjoint
                                              : sde::BufferedMode::Backprop;
    run->buffered = make_block_solve(*run->sde, *run->bm, mode, run->options, run->adjoint_options, pool);
  } else if (route == sde::Route::Fused && gradients && !adjoint && weight_sde) {
    run->bank = std::make_shared<GradBank>();
    run->sde->set_bank(run->bank);
  }
  return run;
}

at::Tensor solve_block(const std::shared_ptr<BlockRun>& run, const at::Tensor& y0,
                       const std::vector<at::Tensor>& params, bool graph) {
  if (run->route == sde::Route::Buffered) {
    return graph ? BufferedSolveFn::apply(run, y0, at::TensorList(params)) : run->solve_buffered(y0);
  }
  if (graph && run->adjoint) return AdjointSolveFn::apply(run, y0, at::TensorList(params));
  BlockRun* r = run.get();
  sde::Solution s =
      sde::sdeint(*r->sde, y0, {0.0, 1.0}, *r->bm, r->options, [r](double t, const sde::SolveStats&) { r->t_end = t; });
  r->forward = s.stats;
  return s.ys.select(0, 1);
}

}  // namespace bnn
