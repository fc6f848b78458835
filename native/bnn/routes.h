// How an SDE-BNN computes: route selection in one place. Each block's solve takes the engine's
// route (sde/routes.h: the buffered solver, or the general solver with hand-written VJPs or
// autograd), and the model's other parts (stem, head, likelihood, q(w_0)) need an autograd graph
// unless their gradients are written by hand (the "direct" case: mlp, 'last' head, a Gaussian or
// Laplace likelihood of fixed scale, a point w_0, every block buffered). SdeBnn.routes reports
// the result, so a test can ask which route runs.
#pragma once
#include "bnn/config.h"
#include "sde/routes.h"

namespace bnn {

struct ModelRoute {
  sde::Route solve;  // every block's
  bool graph;        // the model's other parts build an autograd graph
};

// The route of a call that computes gradients (training steps, gradients()) or not (predict, diagnose).
ModelRoute select_route(const BnnConfig& config, bool gradients);

// The SDE type of the blocks' weight SDE: Ito for methods that solve Ito SDEs, else Stratonovich.
sde::SdeType sde_type(const BnnConfig& config);

// The noise of a block's SDE: additive for ckl; general for fmc/stl (the u . dB term).
sde::NoiseType noise_type(Estimator estimator);

}  // namespace bnn
