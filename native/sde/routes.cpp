#include "sde/routes.h"

#include "sde/errors.h"
#include "sde/solvers.h"

namespace sde {

// Names and enums: one small table per enum, the same shape as parse_method and the others (by design).
Kernels parse_kernels(const std::string& name) {
  if (name == "fast") return Kernels::Fast;
  if (name == "fused") return Kernels::Fused;
  if (name == "autograd") return Kernels::Autograd;
  throw invalid_argument("Expected 'fast', 'fused' or 'autograd' for kernels but received '" + name + "'");
}

const char* to_string(Route route) {
  switch (route) {
    case Route::Buffered: return "buffered";
    case Route::Fused: return "fused";
    case Route::Autograd: return "autograd";
  }
  return "?";
}

Route select_route(const RouteOffer& offer, NoiseType noise, Purpose purpose, const StepOptions& options,
                   const StepOptions& adjoint_options, const c10::Device& device, c10::ScalarType dtype) {
  const bool fixed_euler = options.method == Method::Euler && !options.adaptive;
  const bool euler_adjoint =
      adjoint_options.method == Method::Euler && !adjoint_options.adaptive && noise == NoiseType::Additive;
  if (offer.kernels == Kernels::Fast && offer.buffered && device.is_cpu() &&
      (dtype == c10::kFloat || dtype == c10::kDouble) && fixed_euler &&
      (purpose != Purpose::Adjoint || euler_adjoint)) {
    return Route::Buffered;
  }
  return offer.kernels != Kernels::Autograd && offer.hand_written ? Route::Fused : Route::Autograd;
}

}  // namespace sde
