// An SDE-BNN block as a system of the buffered solver (sde/buffered.h): the augmented state
// [h, w, kl(, kl_dB)] of block_sde.h stepped over raw CPU memory, the hypernetwork by
// sde::MlpKernel and the dynamics by their DynamicsKernel (static weights: [h, w], the dynamics alone). The
// hypernetwork's weight gradients are banked per step (its rank-1 factors) and summed by one product per layer at the
// end.
#pragma once
#include <memory>

#include "bnn/block_sde.h"
#include "sde/buffered.h"

namespace bnn {

// A buffered solve of `sde` on `bm` over [0, 1] by `options` (the adjoint's backward pass by `adjoint_options`).
// CPU, float32 or float64 (the SDE's dtype). sde, bm and pool outlive it.
std::unique_ptr<sde::BufferedSolve> make_block_solve(const BlockSDE& sde, sde::BrownianMotion& bm,
                                                     sde::BufferedMode mode, const sde::StepOptions& options,
                                                     const sde::StepOptions& adjoint_options, sde::BufferPool& pool);

}  // namespace bnn
