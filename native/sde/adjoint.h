// Gradients of a loss on the solution at the output times, with respect to y0 and the SDE's
// parameters, by backprop through the solver or by the stochastic adjoint (Li et al. 2020).
#pragma once
#include <vector>

#include "sde/solvers.h"

namespace sde {

struct GradientResult {
  at::Tensor ys;                        // [len(ts), ...]: the forward solution
  at::Tensor grad_y0;                   // dL/dy0
  std::vector<at::Tensor> grad_params;  // dL/dtheta, in SDE::parameters() order
  SolveStats forward, backward;
  Route route = Route::Autograd;  // the route that ran (routes.h)
};

// Backprop through the solver: the buffered route's exact reverse sweep where select_route picks
// it, else autograd through every solver step (memory grows with the steps).
GradientResult backprop_gradients(SDE& sde, const at::Tensor& y0, const std::vector<double>& ts, BrownianMotion& bm,
                                  const StepOptions& options, const at::Tensor& grad_ys);

// The stochastic adjoint: a forward solve without a graph, then from ts.back() to ts.front() on the
// same Brownian path, the backward Stratonovich SDE of (state, adjoint, parameter adjoint), adding
// dL/dy at each output time. Ito SDEs are solved forward as Ito and converted to Stratonovich
// (drift + ito_correction) for the backward pass. Memory is independent of the number of steps.
// With method and adjoint method both reversible_heun, the backward pass is the exact discrete
// adjoint of the forward steps (Kidger et al. 2021): gradients equal backprop's to round-off.
// The buffered route runs fixed-step Euler adjoints of additive-noise SDEs where it is picked.
GradientResult adjoint_gradients(SDE& sde, const at::Tensor& y0, const std::vector<double>& ts, BrownianMotion& bm,
                                 const StepOptions& options, const StepOptions& adjoint_options,
                                 const at::Tensor& grad_ys, const StepProgress& progress = {});

// Throws invalid_argument when `adjoint_method` cannot run the adjoint of `sde` solved by `method`.
void check_adjoint_method(Method method, Method adjoint_method, const SDE& sde);

}  // namespace sde
