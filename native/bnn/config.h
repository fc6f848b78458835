// SDE-BNN configuration: the network shape, the weight SDE, the estimator, the solver, the
// optimiser and the kernels asked for. lib/bnn.ts resolves every default and validates every
// field (the one place defaults live); the addon requires every field; BnnModel re-checks the
// invariants it relies on (C++ callers) and throws sde::invalid_argument naming the field.
#pragma once
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>
#include <vector>

#include "sde/activations.h"
#include "sde/routes.h"
#include "sde/solvers.h"

namespace bnn {

using sde::Activation;

enum class Kind { Mlp, Conv };
// What each block is (lib/bnn-config.ts BnnModelKind): the SDE-BNN's weight SDE, or static
// weights (a point or, mfvi, a mean-field Gaussian) solved as an ODE, or as K residual layers
// (each layer a block of its own with one Euler step on [k/K, (k+1)/K]).
enum class Model { SdeBnn, OdeNet, ResNet, MfviResNet, MfviOdeNet };
enum class Estimator { Ckl, Fmc, Stl };
enum class Likelihood { Categorical, Gaussian, Laplace };
enum class GradientRoute { Backprop, Adjoint };
enum class W0Init { Normal, FanIn };

Kind parse_kind(const std::string& name);
Model parse_model(const std::string& name);
// The blocks have a weight SDE (sigma, a hypernetwork, a path KL): the SDE-BNN only.
bool has_weight_sde(Model m);
// Each block is solver.steps residual layers.
bool is_resnet(Model m);
Estimator parse_estimator(const std::string& name);
Likelihood parse_likelihood(const std::string& name);
GradientRoute parse_gradient_route(const std::string& name);
W0Init parse_w0_init(const std::string& name);
const char* to_string(Estimator e);

struct SolverConfig {
  sde::Method method{};
  int64_t steps = 0;  // fixed steps on [0, 1] (the initial step when adaptive)
  bool adaptive = false;
  double rtol = 0, atol = 0, dt_min = 0;
  GradientRoute gradient{};
  sde::Method adjoint_method{};
  int64_t adjoint_steps = 0;
  bool adjoint_adaptive = false;
  int64_t max_steps = 0;  // per solve, forward and backward (config.solver.maxSteps)
};

struct BnnConfig {
  Model model = Model::SdeBnn;
  Kind kind{};
  std::vector<int64_t> input_shape;  // mlp: [D]; conv: [C, H, W]
  int64_t aug = 0;                   // zero channels (conv) or dimensions (mlp) appended to h_0

  // mlp dynamics: Linear(d, hidden[0]) act ... Linear(hidden[-1], d), d = D + aug
  std::vector<int64_t> hidden;
  Activation activation{};
  bool time_input = false;   // t appended to every layer's input
  bool output_last = false;  // mlp head: the last `outputs` coordinates of h_1 (else a Linear head)
  int64_t mlp_blocks = 0;    // mlp: consecutive SDE blocks

  // conv dynamics: conv3x3(C+1 -> width) act conv3x3(width+1 -> C), t as a constant channel
  int64_t stem_channels = 0;    // 0: no stem
  std::vector<int64_t> blocks;  // blocks per stage; space-to-depth x2 between stages
  std::vector<int64_t> widths;  // conv hidden width per stage
  Activation conv_activation{};
  int64_t pool = 0;  // average-pool kernel before the linear head; 0: global average

  int64_t outputs = 0;  // classes (categorical) or regression outputs
  Likelihood likelihood{};
  double scale = 0;  // Gaussian std or Laplace scale (initial value when learned)
  bool learn_scale = false;

  // weight SDE (the SDE-BNN only; the other models ignore sigma, hyper_* and the estimator)
  double sigma = 0;
  std::vector<int64_t> hyper_hidden;
  Activation hyper_activation{};
  W0Init w0_init{};
  double w0_std = 0;
  bool w0_gaussian = false;  // q(w_0) = N(mu, exp(2 rho)) with prior N(0, w0_prior_std^2)
  double w0_prior_std = 0;
  double w0_rho_init = 0;
  Estimator estimator{};
  SolverConfig solver;

  // objective and optimiser
  double beta = 0;
  double n_train = 0;
  double lr = 0;
  double adam_beta1 = 0, adam_beta2 = 0, adam_eps = 0;
  double clip = 0;  // gradient-norm clipping; 0: off
  double ema = 0;   // EMA decay of the parameters; 0: off

  uint64_t seed = 0;
  sde::Kernels kernels{};  // the routes asked for (bnn/routes.h)
  c10::ScalarType dtype = c10::kFloat;
  c10::Device device = c10::Device(c10::kCPU);
  // Training steps as CUDA graphs (graph_step.cpp): fixed steps on CUDA, noise drawn on the device.
  bool cuda_graph = false;
};

// The weight slices of a static-weight block: a resnet's one per step (layer k's serve the Euler
// step from t = k/K), else 1.
int64_t static_layers(const BnnConfig& c);

}  // namespace bnn
