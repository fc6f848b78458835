// SDE-BNN configuration: the network shape, the weight SDE, the estimator, the solver and the
// optimiser. The TypeScript layer validates and fills every field; BnnModel re-checks the
// invariants it relies on (C++ callers) and throws sde::invalid_argument naming the field.
#pragma once
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>
#include <vector>

#include "sde/neural.h"
#include "sde/solvers.h"

namespace bnn {

using sde::Activation;

enum class Kind { Mlp, Conv };
enum class Estimator { Ckl, Fmc, Stl };
enum class Likelihood { Categorical, Gaussian, Laplace };
enum class GradientRoute { Backprop, Adjoint };
enum class W0Init { Normal, FanIn };

Kind parse_kind(const std::string& name);
Estimator parse_estimator(const std::string& name);
Likelihood parse_likelihood(const std::string& name);
GradientRoute parse_gradient_route(const std::string& name);
W0Init parse_w0_init(const std::string& name);
const char* to_string(Estimator e);

struct SolverConfig {
  sde::Method method = sde::Method::Euler;
  int64_t steps = 20;  // fixed steps on [0, 1] (the initial step when adaptive)
  bool adaptive = false;
  double rtol = 1e-3, atol = 1e-4, dt_min = 1e-5;
  GradientRoute gradient = GradientRoute::Backprop;
  sde::Method adjoint_method = sde::Method::Euler;
  int64_t adjoint_steps = 20;
  bool adjoint_adaptive = false;
  int64_t max_steps = 100000;  // per solve, forward and backward (config.solver.maxSteps)
};

struct BnnConfig {
  Kind kind = Kind::Conv;
  std::vector<int64_t> input_shape{1, 28, 28};  // mlp: [D]; conv: [C, H, W]
  int64_t aug = 0;  // zero channels (conv) or dimensions (mlp) appended to h_0

  // mlp dynamics: Linear(d, hidden[0]) act ... Linear(hidden[-1], d), d = D + aug
  std::vector<int64_t> hidden{32, 32};
  Activation activation = Activation::Softplus;
  bool time_input = false;      // t appended to every layer's input
  bool output_last = true;      // mlp head: the last `outputs` coordinates of h_1 (else a Linear head)
  int64_t mlp_blocks = 1;       // mlp: consecutive SDE blocks

  // conv dynamics: conv3x3(C+1 -> width) act conv3x3(width+1 -> C), t as a constant channel
  int64_t stem_channels = 16;    // 0: no stem
  std::vector<int64_t> blocks{1};   // blocks per stage; space-to-depth x2 between stages
  std::vector<int64_t> widths{32};  // conv hidden width per stage
  Activation conv_activation = Activation::Softplus;
  int64_t pool = 2;  // average-pool kernel before the linear head; 0: global average

  int64_t outputs = 10;  // classes (categorical) or regression outputs
  Likelihood likelihood = Likelihood::Categorical;
  double scale = 1.0;       // Gaussian std or Laplace scale (initial value when learned)
  bool learn_scale = false;

  // weight SDE
  double sigma = 0.05;
  std::vector<int64_t> hyper_hidden{32};
  Activation hyper_activation = Activation::Tanh;
  W0Init w0_init = W0Init::FanIn;
  double w0_std = 0.1;
  bool w0_gaussian = false;  // q(w_0) = N(mu, exp(2 rho)) with prior N(0, w0_prior_std^2)
  double w0_prior_std = 0.1;
  double w0_rho_init = -6.9;  // exp(rho) = 1e-3
  Estimator estimator = Estimator::Ckl;
  SolverConfig solver;

  // objective and optimiser
  double beta = 1e-3;
  double n_train = 60000;
  double lr = 1e-3;
  double adam_beta1 = 0.9, adam_beta2 = 0.999, adam_eps = 1e-8;
  double clip = 1.0;  // gradient-norm clipping; 0: off
  double ema = 0.0;   // EMA decay of the parameters; 0: off

  uint64_t seed = 0;
  bool fused = true;  // hand-written VJPs in one autograd node per drift evaluation (false: plain autograd)
  // With fused: fixed-step Euler solves run the dedicated path of bnn/fast_block.h (no autograd
  // inside the solve) wherever it computes the same thing; false: always the generic engine.
  bool fast = true;
  c10::ScalarType dtype = c10::kFloat;
  c10::Device device = c10::Device(c10::kCPU);
};

}  // namespace bnn
