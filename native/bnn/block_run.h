// One SDE-BNN block's solve in a training step or a prediction: its SDE on the batch, its
// Brownian path, the route's solver state and the statistics. Shared by the autograd node that
// differentiates it (an owning capsule in its saved data), so it lives as long as the graph does.
#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <memory>
#include <utility>
#include <vector>

#include "bnn/block_sde.h"
#include "bnn/config.h"
#include "bnn/routes.h"
#include "sde/brownian.h"
#include "sde/buffered.h"
#include "sde/solvers.h"

namespace bnn {

struct BlockRun {
  std::unique_ptr<BlockSDE> sde;
  std::unique_ptr<sde::BrownianMotion> bm;
  sde::StepOptions options, adjoint_options;
  sde::Route route = sde::Route::Autograd;
  bool adjoint = false;  // gradients by the stochastic adjoint
  sde::SolveStats forward, backward;
  double t_end = 0;
  std::shared_ptr<GradBank> bank;  // fused backprop: the hypernetwork's weight gradients, flushed after backward
  std::unique_ptr<sde::BufferedSolve> buffered;  // the buffered route's solve

  // The buffered route's solve from y(0): y(1), without a graph.
  at::Tensor solve_buffered(const at::Tensor& y0);
  // The buffered route's gradients from dL/dy(1): dL/dy(0) and the hypernetwork's.
  std::pair<at::Tensor, std::vector<at::Tensor>> buffered_gradients(const at::Tensor& g1);
};

// A block's Brownian seed: the next 64 bits of the model's generator (one per block and call).
uint64_t draw_seed(at::Generator& gen);

// A block's run on a batch of `batch` with its Brownian path drawn from `seed` (all zeros with
// `zero_noise`: the same solvers then take the drift's deterministic path): the route's SDE and,
// for the buffered route, its solve (mode: Forward without gradients; Backprop or Adjoint by
// config.solver.gradient), buffers from `pool`. A null hypernetwork: static weights (a resnet's
// one slice per step, static_layers), solved on a zero path. grid_noise, when defined: the path's
// increments on the solver's grid, drawn by the caller (sde::make_grid_brownian), instead of seed's
// Brownian interval. The solves leave the finiteness check to the model (its loss, its predictions).
std::shared_ptr<BlockRun> start_run(const BnnConfig& config, sde::Route route, bool gradients,
                                    const std::shared_ptr<Dynamics>& dynamics,
                                    const std::shared_ptr<Hypernet>& hypernet,
                                    const std::vector<at::Tensor>& hyper_params, int64_t batch, uint64_t seed,
                                    const at::TensorOptions& options, sde::BufferPool& pool, bool zero_noise,
                                    const at::Tensor& grid_noise = at::Tensor());

// y(1) from the flat state y0. With `graph`, y(1) is differentiable: one autograd node per block
// (the buffered route's own sweep; the general solver's stochastic adjoint), or autograd through
// the general solver's steps (backprop). Without, no graph.
at::Tensor solve_block(const std::shared_ptr<BlockRun>& run, const at::Tensor& y0,
                       const std::vector<at::Tensor>& params, bool graph);

}  // namespace bnn
