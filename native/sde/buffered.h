// The buffered fixed-step solver: Euler-Maruyama steps on caller-owned, reused buffers, with
// hand-written vector-Jacobian products instead of an autograd graph. One stepping loop, its exact
// reverse sweep (backprop through the stored steps) and the stochastic adjoint (Euler on the
// backward system from y(ts.back()), reconstructing the state on the same Brownian path, as
// sde::adjoint_gradients does) are written here once; a BufferedSystem supplies the increments
// and their VJPs over raw CPU memory. The SDE-BNN's blocks and neural SDEs are such systems.
//
// Every step is z <- z + F(t, z), F = f(t, z) dt + g(t, z) dW (Ito; F linear in (dt, dW)).
// Backprop: a_k = a_{k+1} + a_{k+1} . dF/dz at the stored (t_k, z_k). Adjoint: the same VJP at
// the reconstructed (t_{k+1}, z_{k+1}), then z_k = z_{k+1} - F there: Euler on the Stratonovich
// backward system, right for additive noise (where Ito and Stratonovich agree), the only noise the
// engine lets an Euler adjoint solve. The parameters' part a . dF/dtheta is accumulated by the
// system however suits it (the SDE-BNN banks rank-1 factors and sums them by one product).
#pragma once
#include <ATen/core/Tensor.h>

#include <memory>
#include <utility>
#include <vector>

#include "sde/brownian.h"
#include "sde/buffers.h"
#include "sde/solvers.h"

namespace sde {

template <typename T>
class BufferedSystem {
 public:
  virtual ~BufferedSystem() = default;
  virtual int64_t state_size() const = 0;  // numel of z
  virtual int64_t noise_size() const = 0;  // numel of dW (the Brownian motion's shape)
  // Before a solve's first evaluation: `slots` evaluations will be stored (backprop: one per step).
  virtual void prepare(int64_t slots) = 0;
  // Before a reverse sweep of `steps` VJPs: the parameters' gradients start from zero. `stored`:
  // the VJPs run at stored slots (backprop; slot k for step k), else at points given to
  // increment_vjp (the adjoint).
  virtual void begin_gradients(int64_t steps, bool stored) = 0;
  // F = f(t, z) dt + g(t, z) dW; with `store`, keeps at `slot` what vjp needs.
  virtual void increment(int64_t slot, double t, double dt, const T* z, const T* dW, T* F, bool store) = 0;
  // a += a . dF/dz at the evaluation stored at `slot`; a . dF/dtheta added to the parameters' gradients.
  virtual void vjp(int64_t slot, int64_t step, double t, double dt, const T* dW, T* a) = 0;
  // increment and vjp at one point, nothing stored (the adjoint's step).
  virtual void increment_vjp(int64_t step, double t, double dt, const T* z, const T* dW, T* F, T* a) = 0;
  // After the sweep: the parameters' gradients, in the SDE's parameters() order.
  virtual std::vector<at::Tensor> parameter_gradients() = 0;
};

enum class BufferedMode { Forward, Backprop, Adjoint };  // Forward: no gradients (prediction, sdeint)

class BufferedSolve {
 public:
  virtual ~BufferedSolve() = default;
  // The states at every ts from y0 (the flat state), [len(ts), state_size], without a graph.
  // Throws ERR_NUMERICAL when a state at an output time is not finite.
  virtual at::Tensor solve(const at::Tensor& y0, const StepProgress& progress = {}) = 0;
  // From dL/dys [len(ts), state_size]: dL/dy0 and the parameters' gradients (backprop or the
  // adjoint, by the mode). After solve().
  virtual std::pair<at::Tensor, std::vector<at::Tensor>> gradients(const at::Tensor& grad_ys,
                                                                   const StepProgress& progress = {}) = 0;

  SolveStats forward_stats, backward_stats;
};

// The pool of buffered solves whose SDE does not keep one itself (neural SDEs): a process-wide one,
// so that a solve reuses the last one's buffers (no page faults: on a VM they cost more than the
// solve) even when its SDE object is new. It keeps at most 1 GiB.
BufferPool& shared_solver_pool();

// Uninitialised, contiguous, like x: on CPU from shared_solver_pool() (an evaluation's fresh memory
// would otherwise page-fault on every evaluation: the allocator returns it to the system on free),
// elsewhere from the device's allocator.
at::Tensor fresh_like(const at::Tensor& x);

// A solve of `system` on `bm` through ts: fixed steps of options.dt on each interval (sdeint's
// grid), and of adjoint_options.dt for the adjoint's backward pass; more steps than their max_steps
// is ERR_LIMIT before anything is allocated. Buffers come from `pool`; bm and pool outlive the solve.
template <typename T>
std::unique_ptr<BufferedSolve> make_buffered_solve(std::unique_ptr<BufferedSystem<T>> system, BrownianMotion& bm,
                                                   BufferedMode mode, std::vector<double> ts,
                                                   const StepOptions& options, const StepOptions& adjoint_options,
                                                   BufferPool& pool);

}  // namespace sde
