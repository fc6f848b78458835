// Routes: how a solve runs. A route is a solver (the buffered fixed-step solver of buffered.h, or
// the engine's general solver of solvers.h) times a VJP provider (hand-written, or autograd). A
// user asks through `kernels`; select_route says which route runs, and results report it, so that
// a different route is never a silently different answer.
#pragma once
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>

#include "sde/sde.h"

namespace sde {

struct StepOptions;

// What a user asks for: 'fast' (the buffered route where it applies, else 'fused'), 'fused'
// (the general solver, one autograd node with hand-written VJPs per evaluation, where the SDE
// has them) or 'autograd' (plain autograd: the reference).
enum class Kernels { Fast, Fused, Autograd };
Kernels parse_kernels(const std::string& name);

// What runs: Buffered (buffered solver, hand-written VJPs), Fused (general solver, hand-written
// VJPs), Autograd (general solver, autograd).
enum class Route { Buffered, Fused, Autograd };
const char* to_string(Route route);

enum class Purpose { Solve, Backprop, Adjoint };

// What an SDE offers: the kernels its user asked for, and whether it has hand-written VJPs and a
// buffered system.
struct RouteOffer {
  Kernels kernels = Kernels::Autograd;
  bool hand_written = false;
  bool buffered = false;
};

// The route for a solve (Purpose::Adjoint: with adjoint_options for its backward pass) of an SDE
// offering `offer` with `noise`, on tensors of `device` and `dtype`. The buffered solver takes
// fixed-step Euler on CPU in float32/float64, and for the adjoint a fixed-step Euler adjoint, which
// the engine allows for additive noise only.
Route select_route(const RouteOffer& offer, NoiseType noise, Purpose purpose, const StepOptions& options,
                   const StepOptions& adjoint_options, const c10::Device& device, c10::ScalarType dtype);

}  // namespace sde
