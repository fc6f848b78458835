// A dedicated fixed-step Euler-Maruyama path for one SDE-BNN block, without autograd.
//
// The generic route solves the block's augmented SDE [h, w, kl(, kl_dB)] with the engine
// (native/sde) and differentiates it through autograd: one graph node per evaluation, ATen
// dispatch for every small op, a fresh allocation for every intermediate. For the small shapes
// of an SDE-BNN (W1: batch 64, a 3-32-32-3 MLP, a 1284-64-1283 hypernetwork) that per-op
// overhead is the whole cost. This path runs the same Euler steps itself on preallocated
// buffers (raw loops for the hypernetwork and the MLP dynamics; the conv dynamics' own shifted-sum
// kernels), keeps only what the reverse sweep needs, and computes gradients by hand:
//   - backprop: the exact discrete adjoint of the forward Euler steps on the stored states;
//   - adjoint:  the stochastic adjoint (Euler on the backward system, Li et al. 2020) that
//               reconstructs the state backwards from y(1) without stored states, exactly as the
//               engine's AdjointSystem does, but with hand-written VJPs.
// The hypernetwork's parameter gradients are accumulated outside the integrated state: each
// step banks its layer cotangents and inputs, and one matrix product per layer sums them.
//
// It covers: CPU tensors of float32/float64; method 'euler' with fixed steps; backprop with every
// estimator (ckl, fmc, stl); the adjoint with adjointMethod 'euler' with fixed steps and the ckl
// estimator (the only combination the engine accepts for an Euler adjoint of this SDE: fmc/stl
// make the noise general). Everything else (other devices, methods, adaptive steps) takes the
// generic route: `supported` says which, so the caller never gets a silently different answer.
#pragma once
#include <ATen/core/Tensor.h>

#include <memory>
#include <utility>
#include <vector>

#include "bnn/block_sde.h"
#include "bnn/config.h"
#include "sde/brownian.h"
#include "sde/solvers.h"

namespace bnn {

// Buffers reused from one solve of a block to the next (same sizes in the same order): no
// allocation, page faults or zeroing per training step. Not shared between threads.
class FastWorkspace {
 public:
  void rewind() { next_ = 0; }
  at::Tensor get(at::IntArrayRef shape, const at::TensorOptions& options);

 private:
  std::vector<at::Tensor> pool_;
  size_t next_ = 0;
};

class FastBlockSolver {
 public:
  enum class Mode { Forward, Backprop, Adjoint };  // Forward: no gradients (prediction)

  // Whether this path computes exactly what the generic route would for `config` (its solver,
  // estimator, dtype, device) in `mode`.
  static bool supported(const BnnConfig& config, Mode mode);
  // `dt`: the forward step; `adjoint_dt`: the backward step of the adjoint mode.
  // `workspace` must outlive the solver and serve one solver at a time.
  static std::unique_ptr<FastBlockSolver> make(const BlockSDE& sde, sde::BrownianMotion& bm, Mode mode, double dt,
                                               double adjoint_dt, FastWorkspace& workspace);

  virtual ~FastBlockSolver() = default;
  // y(1) from y(0) (flat block states); no graph. Throws ERR_NUMERICAL on a non-finite solution.
  virtual at::Tensor solve(const at::Tensor& y0) = 0;
  // From dL/dy(1): dL/dy(0) and dL/d(hypernetwork parameters), in SDE::parameters() order.
  virtual std::pair<at::Tensor, std::vector<at::Tensor>> gradients(const at::Tensor& grad_y1) = 0;

  sde::SolveStats forward_stats, backward_stats;
  double t_end = 0;
};

}  // namespace bnn
