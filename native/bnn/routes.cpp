#include "bnn/routes.h"

#include <algorithm>

namespace bnn {

sde::SdeType sde_type(const BnnConfig& c) {
  const auto& types = sde::method_info(c.solver.method).sde_types;
  return std::find(types.begin(), types.end(), sde::SdeType::Ito) != types.end() ? sde::SdeType::Ito
                                                                                 : sde::SdeType::Stratonovich;
}

sde::NoiseType noise_type(Estimator estimator) {
  return estimator == Estimator::Ckl ? sde::NoiseType::Additive : sde::NoiseType::General;
}

ModelRoute select_route(const BnnConfig& c, bool gradients) {
  sde::StepOptions options, adjoint_options;
  options.method = c.solver.method;
  options.adaptive = c.solver.adaptive;
  adjoint_options.method = c.solver.adjoint_method;
  adjoint_options.adaptive = c.solver.adjoint_adaptive;
  const sde::Purpose purpose = !gradients                                    ? sde::Purpose::Solve
                               : c.solver.gradient == GradientRoute::Adjoint ? sde::Purpose::Adjoint
                                                                             : sde::Purpose::Backprop;
  // a block has hand-written VJPs and a buffered system for every config
  const sde::Route solve = sde::select_route({c.kernels, true, true}, noise_type(c.estimator), purpose, options,
                                             adjoint_options, c.device, c.dtype);
  const bool by_hand = c.kind == Kind::Mlp && c.output_last && !c.w0_gaussian && !c.learn_scale &&
                       (c.likelihood == Likelihood::Gaussian || c.likelihood == Likelihood::Laplace);
  return {solve, !(gradients && solve == sde::Route::Buffered && by_hand)};
}

}  // namespace bnn
